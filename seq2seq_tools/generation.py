"""Texts in, generated texts out: the one generation path of training, the chatbot and the benchmarks.

    from seq2seq_tools.generation import generate_texts
    results = generate_texts(model, tokenizer, ["Guten Morgen.", "Danke."], num_beams=5, max_new_tokens=60)
    [result.text for result in results]

Sources are tokenized once, batched in order of length (so that a batch pads little) and the
results returned in the caller's order. Any `generate()` setting passes through (`num_beams`,
`do_sample`, `top_p`, `temperature`, `max_new_tokens`, ...); `with_attention=True` adds each
result's cross-attention map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .attention import AttentionMap, attention_map


@dataclass
class Generated:
    """One generated text.

    Args:
        text: the decoded output, special tokens removed, stripped.
        token_ids: the generated token ids, without the decoder start token and trailing padding.
        attention: the cross-attention map with `with_attention=True` and an attention model, else None.
        source_tokens: the source's length in tokens before truncation to `max_input_tokens`.
    """

    text: str
    token_ids: list[int]
    attention: AttentionMap | None = None
    source_tokens: int = 0  # the source's length in tokens before truncation


def generate_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_input_tokens: int | None = None,
    with_attention: bool = False,
    **generate_kwargs: Any,
) -> list[Generated]:
    """Generate one output per text with `model.generate()`, in the order of `texts`.

    Args:
        model: a `Seq2SeqRNNForConditionalGeneration` (or any encoder-decoder with `generate`),
            in the mode the caller wants (call `.eval()` first for inference).
        tokenizer: its tokenizer; sources longer than `max_input_tokens` (default: the tokenizer's
            `model_max_length`) are truncated.
        texts: the sources.
        batch_size: sources per `generate()` call; batches hold sources of similar length.
        with_attention: also return each output's cross-attention map.
        generate_kwargs: passed to `generate()`; `num_return_sequences` other than 1 is refused.

    Raises:
        ValueError: for a `batch_size` below 1, a non-string text, or `num_return_sequences` > 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
    if generate_kwargs.get("num_return_sequences", 1) != 1:
        raise ValueError("generate_texts returns one output per text: num_return_sequences must be 1")
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"texts must be strings, got {type(text).__name__}: {text!r}")
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))  # similar lengths batch together
    results: list[Generated | None] = [None] * len(texts)
    pad = tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        encoded, full_lengths = encode_texts(tokenizer, [texts[index] for index in indices], max_input_tokens)
        encoded = {name: tensor.to(model.device) for name, tensor in encoded.items()}
        with torch.inference_mode():
            outputs = model.generate(
                **encoded, **generate_kwargs, output_attentions=with_attention, return_dict_in_generate=True
            )
        lengths = encoded["attention_mask"].sum(dim=1).tolist()  # (B,)
        for row, index in enumerate(indices):
            token_ids = outputs.sequences[row, 1:].tolist()  # without the decoder start token
            while token_ids and token_ids[-1] == pad:  # a batch pads its shorter outputs
                token_ids.pop()
            attention = None
            if with_attention:
                attention = attention_map(tokenizer, encoded["input_ids"][row, : lengths[row]], outputs, row=row)
            text = tokenizer.decode(token_ids, skip_special_tokens=True).strip()
            results[index] = Generated(
                text=text, token_ids=token_ids, attention=attention, source_tokens=full_lengths[row]
            )
    return results  # type: ignore[return-value]  (every index was filled)


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


__all__ = ["Generated", "encode_texts", "generate_texts"]
