"""The recurrent encoder–decoder with attention as a Hugging Face model.

Encoder (Sutskever et al., 2014; Cho et al., 2014): embeddings, then a stack of LSTM, GRU or
peephole-LSTM layers, optionally bidirectional, reading the real tokens of each row only (packed
sequences), optionally in reverse order. Its final state starts the decoder.

Decoder, one step (query `s`, attention from `attention_seq2seq_rnn`, `;` concatenation):

    input      x_t  = [E y_{t-1} ; c_t (query before the step) ; h~_{t-1} (input feeding) ; c̄ (peeky)]
    before:    c_t  = attend(s_{t-1}) before the step    (additive; Bahdanau et al., 2015, eq. 5–6)
    recurrent: s_t  = RNN(x_t, s_{t-1})
    after:     c_t  = attend(s_t) after the step         (dot, general; Luong et al., 2015, section 3.1)
    attentional hidden state: h~_t = tanh(W_c [c_t ; s_t])   (Luong et al., 2015, eq. 5)
    output:    p(y_t) = softmax(W_o [h~_t ; c̄ (peeky)])

The attention class of `config.attention_type` says which (`query_before_step`) and how wide `c_t`
is; the decoder never names a type. Without a context (attention "none") `h~_t = s_t`: the pure
context-vector model, in which `c̄`, the top layer's final encoder state, reaches the decoder only
through its initial state, or also through every step and the output layer when `peeky` (Cho et
al., 2014, section 2.2).

When every step reads the reference token and nothing depends on the previous step's attention
(no input feeding, no query before the step), the decoder runs the RNN over the whole target in
one call and attends for all steps in batched products; otherwise it loops over steps. Generation
carries the recurrent state in `Seq2SeqRNNState` and runs one step per new token.

The state's name at the library boundary differs between transformers releases; `forward` reads
and returns it through `compat_seq2seq_rnn`. The training loss is `loss_seq2seq_rnn`'s.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin, LogitsProcessorList, PreTrainedModel, StoppingCriteriaList
from transformers import __version__ as transformers_version
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .attention_seq2seq_rnn import ATTENTION_CLASSES, GeneralScoreMatrix
from .compat_seq2seq_rnn import CACHE_FIELD, cache_field, given_state
from .configuration_seq2seq_rnn import Seq2SeqRNNConfig, has_attention
from .loss_seq2seq_rnn import language_model_loss, uses_chunked_loss

# The files that the search and the configuration import, imported here too: transformers 5.0 copies
# a remote-code folder's files into its module cache only where the modeling file imports them itself.
from .numbers_seq2seq_rnn import is_number  # noqa: F401
from .pipeline_seq2seq_rnn import Seq2SeqRNNPipeline  # noqa: F401  (imported so save_pretrained copies its file)
from .protocol_seq2seq_rnn import DecodingModel  # noqa: F401  (see numbers_seq2seq_rnn above)
from .recurrent_seq2seq_rnn import Dropout, PeepholeLSTM, PeepholeLSTMLayer, build_rnn, reverse_padded
from .search_seq2seq_rnn import (
    OWN_LOOPS,
    SEARCH_SETTINGS,
    SourceLengthCap,
    compact_search,
    decoding_settings,
)
from .shortlist_seq2seq_rnn import (
    BUILD_HINT,
    SHORTLIST_FILE,
    Shortlist,
    ShortlistLogitsProcessor,
    find_shortlist,
    output_rows,
    vocabulary_fingerprint,
)

logger = logging.getLogger(__name__)


class _OutputRecorder:
    """Collects what a module returns while the `with` block runs, when `active`.

    The decoder's first hidden state (its embedding output) is read this way, the way
    transformers' own output capturing reads layer outputs: through a forward hook, so the
    recorded tensors are the ones in the autograd graph of the logits.
    """

    def __init__(self, module: nn.Module, active: bool):
        self.module, self.active, self.outputs = module, active, []
        self._handle = None

    def __enter__(self) -> _OutputRecorder:
        if self.active:
            self._handle = self.module.register_forward_hook(lambda module, args, output: self.outputs.append(output))
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()

    def along_time(self) -> torch.Tensor:
        """The recorded outputs along time: the output itself for one call on `(B, T)` ids (so that
        gradients reach it), else the outputs of one call per step on `(B,)` ids, stacked."""
        if len(self.outputs) == 1 and self.outputs[0].dim() == 3:
            return self.outputs[0]  # (B, T, E)
        return torch.stack(self.outputs, dim=1)  # (B, T, E)


@dataclass
class Seq2SeqRNNEncoderOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, src_len, hidden_size)`): the top
            layer's states, both directions concatenated, in source order, zero on padding.
        final_hidden (`torch.FloatTensor` of shape `(batch, num_layers, hidden_size)`): each layer's
            last hidden state (both directions concatenated); it starts the decoder.
        final_cell (`torch.FloatTensor` of shape `(batch, num_layers, hidden_size)`, *optional*): the
            LSTM cell state likewise; `None` for GRU.
        attention_mask (`torch.LongTensor` of shape `(batch, src_len)`): 1 on real tokens, kept here so
            that every decoding step masks the same padding.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, with `output_hidden_states=True`): the
            embedding output `(batch, src_len, embedding_size)` and the top recurrent layer's states
            `(batch, src_len, hidden_size)` (`last_hidden_state`), both in source order. `nn.LSTM` and
            `nn.GRU` return only the top layer of a stack, so these two are what the shapes allow.
        attentions: always `None`; the encoder has no self-attention.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_hidden: torch.FloatTensor | None = None
    final_cell: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class Seq2SeqRNNState:
    """The decoder's recurrent state, carried between calls as `cache` (`past_key_values` before
    transformers 5.24).

    Every tensor is batch-first, so beam search reorders them all on dimension 0.

    Args:
        hidden (`torch.FloatTensor` of shape `(batch, num_layers, hidden_size)`)
        cell (`torch.FloatTensor` of shape `(batch, num_layers, hidden_size)`, *optional*): LSTM only.
        attentional (`torch.FloatTensor` of shape `(batch, hidden_size)`, *optional*): the last
            attentional hidden state, fed to the next step with input feeding.
        projected_keys (`torch.FloatTensor` of shape `(batch, src_len, hidden_size)`, *optional*):
            the attention's `project_keys` (the additive score's `U_a k_j`), computed once per source.
        steps (`int`): decoder tokens consumed so far.
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None = None
    attentional: torch.Tensor | None = None
    projected_keys: torch.Tensor | None = None
    steps: int = 0
    # A recurrent state cannot be cut back to an earlier step (generate asks before deferring its stop check).
    is_croppable = False

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep the rows of the beams that survive a beam-search step (in place)."""
        for name in ("hidden", "cell", "attentional", "projected_keys"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, beam_idx.to(value.device)))

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.steps

    @classmethod
    def cat(cls, states: list[Seq2SeqRNNState]) -> Seq2SeqRNNState:
        """The states of several batches as one, rows in order (a search loop joining a batch to a
        running one); `projected_keys` padded with zeros to the longest source, which the memory's
        mask hides. `steps` is the most any of them took."""
        width = max(_width(state.projected_keys) for state in states)
        values = {}
        for name in ("hidden", "cell", "attentional", "projected_keys"):
            parts = [getattr(state, name) for state in states]
            if name == "projected_keys":
                parts = [_pad_source(part, width) for part in parts]
            values[name] = None if parts[0] is None else torch.cat(parts)
        return cls(**values, steps=max(state.steps for state in states))

    def as_rnn_state(self) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The state in the layer-first layout of `nn.LSTM` / `nn.GRU`."""
        hidden = self.hidden.transpose(0, 1).contiguous()  # (L, B, H)
        if self.cell is None:
            return hidden
        return hidden, self.cell.transpose(0, 1).contiguous()


