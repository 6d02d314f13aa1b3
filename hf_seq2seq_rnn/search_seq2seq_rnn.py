"""Greedy and beam search that drop each sentence from the batch the step it is done.

transformers' own loops (`GenerationMixin._sample`, `_beam_search`) step every row of a batch until
its longest output ends. These do the same search, row for row, but the step a sentence is done its
rows leave the batch: encoder memory, source mask and recurrent state shrink with one index
selection (as OpenNMT-py's `update_finished` and fairseq's `finalize_hypos` do). Both run inside
`generate()`, through its extension point for a decoding loop (`generate(custom_generate=...)`):
`generate()` still prepares the settings, logits processors, stopping criteria and encoder outputs,
and the result is transformers' own output class.

    GreedySearch     argmax at every step (`num_beams=1`, `do_sample=False`)
    BeamSearch       transformers' beam search, sentence by sentence, with its `length_penalty`,
                     `early_stopping` (True, False, "never") and `num_return_sequences`; optionally
                     the coverage penalty of Wu et al. (2016, eq. 14)

Both also apply a length cap relative to the source, `a * source_tokens + b` new tokens per
sentence (fairseq's `--max-len-a/--max-len-b`), when the generation config sets `max_length_a` or
`max_length_b`.

Outputs equal transformers' own loop (tests/test_search.py): the same sequences, `sequences_scores`
and `beam_indices`, and, for the steps a sentence was still decoded, the same `scores`, `logits` and
`cross_attentions`. Rows of a sentence already done hold zeros there (transformers' own loop still
computes them, and nothing reads them). A setting these loops do not handle (sampling, a logits
processor or stopping criterion that keeps per-row state, hidden states) runs transformers' own
loop instead, with one debug line that names it (`compact_search`).
"""

from __future__ import annotations

import copy
import itertools
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, StoppingCriteriaList
from transformers.generation import (
    EosTokenCriteria,
    ExponentialDecayLengthPenalty,
    ForcedBOSTokenLogitsProcessor,
    ForcedEOSTokenLogitsProcessor,
    GenerateBeamEncoderDecoderOutput,
    GenerateEncoderDecoderOutput,
    InfNanRemoveLogitsProcessor,
    LogitNormalization,
    MaxLengthCriteria,
    MaxTimeCriteria,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    StoppingCriteria,
    StopStringCriteria,
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .compat_seq2seq_rnn import cache_field
from .numbers_seq2seq_rnn import is_number, is_whole
from .protocol_seq2seq_rnn import DecodingModel
from .shortlist_seq2seq_rnn import ShortlistLogitsProcessor, check_setting

logger = logging.getLogger(__name__)

# Logits processors that read nothing but the rows they are given (their ids, scores and length),
# so that they give the same result on a batch with finished sentences removed. Others, such as
# `EncoderRepetitionPenaltyLogitsProcessor` (it keeps the batch's source ids) or
# `PrefixConstrainedLogitsProcessor` (it numbers sentences by row), run transformers' own loop.
ROW_WISE_PROCESSORS = (
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    NoBadWordsLogitsProcessor,
    SequenceBiasLogitsProcessor,
    ForcedBOSTokenLogitsProcessor,
    ForcedEOSTokenLogitsProcessor,
    SuppressTokensLogitsProcessor,
    SuppressTokensAtBeginLogitsProcessor,
    ExponentialDecayLengthPenalty,
    InfNanRemoveLogitsProcessor,
    LogitNormalization,
    ShortlistLogitsProcessor,
)
# The warpers of sampling, row-wise as well: the `SampleSearch` of a batch that requests join (`prepared_search`).
ROW_WISE_WARPERS = (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)
# Stopping criteria that judge each row alone. In beam search a stop string could end every
# candidate of one sentence while transformers' loop goes on stepping it, so there it is left out.
ROW_WISE_CRITERIA_GREEDY = (MaxLengthCriteria, MaxTimeCriteria, EosTokenCriteria, StopStringCriteria)
ROW_WISE_CRITERIA_BEAM = (MaxLengthCriteria, MaxTimeCriteria, EosTokenCriteria)

# The generation settings of this module, kept in `generation_config.json` beside transformers' own.
SEARCH_SETTINGS = ("max_length_a", "max_length_b", "coverage_penalty", "shortlist")
# Those of them that are numbers.
NUMBER_SETTINGS = ("max_length_a", "max_length_b", "coverage_penalty")
# The most new tokens a cap allows (2**62, exact in a double and in an int64): no cap in practice.
LONGEST_CAP = float(2**62)


@dataclass(frozen=True)
class SearchSettings:
    """The settings this module adds to transformers' own (`GenerationConfig` attributes of the
    same names; all off when `None`).

    Args:
        max_length_a, max_length_b: at most `int(a * source_tokens + b)` new tokens per sentence
            (`</s>` included), and never more than `max_new_tokens`. Either alone is the cap with
            the other at 0; both `None`: no cap. Source tokens are the real tokens of the row
            (`attention_mask`). `generate(max_length_a=None, max_length_b=None)` switches off a cap
            that the generation config sets (a command line spells it `--max-length-a none`).
        coverage_penalty: beta of the coverage penalty of beam search (Wu et al., 2016, eq. 14):
            a finished hypothesis scores `log P(Y|X) / length ** length_penalty + beta * sum_i
            log(min(sum_j alignment_ij, 1))`, summed over the real source tokens `i`; it favours
            outputs whose attention has covered the whole source. Needs an attention model.
        shortlist: `(first, best)`: choose each token among the `first` most frequent target tokens,
            the `best` translation candidates of each source token of the batch, and the special
            tokens (`shortlist_seq2seq_rnn`; needs the model's shortlist file). Also "first,best".
    """

    max_length_a: float | None = None
    max_length_b: float | None = None
    coverage_penalty: float | None = None
    shortlist: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.shortlist, str) and self.shortlist.strip().lower() in ("none", "null", "off", ""):
            object.__setattr__(self, "shortlist", None)
        if self.shortlist is not None:
            object.__setattr__(self, "shortlist", check_setting(self.shortlist))
        for name in NUMBER_SETTINGS:
            value = getattr(self, name)
            if value is None:
                continue
            if not (is_number(value) and value >= 0):
                raise ValueError(f"{name}={value!r}: expected a number of at least 0, or None (none) to leave it off")

    @classmethod
    def from_config(cls, generation_config: Any, overrides: dict[str, Any] | None = None) -> SearchSettings:
        """The settings stored on `generation_config`, with `overrides` (generate() arguments) on top."""
        values = {name: getattr(generation_config, name, None) for name in SEARCH_SETTINGS}
        values.update({name: value for name, value in (overrides or {}).items() if name in SEARCH_SETTINGS})
        return cls(**values)

    @property
    def caps_length(self) -> bool:
        return self.max_length_a is not None or self.max_length_b is not None

    def new_token_limits(self, source_lengths: torch.Tensor) -> torch.Tensor:
        """New tokens allowed per sentence, `(sentences,)`: the source-relative cap, at least 1
        (`max_new_tokens` bounds it as well, through transformers' own `MaxLengthCriteria`)."""
        cap = (self.max_length_a or 0.0) * source_lengths.double() + (self.max_length_b or 0.0)
        # A finite but huge a or b (1e308) makes the product inf, which has no integer: clamp before the cast.
        return cap.floor().clamp(min=1, max=LONGEST_CAP).long()


