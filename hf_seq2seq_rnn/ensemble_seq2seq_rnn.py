"""Several trained models decoding as one: their log-probabilities averaged at every step.

    ensemble = Seq2SeqRNNEnsemble([model_a, model_b])  # loaded Seq2SeqRNNForConditionalGeneration models
    ensemble.generate(**tokenizer(["Good morning."], return_tensors="pt"), num_beams=5)

(`seq2seq_tools.ensemble.load_ensemble` loads the members from folders or Hub ids and checks that
their tokenizers agree.)

At step t each member `m` reads the same previous tokens and gives `log p_m(y_t | y_<t, x)`; the
ensemble's logits are their mean, `(1 / M) * sum_m log p_m(y_t | y_<t, x)` (the rule of OpenNMT-py's
`onmt.model_builder` ensembles, `onmt_translate -model a.pt b.pt`). `generate()` treats them as any
model's logits: greedy search takes their argmax, beam search and the scores take their log-softmax,
so the distribution searched is the normalized geometric mean of the members' distributions (OpenNMT-py
adds the mean unnormalized; the argmax of a step is the same). An ensemble of one model decodes as
that model. The attention returned is the mean of the members' alignments (of those with attention).

It sits beside the generation code that it must match, as fairseq's `EnsembleModel` sits beside its
`SequenceGenerator`: it satisfies the same protocol as the model (`protocol_seq2seq_rnn.DecodingModel`).
Each member keeps its own encoder output, memory and recurrent state; the ensemble's are tuples of
them, one per member, and `select` / `reorder_cache` / `cat` apply to every member's. So both of
`generate()`'s loops work: this package's compact search (`start_decoding`, `decode_step`) and
transformers' own (`forward` with the state as `cache`, `generate(custom_generate=None)`), beams,
n-best lists, scores, attention, and int8 (`seq2seq_tools.quantization.quantize_int8(ensemble)`
quantizes every member).

Members must share a vocabulary: in their configs, the same vocabulary size and special token ids.
The config and the decoding settings (`generation_config`) are the first member's; whether the
ensemble attends is `has_attention` (any member does). An ensemble is built from loaded models and
never saved.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput

from .compat_seq2seq_rnn import CACHE_FIELD, given_state
from .configuration_seq2seq_rnn import Seq2SeqRNNConfig
from .modeling_seq2seq_rnn import (
    Seq2SeqRNNEncoderOutput,
    Seq2SeqRNNForConditionalGeneration,
    Seq2SeqRNNGenerationMixin,
    Seq2SeqRNNMemory,
    Seq2SeqRNNState,
)

# The config entries that decide what a token id means to a model: members must agree on each.
SHARED_CONFIG_KEYS = ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")


@dataclass
class Seq2SeqRNNEnsembleEncoderOutput(ModelOutput):
    """
    Args:
        members (`tuple[Seq2SeqRNNEncoderOutput, ...]`): each member's encoder output, in member order.
        attention_mask (`torch.LongTensor` of shape `(batch, src_len)`): 1 on real source tokens.
    """

    members: tuple[Seq2SeqRNNEncoderOutput, ...] | None = None
    attention_mask: torch.LongTensor | None = None

    def repeat_interleave(self, times: int) -> None:
        """Repeat every member's rows `times` times in place (generate()'s expansion for beams and
        returned sequences repeats the tensors of an output, not those inside the tuple of members)."""
        self.members = tuple(
            Seq2SeqRNNEncoderOutput(
                **{
                    name: value.repeat_interleave(times, dim=0) if isinstance(value, torch.Tensor) else value
                    for name, value in member.items()
                }
            )
            for member in self.members
        )


@dataclass
class Seq2SeqRNNEnsembleMemory:
    """What the members' decoders read from their encoders: one `Seq2SeqRNNMemory` per member."""

    members: tuple[Seq2SeqRNNMemory, ...]

    def select(self, rows: torch.LongTensor) -> Seq2SeqRNNEnsembleMemory:
        """The memory of `rows` only, in every member."""
        return Seq2SeqRNNEnsembleMemory(tuple(memory.select(rows) for memory in self.members))

    @classmethod
    def cat(cls, memories: list[Seq2SeqRNNEnsembleMemory]) -> Seq2SeqRNNEnsembleMemory:
        """The memories of several batches as one, in every member (`Seq2SeqRNNMemory.cat`)."""
        return cls(
            tuple(Seq2SeqRNNMemory.cat(list(parts)) for parts in zip(*(m.members for m in memories), strict=True))
        )


