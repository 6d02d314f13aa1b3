"""A lexical shortlist: the output layer computed for a batch's likely target tokens only.

Per decoder row the output layer is the largest product of a step (hidden size x vocabulary), and the
normalization and top-k after it scale with the vocabulary as well. A shortlist restricts all three to
the target tokens a batch can plausibly produce, as Marian's `--shortlist lex.s2t FIRST BEST` does
(Junczys-Dowmunt et al., 2018; L'Hostis et al., 2016):

    the FIRST most frequent target tokens of the training data
    + for each source token of the batch, its BEST most likely translations p(t | s)
    + the special tokens (`</s>` above all)

p(t | s) is the lexical translation table of IBM Model 1 (Brown et al., 1993, section 4), trained by
EM on the training pairs with a NULL source word: what Marian's `lex.s2t` holds, from an aligner,
learned here from the subword ids themselves.

`generate(shortlist=(first, best))` uses it (`search_seq2seq_rnn`): this module's
`ShortlistLogitsProcessor` carries the batch's rows; transformers' own loop applies it as a mask (every
other token's score is -inf), and this package's search computes the output layer for those rows only
and maps its choices back to token ids. Both choose among the same tokens.

The file, `shortlist.safetensors` beside `model.safetensors` (so `save_pretrained`, `push_to_hub` and
`from_pretrained` carry it), holds:

    frequent    int32 (F,)                   target ids, most frequent first
    candidates  int32 (vocab_size, C)        row s: target ids by p(t | s), best first; -1 pads
    always      int32 (A,)                   special token ids, always in the list
    metadata    format ("hf-seq2seq-rnn shortlist 1"), vocab_size, vocabulary (a fingerprint of the
                tokenizer's vocabulary: `vocabulary_fingerprint`), pairs (how many it was learned from),
                iterations (of EM)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SHORTLIST_FILE = "shortlist.safetensors"
SHORTLIST_FORMAT = "hf-seq2seq-rnn shortlist 1"
# What `build_shortlist` keeps by default: more than any setting is expected to read (Marian's 100 100).
FREQUENT_KEPT = 2000
CANDIDATES_KEPT = 100
EM_ITERATIONS = 5
# Source-target occurrences per EM chunk: bounds the temporary tensors (about 40 bytes each).
OCCURRENCES_PER_CHUNK = 4_000_000
_TENSORS = ("frequent", "candidates", "always")


def vocabulary_fingerprint(tokenizer: Any) -> str:
    """A short hash of the tokenizer's vocabulary (token -> id), to tell a shortlist made for another."""
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocabulary, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Shortlist:
    """A lexical shortlist (see the module docstring for the fields)."""

    frequent: torch.Tensor
    candidates: torch.Tensor
    always: torch.Tensor
    vocab_size: int
    vocabulary: str
    pairs: int
    iterations: int

    def rows(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None, first: int, best: int, least: int = 0
    ) -> torch.LongTensor:
        """The target ids a batch may produce, sorted: the `first` most frequent, the `best` candidates of
        each real source token, and the special tokens; at least `least` of them (more frequent ones
        fill up a list shorter than a beam search's candidates per step).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, src_len)`): the source ids.
            attention_mask (`torch.Tensor` of shape `(batch, src_len)`, *optional*): 1 on real tokens.
        """
        check_setting((first, best), self)
        source = input_ids if attention_mask is None else input_ids[attention_mask.bool()]
        source = source.reshape(-1).cpu().clamp(0, self.vocab_size - 1)
        chosen = torch.cat([self.frequent[:first], self.candidates[source, :best].reshape(-1), self.always])
        # A mark per vocabulary entry rather than torch.unique: no sort of (sources x best) ids.
        marked = torch.zeros(self.vocab_size, dtype=torch.bool)
        marked[chosen[chosen >= 0].long()] = True
        rows = marked.nonzero().squeeze(1)
        if rows.numel() < least:
            extra = self.frequent[~torch.isin(self.frequent, rows.int())][: least - rows.numel()]
            rows = torch.unique(torch.cat([rows, extra.long()]))
        return rows.to(input_ids.device)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write `shortlist.safetensors` into `folder`; returns its path."""
        from safetensors.torch import save_file

        path = Path(folder) / SHORTLIST_FILE
        metadata = {
            "format": SHORTLIST_FORMAT,
            "vocab_size": str(self.vocab_size),
            "vocabulary": self.vocabulary,
            "pairs": str(self.pairs),
            "iterations": str(self.iterations),
        }
        tensors = {name: getattr(self, name).to(torch.int32).contiguous() for name in _TENSORS}
        temporary = path.with_name(path.name + ".tmp")
        save_file(tensors, str(temporary), metadata=metadata)
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, vocab_size: int | None = None, vocabulary: str | None = None) -> Shortlist:
        """Read a shortlist file and check it against the model's `vocab_size` and, when given, the
        tokenizer's `vocabulary` fingerprint.

        Raises:
            ValueError: the file is missing, not a whole shortlist file, or made for another vocabulary.
        """
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no shortlist file at {path}; {BUILD_HINT}")
        try:
            with safe_open(str(path), framework="pt") as opened:
                metadata = opened.metadata() or {}
                tensors = {name: opened.get_tensor(name) for name in _TENSORS}
        except Exception as error:  # safetensors raises its own error types (and OSError) for a cut file
            raise ValueError(f"{path} is not a complete shortlist file ({error}); {BUILD_HINT}") from error
        if metadata.get("format") != SHORTLIST_FORMAT:
            raise ValueError(f"{path} is not a shortlist file (format {metadata.get('format')!r}); {BUILD_HINT}")
        stored = int(metadata["vocab_size"])
        shortlist = cls(
            **tensors,
            vocab_size=stored,
            vocabulary=metadata.get("vocabulary", ""),
            pairs=int(metadata.get("pairs", 0)),
            iterations=int(metadata.get("iterations", 0)),
        )
        shortlist._check(path, vocab_size, vocabulary)
        return shortlist

    def _check(self, path: Path, vocab_size: int | None, vocabulary: str | None) -> None:
        if vocab_size is not None and self.vocab_size != vocab_size:
            raise ValueError(
                f"{path} was made for a vocabulary of {self.vocab_size} tokens; this model has {vocab_size}. "
                f"{BUILD_HINT[0].upper()}{BUILD_HINT[1:]}"
            )
        if vocabulary and self.vocabulary and vocabulary != self.vocabulary:
            raise ValueError(
                f"{path} was made for another vocabulary (fingerprint {self.vocabulary}) than this tokenizer's "
                f"({vocabulary}). {BUILD_HINT[0].upper()}{BUILD_HINT[1:]}"
            )
        ids = torch.cat([tensor.reshape(-1) for tensor in (self.frequent, self.candidates, self.always)])
        if (
            self.candidates.dim() != 2
            or self.candidates.shape[0] != self.vocab_size
            or bool((ids >= self.vocab_size).any())
            or bool((ids < -1).any())
        ):
            raise ValueError(f"{path} holds token ids outside its vocabulary of {self.vocab_size}; {BUILD_HINT}")


BUILD_HINT = "build it with: python -m training.shortlist --model MODEL --dataset TRAINING_DATA"


def check_setting(setting: Any, shortlist: Shortlist | None = None) -> tuple[int, int]:
    """`shortlist=(first, best)` as two whole numbers, within what `shortlist` stores when given.

    Raises:
        ValueError: naming the value and what is accepted.
    """
    if isinstance(setting, str):
        setting = [part for part in setting.replace(",", " ").split() if part]
    try:
        first, best = (int(value) for value in setting)
        whole = all(float(value) == int(value) and not isinstance(value, bool) for value in setting)
    except (TypeError, ValueError):
        whole = False
    if not whole or first < 0 or best < 0 or first + best == 0:
        raise ValueError(
            f"shortlist={setting!r}: expected two whole numbers FIRST,BEST (the most frequent target tokens, and "
            "the best candidates of each source token), at least 0 and not both 0, e.g. 100,100; or none to leave it off"
        )
    if shortlist is not None and (first > shortlist.frequent.numel() or best > shortlist.candidates.shape[1]):
        raise ValueError(
            f"shortlist=({first}, {best}): this model's shortlist holds at most {shortlist.frequent.numel()} frequent "
            f"tokens and {shortlist.candidates.shape[1]} candidates per source token"
        )
    return first, best


class ShortlistLogitsProcessor:
    """The rows of a batch's shortlist, as a logits processor: every other token's score is -inf, and the
    scores are log-probabilities over the shortlist's tokens (a softmax over them only, as Marian's).

    transformers' own loop applies it so; this package's search reads `rows` instead and computes the
    output layer for those rows only (the same choices, a fraction of the products).

    Args:
        rows (`torch.LongTensor` of shape `(rows,)`): the target ids allowed, sorted (`Shortlist.rows`).
    """

    def __init__(self, rows: torch.LongTensor):
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        allowed[self.rows.to(scores.device)] = True
        return scores.masked_fill(~allowed, float("-inf")).log_softmax(dim=-1)


def build_shortlist(
    pairs: Iterable[tuple[Sequence[int], Sequence[int]]],
    vocab_size: int,
    always: Iterable[int],
    vocabulary: str = "",
    frequent: int = FREQUENT_KEPT,
    candidates: int = CANDIDATES_KEPT,
    iterations: int = EM_ITERATIONS,
) -> Shortlist:
    """Learn a shortlist from `(source_ids, target_ids)` pairs: target frequencies, and the lexical table
    p(t | s) of IBM Model 1 by `iterations` rounds of EM (each target token's alignment posterior over
    the pair's source tokens and NULL, counts normalized per source token).

    Args:
        pairs: token ids of each training pair, special tokens left out.
        vocab_size: the size of the (shared) vocabulary.
        always: the special token ids.
        vocabulary: `vocabulary_fingerprint` of the tokenizer.
        frequent, candidates: how many frequent tokens and candidates per source token to keep.
    """
    sources, targets = [], []
    for source, target in pairs:
        if len(source) and len(target):
            sources.append(torch.as_tensor(source, dtype=torch.long))
            targets.append(torch.as_tensor(target, dtype=torch.long))
    if not sources:
        raise ValueError("no training pair with both a source and a target to learn a shortlist from")
    counts = torch.bincount(torch.cat(targets), minlength=vocab_size)  # (V,)
    order = torch.argsort(counts, descending=True, stable=True)
    kept_frequent = order[: min(frequent, int((counts > 0).sum()))]
    keys, source_of, target_of, groups = _cooccurrences(sources, targets, vocab_size)
    table = torch.ones(keys.shape[0], dtype=torch.float64)  # p(t | s), uniform at first
    for _ in range(iterations):
        expected = torch.zeros_like(table)
        for key_index, group, group_count in groups:
            probability = table[key_index]  # (N,)
            total = torch.zeros(group_count, dtype=torch.float64).index_add_(0, group, probability)
            expected.index_add_(0, key_index, probability / total[group])
        per_source = torch.zeros(vocab_size + 1, dtype=torch.float64).index_add_(0, source_of, expected)
        table = expected / per_source[source_of]
    return Shortlist(
        frequent=kept_frequent.to(torch.int32),
        candidates=_best_candidates(table, source_of, target_of, vocab_size, candidates),
        always=torch.unique(torch.as_tensor(sorted(set(always)), dtype=torch.long)).to(torch.int32),
        vocab_size=vocab_size,
        vocabulary=vocabulary,
        pairs=len(sources),
        iterations=iterations,
    )


def _cooccurrences(
    sources: list[torch.Tensor], targets: list[torch.Tensor], vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, int]]]:
    """Every (source token or NULL, target token) pair that meets in a training pair, as keys
    `s * (V + 1) + t`, with each one's source and target, and the occurrences in chunks: for each, the
    key of every occurrence and its group (one target position of one pair, whose posterior sums to 1)."""
    null = vocab_size  # the NULL source word of IBM Model 1
    width = vocab_size + 1
    chunks, chunk, size = [], [], 0
    for source, target in zip(sources, targets, strict=True):
        chunk.append((source, target))
        size += (source.numel() + 1) * target.numel()
        if size >= OCCURRENCES_PER_CHUNK:
            chunks.append(chunk)
            chunk, size = [], 0
    if chunk:
        chunks.append(chunk)
    raw = []
    for chunk in chunks:
        keys, group, group_count = [], [], 0
        for source, target in chunk:
            with_null = torch.cat([torch.tensor([null]), source])  # (S + 1,)
            keys.append((with_null[:, None] * width + target[None, :]).reshape(-1))  # (S + 1) x T
            group.append((torch.arange(target.numel()) + group_count).repeat(with_null.numel()))
            group_count += target.numel()
        raw.append((torch.cat(keys), torch.cat(group), group_count))
    unique = torch.unique(torch.cat([keys for keys, _, _ in raw]))  # sorted
    groups = [(torch.searchsorted(unique, keys), group, count) for keys, group, count in raw]
    return unique, unique // width, unique % width, groups


def _best_candidates(
    table: torch.Tensor, source_of: torch.Tensor, target_of: torch.Tensor, vocab_size: int, kept: int
) -> torch.Tensor:
    """For each source token, its `kept` most likely targets by p(t | s), best first; -1 pads. `(V, kept)`"""
    real = source_of < vocab_size  # NULL's translations are not a source token's
    table, source_of, target_of = table[real], source_of[real], target_of[real]
    order = torch.argsort(table, descending=True, stable=True)
    order = order[torch.argsort(source_of[order], stable=True)]  # by source, best first within each
    sources = source_of[order]
    starts = torch.searchsorted(sources, sources)  # the first position of each one's source
    rank = torch.arange(sources.numel()) - starts
    keep = rank < kept
    result = torch.full((vocab_size, kept), -1, dtype=torch.int32)
    result[sources[keep], rank[keep]] = target_of[order][keep].to(torch.int32)
    return result


def find_shortlist(name_or_path: str | os.PathLike, **hub_options: Any) -> str | None:
    """The path of the shortlist file of a model folder or Hub repository, or None when it has none.

    `hub_options` are `from_pretrained`'s (`cache_dir`, `revision`, `token`, `local_files_only`, ...)."""
    folder = Path(name_or_path)
    if folder.is_dir():
        path = folder / hub_options.get("subfolder", "") / SHORTLIST_FILE
        return str(path) if path.is_file() else None
    from transformers.utils import cached_file

    known = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
    options = {key: value for key, value in hub_options.items() if key in known}
    try:
        return cached_file(
            str(name_or_path),
            SHORTLIST_FILE,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **options,
        )
    except OSError:  # no such repository, or no access: the model itself loaded, so it has no shortlist there
        return None


def output_rows(layer: torch.nn.Module, rows: torch.LongTensor) -> torch.nn.Module:
    """The output layer `layer` (`nn.Linear`, or its int8 dynamic quantization) for `rows` of the vocabulary
    only: the same weights, those rows, so each row's logit is computed as the whole layer computes it.

    Args:
        rows (`torch.LongTensor` of shape `(rows,)`): the vocabulary ids, in the order of the new outputs.
    """
    if isinstance(layer, torch.nn.Linear):
        # Made on the meta device and given its rows: a layer made as usual draws random weights first
        # (as long as a few decoding steps of a greedy batch).
        selected = torch.nn.Linear(layer.in_features, rows.numel(), bias=layer.bias is not None, device="meta")
        with torch.no_grad():
            selected.weight = torch.nn.Parameter(layer.weight.index_select(0, rows), requires_grad=False)
            if layer.bias is not None:
                selected.bias = torch.nn.Parameter(layer.bias.index_select(0, rows), requires_grad=False)
        return selected.eval()
    quantized = torch.ao.nn.quantized.dynamic.Linear
    if isinstance(layer, quantized):
        # Unpacking the int8 weights costs as much as a few decoding steps: once per layer (int8 layers
        # are not trained, so they do not change).
        if getattr(layer, "_unpacked", None) is None:
            layer._unpacked = layer._weight_bias()
        weight, bias = layer._unpacked
        selected = quantized(layer.in_features, rows.numel(), bias_=bias is not None, dtype=weight.dtype)
        rows = rows.to(weight.device)
        selected.set_weight_bias(weight.index_select(0, rows), None if bias is None else bias.index_select(0, rows))
        return selected
    raise ValueError(
        f"a shortlist needs the output layer to be an nn.Linear or its int8 quantization, not {type(layer).__name__}"
    )


__all__ = [
    "BUILD_HINT",
    "SHORTLIST_FILE",
    "SHORTLIST_FORMAT",
    "Shortlist",
    "ShortlistLogitsProcessor",
    "build_shortlist",
    "check_setting",
    "find_shortlist",
    "output_rows",
    "vocabulary_fingerprint",
]