@dataclass
class Seq2SeqRNNMemory:
    """What the decoder reads from the encoder at every step.

    Args:
        keys (`torch.FloatTensor` of shape `(batch, src_len, hidden_size)`): the encoder states.
        mask (`torch.BoolTensor` of shape `(batch, src_len)`): True on real source tokens.
        summary (`torch.FloatTensor` of shape `(batch, hidden_size)`): the context vector c̄.
    """

    keys: torch.Tensor
    mask: torch.Tensor
    summary: torch.Tensor

    def select(self, rows: torch.LongTensor) -> Seq2SeqRNNMemory:
        """The memory of `rows` only (a search dropping the rows of finished sentences)."""
        return Seq2SeqRNNMemory(
            keys=self.keys.index_select(0, rows),
            mask=self.mask.index_select(0, rows),
            summary=self.summary.index_select(0, rows),
        )

    @classmethod
    def cat(cls, memories: list[Seq2SeqRNNMemory]) -> Seq2SeqRNNMemory:
        """The memories of several batches as one, rows in order, padded to the longest source (the
        mask is False on the padding, so attention gives it weight 0)."""
        width = max(memory.keys.shape[1] for memory in memories)
        return cls(
            keys=torch.cat([_pad_source(memory.keys, width) for memory in memories]),  # (B, S, H)
            mask=torch.cat([_pad_source(memory.mask, width) for memory in memories]),  # (B, S)
            summary=torch.cat([memory.summary for memory in memories]),  # (B, H)
        )


def _width(values: torch.Tensor | None) -> int:
    """The source length of a `(batch, src_len, ...)` tensor; 0 for None."""
    return 0 if values is None else values.shape[1]


def _pad_source(values: torch.Tensor | None, width: int) -> torch.Tensor | None:
    """`values` `(batch, src_len, ...)` padded with zeros (False) to `width` source positions."""
    if values is None or values.shape[1] == width:
        return values
    padding = values.new_zeros((values.shape[0], width - values.shape[1], *values.shape[2:]))
    return torch.cat([values, padding], dim=1)


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: start token first, labels shifted right, -100 replaced by padding."""
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def _source_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """Row lengths of a right-padded mask; a clear error for anything else."""
    lengths = attention_mask.sum(dim=1)  # (B,)
    if (lengths == 0).any():
        raise ValueError("every source row needs at least one real token (attention_mask is all 0 in some row)")
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    if not torch.equal(attention_mask.bool(), positions.unsqueeze(0) < lengths.unsqueeze(1)):
        raise ValueError("attention_mask must be right-padded (1 on the tokens, then 0 on the padding)")
    return lengths


class Seq2SeqRNNEncoder(nn.Module):
    """Embeddings and the recurrent stack that reads the source."""

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, config.pad_token_id)
        self.dropout = Dropout(config.dropout)
        self.num_directions = 2 if config.bidirectional_encoder else 1
        self.rnn = build_rnn(
            config.cell_type,
            config.embedding_size,
            config.hidden_size // self.num_directions,
            config.num_layers,
            config.dropout,
            config.bidirectional_encoder,
        )

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqRNNEncoderOutput | tuple:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, src_len)`): right-padded source tokens.
            attention_mask (`torch.LongTensor` of shape `(batch, src_len)`, *optional*): 1 on real
                tokens; when omitted, every token that is not `pad_token_id` is real.
            output_hidden_states (`bool`, *optional*): also return `hidden_states`; defaults to
                `config.output_hidden_states`.
            return_dict (`bool`, *optional*): `False` returns `Seq2SeqRNNEncoderOutput.to_tuple()`;
                defaults to `config.return_dict`.
        """
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        lengths = _source_lengths(attention_mask)
        embedded = self.dropout(self.embed_tokens(input_ids))  # (B, S, E), source order
        rnn_inputs = reverse_padded(embedded, lengths) if self.config.reverse_source else embedded
        if isinstance(self.rnn, PeepholeLSTM):
            outputs, final = self.rnn(rnn_inputs, lengths=lengths)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                rnn_inputs, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            packed_outputs, final = self.rnn(packed)
            outputs, _ = nn.utils.rnn.pad_packed_sequence(
                packed_outputs, batch_first=True, total_length=input_ids.shape[1]
            )  # (B, S, D * H/D)
        if self.config.reverse_source:
            outputs = reverse_padded(outputs, lengths)
        final_hidden, final_cell = final if isinstance(final, tuple) else (final, None)
        result = Seq2SeqRNNEncoderOutput(
            last_hidden_state=outputs,
            final_hidden=self._join_directions(final_hidden),
            final_cell=None if final_cell is None else self._join_directions(final_cell),
            attention_mask=attention_mask,
            hidden_states=(embedded, outputs) if output_hidden_states else None,
        )
        return result if return_dict else result.to_tuple()

    def _join_directions(self, state: torch.Tensor) -> torch.Tensor:
        """`(num_layers * directions, batch, hidden / directions)` -> `(batch, num_layers, hidden)`."""
        layers_directions, batch, size = state.shape
        state = state.view(self.config.num_layers, self.num_directions, batch, size)  # (L, D, B, H/D)
        return state.permute(2, 0, 1, 3).reshape(batch, self.config.num_layers, self.num_directions * size)