@dataclass
class Seq2SeqRNNEnsembleState:
    """The members' decoder states, carried between generation steps as the ensemble's `cache`."""

    members: tuple[Seq2SeqRNNState, ...]
    # A recurrent state cannot be cut back to an earlier step (generate asks before deferring its stop check).
    is_croppable = False

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep the rows of the beams that survive a beam-search step, in every member (in place)."""
        for state in self.members:
            state.reorder_cache(beam_idx)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.members[0].steps

    @classmethod
    def cat(cls, states: list[Seq2SeqRNNEnsembleState]) -> Seq2SeqRNNEnsembleState:
        """The states of several batches as one, in every member (`Seq2SeqRNNState.cat`)."""
        return cls(tuple(Seq2SeqRNNState.cat(list(parts)) for parts in zip(*(s.members for s in states), strict=True)))


class Seq2SeqRNNEnsembleEncoder(nn.Module):
    """The members' encoders run on the same source (what `generate()` calls once per batch)."""

    def __init__(self, encoders: Sequence[nn.Module]):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqRNNEnsembleEncoderOutput:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, src_len)`): right-padded source tokens.
            attention_mask (`torch.LongTensor` of shape `(batch, src_len)`, *optional*): 1 on real tokens.
        """
        if output_hidden_states:
            raise ValueError("an ensemble has no hidden states of its own: decode with output_hidden_states=False")
        members = tuple(encoder(input_ids, attention_mask, return_dict=True) for encoder in self.encoders)
        return Seq2SeqRNNEnsembleEncoderOutput(members=members, attention_mask=members[0].attention_mask)


def _mean_log_probs(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """`(1 / M) * sum_m log_softmax(logits_m)` over the vocabulary, in float32, shaped as each logits."""
    return torch.stack([torch.log_softmax(one.float(), dim=-1) for one in logits]).mean(dim=0)


def _mean_alignment(alignments: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """The mean of the members' alignments, over those with attention; `None` when none has any."""
    given = [alignment for alignment in alignments if alignment is not None]
    return torch.stack(given).mean(dim=0) if given else None


class Seq2SeqRNNEnsemble(PreTrainedModel, Seq2SeqRNNGenerationMixin):
    """Models of this package decoding together, their log-probabilities averaged at every step.

    Args:
        models: the members, each a `Seq2SeqRNNForConditionalGeneration`, sharing a vocabulary. They
            are held, not copied: training one changes the ensemble.

    The config is a copy of the first member's, and so are the decoding settings (`generation_config`).
    Whether it returns alignments is `has_attention`: any member attends.

    Raises:
        ValueError: no model, a model of another class, or members whose configs disagree on a token id
            (`SHARED_CONFIG_KEYS`); the message names both models.
    """

    config_class = Seq2SeqRNNConfig
    main_input_name = "input_ids"
    _is_stateful = True
    state_class = Seq2SeqRNNEnsembleState
    memory_class = Seq2SeqRNNEnsembleMemory

    def __init__(self, models: Sequence[Seq2SeqRNNForConditionalGeneration]):
        models = list(models)
        _check_members(models)
        super().__init__(copy.deepcopy(models[0].config))
        self.members = nn.ModuleList(models)
        self.generation_config = copy.deepcopy(models[0].generation_config)
        self.post_init()

    @property
    def has_attention(self) -> bool:
        """Whether the ensemble returns alignments (the mean of its attending members'): any member attends."""
        return any(model.has_attention for model in self.members)

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to initialise: every weight belongs to a trained member."""

    @property
    def has_shortlist(self) -> bool:
        """Whether the first member has a shortlist (the one `load_shortlist` reads)."""
        return self.members[0].has_shortlist

    def load_shortlist(self, tokenizer: Any = None) -> Any:
        """The first member's shortlist: the members share one vocabulary (`_check_members`)."""
        return self.members[0].load_shortlist(tokenizer)

    def output_layer(self, vocabulary: torch.LongTensor) -> tuple[Any, ...]:
        """Each member's output layer for the token ids `vocabulary` only (a shortlist)."""
        return tuple(model.output_layer(vocabulary) for model in self.members)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The members carry recurrent states, not keys and values.
        return False

    def get_encoder(self) -> Seq2SeqRNNEnsembleEncoder:
        return Seq2SeqRNNEnsembleEncoder([model.get_encoder() for model in self.members])

    def _expand_inputs_for_generation(
        self,
        expand_size: int = 1,
        is_encoder_decoder: bool = False,
        input_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> tuple[torch.LongTensor | None, dict[str, Any]]:
        """generate()'s repetition of each input for beams and returned sequences, reaching the members'
        encoder outputs as well (generate() repeats the tensors of an output, not those inside a tuple)."""
        input_ids, kwargs = super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids, **kwargs)
        encoder_outputs = kwargs.get("encoder_outputs")
        if expand_size > 1 and isinstance(encoder_outputs, Seq2SeqRNNEnsembleEncoderOutput):
            encoder_outputs.repeat_interleave(expand_size)
        return input_ids, kwargs

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: Seq2SeqRNNEnsembleEncoderOutput | None = None,
        cache: Seq2SeqRNNEnsembleState | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Seq2SeqRNNEnsembleState | None = None,
        **kwargs: Any,
    ) -> Seq2SeqLMOutput:
        r"""The members' decoders on the same decoder inputs (what transformers' own generation loop calls).

        Args:
            input_ids, attention_mask, decoder_input_ids: as in
                [`Seq2SeqRNNForConditionalGeneration.forward`].
            encoder_outputs (`Seq2SeqRNNEnsembleEncoderOutput`, *optional*): the members' encoder outputs.
            cache (`Seq2SeqRNNEnsembleState`, *optional*): the members' states after earlier tokens.
            past_key_values: the same, under its name before transformers 5.24; pass one of the two.

        Returns:
            `Seq2SeqLMOutput` whose `logits` `(batch, tgt_len, vocab_size)` are the members' mean
            log-probabilities, with the members' states (`CACHE_FIELD`) and, with
            `output_attentions`, `cross_attentions`: the mean alignment `(batch, 1, tgt_len, src_len)`.
        """
        state = given_state(cache, past_key_values, kwargs, Seq2SeqRNNEnsembleState)
        if output_hidden_states:
            raise ValueError("an ensemble has no hidden states of its own: decode with output_hidden_states=False")
        if encoder_outputs is None:
            encoder_outputs = self.get_encoder()(input_ids, attention_mask)
        states = state.members if state is not None else (None,) * len(self.members)
        outputs = [
            model(
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                encoder_outputs=encoder_output,
                cache=member_state,
                use_cache=True,
                output_attentions=output_attentions,
                return_dict=True,
            )
            for model, encoder_output, member_state in zip(self.members, encoder_outputs.members, states, strict=True)
        ]
        alignment = _mean_alignment([out.cross_attentions[0] if out.cross_attentions else None for out in outputs])
        use_cache = self.config.use_cache if use_cache is None else use_cache
        return_dict = self.config.return_dict if return_dict is None else return_dict
        new_state = Seq2SeqRNNEnsembleState(tuple(out[CACHE_FIELD] for out in outputs))
        result = Seq2SeqLMOutput(
            logits=_mean_log_probs([out.logits for out in outputs]),
            cross_attentions=(alignment,) if output_attentions and alignment is not None else None,
            **{CACHE_FIELD: new_state if use_cache else None},
        )
        return result if return_dict else result.to_tuple()

    def start_decoding(
        self, encoder_outputs: Seq2SeqRNNEnsembleEncoderOutput, attention_mask: torch.Tensor | None
    ) -> tuple[Seq2SeqRNNEnsembleMemory, Seq2SeqRNNEnsembleState]:
        """What a search loop decodes from: each member's encoder memory and first decoder state."""
        members = zip(self.members, encoder_outputs.members, strict=True)
        started = [model.start_decoding(output, attention_mask) for model, output in members]
        return (
            Seq2SeqRNNEnsembleMemory(tuple(memory for memory, _ in started)),
            Seq2SeqRNNEnsembleState(tuple(state for _, state in started)),
        )

    def decode_step(
        self,
        input_ids: torch.LongTensor,
        memory: Seq2SeqRNNEnsembleMemory,
        state: Seq2SeqRNNEnsembleState,
        output: tuple[Any, ...] | None = None,
    ) -> tuple[torch.Tensor, Seq2SeqRNNEnsembleState, torch.Tensor | None]:
        """One step of every member on the previous tokens `(batch,)`: the mean log-probabilities
        `(batch, vocab_size)` (over a shortlist's tokens with `output`: `output_layer`), the new states,
        and the mean alignment `(batch, src_len)` or `None`. Over a shortlist each member's
        log-probabilities are normalized over its tokens: a constant per row and member, which the
        search's own normalization removes, so the choices are those of the whole vocabulary masked."""
        features, state, alignment = self.decode_features(input_ids, memory, state)
        return self.decode_logits(features, slice(None), output), state, alignment

    def decode_features(
        self, input_ids: torch.LongTensor, memory: Seq2SeqRNNEnsembleMemory, state: Seq2SeqRNNEnsembleState
    ) -> tuple[tuple[torch.Tensor, ...], Seq2SeqRNNEnsembleState, torch.Tensor | None]:
        """`decode_step` up to the output layers: each member's features, the new states and the mean
        alignment (`decode_logits` takes the features)."""
        steps = [
            model.decode_features(input_ids, member_memory, member_state)
            for model, member_memory, member_state in zip(self.members, memory.members, state.members, strict=True)
        ]
        return (
            tuple(features for features, _, _ in steps),
            Seq2SeqRNNEnsembleState(tuple(new_state for _, new_state, _ in steps)),
            _mean_alignment([alignment for _, _, alignment in steps]),
        )

    def decode_logits(
        self, features: tuple[torch.Tensor, ...], rows: slice, output: tuple[Any, ...] | None = None
    ) -> torch.Tensor:
        """The mean log-probabilities of the rows `rows` (see `decode_step`) from `decode_features`' features."""
        outputs = output if output is not None else (None,) * len(self.members)
        return _mean_log_probs([
            model.decode_logits(member_features, rows, member_output)
            for model, member_features, member_output in zip(self.members, features, outputs, strict=True)
        ])  # fmt: skip


def _name(model: nn.Module, index: int) -> str:
    return getattr(model, "name_or_path", "") or f"model {index + 1}"


def _check_members(models: list[Any]) -> None:
    """The checks of `Seq2SeqRNNEnsemble`'s Raises."""
    if not models:
        raise ValueError("an ensemble needs at least one model")
    for index, model in enumerate(models):
        if not isinstance(model, Seq2SeqRNNForConditionalGeneration):
            raise ValueError(
                f"{_name(model, index)} is a {type(model).__name__}; an ensemble decodes with "
                "Seq2SeqRNNForConditionalGeneration models only"
            )
    first = models[0]
    for index, model in enumerate(models[1:], start=1):
        for key in SHARED_CONFIG_KEYS:
            if getattr(model.config, key) != getattr(first.config, key):
                raise ValueError(
                    f"{_name(first, 0)} and {_name(model, index)} have different vocabularies ({key} "
                    f"{getattr(first.config, key)} and {getattr(model.config, key)}); an ensemble averages "
                    "the log-probabilities of the same tokens, so its models must share a tokenizer"
                )


__all__ = [
    "SHARED_CONFIG_KEYS",
    "Seq2SeqRNNEnsemble",
    "Seq2SeqRNNEnsembleEncoder",
    "Seq2SeqRNNEnsembleEncoderOutput",
    "Seq2SeqRNNEnsembleMemory",
    "Seq2SeqRNNEnsembleState",
]
