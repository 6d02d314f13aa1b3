"""Inference for the chatbot: load a model, decode a reply (whole or streamed), read its attention.

No Gradio here: the app in `chatbot.app` is one user of this module, tests and benchmarks are others.

    from chatbot.inference import DecodingSettings, load_served_model, generate_reply
    chat = load_served_model("runs/chat")  # a directory or a Hub id: a LoadedModel
    reply = generate_reply(chat, "how are you?", DecodingSettings(mode="beam", num_beams=5))
    reply.text, reply.notice, reply.attention.weights.shape  # (output tokens, source tokens)
    scheduler = BatchScheduler()  # chatbot.scheduler: requests from many threads decoded as one batch
    reply = generate_reply(chat, "how are you?", scheduler=scheduler)
    both = load_served_ensemble(["runs/chat-seed1", "runs/chat-seed2"])  # a LoadedModel that decodes with both

A model is loaded by `seq2seq_tools.loading`: ours with the installed classes, never with the
Python files that came with it; another type only with `trust_remote_code=True`. What it was
trained on comes from the directory's model card (`README.md` front matter) and
`training_info.json` when they exist.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, TextIteratorStreamer
from transformers.generation.streamers import BaseStreamer

from hf_seq2seq_rnn.numbers_seq2seq_rnn import is_number
from hf_seq2seq_rnn.search_seq2seq_rnn import decoding_settings
from seq2seq_tools.attention import (  # noqa: F401  (re-exported: the app and other callers import them from here)
    AttentionMap,
    attention_figure,
    attention_map,
    heatmap_font_families,
)
from seq2seq_tools.ensemble import ensemble_of
from seq2seq_tools.generation import Generated, encode_texts, generate_encoded, has_attention
from seq2seq_tools.loading import load_model_and_tokenizer, read_training_info
from seq2seq_tools.quantization import maybe_quantize
from seq2seq_tools.tasks import UNKNOWN_TASK, task_of

from .scheduler import BatchScheduler, Ticket

logger = logging.getLogger(__name__)

DECODING_MODES = ("greedy", "beam", "sample")
MAX_BEAMS = 16
MAX_NEW_TOKENS = 512
MAX_TEMPERATURE = 10.0
# Tokenizers without a real limit report a huge `model_max_length`; this is the cap used then.
FALLBACK_MAX_INPUT_TOKENS = 512
# The most characters read per input token: a message is cut at max_input_tokens times this before tokenizing.
MAX_CHARS_PER_TOKEN = 32
EMPTY_INPUT_NOTICE = "Please type a message first: the input is empty."
# The longest a reply waits for its next token or its end before it fails.
REPLY_TIMEOUT_S = 120.0


class EmptyInputError(ValueError):
    """The message is empty or only whitespace; its text is meant for the user."""


@dataclass(frozen=True)
class DecodingSettings:
    """How to decode a reply.

    Args:
        mode: `"greedy"` (the most likely token at each step), `"beam"` (beam search, Sutskever
            et al., 2014, section 3.2) or `"sample"` (ancestral sampling with temperature and
            nucleus / top-p filtering, Holtzman et al., 2020).
        num_beams: beams kept by beam search (1 to 16); ignored by the other modes.
        temperature: divides the logits before sampling (> 0, at most 10); sampling only.
        top_p: sample from the smallest set of tokens whose probability reaches top_p (0 < p <= 1).
        max_new_tokens: the longest reply, in tokens (1 to 512).

    Invalid values raise `ValueError` naming the accepted range. Whole-number floats (what a
    slider sends) are accepted for the integer fields.
    """

    mode: str = "greedy"
    num_beams: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 40

    def __post_init__(self) -> None:
        if self.mode not in DECODING_MODES:
            raise ValueError(f"decoding mode {self.mode!r} is not supported; choose one of {', '.join(DECODING_MODES)}")
        # The page's own ranges (what its sliders offer), then the checks of generate() itself.
        object.__setattr__(self, "num_beams", _whole_number("num_beams", self.num_beams, 1, MAX_BEAMS))
        object.__setattr__(
            self, "max_new_tokens", _whole_number("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        )
        object.__setattr__(self, "temperature", _number("temperature", self.temperature))
        object.__setattr__(self, "top_p", _number("top_p", self.top_p))
        if self.temperature > MAX_TEMPERATURE:
            raise ValueError(f"temperature={self.temperature!r} must be at most {MAX_TEMPERATURE:g}")
        decoding_settings(
            GenerationConfig(),
            num_beams=self.num_beams,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
        )

    @property
    def streams(self) -> bool:
        """Whether tokens can be shown as they come: greedy and sampling yes, beam search no
        (its best hypothesis is only known at the end)."""
        return self.mode != "beam"

    def generate_kwargs(self) -> dict[str, Any]:
        """The arguments of `model.generate()` for these settings."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "num_beams": 1, "do_sample": False}
        if self.mode == "beam":
            kwargs["num_beams"] = self.num_beams
            kwargs["early_stopping"] = True
        elif self.mode == "sample":
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=0)
        return kwargs

    @classmethod
    def from_generation_config(cls, config: GenerationConfig) -> DecodingSettings:
        """Defaults taken from a model's `generation_config.json`."""
        num_beams = config.num_beams or 1
        mode = "sample" if config.do_sample else "beam" if num_beams > 1 else "greedy"
        max_new_tokens = config.max_new_tokens or 40
        return cls(
            mode=mode,
            num_beams=min(num_beams, MAX_BEAMS) if num_beams > 1 else 4,
            temperature=config.temperature if config.temperature and config.temperature > 0 else 1.0,
            top_p=config.top_p if config.top_p and 0 < config.top_p <= 1 else 1.0,
            max_new_tokens=min(max_new_tokens, MAX_NEW_TOKENS),
        )


