"""What a model offers this package's decoding loop: the generation protocol, written down.

The search (`search_seq2seq_rnn.DecodingLoop`) never reaches into a model. It asks it for the encoder
memory and the decoder's first state (`start_decoding`), then for one step at a time: the step up to
the output layer for every row (`decode_features`), and each search's logits with its own output
layer (`decode_logits`; `decode_step` is both at once). It keeps, drops or reorders rows through the
memory's `select` and the state's `reorder_cache`; a request that joins a running batch is joined
with `cat`. Whether the coverage
penalty can be applied, and whether alignments come back, it reads from `has_attention`.

`Seq2SeqRNNForConditionalGeneration` and `Seq2SeqRNNEnsemble` satisfy `DecodingModel` (tests check
both with `isinstance`), as fairseq's `EnsembleModel` offers its `SequenceGenerator` what a single
model offers. transformers' own loop needs more (`forward` returning the state in the generation
cache); `modeling_seq2seq_rnn.Seq2SeqRNNGenerationMixin` is what both classes share for that.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

import torch


@runtime_checkable
class DecoderMemory(Protocol):
    """What the decoder reads from the encoder at every step, one row per decoded row
    (`modeling_seq2seq_rnn.Seq2SeqRNNMemory`)."""

    def select(self, rows: torch.LongTensor) -> Self:
        """The memory of `rows` `(kept,)` only, in that order (a search dropping finished rows)."""
        ...

    @classmethod
    def cat(cls, memories: list[Self]) -> Self:
        """The memories of several batches as one, rows in order (a batch joining a running one)."""
        ...


@runtime_checkable
class DecoderState(Protocol):
    """The decoder's recurrent state between steps, batch-first (`modeling_seq2seq_rnn.Seq2SeqRNNState`)."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep the rows `beam_idx` `(kept,)`, in that order, in place (beam search; dropped rows)."""
        ...

    @classmethod
    def cat(cls, states: list[Self]) -> Self:
        """The states of several batches as one, rows in order."""
        ...


@runtime_checkable
class DecodingModel(Protocol):
    """A model the decoding loop can step.

    Attributes:
        state_class: the class of its decoder state (a `DecoderState`), which `generate()`'s
            preparation recognises among the step's inputs.
        memory_class: the class of its encoder memory (a `DecoderMemory`).
        has_attention: whether `decode_step` returns alignments (and the coverage penalty applies).
    """

    state_class: type[DecoderState]
    memory_class: type[DecoderMemory]

    @property
    def has_attention(self) -> bool: ...

    def start_decoding(
        self, encoder_outputs: Any, attention_mask: torch.Tensor | None
    ) -> tuple[DecoderMemory, DecoderState]:
        """The encoder memory and the decoder's first state, from what the encoder returned."""
        ...

    def decode_step(
        self, input_ids: torch.LongTensor, memory: DecoderMemory, state: DecoderState, output: Any = None
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One step on the previous tokens `(rows,)`: logits `(rows, vocab_size)`, the new state and
        the alignment `(rows, src_len)` (`None` without attention). With `output` (what `output_layer`
        returned), the logits of the shortlist's tokens only, `(rows, shortlist)`."""
        ...

    def decode_features(
        self, input_ids: torch.LongTensor, memory: DecoderMemory, state: DecoderState
    ) -> tuple[Any, DecoderState, torch.Tensor | None]:
        """`decode_step` up to the output layer: what the output layer reads (rows first), the new
        state and the alignment. The loop takes the logits of each strategy's rows with its own
        output layer (`decode_logits`)."""
        ...

    def decode_logits(self, features: Any, rows: slice, output: Any = None) -> torch.Tensor:
        """The logits of the rows `rows` of `decode_features`' features, as `decode_step` returns them."""
        ...

    def output_layer(self, vocabulary: torch.LongTensor) -> Any:
        """The output layer for the token ids `vocabulary` `(shortlist,)` only, for `decode_step`."""
        ...


__all__ = ["DecoderMemory", "DecoderState", "DecodingModel"]
