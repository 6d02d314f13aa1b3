"""Texts in, generated texts out: the one generation path of training, the chatbot and the benchmarks.

    from seq2seq_tools.generation import generate_texts
    results = generate_texts(model, tokenizer, ["Guten Morgen.", "Danke."], num_beams=5, max_new_tokens=60)
    [result.text for result in results]

Sources are tokenized once, batched in order of length (so that a batch pads little) and the
results returned in the caller's order. Any `generate()` setting passes through (`num_beams`,
`do_sample`, `top_p`, `temperature`, `max_new_tokens`, ...); `with_attention=True` adds each
result's cross-attention map, `with_scores=True` its score, `num_return_sequences=K` an n-best
list (`[result, *result.alternatives]`, best first), and `streamer=` (one text) its tokens as they
come, for a reply that is shown while it grows.

Greedy and beam search decode the batches one after another in one running batch: when at most an
eighth of a batch's sentences is still open (the few long outputs), the next sources join it, up to
`batch_size` open sentences, so those few rows no longer take steps of their own
(`hf_seq2seq_rnn.search_seq2seq_rnn.DecodingLoop`, the chatbot's continuous batching). A sentence's
output is the one its own batch gives alone: the decoder computes each row on its own, and each batch
keeps its own shortlist.

`generate_encoded` is one of its batches, for a caller that has tokenized its sources already (the
chatbot, which reads a message's length before decoding it), and `generate_ids` the one `generate()`
call under it, for callers that want the raw output (training's evaluation over a tokenized
validation set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from hf_seq2seq_rnn.protocol_seq2seq_rnn import DecodingModel
from hf_seq2seq_rnn.search_seq2seq_rnn import DecodeStrategy, DecodingLoop, SharedBatchUnsupported, prepared_search

from .attention import AttentionMap, attention_map

# The next sources join a running batch once at most 1/JOIN_SHARE of its sentences are still open.
JOIN_SHARE = 8


def has_attention(model: Any) -> bool:
    """Whether `model` returns alignments: its own answer (`has_attention`, the generation protocol of
    our models and ensembles); False for a model of another type, whose attention we do not read."""
    return bool(getattr(model, "has_attention", False))


@dataclass
class Generated:
    """One generated text.

    Args:
        text: the decoded output, special tokens removed, stripped.
        token_ids: the generated token ids, without the decoder start token and trailing padding.
        attention: the cross-attention map with `with_attention=True` and an attention model, else None.
        source_tokens: the source's length in tokens before truncation to `max_input_tokens`.
        score: with `with_scores=True`, the output's log-probability divided by its length (in
            tokens, `</s>` included) to the power `length_penalty`: beam search's own
            `sequences_scores` under beam search, the same quantity from the logits otherwise.
        alternatives: with `num_return_sequences=K`, the K - 1 next hypotheses of an n-best list,
            in rank order (each with its own text, ids, score and attention).
    """

    text: str
    token_ids: list[int]
    attention: AttentionMap | None = None
    source_tokens: int = 0  # the source's length in tokens before truncation
    score: float | None = None
    alternatives: list[Generated] = field(default_factory=list)


def generate_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_input_tokens: int | None = None,
    with_attention: bool = False,
    with_scores: bool = False,
    progress: Callable[[int], None] | None = None,
    streamer: BaseStreamer | None = None,
    **generate_kwargs: Any,
) -> list[Generated]:
    """Generate one output (or an n-best list) per text with `model.generate()`, in the order of `texts`.

    Args:
        model: a `Seq2SeqRNNForConditionalGeneration` (or any encoder-decoder with `generate`),
            in the mode the caller wants (call `.eval()` first for inference).
        tokenizer: its tokenizer; sources longer than `max_input_tokens` (default: the tokenizer's
            `model_max_length`) are truncated.
        texts: the sources.
        batch_size: sources per `generate()` call; batches hold sources of similar length.
        with_attention: also return each output's cross-attention map (under beam search, the
            map of the returned hypothesis, read through `beam_indices`).
        with_scores: also return each output's score (see `Generated.score`).
        progress: called after each batch with the number of texts it held (a progress bar's `update`).
        streamer: receives the tokens as `generate()` makes them (a `TextIteratorStreamer` read by
            another thread); it follows one sequence, so `texts` must then hold exactly one text.
        generate_kwargs: passed to `generate()`; `num_return_sequences=K` returns K hypotheses
            per text, the best as the result and the others as its `alternatives`.

    Raises:
        ValueError: for a `batch_size` below 1, a non-string text, `num_return_sequences` below 1,
            or a `streamer` with other than one text.
    """
    _check_arguments(texts, batch_size, streamer, generate_kwargs)
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))  # similar lengths batch together
    results: list[Generated | None] = [None] * len(texts)
    shares = streamer is None and _shares_batches(model, generate_kwargs)
    if shares and _generate_joined(
        model, tokenizer, texts, order, results, batch_size, max_input_tokens, with_attention, with_scores, progress,
        generate_kwargs,
    ):  # fmt: skip
        return results  # type: ignore[return-value]  (every index was filled)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        encoded, full_lengths = encode_texts(tokenizer, [texts[index] for index in indices], max_input_tokens)
        batch = generate_encoded(
            model,
            tokenizer,
            encoded,
            full_lengths,
            with_attention=with_attention,
            with_scores=with_scores,
            streamer=streamer,
            **generate_kwargs,
        )
        for index, result in zip(indices, batch, strict=True):
            results[index] = result
        if progress is not None:
            progress(len(indices))
    return results  # type: ignore[return-value]  (every index was filled)


def _shares_batches(model: Any, generate_kwargs: dict[str, Any]) -> bool:
    """Whether `generate_texts` decodes its batches in one running batch (`_generate_joined`): for this
    package's models and decoding loop, greedy or beam search. Sampling keeps one generate() call per
    batch, so that a seed draws what generate() on that batch draws."""
    if "custom_generate" in generate_kwargs or not isinstance(model, DecodingModel):
        return False
    sampling = generate_kwargs.get("do_sample")
    return not (sampling if sampling is not None else getattr(model.generation_config, "do_sample", False))


@dataclass
class _Joined:
    """Sources that joined `_generate_joined`'s running batch together (one generate() call)."""

    strategy: DecodeStrategy
    indices: list[int]  # their positions in `texts`
    encoded: dict[str, torch.Tensor]
    full_lengths: list[int]
    open: int  # those not done yet


def _generate_joined(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    order: list[int],
    results: list[Generated | None],
    batch_size: int,
    max_input_tokens: int | None,
    with_attention: bool,
    with_scores: bool,
    progress: Callable[[int], None] | None,
    generate_kwargs: dict[str, Any],
) -> bool:
    """`generate_texts`' batches in one running batch (see the module docstring): fills `results`.
    Returns False, having decoded nothing, for settings that only transformers' own loop decodes."""
    loop = DecodingLoop(model)
    joined: list[_Joined] = []
    started = 0  # sources of `order` handed to generate()
    settings = output_settings(model, generate_kwargs, with_attention, with_scores)
    with torch.inference_mode():
        while started < len(order) or joined:
            still_open = sum(each.open for each in joined)
            if started < len(order) and still_open <= batch_size // JOIN_SHARE:
                indices = order[started : started + batch_size - still_open]
                encoded, full_lengths = encode_texts(tokenizer, [texts[index] for index in indices], max_input_tokens)
                encoded = {name: tensor.to(model.device) for name, tensor in encoded.items()}
                try:
                    search = generate_ids(
                        model, encoded, **generate_kwargs, **settings, custom_generate=prepared_search
                    )
                except SharedBatchUnsupported:
                    if started == 0:
                        return False
                    raise
                started += len(indices)
                loop.add(search)
                joined.append(_Joined(search.strategy, indices, encoded, full_lengths, len(indices)))
            loop.step()
            for each in joined:
                each.open -= len(each.strategy.newly_done)
            for each in (each for each in joined if each.strategy.done):
                batch = results_of(
                    model,
                    tokenizer,
                    each.encoded,
                    each.strategy.output(),
                    each.full_lengths,
                    with_attention=with_attention,
                    with_scores=with_scores,
                    generate_kwargs=generate_kwargs,
                )
                for index, result in zip(each.indices, batch, strict=True):
                    results[index] = result
                if progress is not None:
                    progress(len(each.indices))
            joined = [each for each in joined if not each.strategy.done]
    return True


def generate_encoded(
    model: Any,
    tokenizer: Any,
    encoded: dict[str, torch.Tensor],
    full_lengths: Sequence[int] | None = None,
    *,
    with_attention: bool = False,
    with_scores: bool = False,
    streamer: BaseStreamer | None = None,
    **generate_kwargs: Any,
) -> list[Generated]:
    """One batch of `generate_texts`, from sources tokenized already (by `encode_texts`).

    Args:
        encoded: `input_ids` and `attention_mask`, each `(batch, src_len)`, right-padded.
        full_lengths: each source's length in tokens before truncation (`encode_texts`' second
            result), for `Generated.source_tokens`; default: the lengths in `encoded`.
        with_attention, with_scores, streamer, generate_kwargs: as in `generate_texts`.

    Returns:
        One `Generated` per row of `encoded`, in its order.

    Raises:
        ValueError: `num_return_sequences` below 1, or a `streamer` with other than one source.
    """
    _outputs_per_text(generate_kwargs)
    _check_streamer(streamer, len(encoded["input_ids"]))
    encoded = {name: tensor.to(model.device) for name, tensor in encoded.items()}
    outputs = generate_ids(
        model,
        encoded,
        **generate_kwargs,
        **output_settings(model, generate_kwargs, with_attention, with_scores),
        streamer=streamer,
    )
    return results_of(
        model,
        tokenizer,
        encoded,
        outputs,
        full_lengths,
        with_attention=with_attention,
        with_scores=with_scores,
        generate_kwargs=generate_kwargs,
    )


def output_settings(
    model: Any, generate_kwargs: dict[str, Any], with_attention: bool, with_scores: bool
) -> dict[str, bool]:
    """The `generate()` output settings that `results_of` reads, for these decoding settings."""
    # Beam search returns each hypothesis's score (`sequences_scores`, with `output_scores`); other
    # searches return the logits to compute it from. Asking for only the one needed keeps the other
    # (a vocabulary-wide tensor per step and beam) out of memory.
    beams = generate_kwargs.get("num_beams") or getattr(model.generation_config, "num_beams", None) or 1
    return {
        "output_attentions": with_attention,
        "output_scores": with_scores and beams > 1,
        "output_logits": with_scores and beams == 1,
        "return_dict_in_generate": True,
    }


def results_of(
    model: Any,
    tokenizer: Any,
    encoded: dict[str, torch.Tensor],
    outputs: Any,
    full_lengths: Sequence[int] | None = None,
    *,
    with_attention: bool = False,
    with_scores: bool = False,
    generate_kwargs: dict[str, Any] | None = None,
    sources: Sequence[int] | None = None,
) -> list[Generated]:
    """The `Generated` of each source of `encoded` from `generate()`'s `outputs` (asked for with
    `output_settings`): of every source, or of those numbered in `sources` (the ones a search has
    finished while others still decode).

    Args:
        encoded, full_lengths, with_attention, with_scores: as in `generate_encoded`.
        generate_kwargs: the settings `outputs` was generated with.
    """
    generate_kwargs = generate_kwargs or {}
    per_text = _outputs_per_text(generate_kwargs)
    scores = _sequence_scores(model, outputs, tokenizer, generate_kwargs) if with_scores else None
    lengths = encoded["attention_mask"].sum(dim=1).tolist()  # (B,)
    full_lengths = lengths if full_lengths is None else full_lengths
    results = []
    for position in range(len(lengths)) if sources is None else sources:
        source_ids = encoded["input_ids"][position, : lengths[position]]
        hypotheses = [
            _hypothesis(tokenizer, outputs, row, source_ids, with_attention, scores, full_lengths[position])
            for row in range(position * per_text, (position + 1) * per_text)  # rows of (B * K, ...)
        ]
        hypotheses[0].alternatives = hypotheses[1:]
        results.append(hypotheses[0])
    return results


def _check_arguments(
    texts: Sequence[str], batch_size: int, streamer: BaseStreamer | None, generate_kwargs: dict[str, Any]
) -> None:
    """The arguments of `generate_texts`, checked before anything is tokenized (see its Raises)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
    _outputs_per_text(generate_kwargs)
    _check_streamer(streamer, len(texts))
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"texts must be strings, got {type(text).__name__}: {text!r}")


def _outputs_per_text(generate_kwargs: dict[str, Any]) -> int:
    """`num_return_sequences` (1 when not given); below 1 is a `ValueError`."""
    per_text = generate_kwargs.get("num_return_sequences", 1)
    per_text = 1 if per_text is None else per_text
    if isinstance(per_text, bool) or not isinstance(per_text, int) or per_text < 1:
        raise ValueError(f"num_return_sequences={per_text!r} must be an integer >= 1")
    return per_text


def _check_streamer(streamer: BaseStreamer | None, count: int) -> None:
    if streamer is not None and count != 1:
        raise ValueError(f"a streamer follows one text; got {count} texts")


def generate_ids(model: Any, inputs: dict[str, torch.Tensor], **generate_kwargs: Any) -> Any:
    """`model.generate(**inputs, **generate_kwargs)` without autograd: the project's one `generate()` call.

    Args:
        inputs: `input_ids` and `attention_mask`, each `(batch, src_len)`, on the model's device.
        generate_kwargs: any `generate()` setting.

    Returns:
        what `generate()` returns: the ids `(batch * num_return_sequences, length)`, or its output
        object with `return_dict_in_generate=True`.
    """
    with torch.inference_mode():
        return model.generate(**inputs, **generate_kwargs)


def _hypothesis(
    tokenizer: Any,
    outputs: Any,
    row: int,
    source_ids: torch.Tensor,
    with_attention: bool,
    scores: list[float] | None,
    source_tokens: int,
) -> Generated:
    """Returned sequence `row` of a `generate()` output as a `Generated`."""
    token_ids = outputs.sequences[row, 1:].tolist()  # without the decoder start token
    beam_indices = getattr(outputs, "beam_indices", None)
    if beam_indices is not None:  # the hypothesis's own steps: one stopped by a length cap has no </s>
        token_ids = token_ids[: int((beam_indices[row] >= 0).sum())]
    if tokenizer.eos_token_id in token_ids:  # beam search fills a batch's shorter outputs with </s> when pad is 0
        token_ids = token_ids[: token_ids.index(tokenizer.eos_token_id) + 1]
    while token_ids and token_ids[-1] == tokenizer.pad_token_id:  # a batch pads its shorter outputs
        token_ids.pop()
    return Generated(
        text=tokenizer.decode(token_ids, skip_special_tokens=True).strip(),
        token_ids=token_ids,
        attention=attention_map(tokenizer, source_ids, outputs, row=row) if with_attention else None,
        source_tokens=source_tokens,
        score=None if scores is None else scores[row],
    )


def _sequence_scores(model: Any, outputs: Any, tokenizer: Any, generate_kwargs: dict[str, Any]) -> list[float]:
    """Each returned sequence's log-probability over its length ** length_penalty, `(B * K,)`.

    Beam search ranks by exactly this and returns it as `sequences_scores`. Greedy search and
    sampling return per-step logits instead: the log-softmax of the raw logits (before any
    temperature or top-k warping) at the chosen tokens, summed up to and with the first `</s>`.
    """
    if getattr(outputs, "sequences_scores", None) is not None:
        return outputs.sequences_scores.float().tolist()
    config = generate_kwargs.get("generation_config") or model.generation_config
    penalty = generate_kwargs.get("length_penalty", config.length_penalty)
    penalty = 1.0 if penalty is None else penalty  # transformers' default
    generated = outputs.sequences[:, -len(outputs.logits) :]  # (B * K, new)
    logits = torch.stack(outputs.logits, dim=1).float()  # (B * K, new, vocab)
    chosen = torch.log_softmax(logits, dim=-1).gather(2, generated.unsqueeze(2)).squeeze(2)  # (B * K, new)
    eos = tokenizer.eos_token_id
    ended = (generated == eos).int()  # (B * K, new)
    before_end = (ended.cumsum(dim=1) - ended) == 0  # up to and with the first </s>
    lengths = before_end.sum(dim=1).clamp(min=1)  # (B * K,)
    totals = (chosen * before_end).sum(dim=1)  # (B * K,)
    return (totals / lengths.float() ** penalty).tolist()


def encode_texts(
    tokenizer: Any, texts: Sequence[str], max_input_tokens: int | None = None
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Right-padded model inputs for `texts`, and each text's length in tokens before truncation.

    Sources longer than `max_input_tokens` (default: the tokenizer's `model_max_length`) keep their
    first tokens and the special tokens the tokenizer appends (`</s>`), as the tokenizer's own
    truncation does. Every call encodes the same way and truncates and pads the ids itself: a fast
    tokenizer whose truncation or padding settings change while another thread encodes fails with
    "Already borrowed", and the chatbot serves requests from several threads.

    Returns:
        `{"input_ids", "attention_mask"}`, each `(batch, longest kept length)`, and the full lengths.
    """
    limit = max_input_tokens if max_input_tokens is not None else tokenizer.model_max_length
    special = min(tokenizer.num_special_tokens_to_add(), limit)
    encoded = tokenizer(list(texts), truncation=False, padding=False, verbose=False)["input_ids"]
    full_lengths = [len(ids) for ids in encoded]
    kept = [ids if len(ids) <= limit else ids[: limit - special] + ids[len(ids) - special :] for ids in encoded]
    width = max(len(ids) for ids in kept)
    input_ids = torch.full((len(kept), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, S)
    attention_mask = torch.zeros((len(kept), width), dtype=torch.long)  # (B, S)
    for row, ids in enumerate(kept):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}, full_lengths


__all__ = [
    "Generated",
    "encode_texts",
    "generate_encoded",
    "generate_ids",
    "generate_texts",
    "output_settings",
    "results_of",
]