def _number(name: str, value: object) -> float:
    if not is_number(value):
        raise ValueError(f"{name}={value!r} must be a number")
    return float(value)


def _whole_number(name: str, value: object, minimum: int, maximum: int) -> int:
    number = _number(name, value)
    if not number.is_integer() or not minimum <= number <= maximum:
        raise ValueError(f"{name}={value!r} must be a whole number from {minimum} to {maximum}")
    return int(number)


@dataclass(frozen=True)
class ModelInfo:
    """What the page shows about a model: its name, what it was trained on, its task."""

    name: str
    trained_on: str
    task: str  # one of seq2seq_tools.tasks.TASKS, or UNKNOWN_TASK for a model saved without one
    examples: tuple[str, ...]  # the model's own prompts (card widget, else training_info.json); may be empty
    has_attention: bool
    source_lang: str | None = None  # the language of its input (training_info.json), None when unknown


@dataclass
class LoadedModel:
    """A model, its tokenizer and what the app needs to know about them."""

    model: torch.nn.Module
    tokenizer: Any
    info: ModelInfo
    defaults: DecodingSettings
    max_input_tokens: int


@dataclass
class Reply:
    """A reply, whole or in progress.

    Args:
        text: the reply so far.
        done: False while streaming, True on the finished reply.
        notice: a message for the user (the input was truncated), else None.
        attention: the heatmap data of the finished reply; None while streaming and for models
            without attention.
        token_ids: the generated token ids (`</s>` included when reached).
        score: with `generate_reply(..., with_score=True)`, the reply's log-probability per token
            (`seq2seq_tools.generation.Generated.score`), else None.
    """

    text: str
    done: bool = True
    notice: str | None = None
    attention: AttentionMap | None = None
    token_ids: list[int] = field(default_factory=list)
    score: float | None = None


def load_served_model(
    name_or_path: str | Path,
    max_input_tokens: int | None = None,
    quantize: str | None = None,
    *,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """The model at a directory or a Hub id, ready to serve: with its tokenizer, what the page shows
    about it, its decoding defaults and its input limit.

    Args:
        name_or_path: a directory written by `save_pretrained`, or a Hub id such as
            `user/seq2seq-rnn-en-fr`.
        max_input_tokens: the longest input read; longer inputs are truncated with a notice.
            Defaults to the tokenizer's `model_max_length`.
        quantize: "int8" serves the model with int8 weights in its recurrent and linear layers
            (`seq2seq_tools.quantization`: faster CPU decoding); `None` or "none" keeps fp32.
        trust_remote_code: also load models of another type than ours, whose Python files then
            run here. Ours load with the installed classes either way.

    Raises:
        seq2seq_tools.loading.UntrustedModelError: another type, without `trust_remote_code`.
        seq2seq_tools.loading.IncompatibleModelError: a newer hf-seq2seq-rnn wrote the model.
    """
    source = str(name_or_path)
    model, tokenizer = load_model_and_tokenizer(source, quantize=quantize, trust_remote_code=trust_remote_code)
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else FALLBACK_MAX_INPUT_TOKENS
    if max_input_tokens is not None:
        if max_input_tokens < 1:
            raise ValueError(f"max_input_tokens={max_input_tokens} must be at least 1")
        limit = max_input_tokens
    info = _model_info(source, model, _read_model_card(source), _read_training_info(source))
    defaults = DecodingSettings.from_generation_config(model.generation_config)
    encode_texts(tokenizer, ["warm up"], limit)  # settles the tokenizer's settings before threads share it
    logger.info("loaded %s (%s, trained on %s)", info.name, info.task, info.trained_on)
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, defaults=defaults, max_input_tokens=limit)