# Above this many new tokens generate() refuses unless the generation config says otherwise
# (`max_new_tokens_limit`): memory grows with beams x tokens, and 10**9 tokens would ask for tens of GB.
MAX_NEW_TOKENS_LIMIT = 1024


def decoding_settings(base: Any, strict: bool = False, **given: Any) -> tuple[Any, SearchSettings]:
    """`base` (a model's `GenerationConfig`) with the settings `given` on top, and this module's
    `SearchSettings`, checked once: generate(), predict, the chatbot and training all pass here.

    Raises `ValueError` naming the value and what is accepted, for `num_beams < 1`, `max_new_tokens < 1`,
    `top_k < 0`, `top_p` outside (0, 1], `temperature <= 0`, a negative or non-numeric
    `max_length_a`, `max_length_b` or `coverage_penalty`, and more new tokens (`max_new_tokens`, or
    `max_length` without it) than `max_new_tokens_limit` (default `MAX_NEW_TOKENS_LIMIT`). Keys of
    `given` that are not generation settings are left to the caller (generate(): the model's inputs).
    `strict=True` (a command line) also raises for the settings transformers' `GenerationConfig.validate`
    only warns about (a sampling setting without `do_sample`, ...).
    """
    search = SearchSettings.from_config(base, {name: given[name] for name in SEARCH_SETTINGS if name in given})
    settings = copy.deepcopy(base)
    settings.update(**{name: value for name, value in given.items() if name not in SEARCH_SETTINGS})
    _check_counts(settings)
    top_p, temperature = settings.top_p, settings.temperature  # sampling settings, checked in any mode
    if top_p is not None and not (is_number(top_p) and 0 < top_p <= 1):
        raise ValueError(f"top_p={top_p!r}: expected a number greater than 0 and at most 1")
    if temperature is not None and not (is_number(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r}: expected a number greater than 0")
    if strict:
        settings.validate(strict=True)
    return settings, search


def _check_counts(settings: Any) -> None:
    """The whole-number settings: beams, the top-k filter, and new tokens within the limit."""
    for name, least, meaning in (
        ("num_beams", 1, " (1 is greedy search)"),
        ("max_new_tokens", 1, ""),
        ("top_k", 0, " (0: all tokens)"),
    ):
        value = getattr(settings, name, None)
        if value is not None and not (is_whole(value) and value >= least):
            raise ValueError(f"{name}={value!r}: expected a whole number of at least {least}{meaning}")
    limit = getattr(settings, "max_new_tokens_limit", None) or MAX_NEW_TOKENS_LIMIT
    name = "max_new_tokens" if settings.max_new_tokens is not None else "max_length"  # the first overrides
    value = getattr(settings, name)
    if value is not None and value > limit:
        raise ValueError(
            f"{name}={value} is more than this model generates at once (at most {limit}); pass a smaller "
            "value, or raise model.generation_config.max_new_tokens_limit"
        )


def unsupported(
    model: Any,
    generation_config: Any,
    logits_processor: list,
    stopping_criteria: list,
    synced_gpus: bool,
    model_kwargs: dict[str, Any],
    sampling: bool = False,
) -> str | None:
    """Why these settings need transformers' own loop, or `None` when this module's search handles them.

    `sampling=True` accepts sampling with a temperature, top-k or top-p (`SampleSearch`): a batch
    whose rows change between steps draws other random numbers than transformers' loop would, so
    generate() leaves sampling to that loop, where a seed reproduces its draws.
    """
    if generation_config.do_sample and not (sampling and generation_config.num_beams == 1):
        return "sampling (do_sample=True)"
    if getattr(generation_config, "num_beam_groups", 1) not in (None, 1):
        return "group beam search (num_beam_groups > 1)"
    if synced_gpus:
        return "synced_gpus"
    if generation_config.output_hidden_states:
        return "output_hidden_states"
    if model_kwargs.get("encoder_outputs") is None:
        return "no encoder_outputs to decode from"
    row_wise = ROW_WISE_PROCESSORS + (ROW_WISE_WARPERS if generation_config.do_sample else ())
    for processor in logits_processor:
        if not isinstance(processor, row_wise):
            return f"the logits processor {type(processor).__name__}"
        if isinstance(processor, RepetitionPenaltyLogitsProcessor) and not (
            getattr(processor, "prompt_ignore_length", None) is None or isinstance(processor.prompt_ignore_length, int)
        ):
            return "a repetition penalty with a per-row prompt length"
    beam = generation_config.num_beams > 1
    accepted = ROW_WISE_CRITERIA_BEAM if beam else ROW_WISE_CRITERIA_GREEDY
    for criterion in stopping_criteria:
        if not isinstance(criterion, (*accepted, SourceLengthCap)):
            return f"the stopping criterion {type(criterion).__name__}"
    has_eos = any(isinstance(criterion, EosTokenCriteria) for criterion in stopping_criteria)
    if not beam and not has_eos and any(isinstance(c, StopStringCriteria) for c in stopping_criteria):
        return "stop strings without an end-of-sequence token"
    return None


def compact_search(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    synced_gpus: bool = False,
    streamer: Any = None,
    search_settings: SearchSettings | None = None,
    search_streamer: Any = None,
    **model_kwargs: Any,
) -> Any:
    """The decoding loop `generate()` hands over to (`generate(custom_generate=compact_search)`).

    Greedy search for `num_beams=1`, beam search above, each stepped by a `DecodingLoop`;
    transformers' own loop for what `unsupported` names, with one debug line. Takes and returns what
    transformers' own loops take and return; `search_settings` and `search_streamer` are what
    `Seq2SeqRNNGenerationMixin.generate` passes (generate() gives a callable no `streamer` of its
    own). The length cap comes as the `SourceLengthCap` that `generate()` puts among the stopping
    criteria: transformers' own loop applies it as it is, the compact search reads its limits and
    drops rows by them.
    """
    streamer = streamer if streamer is not None else search_streamer
    reason = unsupported(model, generation_config, logits_processor, stopping_criteria, synced_gpus, model_kwargs)
    if reason is not None:
        logger.debug("generate(): %s; transformers' own decoding loop runs instead of the compact search", reason)
        beam = generation_config.num_beams > 1
        own_loop = GenerationMixin._beam_search if beam else GenerationMixin._sample
        extra = {} if beam else {"streamer": streamer}
        return own_loop(
            model,
            input_ids,
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            generation_config=generation_config,
            synced_gpus=synced_gpus,
            **extra,
            **model_kwargs,
        )
    search = _prepare(model, input_ids, logits_processor, stopping_criteria, generation_config, search_settings,
                      streamer, model_kwargs)  # fmt: skip
    loop = DecodingLoop(model)
    loop.add(search)
    while not search.strategy.done:
        loop.step()
    return search.strategy.output()


class SharedBatchUnsupported(ValueError):
    """Settings that only transformers' own loop decodes, asked of `prepared_search`: such a search
    cannot join a running `DecodingLoop` (a caller may decode it alone with `generate()` instead)."""


def prepared_search(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    synced_gpus: bool = False,
    streamer: Any = None,
    search_settings: SearchSettings | None = None,
    search_streamer: Any = None,
    **model_kwargs: Any,
) -> PreparedSearch:
    """`compact_search` up to its first step: `generate(custom_generate=prepared_search)` returns the
    search ready to join a running `DecodingLoop` (whose steps it then shares with other searches),
    instead of its output. A server decodes requests that arrive at different times in one batch so.

    Raises:
        SharedBatchUnsupported: for the settings that only transformers' own loop decodes (`unsupported`).
    """
    reason = unsupported(
        model, generation_config, logits_processor, stopping_criteria, synced_gpus, model_kwargs, sampling=True
    )
    if reason is not None:
        raise SharedBatchUnsupported(f"{reason} is decoded by transformers' own loop, which cannot share a batch")
    streamer = streamer if streamer is not None else search_streamer
    return _prepare(
        model,
        input_ids,
        logits_processor,
        stopping_criteria,
        generation_config,
        search_settings,
        streamer,
        model_kwargs,
    )


# The decoding loops of this module: `Seq2SeqRNNGenerationMixin.generate` passes them their own settings.
OWN_LOOPS = (compact_search, prepared_search)


@dataclass
class PreparedSearch:
    """A search ready to be stepped: its strategy and what the decoder starts from (`start_decoding`)."""

    strategy: DecodeStrategy
    memory: Any
    state: Any


def _prepare(
    model: DecodingModel,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    search_settings: SearchSettings | None,
    streamer: Any,
    model_kwargs: dict[str, Any],
) -> PreparedSearch:
    """The strategy for these settings, and the decoder's memory and first state."""
    settings = search_settings or SearchSettings.from_config(generation_config)
    if generation_config.num_beams > 1 and streamer is not None:
        raise ValueError("a streamer follows one sequence; it cannot be used with beam search (num_beams > 1)")
    cap = next((criterion for criterion in stopping_criteria if isinstance(criterion, SourceLengthCap)), None)
    criteria = StoppingCriteriaList(criterion for criterion in stopping_criteria if criterion is not cap)
    # The loop computes the output layer for a shortlist's rows only, unless another processor or the
    # recorded scores need every token's: then the shortlist stays a processor (a mask) like the others.
    shortlist = next((each for each in logits_processor if isinstance(each, ShortlistLogitsProcessor)), None)
    returns = generation_config.return_dict_in_generate
    records = returns and (generation_config.output_scores or generation_config.output_logits)
    if shortlist is not None and len(logits_processor) == 1 and not records:
        logits_processor = type(logits_processor)()
    else:
        shortlist = None
    encoder_outputs = model_kwargs["encoder_outputs"]
    attention_mask = model_kwargs.get("attention_mask")
    if attention_mask is None:
        attention_mask = encoder_outputs.attention_mask
    strategy_class = (
        BeamSearch if generation_config.num_beams > 1 else SampleSearch if generation_config.do_sample else GreedySearch
    )
    strategy = strategy_class(
        input_ids,
        logits_processor,
        criteria,
        generation_config,
        settings,
        attention_mask,
        encoder_outputs=encoder_outputs,
        limits=None if cap is None else cap.limits.to(input_ids.device),
        coverage=bool(settings.coverage_penalty) and model.has_attention,
        streamer=streamer,
        vocabulary=None if shortlist is None else shortlist.rows,
    )
    memory, state = model.start_decoding(encoder_outputs, attention_mask)
    return PreparedSearch(strategy, memory, state)


class SourceLengthCap(StoppingCriteria):
    """The source-relative length cap as a stopping criterion, for transformers' own loop.

    Rows are judged by the sentence they belong to (`rows // sentences` consecutive rows per
    sentence: returned sequences, beams, or beam search's candidates), which holds there because
    that loop never drops a row. The decoder prompt's length is read at the first call, which comes
    after the first new token.

    Args:
        settings: the cap (`max_length_a`, `max_length_b`).
        attention_mask (`torch.Tensor` of shape `(sentences, src_len)`): 1 on real source tokens.
    """

    def __init__(self, settings: SearchSettings, attention_mask: torch.Tensor):
        self.limits = settings.new_token_limits(attention_mask.sum(dim=1))  # (sentences,)
        self.prompt_length: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1] - 1
        limits = self.limits.to(input_ids.device)
        limits = limits.repeat_interleave(input_ids.shape[0] // limits.shape[0])  # (rows,)
        return (input_ids.shape[1] - self.prompt_length) >= limits


@dataclass
class KeepRows:
    """What a strategy keeps of its rows after a step, in its local row numbers.

    Args:
        state (`(rows,)`): the rows of the decoder state, in their new order (beam search continues
            a beam from its parent's row).
        memory (`(rows,)`, *optional*): the rows of the encoder memory; `None` leaves it as it is
            (beam search reorders beams within a sentence, whose memory rows are all the same).
    """

    state: torch.LongTensor
    memory: torch.LongTensor | None


class DecodeStrategy:
    """Decides the tokens of one batch of sentences from each step's logits; it never calls the model.

    A `DecodingLoop` steps the decoder for the live rows of every strategy it holds and hands each
    strategy the logits and alignment of its own rows (`advance`). The strategy records them, picks
    its tokens, and answers with the rows the loop keeps (`KeepRows`) when it drops the rows of
    sentences that are done or reorders beams, as OpenNMT-py's `DecodeStrategy.advance` /
    `update_finished` / `select_indices` and fairseq's `Search.step` split the work. The per-step
    outputs (`scores`, `logits`, `cross_attentions`) are laid out at the rows of the whole batch, as
    transformers' own loops return them.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch * beams, prompt)`): the decoder start tokens.
        logits_processor, stopping_criteria, generation_config: as `generate()` prepared them.
        settings: this module's own settings.
        attention_mask (`torch.LongTensor` of shape `(batch * beams, src_len)`): 1 on real source tokens.
        encoder_outputs: what the encoder returned (its attentions go to the output).
        limits (`(batch,)`, *optional*): new tokens allowed per sentence (the source-relative cap).
        coverage: keep the coverage penalty's summed attention (beam search).
        streamer: gets each step's tokens of the whole batch (greedy search).
        vocabulary (`(rows,)`, *optional*): the token ids this batch chooses among (a shortlist), sorted.

    What the loop reads:
        tokens (`(rows,)`): the token each live row reads at the next step.
        start_rows: the rows of the prepared memory and state that the first step reads, or `None` for all.
        source_width: the source length of this batch (the loop may pad its memory wider).
        vocabulary: the shortlist's token ids, or `None` for the whole vocabulary.
        done: every sentence is done; the loop then drops the strategy's rows.
        newly_done: the sentences (batch indices) that the last `advance` finished; `output()`
            already holds their final result.
    """

    def __init__(
        self,
        input_ids: torch.LongTensor,
        logits_processor: Any,
        stopping_criteria: Any,
        generation_config: Any,
        settings: SearchSettings,
        attention_mask: torch.Tensor,
        *,
        encoder_outputs: Any = None,
        limits: torch.Tensor | None = None,
        coverage: bool = False,
        streamer: Any = None,
        vocabulary: torch.LongTensor | None = None,
    ):
        self.input_ids = input_ids
        self.vocabulary = vocabulary
        self.logits_processor = logits_processor
        self.stopping_criteria = stopping_criteria
        self.config = generation_config
        self.settings = settings
        self.attention_mask = attention_mask
        self.encoder_outputs = encoder_outputs
        self.limits = limits  # (sentences,)
        self.coverage = coverage
        self.streamer = streamer
        self.rows_total = input_ids.shape[0]
        self.prompt_length = input_ids.shape[1]
        self.source_width = attention_mask.shape[1]
        # Consecutive rows per sentence: beams, or returned sequences (generate() repeats the sources so).
        self.rows_per_sentence = max(generation_config.num_beams or 1, generation_config.num_return_sequences or 1)
        self.start_rows: torch.LongTensor | None = None
        self.done = False
        self.newly_done: list[int] = []
        # Rows whose sentence `stop` ended, `(batch * beams,)`; None until one is: a step reads it only then.
        self.stopped: torch.Tensor | None = None
        returns = generation_config.return_dict_in_generate
        self.scores = [] if returns and generation_config.output_scores else None
        self.logits = [] if returns and generation_config.output_logits else None
        self.cross_attentions = [] if returns and generation_config.output_attentions else None
        self.steps = 0

    @property
    def tokens(self) -> torch.LongTensor:
        raise NotImplementedError

    def advance(
        self, logits: torch.Tensor, alignment: torch.Tensor | None, vocabulary: torch.LongTensor | None = None
    ) -> KeepRows | None:
        """Take one step's outputs for the live rows: logits `(rows, vocab)` in float32 (unnormalized:
        greedy search ranks and records them as transformers' `_sample` does, beam search takes their
        log-softmax) and the alignment `(rows, source_width)` (`None` without attention). With a
        shortlist, `vocabulary` `(vocab,)` names the token id of each logits column. Returns the
        rows to keep, or `None` when every row stays where it is."""
        raise NotImplementedError

    def output(self) -> Any:
        """transformers' output class (or the ids alone without `return_dict_in_generate`)."""
        raise NotImplementedError

    def stop(self, sentence: int) -> None:
        """End sentence `sentence` (a batch index) at the next step, whatever it has produced: a
        server's client went away, and its rows should stop costing a step."""
        if self.stopped is None:
            self.stopped = torch.zeros(self.rows_total, dtype=torch.bool, device=self.input_ids.device)
        rows = self.rows_per_sentence
        self.stopped[sentence * rows : (sentence + 1) * rows] = True

    def record(self, live_rows: torch.LongTensor, scores: torch.Tensor, logits: torch.Tensor, alignment: Any) -> None:
        """Keep this step's outputs when asked, each at the live rows of a whole-batch tensor."""
        self.steps += 1
        if self.scores is not None:
            self.scores.append(self._whole(live_rows, scores))
        if self.logits is not None:
            self.logits.append(self._whole(live_rows, logits))
        if self.cross_attentions is not None and alignment is not None:
            self.cross_attentions.append((self._whole(live_rows, alignment)[:, None, None],))  # (rows, 1, 1, S)

    def _whole(self, live_rows: torch.LongTensor, values: torch.Tensor) -> torch.Tensor:
        if values.shape[0] == self.rows_total:
            return values.clone()
        whole = values.new_zeros((self.rows_total, *values.shape[1:]))
        return whole.index_copy_(0, live_rows, values)

    def output_fields(self) -> dict[str, Any]:
        """The per-step fields of transformers' output classes, as its own loops fill them."""
        encoder_outputs = self.encoder_outputs
        attentions = self.cross_attentions is not None
        fields = {
            "scores": None if self.scores is None else tuple(self.scores),
            "logits": None if self.logits is None else tuple(self.logits),
            "encoder_attentions": encoder_outputs.get("attentions") if attentions and encoder_outputs else None,
            "encoder_hidden_states": None,
            "decoder_attentions": (None,) * self.steps if attentions else None,
            "cross_attentions": tuple(self.cross_attentions) if attentions else None,
            "decoder_hidden_states": None,
        }
        if attentions and not self.cross_attentions:  # a model without attention
            fields["cross_attentions"] = (None,) * self.steps
        return fields


class DecodingLoop:
    """The one loop that steps the decoder: for every strategy it holds, one step on all their live
    rows at once (`decode_features`), each strategy's share of the logits (`decode_logits`) handed to
    its `advance`, and the rows it keeps.

    Strategies join between steps (`add`), each with the memory and state it starts from (padded to
    a common source length; the padding is masked out of attention), and leave when done. So one
    generate() call is one strategy run to its end (`compact_search`), and a server that adds the
    requests arriving while others decode does continuous batching (`chatbot.scheduler`).

    With a shortlist (`DecodeStrategy.vocabulary`) a strategy's logits are computed for its own
    shortlist's rows only (`model.output_layer`): its outputs are those it gives decoding alone,
    whichever strategies share its steps.

    Args:
        model: what `generate()` decodes with (`protocol_seq2seq_rnn.DecodingModel`): `start_decoding`
            made the memory and state, `decode_features(tokens, memory, state) -> (features, state,
            alignment)` steps them and `decode_logits(features, rows, output)` gives a strategy's
            logits, the memory's `select` and the state's `reorder_cache` keep rows, and `cat` joins them.
    """

    def __init__(self, model: DecodingModel):
        self.model = model
        self.strategies: list[DecodeStrategy] = []
        self.rows: list[int] = []  # the live rows of each strategy, in the order of `strategies`
        # The output layer of each strategy's shortlist (`model.output_layer`), None for the whole one.
        self.outputs: list[Any] = []
        self.memory: Any = None
        self.state: Any = None

    def __len__(self) -> int:
        """The strategies still decoding."""
        return len(self.strategies)

    @property
    def live_rows(self) -> int:
        return sum(self.rows)

    def add(self, search: PreparedSearch) -> None:
        """Join `search` to the batch: its rows are decoded from the next step on."""
        strategy, memory, state = search.strategy, search.memory, search.state
        rows = strategy.rows_total
        if strategy.start_rows is not None:
            memory = memory.select(strategy.start_rows)
            state.reorder_cache(strategy.start_rows)
            rows = strategy.start_rows.shape[0]
        if self.memory is None:
            self.memory, self.state = memory, state
        else:
            self.memory = type(memory).cat([self.memory, memory])
            self.state = type(state).cat([self.state, state])
        self.strategies.append(strategy)
        self.rows.append(rows)
        vocabulary = strategy.vocabulary
        self.outputs.append(None if vocabulary is None else self.model.output_layer(vocabulary))

    def step(self) -> list[DecodeStrategy]:
        """One decoder step for every live row; returns the strategies that are done (and left)."""
        strategies = self.strategies
        tokens = strategies[0].tokens if len(strategies) == 1 else torch.cat([s.tokens for s in strategies])
        features, self.state, alignment = self.model.decode_features(tokens, self.memory, self.state)
        offset, kept, finished = 0, [], []
        for strategy, rows, logits in zip(strategies, self.rows, self._logits(features), strict=True):
            share = slice(offset, offset + rows)
            width = strategy.source_width
            own_alignment = None if alignment is None else alignment[share, :width]
            keep = strategy.advance(logits, own_alignment, strategy.vocabulary)
            if strategy.done:
                finished.append(strategy)
            else:
                kept.append((strategy, offset, rows, keep))
            offset += rows
        if finished or any(keep is not None for _, _, _, keep in kept):
            self._keep(kept, memory_changed=bool(finished), device=tokens.device)
        return finished

    def _logits(self, features: Any) -> list[torch.Tensor]:
        """Each strategy's logits in float32 (a new tensor already: transformers' loops copy a model
        output's), one output-layer product for each run of neighbouring strategies with the same
        output layer: a server's many requests without a shortlist share one product of the whole layer."""
        bounds = list(itertools.accumulate(self.rows, initial=0))
        logits, first = [], 0
        while first < len(self.strategies):
            end = first + 1
            while end < len(self.strategies) and self.outputs[end] is self.outputs[first]:
                end += 1
            run = self.model.decode_logits(features, slice(bounds[first], bounds[end]), self.outputs[first]).float()
            logits += run.split(self.rows[first:end])  # (rows, vocab) of each strategy of the run
            first = end
        return logits

    def _keep(
        self, kept: list[tuple[DecodeStrategy, int, int, KeepRows | None]], memory_changed: bool, device: torch.device
    ) -> None:
        """Keep what each strategy of `step` kept (`(strategy, offset, rows, keep)`): its state rows in
        their new order, and its memory rows where it changed them (or a strategy left)."""
        outputs = dict(zip(map(id, self.strategies), self.outputs, strict=True))
        self.strategies = [strategy for strategy, _, _, _ in kept]
        self.outputs = [outputs[id(strategy)] for strategy in self.strategies]
        if not kept:
            self.rows, self.memory, self.state = [], None, None
            return
        state_rows, memory_rows = [], []
        for _, offset, rows, keep in kept:
            same = torch.arange(offset, offset + rows, device=device)
            state_rows.append(same if keep is None else keep.state + offset)
            memory_rows.append(same if keep is None or keep.memory is None else keep.memory + offset)
            memory_changed = memory_changed or (keep is not None and keep.memory is not None)
        self.rows = [rows.shape[0] for rows in state_rows]
        self.state.reorder_cache(torch.cat(state_rows))
        if memory_changed:
            self.memory = self.memory.select(torch.cat(memory_rows))


class GreedySearch(DecodeStrategy):
    """The most likely token at every step, as transformers' `_sample` with `do_sample=False`.

    A sentence is done when a stopping criterion holds for it (`</s>`, `max_length`, a stop string,
    the source-relative cap); from then on its row holds padding, and leaves the batch.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        pad = self.config._pad_token_tensor
        device = self.input_ids.device
        self.filler = pad if pad is not None else torch.zeros((), dtype=torch.long, device=device)
        self.live = torch.arange(self.rows_total, device=device)  # batch rows still decoded
        self.sequences = self.input_ids  # (R, prompt + steps): the live rows' ids
        self.columns: list[torch.Tensor] = []  # each step's token of every batch row, padding once done, (B,)

    @property
    def tokens(self) -> torch.LongTensor:
        return self.sequences[:, -1]

    def advance(
        self, logits: torch.Tensor, alignment: torch.Tensor | None, vocabulary: torch.LongTensor | None = None
    ) -> KeepRows | None:
        scores = self.logits_processor(self.sequences, logits)  # (R, V)
        self.record(self.live, scores, logits, alignment)
        tokens = self.choose(scores)  # (R,)
        if vocabulary is not None:
            tokens = vocabulary[tokens]  # the shortlist's columns to token ids
        self.sequences = torch.cat([self.sequences, tokens[:, None]], dim=-1)
        if tokens.shape[0] < self.rows_total:
            tokens = self.filler.expand(self.rows_total).clone().index_copy_(0, self.live, tokens)
        self.columns.append(tokens)
        if self.streamer is not None:
            self.streamer.put(tokens.cpu())
        done = self.stopping_criteria(self.sequences, None)  # (R,)
        if self.stopped is not None:
            done = done | self.stopped[self.live]
        if self.limits is not None:
            done = done | (self.sequences.shape[1] - self.prompt_length >= self.limits)
        if not bool(done.any()):
            self.newly_done = []
            return None
        self.newly_done = self.live[done].tolist()
        if bool(done.all()):
            self.done = True
            if self.streamer is not None:
                self.streamer.end()
            return None
        keep = (~done).nonzero().squeeze(1)
        self.live, self.sequences = self.live[keep], self.sequences[keep]
        self.limits = None if self.limits is None else self.limits[keep]
        return KeepRows(state=keep, memory=keep)

    def choose(self, scores: torch.Tensor) -> torch.LongTensor:
        """The next token of each live row from its processed scores `(rows, vocab)`."""
        # What argmax answers (the first of equal maxima, as documented for both), at a third of its
        # time on a CPU: ATen's max reduction over a row is vectorized, its argmax is not.
        return scores.max(dim=-1).indices

    def output(self) -> Any:
        output_ids = torch.cat([self.input_ids, torch.stack(self.columns, dim=1)], dim=1)  # (B, prompt + steps)
        if not self.config.return_dict_in_generate:
            return output_ids
        return GenerateEncoderDecoderOutput(
            sequences=output_ids, **self.output_fields(), **{cache_field(GenerateEncoderDecoderOutput): None}
        )


class SampleSearch(GreedySearch):
    """Ancestral sampling, as transformers' `_sample` with `do_sample=True`: each row draws its next
    token from the softmax of its warped scores (temperature, top-k, top-p). Rows leave the batch as
    in greedy search, so a batch consumes other random numbers than transformers' loop, which steps
    every row to the end; `prepared_search` only (generate() samples with transformers' loop)."""

    def choose(self, scores: torch.Tensor) -> torch.LongTensor:
        probabilities = nn.functional.softmax(scores, dim=-1)  # (R, V)
        return torch.multinomial(probabilities, num_samples=1).squeeze(1)


@dataclass
class BeamState:
    """The beams of the sentences still open, `N` of them, `K` beams each; every field is indexed
    by sentence first, so that `select` drops finished sentences from all of them at once.

    Args:
        sentences (`(N,)`): each open sentence's index in the batch.
        running (`(N, K, cur_len)`): the ids of the beams that continue, as long as the steps so far
            (transformers' loop keeps them at `max_length`, filler after `cur_len`: the search writes
            that layout only into what a sentence ends with).
        running_scores (`(N, K)`): their summed log-probabilities.
        running_indices (`(N, K, cur_len - prompt)`): the batch row each of their tokens came from.
        finished, finished_scores, finished_indices: the same for the best `K` ended hypotheses, filler
            after each one's end.
        is_finished (`(N, K)`): which of those slots hold an ended hypothesis.
        can_improve (`(N, 1)`): whether an open beam could still beat the worst finished one.
        limits (`(N,)`, *optional*): new tokens allowed (the source-relative cap).
        source_mask (`(N, src_len)`): True on real source tokens (the coverage penalty).
        coverage (`(N, K, src_len)`, *optional*): the running beams' summed attention.
    """

    sentences: torch.Tensor
    running: torch.Tensor
    running_scores: torch.Tensor
    running_indices: torch.Tensor
    finished: torch.Tensor
    finished_scores: torch.Tensor
    finished_indices: torch.Tensor
    is_finished: torch.Tensor
    can_improve: torch.Tensor
    limits: torch.Tensor | None
    source_mask: torch.Tensor
    coverage: torch.Tensor | None = None

    def select(self, keep: torch.LongTensor) -> BeamState:
        """The state of sentences `keep` (local indices) only."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return BeamState(**{name: None if value is None else value[keep] for name, value in values.items()})


@dataclass
class Continuations:
    """The best `2K` continuations of each open sentence at one step.

    Args:
        scores (`(N, 2K)`): summed log-probabilities, best first.
        parents (`(N, 2K)`): the beam each continues.
        sequences (`(N, 2K, cur_len + 1)`), indices (`(N, 2K, cur_len + 1 - prompt)`): as in `BeamState`,
            this step's token included.
        hits (`(N, 2K)`): which ended (`</s>`, a stopping criterion or the cap).
        coverage (`(N, 2K, src_len)`, *optional*): their summed attention.
    """

    scores: torch.Tensor
    parents: torch.Tensor
    sequences: torch.Tensor
    indices: torch.Tensor
    hits: torch.Tensor
    coverage: torch.Tensor | None


def _gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`values[n, index[n, j]]` for `values` of shape `(N, C, ...)` and `index` of shape `(N, J)`."""
    return values.gather(1, index.view(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:]))


class BeamSearch(DecodeStrategy):
    """transformers' beam search (`GenerationMixin._beam_search`, `do_sample=False`), computed for
    the sentences still open only.

    Each step keeps the `2 * beams` best continuations of a sentence, moves those that end (`</s>`
    or a stopping criterion) among its best `beams` into its finished list (scored by
    `log P / length ** length_penalty`, plus the coverage penalty when set) and continues with the
    best `beams` that did not end. A sentence is done when transformers' loop would no longer
    change its finished list:
    - with `early_stopping=True`, once it has `beams` finished hypotheses;
    - with `early_stopping=False` or `"never"`, once no open beam can beat its worst finished one
      (the bound transformers' `_check_early_stop_heuristic` computes for each value);
    - or when every continuation hit a stopping criterion (`max_length`, the source-relative cap).
    Its rows then leave the batch. The first step reads one row per sentence (`start_rows`): until
    then a sentence's beams are copies of one another.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        beams = self.config.num_beams
        self.beams = beams
        self.start_rows = torch.arange(0, self.rows_total, beams, device=self.input_ids.device)  # one per sentence
        eos = self.config._eos_token_tensor
        pad = self.config._pad_token_tensor
        # transformers' filler after a hypothesis's end (its `pad or eos[0]`, so eos when pad is 0).
        self.fill = -1 if eos is None else int(pad if pad is not None and bool(pad) else eos[0])
        self.beam_state = self._first_state()
        # What each sentence ends with, written when it is done: finished ids, scores, beam indices, at
        # transformers' full length (`max_length`), filler after the last step.
        first = self.beam_state
        sentences_beams, max_length = first.running.shape[:2], self.config.max_length
        self.out_ids = first.running.new_full((*sentences_beams, max_length), self.fill)
        self.out_ids[:, :, : self.prompt_length] = first.running
        self.out_scores = first.finished_scores.clone()
        self.out_indices = first.running_indices.new_full((*sentences_beams, max_length - self.prompt_length), -1)
        self.cur_len = self.prompt_length
        # Each step's log-probabilities go into this one tensor (its first rows x vocabulary elements):
        # a new vocabulary-sized tensor a step pays its memory's first touch.
        self._log_probs: torch.Tensor | None = None

    @property
    def tokens(self) -> torch.LongTensor:
        running = self.beam_state.running[:, :, self.cur_len - 1]  # (N, K)
        return running[:, 0] if self.cur_len == self.prompt_length else running.reshape(-1)

    def advance(
        self, logits: torch.Tensor, alignment: torch.Tensor | None, vocabulary: torch.LongTensor | None = None
    ) -> KeepRows | None:
        state, beams = self.beam_state, self.beams
        first = self.cur_len == self.prompt_length
        if first:  # one row per sentence: each of its beams reads the same outputs
            copies = torch.arange(logits.shape[0], device=logits.device).repeat_interleave(beams)  # (N * K,)
            logits, alignment = logits[copies], None if alignment is None else alignment[copies]
        continuations = self._continuations(logits, alignment, vocabulary)
        next_beams = self._continue_best_open(continuations)
        self._update_finished(continuations)
        # The decoder state follows the beams that continue: their parents' rows.
        parents = continuations.parents.gather(1, next_beams)  # (N, K)
        if first:
            state_rows = torch.arange(parents.shape[0], device=parents.device).repeat_interleave(beams)
            memory_rows = state_rows
        else:
            state_rows = (parents + self._local_offsets()[:, None]).view(-1)
            memory_rows = None
        self.cur_len += 1
        done = self._done(continuations)  # (N,)
        if self.stopped is not None:
            done = done | self.stopped.view(-1, beams)[state.sentences, 0]
        self.newly_done = []
        if bool(done.any()):
            ended = done.nonzero().squeeze(1)
            where = state.sentences[ended]
            self.out_ids[where, :, : self.cur_len] = state.finished[ended]
            self.out_scores[where] = state.finished_scores[ended]
            self.out_indices[where, :, : self.cur_len - self.prompt_length] = state.finished_indices[ended]
            self.newly_done = where.tolist()
            if bool(done.all()):
                self.done = True
                return None
            keep = (~done).nonzero().squeeze(1)
            self.beam_state = state.select(keep)
            kept_rows = (keep[:, None] * beams + torch.arange(beams, device=keep.device)).view(-1)
            memory_rows = kept_rows if memory_rows is None else memory_rows[kept_rows]
            state_rows = state_rows[kept_rows]
        return KeepRows(state=state_rows, memory=memory_rows)

    def output(self) -> Any:
        """The best `num_return_sequences` of each sentence, cut to the longest returned, in
        transformers' `GenerateBeamEncoderDecoderOutput`."""
        config = self.config
        returned = config.num_return_sequences
        ids = self.out_ids[:, :returned].flatten(0, 1)  # (B * R, L)
        scores = self.out_scores[:, :returned].flatten(0, 1)  # (B * R,)
        indices = self.out_indices[:, :returned].flatten(0, 1)  # (B * R, L - prompt)
        generated = int((indices + 1).bool().sum(dim=1).max())
        ids, indices = ids[:, : self.prompt_length + generated], indices[:, :generated]
        if not config.return_dict_in_generate:
            return ids
        return GenerateBeamEncoderDecoderOutput(
            sequences=ids,
            sequences_scores=scores if config.output_scores else None,
            beam_indices=indices,
            **self.output_fields(),
            **{cache_field(GenerateBeamEncoderDecoderOutput): None},
        )

    def _first_state(self) -> BeamState:
        """Every sentence open, its first beam at score 0 and the others at -1e9 (so that only the first
        beam's continuations count at the first step), as transformers' loop starts."""
        beams, prompt = self.config.num_beams, self.prompt_length
        batch, device = self.rows_total // beams, self.input_ids.device
        running = self.input_ids.reshape(batch, beams, prompt)
        running_scores = torch.zeros((batch, beams), dtype=torch.float, device=device)
        running_scores[:, 1:] = -1e9
        indices = torch.empty((batch, beams, 0), dtype=torch.int32, device=device)
        source_mask = self.attention_mask.view(batch, beams, -1)[:, 0].bool()  # (N, S)
        coverage = None
        if self.coverage:
            coverage = torch.zeros((batch, beams, source_mask.shape[1]), dtype=torch.float, device=device)
        return BeamState(
            sentences=torch.arange(batch, device=device),
            running=running,
            running_scores=running_scores,
            running_indices=indices,
            finished=running.clone(),
            finished_scores=torch.full((batch, beams), -1e9, dtype=torch.float, device=device),
            finished_indices=indices.clone(),
            is_finished=torch.zeros((batch, beams), dtype=torch.bool, device=device),
            can_improve=torch.ones((batch, 1), dtype=torch.bool, device=device),
            limits=self.limits,
            source_mask=source_mask,
            coverage=coverage,
        )

    def _local_offsets(self) -> torch.Tensor:
        """The first live row of each open sentence, `(N,)`."""
        return torch.arange(self.beam_state.sentences.shape[0], device=self.beam_state.sentences.device) * self.beams

    def _continuations(
        self, logits: torch.Tensor, alignment: torch.Tensor | None, vocabulary: torch.LongTensor | None
    ) -> Continuations:
        """The best `2K` continuations of each open sentence from this step's logits
        (transformers' `_get_top_k_continuations`); `vocabulary` names a shortlist's columns."""
        state, beams, prompt, cur_len = self.beam_state, self.beams, self.prompt_length, self.cur_len
        eos = self.config._eos_token_tensor
        keep_count = max(2, 1 + (eos.shape[0] if eos is not None else 0)) * beams
        n = state.sentences.shape[0]
        flat_running = state.running.reshape(n * beams, cur_len)
        size = logits.numel()
        if self._log_probs is None or self._log_probs.numel() < size or self._log_probs.dtype != logits.dtype:
            self._log_probs = torch.empty(size, dtype=logits.dtype, device=logits.device)
        normalized = torch.log_softmax(logits, dim=-1, out=self._log_probs[:size].view(logits.shape))
        log_probs = self.logits_processor(flat_running, normalized)  # (N * K, V)
        live_rows = (state.sentences[:, None] * beams + torch.arange(beams, device=logits.device)).view(-1)
        self.record(live_rows, log_probs, logits, alignment)
        vocab = log_probs.shape[-1]
        # In place when the log-probabilities are log_softmax's own tensor (no processor returned another):
        # `record` kept a copy, and nothing else reads them (7% of a whole-vocabulary step against a new
        # tensor).
        totals = log_probs.view(n, beams, vocab)
        running = state.running_scores[:, :, None]
        totals = (totals.add_(running) if log_probs is normalized else totals + running).view(n, beams * vocab)
        scores, top = torch.topk(totals, k=keep_count)  # (N, 2K)
        parents = top // vocab
        tokens = top % vocab if vocabulary is None else vocabulary[top % vocab]
        sequences = torch.cat((_gather(state.running, parents), tokens[:, :, None]), dim=2)  # (N, 2K, cur_len + 1)
        rows = (parents + state.sentences[:, None] * beams).to(torch.int32)
        indices = torch.cat((_gather(state.running_indices, parents), rows[:, :, None]), dim=2)
        hits = self.stopping_criteria(sequences.view(n * keep_count, -1), None).view(n, keep_count)
        if state.limits is not None:
            hits = hits | (cur_len + 1 - prompt >= state.limits)[:, None]
        coverage = None
        if state.coverage is not None:
            coverage = _gather(state.coverage + alignment.float().view(n, beams, -1), parents)  # (N, 2K, S)
        return Continuations(scores, parents, sequences, indices, hits, coverage)

    def _continue_best_open(self, continuations: Continuations) -> torch.Tensor:
        """The best `K` continuations that did not end become the running beams
        (`_get_running_beams_for_next_iteration`); returns which they were, `(N, K)`."""
        state = self.beam_state
        open_scores = continuations.scores + continuations.hits.to(torch.float32) * -1.0e9
        next_beams = torch.topk(open_scores, k=self.beams)[1]  # (N, K)
        state.running = _gather(continuations.sequences, next_beams)
        state.running_scores = open_scores.gather(1, next_beams)
        state.running_indices = _gather(continuations.indices, next_beams)
        if continuations.coverage is not None:
            state.coverage = _gather(continuations.coverage, next_beams)
        return next_beams

    def _update_finished(self, continuations: Continuations) -> None:
        """Those among the best `K` continuations that ended join the finished list when they beat
        its worst (`_update_finished_beams`), scored by length and, when set, coverage."""
        state, config, beams = self.beam_state, self.config, self.beams
        in_top = torch.arange(continuations.scores.shape[1], device=continuations.scores.device) < beams
        just_finished = continuations.hits & in_top[None, :]
        scores = continuations.scores / ((self.cur_len + 1 - self.prompt_length) ** config.length_penalty)
        if continuations.coverage is not None:
            scores = scores + self.settings.coverage_penalty * coverage_term(continuations.coverage, state.source_mask)
        full = torch.all(state.is_finished, dim=-1, keepdim=True) & (config.early_stopping is True)
        scores = scores + full.to(torch.float32) * -1.0e9
        scores = scores + (~state.can_improve).to(torch.float32) * -1.0e9
        scores = scores + (~just_finished) * -1.0e9
        merged_scores = torch.cat((state.finished_scores, scores), dim=1)  # (N, 3K)
        best = torch.topk(merged_scores, k=beams)[1]  # (N, K)
        # The finished hypotheses gain this step's column as filler, to the continuations' length.
        finished = nn.functional.pad(state.finished, (0, 1), value=self.fill)
        finished_indices = nn.functional.pad(state.finished_indices, (0, 1), value=-1)
        state.finished = _gather(torch.cat((finished, continuations.sequences), dim=1), best)
        state.finished_scores = merged_scores.gather(1, best)
        state.finished_indices = _gather(torch.cat((finished_indices, continuations.indices), dim=1), best)
        state.is_finished = torch.cat((state.is_finished, just_finished), dim=1).gather(1, best)

    def _done(self, continuations: Continuations) -> torch.Tensor:
        """Which open sentences transformers' loop would no longer change, `(N,)`; updates `can_improve`
        with transformers' bound for the `early_stopping` value (`_check_early_stop_heuristic`).
        Called after the step's token is counted in `cur_len`."""
        state, config = self.beam_state, self.config
        if config.early_stopping == "never" and config.length_penalty > 0.0:
            best_length = config.max_length - self.prompt_length
        else:
            best_length = self.cur_len - self.prompt_length
        best_possible = state.running_scores[:, :1] / (best_length**config.length_penalty)
        worst = torch.where(state.is_finished, torch.min(state.finished_scores, dim=1, keepdim=True)[0], -1.0e9)
        state.can_improve = state.can_improve & torch.any(best_possible > worst, dim=-1, keepdim=True)
        done = ~state.can_improve[:, 0] | continuations.hits.all(dim=1)
        if config.early_stopping is True:
            done = done | state.is_finished.all(dim=1)
        return done


def coverage_term(coverage: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
    """`sum_i log(min(coverage_i, 1))` over the real source tokens (Wu et al., 2016, eq. 14), `(N, C)`.

    Args:
        coverage (`torch.Tensor` of shape `(N, C, src_len)`): attention summed over the output so far.
        source_mask (`torch.BoolTensor` of shape `(N, src_len)`): True on real source tokens.
    """
    # A floor keeps a token no step attended to from making the score -inf.
    covered = coverage.clamp(min=1e-10, max=1.0).log()  # (N, C, S)
    return (covered * source_mask[:, None, :]).sum(dim=-1)


__all__ = [
    "MAX_NEW_TOKENS_LIMIT",
    "OWN_LOOPS",
    "SEARCH_SETTINGS",
    "BeamSearch",
    "BeamState",
    "DecodeStrategy",
    "DecodingLoop",
    "GreedySearch",
    "KeepRows",
    "PreparedSearch",
    "SampleSearch",
    "SearchSettings",
    "SharedBatchUnsupported",
    "SourceLengthCap",
    "compact_search",
    "coverage_term",
    "decoding_settings",
    "prepared_search",
    "unsupported",
]