class Seq2SeqRNNDecoder(nn.Module):
    """Embeddings, the recurrent stack, attention and the attentional hidden state.

    Returns the output features (`W_o`'s input); the language-model head turns them into logits.
    `precompute_gates = False` (on the class or one decoder) turns off the table of `embedding_gates`,
    for a benchmark to measure what it saves.
    """

    precompute_gates: bool = True

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__()
        self.config = config
        size = config.hidden_size
        attention_class = ATTENTION_CLASSES[config.attention_type]
        context_size = attention_class.context_size(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, config.pad_token_id)
        self.dropout = Dropout(config.dropout)
        input_size = config.embedding_size
        input_size += context_size if attention_class.query_before_step else 0
        input_size += size if config.input_feeding else 0
        input_size += size if config.peeky else 0
        self.rnn = build_rnn(config.cell_type, input_size, size, config.num_layers, config.dropout, False)
        self.attention = attention_class(config)
        self.combine = nn.Linear(context_size + size, size, bias=False) if context_size else None  # W_c
        feature_size = size * (2 if config.peeky else 1)
        self.output_projection = None
        if config.tie_word_embeddings and feature_size != config.embedding_size:
            # A tied output layer reads vectors of the embedding width.
            self.output_projection = nn.Linear(feature_size, config.embedding_size, bias=False)
            feature_size = config.embedding_size
        self.output_size = feature_size
        # The whole target in one RNN call is possible when no step needs the previous attention.
        self.parallel = not config.input_feeding and not attention_class.query_before_step
        # `embedding_gates`' table, and what it was computed from (weights, their versions, device, dtype).
        self._gate_table: tuple[tuple, torch.Tensor] | None = None

    def initial_state(self, encoder_outputs: Seq2SeqRNNEncoderOutput, memory: Seq2SeqRNNMemory) -> Seq2SeqRNNState:
        """The decoder starts from the encoder's final state (Sutskever et al., 2014)."""
        batch = memory.keys.shape[0]
        return Seq2SeqRNNState(
            hidden=encoder_outputs.final_hidden,
            cell=encoder_outputs.final_cell if self.config.cell_type != "gru" else None,
            attentional=memory.keys.new_zeros(batch, self.config.hidden_size) if self.config.input_feeding else None,
            projected_keys=self.attention.project_keys(memory.keys),
        )

    def forward(
        self,
        input_ids: torch.LongTensor,
        memory: Seq2SeqRNNMemory,
        state: Seq2SeqRNNState,
    ) -> tuple[torch.Tensor, Seq2SeqRNNState, torch.Tensor | None]:
        """Run the decoder over teacher-forced inputs.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, tgt_len)`): the decoder inputs.
            memory (`Seq2SeqRNNMemory`): the encoder states, mask and summary.
            state (`Seq2SeqRNNState`): the state before the first input.

        Returns:
            features `(batch, tgt_len, output_size)`, the state after the last input, and the
            alignments `(batch, tgt_len, src_len)` (`None` without attention).
        """
        if self.parallel:
            return self._forward_parallel(input_ids, memory, state)
        embedded = self.dropout(self.embed_tokens(input_ids))  # (B, T, E): all steps' dropout in one draw
        outputs, alignments = [], []
        for t in range(input_ids.shape[1]):
            output, state, alignment = self._step(embedded[:, t], memory, state, input_ids[:, t])
            outputs.append(output)
            alignments.append(alignment)
        features = self._features(torch.stack(outputs, 1), memory)  # (B, T, output_size)
        return features, state, torch.stack(alignments, 1) if self.attention.has_context else None

    def _forward_parallel(
        self, input_ids: torch.LongTensor, memory: Seq2SeqRNNMemory, state: Seq2SeqRNNState
    ) -> tuple[torch.Tensor, Seq2SeqRNNState, torch.Tensor | None]:
        gates = self.embedding_gates(input_ids[:, 0]) if self._gathers_gates(*input_ids.shape) else None
        inputs = self.dropout(self.embed_tokens(input_ids))  # (B, T, E)
        if gates is not None:  # the embedding's share of the first layer's gates is in `gates`
            inputs = inputs[:, :, :0]
        if self.config.peeky:
            summary = memory.summary.unsqueeze(1).expand(-1, inputs.shape[1], -1)  # (B, T, H)
            inputs = torch.cat([inputs, summary], dim=-1)
        outputs, rnn_state = self._recur(inputs, state, gates)  # (B, T, H)
        context, alignment = self.attention(outputs, memory.keys, memory.mask, state.projected_keys)
        features = self._features(self.dropout(self._attentional(outputs, context)), memory)
        return features, self._next_state(state, rnn_state, None, input_ids.shape[1]), alignment

    def step(
        self, input_ids: torch.LongTensor, memory: Seq2SeqRNNMemory, state: Seq2SeqRNNState
    ) -> tuple[torch.Tensor, Seq2SeqRNNState, torch.Tensor | None]:
        """One decoder step.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch,)`): the previous target token.

        Returns:
            feature `(batch, output_size)`, the new state, alignment `(batch, src_len)` or `None`.
        """
        output, state, alignment = self._step(self.dropout(self.embed_tokens(input_ids)), memory, state, input_ids)
        return self._features(output.unsqueeze(1), memory)[:, 0], state, alignment

    def _step(
        self, embedded: torch.Tensor, memory: Seq2SeqRNNMemory, state: Seq2SeqRNNState, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, Seq2SeqRNNState, torch.Tensor | None]:
        """One step from the previous token `input_ids` `(batch,)`, embedded `(batch, embedding_size)`;
        returns the attentional hidden state after dropout `(batch, hidden_size)`, the state and the alignment."""
        gates = self.embedding_gates(input_ids) if self._gathers_gates(embedded.shape[0], 1) else None
        inputs = [embedded if gates is None else embedded[:, :0]]  # with `gates`, the embedding's share is there
        before_step = self.attention.query_before_step
        if before_step:
            query = state.hidden[:, -1:]  # (B, 1, H): the previous top-layer state
            context, alignment = self.attention(query, memory.keys, memory.mask, state.projected_keys)
            inputs.append(context[:, 0])
        if self.config.input_feeding:
            inputs.append(state.attentional)
        if self.config.peeky:
            inputs.append(memory.summary)
        output, rnn_state = self._recur(torch.cat(inputs, dim=-1).unsqueeze(1), state, gates)  # (B, 1, H)
        if not before_step:
            context, alignment = self.attention(output, memory.keys, memory.mask, state.projected_keys)
        # One dropout mask for what the next step is fed and what the output layer reads.
        output = self.dropout(self._attentional(output, context)[:, 0])  # (B, H)
        attentional = output if self.config.input_feeding else None
        return (
            output,
            self._next_state(state, rnn_state, attentional, 1),
            alignment[:, 0] if alignment is not None else None,
        )

    def _attentional(self, outputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The attentional hidden state `h~ = tanh(W_c [c ; s])` (Luong et al., 2015, eq. 5) of the
        recurrent outputs `s` `(batch, steps, hidden_size)`; `s` itself without a context."""
        if context is None:
            return outputs
        return torch.tanh(self.combine(torch.cat([context, outputs], dim=-1)))  # (B, T, H)

    def _steps_as_cells(self, rows: int, steps: int) -> bool:
        """Whether `_recur` runs `steps` steps on `rows` rows as cells: one step of inference on at most
        `CELL_STEP_MAX_ROWS` rows of an `nn.LSTM` or `nn.GRU`."""
        return (
            steps == 1
            and rows <= CELL_STEP_MAX_ROWS
            and not self.training
            and not torch.is_grad_enabled()
            and type(self.rnn) in (nn.LSTM, nn.GRU)
        )

    def _gathers_gates(self, rows: int, steps: int) -> bool:
        return self.precompute_gates and self._steps_as_cells(rows, steps)

    def embedding_gates(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """The embedding's share of the first recurrent layer's input gates, `W_ih[:, :E] e(y) + b_ih`, of the
        tokens `input_ids` `(batch,)`: `(batch, gates)`, looked up in a table of the whole vocabulary.

        The table (`vocab_size x gates`) is one product of the embedding matrix and the embedding's columns of
        `W_ih` (Devlin, 2017, precomputes the frequent words' so), made when first needed and again when a
        weight changes (training, `load_state_dict`, a move to another device or dtype); a decoding step
        then gathers rows instead of multiplying (`embedding_size x gates` multiply-adds a row)."""
        embedding, weight, bias = self.embed_tokens.weight, self.rnn.weight_ih_l0, self.rnn.bias_ih_l0
        key = tuple(
            (tensor.data_ptr(), tensor._version, tensor.dtype, tensor.device) for tensor in (embedding, weight, bias)
        )
        if self._gate_table is None or self._gate_table[0] != key:
            columns = weight[:, : self.config.embedding_size]  # (gates, E)
            with torch.autocast(embedding.device.type, enabled=False):  # in the weights' own dtype
                self._gate_table = (key, torch.addmm(bias, embedding, columns.t()))  # (V, gates)
        return self._gate_table[1].index_select(0, input_ids)

    def _recur(
        self, inputs: torch.Tensor, state: Seq2SeqRNNState, gates: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """The recurrent stack over `inputs` `(batch, steps, input_size)` from `state`: the top layer's
        outputs `(batch, steps, hidden_size)` and the new state in `nn.LSTM`'s layer-first layout.

        One step of inference on at most `CELL_STEP_MAX_ROWS` rows runs each layer as a cell
        (`torch.lstm_cell` / `torch.gru_cell`, the same weights and equations): for one step on few
        rows the sequence kernel of `nn.LSTM` costs about twice as much on a CPU (benchmarks/README.md).
        There `gates` `(batch, gates)` (`embedding_gates`) holds the embedding's share of the first
        layer's input gates, and `inputs` the rest of its input only. Both of generate()'s loops come
        here, so they compute alike.
        """
        if not self._steps_as_cells(inputs.shape[0], inputs.shape[1]):
            return self.rnn(inputs, state.as_rnn_state())
        layer_input = inputs[:, 0]  # (B, I)
        hiddens, cells = [], []
        for layer in range(self.config.num_layers):
            weights = [
                getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            if layer == 0 and gates is not None:  # the embedding's columns and the input bias are in `gates`
                weights[0], weights[2] = weights[0][:, self.config.embedding_size :], gates
            if state.cell is not None:
                hidden, cell = torch.lstm_cell(layer_input, (state.hidden[:, layer], state.cell[:, layer]), *weights)
                cells.append(cell)
            else:
                hidden = torch.gru_cell(layer_input, state.hidden[:, layer], *weights)
            hiddens.append(hidden)
            layer_input = hidden  # no dropout between layers outside training
        hidden = torch.stack(hiddens)  # (L, B, H)
        return layer_input.unsqueeze(1), (hidden, torch.stack(cells)) if cells else hidden

    def _features(self, outputs: torch.Tensor, memory: Seq2SeqRNNMemory) -> torch.Tensor:
        """`[h~ ; c̄ (peeky)]`, the output layer's input. outputs: `(B, T, H)`, after dropout."""
        features = outputs
        if self.config.peeky:
            features = torch.cat([features, memory.summary.unsqueeze(1).expand_as(outputs)], dim=-1)  # (B, T, 2H)
        if self.output_projection is not None:
            features = self.output_projection(features)
        return features

    def _next_state(
        self,
        state: Seq2SeqRNNState,
        rnn_state: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        attentional: torch.Tensor | None,
        steps: int,
    ) -> Seq2SeqRNNState:
        hidden, cell = rnn_state if isinstance(rnn_state, tuple) else (rnn_state, None)
        return Seq2SeqRNNState(
            hidden=hidden.transpose(0, 1),  # (B, L, H)
            cell=None if cell is None else cell.transpose(0, 1),
            attentional=attentional,
            projected_keys=state.projected_keys,
            steps=state.steps + steps,
        )


# The expected norm of a new embedding vector under init="scaled_embeddings": N(0, 1) per coordinate
# at width 16, as the textbook's character tasks want (an expected norm of 1 left addition unlearned
# after 10 epochs), 0.25 at width 256, where N(0, 1) cost Tatoeba 5 BLEU (README, "Initialization").
EMBEDDING_NORM = 4.0

# The most rows one decoding step runs as cells rather than through nn.LSTM / nn.GRU (`_recur`):
# from there on the sequence kernel is as fast (the commit that set it gives the figures).
CELL_STEP_MAX_ROWS = 512


class Seq2SeqRNNPreTrainedModel(PreTrainedModel):
    config_class = Seq2SeqRNNConfig
    config: Seq2SeqRNNConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _is_stateful = True
    _no_split_modules = ["Seq2SeqRNNEncoder", "Seq2SeqRNNDecoder"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise the new weights of `module` by `config.init` (loaded weights are left alone).

        "scaled_embeddings" (the default): Sutskever's U(-init_range, init_range) for every weight
        but the embeddings, which are drawn from N(0, EMBEDDING_NORM^2 / embedding_size) so that an
        embedding vector starts with an expected norm of `EMBEDDING_NORM` whatever its width, with
        a zero padding row; the LSTM forget-gate bias at 1 (Gers et al., 2000; Jozefowicz et
        al., 2015); and the general score's `W_a` at zero, so that attention starts uniform over
        the source and learns its alignments from there (random U(-0.1, 0.1) scores left general
        attention behind dot attention on dates). "uniform": every parameter from
        U(-init_range, init_range), as in Sutskever et al. (2014), section 3.4. "pytorch": each
        layer's own PyTorch initialisation (what `reset_parameters()` draws), the forget-gate bias
        at 1 and a zero padding embedding.
        `benchmarks/bench_variants.py` and `bench_training.py --init` compare them (README).
        """
        if self.config.init == "pytorch":
            self._init_pytorch(module)
            return
        for parameter in module.parameters(recurse=False):
            init.uniform_(parameter, -self.config.init_range, self.config.init_range)
        if self.config.init == "scaled_embeddings":
            if isinstance(module, nn.Embedding):
                init.normal_(module.weight, 0.0, EMBEDDING_NORM / math.sqrt(module.embedding_dim))
                self._zero_padding_row(module)
            elif isinstance(module, (nn.LSTM, PeepholeLSTMLayer)):
                self._open_forget_gates(module)
            elif isinstance(module, GeneralScoreMatrix):
                init.zeros_(module.weight)

    def _init_pytorch(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, 0.0, 1.0)
            self._zero_padding_row(module)
        elif isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))  # nn.Linear.reset_parameters
            if module.bias is not None:
                bound = 1 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.LSTM, nn.GRU, PeepholeLSTMLayer)):
            bound = 1 / math.sqrt(module.hidden_size)
            for parameter in module.parameters(recurse=False):
                init.uniform_(parameter, -bound, bound)
            if not isinstance(module, nn.GRU):
                self._open_forget_gates(module)
        else:
            for parameter in module.parameters(recurse=False):
                bound = 1 / math.sqrt(parameter.shape[-1])
                init.uniform_(parameter, -bound, bound)

    @staticmethod
    def _open_forget_gates(module: nn.LSTM | PeepholeLSTMLayer) -> None:
        """Forget-gate biases summing to 1 (gate order i, f, g, o; `bias_hh`'s slice is zeroed)."""
        forget = slice(module.hidden_size, 2 * module.hidden_size)
        for name, parameter in module.named_parameters(recurse=False):
            # A slice does not carry the loaded-weight flag that `init` checks: check it here, or
            # loading a checkpoint (transformers 5.0) would overwrite its forget-gate biases.
            if name.startswith("bias") and not getattr(parameter, "_is_hf_initialized", False):
                init.constant_(parameter[forget], 0.0 if "_hh" in name else 1.0)

    @staticmethod
    def _zero_padding_row(module: nn.Embedding) -> None:
        # A row does not carry the loaded-weight flag that `init` checks: check the whole weight.
        if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
            module.weight[module.padding_idx].zero_()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The decoder carries a recurrent state, not keys and values.
        return False

    @property
    def has_attention(self) -> bool:
        """Whether the model attends to its source and returns alignments (`config.attention_type`
        has a context); what code asks rather than compare the type's name."""
        return has_attention(self.config)


class Seq2SeqRNNModel(Seq2SeqRNNPreTrainedModel):
    """The encoder and decoder; returns the decoder's output features (`last_hidden_state`)."""

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__(config)
        self.encoder = Seq2SeqRNNEncoder(config)
        self.decoder = Seq2SeqRNNDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value

    def get_encoder(self) -> Seq2SeqRNNEncoder:
        return self.encoder

    def memory(self, encoder_outputs: Seq2SeqRNNEncoderOutput, attention_mask: torch.Tensor | None) -> Seq2SeqRNNMemory:
        """The encoder states the decoder attends to, with their mask and summary."""
        if attention_mask is None:
            attention_mask = encoder_outputs.attention_mask
        keys = encoder_outputs.last_hidden_state
        return Seq2SeqRNNMemory(
            keys=keys,
            mask=attention_mask.bool()
            if attention_mask is not None
            else keys.new_ones(keys.shape[:2], dtype=torch.bool),
            summary=encoder_outputs.final_hidden[:, -1],
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: Seq2SeqRNNEncoderOutput | tuple | None = None,
        cache: Seq2SeqRNNState | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Seq2SeqRNNState | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, src_len)`): right-padded source tokens.
            attention_mask (`torch.LongTensor` of shape `(batch, src_len)`): 1 on real source tokens.
            decoder_input_ids (`torch.LongTensor` of shape `(batch, tgt_len)`): the decoder inputs,
                starting with `decoder_start_token_id`; with `cache`, the new tokens only.
            decoder_attention_mask: accepted for the library's interface; the decoder is causal,
                so padding after a target's end never changes an earlier position.
            encoder_outputs (`Seq2SeqRNNEncoderOutput`, *optional*): the encoder's result, reused.
            cache (`Seq2SeqRNNState`, *optional*): the decoder state after earlier tokens.
            past_key_values (`Seq2SeqRNNState`, *optional*): the same, under its name before
                transformers 5.24; pass one of the two.
            output_hidden_states (`bool`, *optional*): also return `encoder_hidden_states` (see
                [`Seq2SeqRNNEncoderOutput`]) and `decoder_hidden_states`: the decoder's embedding output
                `(batch, tgt_len, embedding_size)` and its output features `(batch, tgt_len,
                output_size)` (`last_hidden_state`). Defaults to `config.output_hidden_states`.
            return_dict (`bool`, *optional*): `False` returns `Seq2SeqModelOutput.to_tuple()` (the
                fields that are not `None`, in order); defaults to `config.return_dict`.
        """
        state = given_state(cache, past_key_values, kwargs, Seq2SeqRNNState)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_attentions = bool(output_attentions)
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        encoder_outputs = self._encode(input_ids, attention_mask, encoder_outputs, output_hidden_states)
        if decoder_input_ids is None:
            raise ValueError("pass decoder_input_ids, or labels to the language-model class")
        memory = self.memory(encoder_outputs, attention_mask)
        if state is None:
            state = self.decoder.initial_state(encoder_outputs, memory)
        with _OutputRecorder(self.decoder.embed_tokens, output_hidden_states) as decoder_embeddings:
            features, state, alignments = self.decoder(decoder_input_ids, memory, state)
        outputs = self._output(
            encoder_outputs,
            features,
            state if use_cache else None,
            alignments if output_attentions else None,
            decoder_embeddings if output_hidden_states else None,
        )
        return outputs if return_dict else outputs.to_tuple()

    @staticmethod
    def _output(
        encoder_outputs: Seq2SeqRNNEncoderOutput,
        features: torch.Tensor,
        state: Seq2SeqRNNState | None,
        alignments: torch.Tensor | None,
        decoder_embeddings: _OutputRecorder | None,
    ) -> Seq2SeqModelOutput:
        """What `forward` returns, from the decoder's results.

        Args:
            features (`torch.FloatTensor` of shape `(batch, tgt_len, output_size)`): the output features.
            state (`Seq2SeqRNNState`, *optional*): the state after the last input, to return as the cache.
            alignments (`torch.FloatTensor` of shape `(batch, tgt_len, src_len)`, *optional*): the
                cross-attentions to return; `None` returns none.
            decoder_embeddings (`_OutputRecorder`, *optional*): the decoder's embedding outputs; with
                it, the hidden states of encoder and decoder are returned as well.
        """
        with_hidden_states = decoder_embeddings is not None
        return Seq2SeqModelOutput(
            last_hidden_state=features,
            decoder_hidden_states=(decoder_embeddings.along_time(), features) if with_hidden_states else None,
            cross_attentions=(alignments.unsqueeze(1),) if alignments is not None else None,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states if with_hidden_states else None,
            **{cache_field(Seq2SeqModelOutput): state},
        )

    def _encode(
        self,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.LongTensor | None,
        encoder_outputs: Seq2SeqRNNEncoderOutput | tuple | None,
        output_hidden_states: bool,
    ) -> Seq2SeqRNNEncoderOutput:
        """The encoder's result: `encoder_outputs` as given (a tuple becomes the output class), else
        the encoder run on `input_ids`."""
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("pass input_ids (the source tokens) or encoder_outputs")
            return self.encoder(input_ids, attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        if isinstance(encoder_outputs, tuple):
            return Seq2SeqRNNEncoderOutput(*encoder_outputs)
        return encoder_outputs


class Seq2SeqRNNGenerationMixin(GenerationMixin):
    """`generate()` of the models that decode through this package's search loop: the language model
    below, and ensembles of it (`ensemble_seq2seq_rnn`).

    A class using it satisfies `protocol_seq2seq_rnn.DecodingModel` (`start_decoding`, `decode_step`,
    `has_attention`, and the classes of its state and memory), what `search_seq2seq_rnn` calls, and
    has a `forward` that returns its decoder state in the generation cache, what transformers' own
    loop calls.
    """

    # The classes of the decoder state carried between generation steps and of the encoder memory.
    state_class: type = Seq2SeqRNNState
    memory_class: type = Seq2SeqRNNMemory
    # The model's shortlist file (`from_pretrained` finds it beside the weights), and the shortlist once read.
    shortlist_file: str | None = None
    _shortlist: Shortlist | None = None

    @property
    def has_shortlist(self) -> bool:
        """Whether the model came with a shortlist file or was given a shortlist (`load_shortlist` reads it)."""
        return self._shortlist is not None or self.shortlist_file is not None

    def load_shortlist(self, tokenizer: Any = None) -> Shortlist:
        """The model's vocabulary shortlist (`shortlist_seq2seq_rnn`), read from its file once; checked
        against the model's vocabulary size and, when given, `tokenizer`'s vocabulary.

        Raises:
            ValueError: the model has no shortlist, or its file is missing, cut short or made for
                another vocabulary.
        """
        if self._shortlist is None:
            if self.shortlist_file is None:
                raise ValueError(
                    f"this model has no vocabulary shortlist ({SHORTLIST_FILE} beside its weights); {BUILD_HINT}"
                )
            self._shortlist = Shortlist.load(self.shortlist_file, self.config.vocab_size)
        if tokenizer is not None:
            self._shortlist._check(self.shortlist_file or SHORTLIST_FILE, None, vocabulary_fingerprint(tokenizer))
        return self._shortlist

    def set_shortlist(self, shortlist: Shortlist | None) -> None:
        """Use `shortlist` from now on (`save_pretrained` writes it beside the weights); None: none."""
        if shortlist is not None:
            shortlist._check(SHORTLIST_FILE, self.config.vocab_size, None)
        self._shortlist = shortlist
        self.shortlist_file = None

    def _shortlist_processor(
        self, settings: Any, first_best: tuple[int, int], kwargs: dict[str, Any], inputs: Any
    ) -> None:
        """Add the batch's shortlist rows to `kwargs`' logits processors (`ShortlistLogitsProcessor`)."""
        source = inputs if inputs is not None else kwargs.get("input_ids")
        if source is None:
            raise ValueError("shortlist: generate() needs the source input_ids to choose the batch's shortlist")
        shortlist = self.load_shortlist(kwargs.get("tokenizer"))
        eos = settings.eos_token_id
        ends = 1 if eos is None or isinstance(eos, int) else len(eos)
        least = max(2, 1 + ends) * (settings.num_beams or 1)  # a beam search step's candidates
        rows = shortlist.rows(source, self._source_mask(inputs, kwargs), *first_best, least=least)
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(ShortlistLogitsProcessor(rows))
        kwargs["logits_processor"] = processors

    def _source_mask(self, inputs: torch.Tensor | None, kwargs: dict[str, Any]) -> torch.Tensor:
        """generate()'s `attention_mask`, or 1 on the source ids that are not padding."""
        mask = kwargs.get("attention_mask")
        if mask is not None:
            return mask
        return (inputs if inputs is not None else kwargs["input_ids"]).ne(self.config.pad_token_id)

    def output_layer(self, vocabulary: torch.LongTensor) -> Any:
        """The output layer for the token ids `vocabulary` only (a shortlist), for `decode_step`."""
        return output_rows(self.lm_head, vocabulary)

    def _reorder_cache(self, cache: Any, beam_idx: torch.LongTensor) -> Any:
        cache.reorder_cache(beam_idx)
        return cache

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The library's preparation, then a check of the link that carries the state between steps.

        When generate() feeds only the newest decoder token(s), the state after the earlier ones
        must come with them; without it every step would restart from the encoder's state and
        repeat itself. That happens when a transformers release renames the state (as 5.24 did):
        stop with an error that says so instead of generating garbage.
        """
        model_inputs = super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
        fed = model_inputs.get("decoder_input_ids")
        carried = any(isinstance(value, self.state_class) for value in model_inputs.values())
        if fed is not None and fed.shape[1] < input_ids.shape[1] and not carried:
            raise RuntimeError(
                "generate() fed the decoder only its newest token without the decoder state after the "
                f"{input_ids.shape[1] - fed.shape[1]} earlier ones: the state is not carried between steps. "
                f"This transformers release ({transformers_version}) names the generation cache differently "
                f"from this model's code (which returns it as {CACHE_FIELD!r} and reads 'cache' or "
                "'past_key_values'); generate(use_cache=False) still decodes correctly."
            )
        return model_inputs

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        custom_generate: Any = compact_search,
        **kwargs: Any,
    ) -> Any:
        """`GenerationMixin.generate`, decoded by this model's own search loop unless told otherwise.

        The loop (`search_seq2seq_rnn.compact_search`) is transformers' greedy or beam search with
        each sentence dropped from the batch the step it is done; it returns what transformers'
        own loop returns. `custom_generate=None` runs transformers' own loop instead; another
        callable runs that one. Sampling, and the settings `search_seq2seq_rnn.unsupported` names,
        run transformers' own loop in any case.

        Besides transformers' settings it takes those of `SearchSettings`, as arguments here or as
        attributes of `generation_config`: `max_length_a` and `max_length_b` (at most
        `a * source_tokens + b` new tokens per sentence), `coverage_penalty` (beam search) and
        `shortlist=(first, best)` (each token chosen among the batch's shortlist: the `first` most frequent
        target tokens, the `best` candidates of each source token, and the special tokens). An argument
        given as `None` switches the setting off over the generation config's value:
        `max_length_a=None, max_length_b=None` decodes without the cap that training saves.

        Raises `ValueError` naming the value and the accepted range for a setting no search can use
        (`search_seq2seq_rnn.decoding_settings`, the one check that predict, the chatbot and training
        pass through as well): `num_beams < 1`, `top_p` outside (0, 1], a negative
        `max_length_a`, more new tokens than `generation_config.max_new_tokens_limit` (default
        `search_seq2seq_rnn.MAX_NEW_TOKENS_LIMIT`; set it on the model's generation config to allow more), ...
        """
        base = generation_config if generation_config is not None else self.generation_config
        settings, search_settings = decoding_settings(base, **kwargs)  # the one check of every decoding setting
        for name in SEARCH_SETTINGS:
            kwargs.pop(name, None)
        if search_settings.shortlist is not None:
            self._shortlist_processor(settings, search_settings.shortlist, kwargs, inputs)
        if custom_generate in OWN_LOOPS:
            # generate() hands a callable only the arguments its signature adds to transformers' own
            # loop's, so the streamer goes to it under a name of its own as well.
            kwargs.update(search_settings=search_settings, search_streamer=kwargs.get("streamer"))
        if search_settings.caps_length:  # a stopping criterion, which the compact search applies itself
            criteria = StoppingCriteriaList(kwargs.pop("stopping_criteria", None) or [])
            criteria.append(SourceLengthCap(search_settings, self._source_mask(inputs, kwargs)))
            kwargs["stopping_criteria"] = criteria
        if custom_generate not in OWN_LOOPS and search_settings.coverage_penalty:
            logger.warning(
                "coverage_penalty is a setting of this model's own beam search; ignored by %s", custom_generate
            )
        return super().generate(inputs, generation_config=generation_config, custom_generate=custom_generate, **kwargs)


class Seq2SeqRNNForConditionalGeneration(Seq2SeqRNNPreTrainedModel, Seq2SeqRNNGenerationMixin):
    """The encoder–decoder with its output layer: loss, logits and `generate()`."""

    _tied_weights_keys = {"lm_head.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__(config)
        self.model = Seq2SeqRNNModel(config)
        self.lm_head = nn.Linear(self.model.decoder.output_size, config.vocab_size, bias=not config.tie_word_embeddings)
        self.post_init()

    def get_encoder(self) -> Seq2SeqRNNEncoder:
        return self.model.encoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.encoder.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: Seq2SeqRNNEncoderOutput | tuple | None = None,
        cache: Seq2SeqRNNState | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        teacher_forcing_ratio: float | None = None,
        past_key_values: Seq2SeqRNNState | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        Args:
            input_ids, attention_mask, decoder_input_ids, encoder_outputs, cache, past_key_values: as
                in [`Seq2SeqRNNModel.forward`].
            labels (`torch.LongTensor` of shape `(batch, tgt_len)`, *optional*): the target tokens,
                padded with -100 (ignored by the loss). Without `decoder_input_ids`, the decoder
                inputs are the labels shifted right.
            teacher_forcing_ratio (`float`, *optional*): in training, the probability that a step
                reads the reference token instead of the model's previous prediction (scheduled
                sampling, Bengio et al., 2015); defaults to `config.teacher_forcing_ratio`.

        Returns:
            `Seq2SeqLMOutput` with `logits` `(batch, tgt_len, vocab_size)`, the mean token `loss`
            when labels are given, the decoder state (`CACHE_FIELD`: `cache`, or `past_key_values`
            before transformers 5.24) and, with `output_attentions`, `cross_attentions`: one
            tensor `(batch, 1, tgt_len, src_len)`. In training with labels and teacher forcing,
            once the batch has `loss_seq2seq_rnn.CHUNKED_LOSS_MIN_LOGITS` logits or more, `logits`
            is `None`: the loss is computed a chunk of tokens at a time and the logits never exist whole.
            In training with a teacher-forcing ratio below 1 (and no state given), the decoder runs
            step by step instead (`_scheduled_sampling`), and returns the same.
        """
        state = given_state(cache, past_key_values, kwargs, Seq2SeqRNNState)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_attentions = bool(output_attentions)
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        ratio = self.config.teacher_forcing_ratio if teacher_forcing_ratio is None else teacher_forcing_ratio
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        if self.training and ratio < 1.0 and state is None:
            result = self._scheduled_sampling(
                input_ids,
                attention_mask,
                decoder_input_ids,
                encoder_outputs,
                labels,
                ratio,
                output_attentions,
                output_hidden_states,
                use_cache,
            )
        else:
            outputs = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                encoder_outputs=encoder_outputs,
                cache=state,
                use_cache=True,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
            features = outputs.last_hidden_state  # (B, T, F)
            chunked = uses_chunked_loss(features, self.config.vocab_size, labels, self.training)
            logits = None if chunked else self.lm_head(features)  # (B, T, V)
            result = self._lm_output(outputs, logits, labels, use_cache)
        return result if return_dict else result.to_tuple()

    def _lm_output(
        self,
        outputs: Seq2SeqModelOutput,
        logits: torch.Tensor | None,
        labels: torch.LongTensor | None,
        use_cache: bool,
    ) -> Seq2SeqLMOutput:
        """What `forward` returns: the model's `outputs` with the `logits` `(batch, tgt_len, vocab_size)`
        (`None` when the loss is computed in chunks) and, with `labels`, the loss."""
        loss = None
        if labels is not None:
            features = outputs.last_hidden_state  # (B, T, F)
            loss = language_model_loss(labels, self.config.label_smoothing, logits, features, self.lm_head)
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            decoder_hidden_states=outputs.decoder_hidden_states,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            **{CACHE_FIELD: getattr(outputs, cache_field(Seq2SeqModelOutput)) if use_cache else None},
        )

    def _scheduled_sampling(
        self,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.LongTensor | None,
        decoder_input_ids: torch.LongTensor,
        encoder_outputs: Seq2SeqRNNEncoderOutput | tuple | None,
        labels: torch.LongTensor | None,
        ratio: float,
        output_attentions: bool,
        output_hidden_states: bool,
        use_cache: bool,
    ) -> Seq2SeqLMOutput:
        """`forward` in training with a teacher-forcing ratio below 1: decode step by step; each step
        reads the reference with probability `ratio`, else the previous step's most likely token
        (Bengio et al., 2015, section 2.4). Returns what `forward` returns otherwise, the logits
        `(batch, tgt_len, vocab_size)` made on the way. The decoder's hidden states here are the
        steps' tensors stacked: equal in value, but gradients stop at the steps, not at the stack."""
        encoder_outputs = self.model._encode(input_ids, attention_mask, encoder_outputs, output_hidden_states)
        memory, state = self.start_decoding(encoder_outputs, attention_mask)
        step_input = decoder_input_ids[:, 0]
        all_logits, features, alignments = [], [], []
        with _OutputRecorder(self.model.decoder.embed_tokens, output_hidden_states) as decoder_embeddings:
            for t in range(decoder_input_ids.shape[1]):
                feature, state, alignment = self.model.decoder.step(step_input, memory, state)
                logits = self.lm_head(feature)  # (B, V)
                all_logits.append(logits)
                features.append(feature)
                alignments.append(alignment)
                if t + 1 < decoder_input_ids.shape[1]:
                    use_reference = torch.rand(logits.shape[0], device=logits.device) < ratio
                    step_input = torch.where(use_reference, decoder_input_ids[:, t + 1], logits.detach().argmax(-1))
        outputs = self.model._output(
            encoder_outputs,
            torch.stack(features, 1),  # (B, T, output_size)
            state,
            torch.stack(alignments, 1) if output_attentions and alignments[0] is not None else None,  # (B, T, S)
            decoder_embeddings if output_hidden_states else None,
        )
        return self._lm_output(outputs, torch.stack(all_logits, 1), labels, use_cache)  # logits: (B, T, V)

    def start_decoding(
        self, encoder_outputs: Seq2SeqRNNEncoderOutput, attention_mask: torch.Tensor | None
    ) -> tuple[Seq2SeqRNNMemory, Seq2SeqRNNState]:
        """What a search loop decodes from: the encoder memory and the decoder's first state."""
        memory = self.model.memory(encoder_outputs, attention_mask)
        return memory, self.model.decoder.initial_state(encoder_outputs, memory)

    def decode_step(
        self, input_ids: torch.LongTensor, memory: Seq2SeqRNNMemory, state: Seq2SeqRNNState, output: Any = None
    ) -> tuple[torch.Tensor, Seq2SeqRNNState, torch.Tensor | None]:
        """One decoder step for a search loop: the same arithmetic as `forward` on one new token
        with `cache`, without its output classes.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch,)`): the previous token of each row.
            output (*optional*): the output layer of a shortlist (`output_layer`); the whole one when None.

        Returns:
            logits `(batch, vocab_size)` (or `(batch, shortlist)`), the new state, and the alignment
            `(batch, src_len)` (`None` without attention).
        """
        features, state, alignment = self.decode_features(input_ids, memory, state)
        return self.decode_logits(features, slice(None), output), state, alignment

    def decode_features(
        self, input_ids: torch.LongTensor, memory: Seq2SeqRNNMemory, state: Seq2SeqRNNState
    ) -> tuple[torch.Tensor, Seq2SeqRNNState, torch.Tensor | None]:
        """`decode_step` up to the output layer: the output layer's input `(batch, features)`, the new
        state and the alignment (`decode_logits` takes the features)."""
        return self.model.decoder.step(input_ids, memory, state)

    def decode_logits(self, features: torch.Tensor, rows: slice, output: Any = None) -> torch.Tensor:
        """The logits of the rows `rows` of `decode_features`' features: `(rows, vocab_size)`, or
        `(rows, shortlist)` with `output` (what `output_layer` returned)."""
        return (self.lm_head if output is None else output)(features[rows])

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`, which also finds the model's shortlist file (read when used)."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if pretrained_model_name_or_path is not None:
            model.shortlist_file = find_shortlist(pretrained_model_name_or_path, **kwargs)
        return loaded

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.save_pretrained`, with the model's shortlist beside the weights when it has one."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if self.shortlist_file is not None and os.path.isfile(self.shortlist_file):  # the file as it came
            target = os.path.join(save_directory, SHORTLIST_FILE)
            if not os.path.exists(target) or not os.path.samefile(self.shortlist_file, target):
                shutil.copyfile(self.shortlist_file, target)
        elif self._shortlist is not None:
            self._shortlist.save(save_directory)
        return result


__all__ = [
    "Seq2SeqRNNEncoderOutput",
    "Seq2SeqRNNState",
    "Seq2SeqRNNPreTrainedModel",
    "Seq2SeqRNNModel",
    "Seq2SeqRNNForConditionalGeneration",
    "Seq2SeqRNNGenerationMixin",
]