def load_served_ensemble(
    sources: Sequence[str | Path],
    max_input_tokens: int | None = None,
    quantize: str | None = None,
    *,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load several models as one that decodes with all of them (`seq2seq_tools.ensemble`: their
    log-probabilities averaged at each step, the attention map the mean of theirs).

    Each model loads as `load_served_model` loads it. The ensemble reads at most as many input tokens as
    its most limited model, starts from the first model's decoding settings and offers its examples;
    its task and source language are theirs when they share them.

    Raises:
        ValueError: fewer than two models, or models whose tokenizers differ (naming both); and what
            `load_served_model` raises.
    """
    if len(sources) < 2:
        raise ValueError(f"an ensemble needs at least two models; got {len(sources)}")
    members = [load_served_model(source, max_input_tokens, trust_remote_code=trust_remote_code) for source in sources]
    ensemble = ensemble_of(
        [member.model for member in members], [member.tokenizer for member in members], list(map(str, sources))
    )
    tasks = {member.info.task for member in members}
    languages = {member.info.source_lang for member in members}
    info = ModelInfo(
        name="ensemble: " + " + ".join(member.info.name for member in members),
        trained_on="; ".join(dict.fromkeys(member.info.trained_on for member in members)),
        task=tasks.pop() if len(tasks) == 1 else UNKNOWN_TASK,
        examples=members[0].info.examples,
        has_attention=has_attention(ensemble),
        source_lang=languages.pop() if len(languages) == 1 else None,
    )
    logger.info("ensemble of %s", ", ".join(map(str, sources)))
    return LoadedModel(
        model=maybe_quantize(ensemble, quantize),
        tokenizer=members[0].tokenizer,
        info=info,
        defaults=members[0].defaults,
        max_input_tokens=min(member.max_input_tokens for member in members),
    )


# The name of `load_served_model` before it said what it returns, kept for a release for programs
# that import it (nothing in this repository does).
load_model = load_served_model


def _read_model_card(source: str) -> dict[str, Any]:
    """The model card's front matter, `{}` when absent or unreadable."""
    try:
        from huggingface_hub import ModelCard

        readme = Path(source) / "README.md"
        if Path(source).is_dir():
            return ModelCard.load(readme).data.to_dict() if readme.is_file() else {}
        return ModelCard.load(source).data.to_dict()
    except Exception as error:  # a missing or malformed card only loses the description
        logger.info("no model card for %s: %s", source, error)
        return {}


def _read_training_info(source: str) -> dict[str, Any]:
    """`training_info.json` (`seq2seq_tools.loading.read_training_info`), `{}` when absent or unreadable."""
    try:
        return read_training_info(source)
    except Exception as error:  # a missing or malformed file only loses the description and examples
        logger.info("no training_info.json for %s: %s", source, error)
        return {}


def _model_info(source: str, model: torch.nn.Module, card: dict[str, Any], training_info: dict[str, Any]) -> ModelInfo:
    name = card.get("model_name") or training_info.get("model_name") or Path(source.rstrip("/")).name or source
    datasets = card.get("datasets") or training_info.get("dataset")
    if isinstance(datasets, str):
        datasets = [datasets]
    description = training_info.get("description") or card.get("description")
    trained_on = str(description or ", ".join(map(str, datasets or [])) or "not stated (no model card)")
    languages = [training_info.get("source_lang"), training_info.get("target_lang")]
    if all(languages) and not description:
        trained_on += f" ({languages[0]} → {languages[1]})"
    task = task_of(training_info, card)
    examples = [item.get("text") for item in card.get("widget") or [] if isinstance(item, dict)]
    examples = [text for text in examples if isinstance(text, str) and text.strip()]
    # Else the model's own validation sources, saved at training time; prompts not made for a model
    # would only show it failing.
    examples = examples or list(training_info.get("examples") or [])
    source_lang = training_info.get("source_lang")
    source_lang = str(source_lang) if source_lang else None
    return ModelInfo(str(name), trained_on, task, tuple(map(str, examples)), has_attention(model), source_lang)


def encode(loaded: LoadedModel, text: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """Tokenize one message, truncated to the model's limit.

    Returns:
        the model inputs (`input_ids`, `attention_mask`, each `(1, src_len)`) and a notice for the
        user when the message was truncated (else None).

    Raises:
        EmptyInputError: for an empty or whitespace-only message.
    """
    inputs, [notice] = encode_messages(loaded, [text])
    return inputs, notice


def encode_messages(loaded: LoadedModel, texts: Sequence[str]) -> tuple[dict[str, torch.Tensor], list[str | None]]:
    """Tokenize several messages as one right-padded batch (`(len(texts), src_len)` each), every one
    cut to the model's limit, with each one's truncation notice (or None).

    Raises:
        EmptyInputError: for an empty or whitespace-only message.
    """
    checked = [_checked_text(loaded, text) for text in texts]
    read = [kept for kept, _ in checked]
    inputs, token_counts = encode_texts(loaded.tokenizer, read, loaded.max_input_tokens)
    notices = [
        _truncation_notice(loaded, tokens, characters, len(kept))
        for tokens, (kept, characters) in zip(token_counts, checked, strict=True)
    ]
    return inputs, notices


def _checked_text(loaded: LoadedModel, text: str) -> tuple[str, int]:
    """The stripped message, cut to the prefix the tokenizer reads, and its whole length in characters.

    Raises:
        EmptyInputError: for an empty or whitespace-only message.
    """
    if not isinstance(text, str) or not text.strip():
        raise EmptyInputError(EMPTY_INPUT_NOTICE)
    text = text.strip()
    # Only a prefix is tokenized: a 1 MB message as a whole would cost the tokenizer hundreds of MB,
    # which the allocator keeps for the life of the server. No token is near MAX_CHARS_PER_TOKEN long,
    # so the prefix always holds more than `max_input_tokens` tokens when the text is cut.
    return text[: loaded.max_input_tokens * MAX_CHARS_PER_TOKEN], len(text)


def _truncation_notice(loaded: LoadedModel, tokens: int, characters: int, read_characters: int) -> str | None:
    """What to tell the user when the message was longer than the model reads (else None).

    Args:
        tokens: the length in tokens of what was tokenized (`read_characters` of the message).
        characters: the message's whole length in characters.
    """
    limit = loaded.max_input_tokens
    if read_characters < characters:
        return (
            f"Your message is {characters:,} characters long; this model reads at most {limit} "
            f"tokens, so only the first {limit} tokens were used."
        )
    if tokens <= limit:
        return None
    return (
        f"Your message is {tokens} tokens long; this model reads at most {limit}, "
        f"so only the first {limit} tokens were used."
    )


def generate_reply(
    loaded: LoadedModel,
    text: str,
    settings: DecodingSettings | None = None,
    streamer: BaseStreamer | None = None,
    *,
    with_score: bool = False,
    scheduler: BatchScheduler | None = None,
) -> Reply:
    """Decode the whole reply to `text` (any decoding mode) through `generate_encoded`, handing its
    tokens to `streamer` as they come when one is given (see `stream_reply`); `with_score` also
    scores it (`Reply.score`). With a `scheduler`, the reply is decoded in its batch, together with
    the other requests it serves (a `streamer` then cannot be given: `stream_reply` streams from it)."""
    inputs, notice = encode(loaded, text)
    settings = settings or loaded.defaults
    if scheduler is not None:
        if streamer is not None:
            raise ValueError("a streamer follows generate()'s own call; stream a scheduled reply with stream_reply")
        return submit_reply(loaded, scheduler, inputs, notice, settings, with_score=with_score).reply()
    return _decode_reply(loaded, inputs, notice, settings, streamer, with_score)


def _decode_reply(
    loaded: LoadedModel,
    inputs: dict[str, torch.Tensor],
    notice: str | None,
    settings: DecodingSettings,
    streamer: BaseStreamer | None = None,
    with_score: bool = False,
) -> Reply:
    """The reply to a message tokenized by `encode` (its `inputs` and `notice`)."""
    [result] = generate_encoded(
        loaded.model,
        loaded.tokenizer,
        inputs,
        with_attention=True,
        with_scores=with_score,
        streamer=streamer,
        **settings.generate_kwargs(),
    )
    return _reply(result, notice)


def _reply(result: Generated, notice: str | None) -> Reply:
    return Reply(
        text=result.text,
        done=True,
        notice=notice,
        attention=result.attention,
        token_ids=result.token_ids,
        score=result.score,
    )


@dataclass
class PendingReply:
    """A reply that a `BatchScheduler` decodes: its text as it grows, and the finished `Reply`."""

    loaded: LoadedModel
    ticket: Ticket
    notice: str | None
    streams: bool

    def texts(self, first_after: float = 0.0, every: float = 0.0) -> Iterator[str]:
        """The reply's text as it grows (greedy and sampling; nothing for beam search): once the
        first token is there and at least `first_after` seconds have passed since this call, then at
        most every `every` seconds, each time the text changed, until the reply ends (by default
        after every token, the last ones included; with `every`, the text of the last ones is left
        to the finished reply). A reader that shows it now and then is woken only then, not at every
        token. A byte-level token that ends inside a character is held back until the character is whole."""
        if not self.streams:
            return
        seen, shown, until = 0, "", time.monotonic() + first_after
        while True:
            token_ids, ended = self.ticket.streamed(seen, until, timeout=REPLY_TIMEOUT_S)
            # After every token: the text after each new one, also when several came at once.
            ends = range(seen + 1, len(token_ids) + 1) if every <= 0 else [] if ended else [len(token_ids)]
            for end in ends:
                text = self._text(token_ids[:end])
                if text and text != shown:
                    shown = text
                    yield text
            if ended:
                return
            seen, until = len(token_ids), time.monotonic() + every

    def _text(self, token_ids: list[int]) -> str:
        return self.loaded.tokenizer.decode(token_ids, skip_special_tokens=True).rstrip("\ufffd").strip()

    def reply(self) -> Reply:
        """The finished reply; raises what decoding it raised."""
        return _reply(self.ticket.result(timeout=REPLY_TIMEOUT_S), self.notice)

    def cancel(self) -> None:
        """Give the reply up (its reader went away): its rows leave the batch at the next step."""
        self.ticket.cancel()


def submit_reply(
    loaded: LoadedModel,
    scheduler: BatchScheduler,
    inputs: dict[str, torch.Tensor],
    notice: str | None,
    settings: DecodingSettings,
    *,
    with_score: bool = False,
) -> PendingReply:
    """Hand a message tokenized by `encode` (its `inputs` and `notice`) to `scheduler`.

    Raises:
        chatbot.scheduler.QueueFullError: the scheduler's queue is full.
    """
    [ticket] = scheduler.submit(
        loaded.model,
        loaded.tokenizer,
        inputs,
        settings.generate_kwargs(),
        with_attention=True,
        with_scores=with_score,
        stream=settings.streams,
    )
    return PendingReply(loaded, ticket, notice, settings.streams)


def stream_reply(
    loaded: LoadedModel,
    text: str,
    settings: DecodingSettings | None = None,
    *,
    scheduler: BatchScheduler | None = None,
    first_after: float = 0.0,
    every: float = 0.0,
) -> Iterator[Reply]:
    """Decode the reply to `text`, yielding it as it grows, then the finished reply.

    Greedy and sampling yield the text as it grows: no sooner than `first_after` seconds after the
    call and then at most every `every` seconds (each time it changed; by default after every
    token); beam search yields only the finished reply. The last item has `done=True` and carries
    the attention map. With a `scheduler` the reply is decoded in its batch (and given up when the
    caller stops reading); without one, `generate_texts` runs in a worker thread of its own and hands
    its tokens to a `TextIteratorStreamer`.
    """
    settings = settings or loaded.defaults
    inputs, notice = encode(loaded, text)  # tokenized once; an empty message fails here, before decoding
    if scheduler is not None:
        pending = submit_reply(loaded, scheduler, inputs, notice, settings)
        try:
            for text_so_far in pending.texts(first_after, every):
                yield Reply(text=text_so_far, done=False, notice=notice)
            yield pending.reply()
        finally:
            pending.cancel()  # nothing once the reply is done
        return
    if not settings.streams:
        yield _decode_reply(loaded, inputs, notice, settings)
        return
    yield from _stream_alone(loaded, inputs, notice, settings, first_after, every)


def _stream_alone(
    loaded: LoadedModel,
    inputs: dict[str, torch.Tensor],
    notice: str | None,
    settings: DecodingSettings,
    first_after: float = 0.0,
    every: float = 0.0,
) -> Iterator[Reply]:
    """`stream_reply` without a scheduler: one generate() call in a thread of its own."""
    streamer = TextIteratorStreamer(
        loaded.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=REPLY_TIMEOUT_S
    )
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["reply"] = _decode_reply(loaded, inputs, notice, settings, streamer=streamer)
        except BaseException as error:  # handed to the caller below
            result["error"] = error
            streamer.end()

    worker = threading.Thread(target=run, name="chatbot-generate", daemon=True)
    worker.start()
    text_so_far, next_yield = "", time.monotonic() + first_after
    for piece in streamer:
        if piece:
            text_so_far += piece
            if time.monotonic() >= next_yield:
                next_yield = time.monotonic() + every
                yield Reply(text=text_so_far.strip(), done=False, notice=notice)
    worker.join()
    if "error" in result:
        raise result["error"]
    yield result["reply"]
