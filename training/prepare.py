"""From source/target pairs to padded batches: tokenizer, tokenization, filtering, length grouping.

    pairs --(train_tokenizer or seq2seq_tools.loading.load_tokenizer)--> tokenizer
    pairs --tokenize; drop empty rows; drop or truncate over-long (one batched datasets.map)-->
          --LengthGroupedBatchSampler + DataCollatorForSeq2Seq--> batches

A map-style split of `PARALLEL_MIN_ROWS` pairs or more is filtered and tokenized by as many processes
as the CPUs this one may use (`preparation_workers`), and `datasets` caches each pass: a second run on
the same data and settings reads the tokenized split from its cache.

Counts of what was dropped or truncated are returned, so the training script can report them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute
import tokenizers
import torch
from datasets import Dataset, IterableDataset
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from hf_seq2seq_rnn import Seq2SeqRNNConfig, tokenization_seq2seq_rnn
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import Seq2SeqRNNMorphemeTokenizer, train_tokenizer
from seq2seq_tools.loading import load_tokenizer
from seq2seq_tools.machine import usable_cpus

from .errors import TrainingInputError
from .stream import one_row

logger = logging.getLogger(__name__)

OVERLONG_POLICIES = ("filter", "truncate")
# A map-style training split of at least this many rows is tokenized by several processes by default.
PARALLEL_MIN_ROWS = 50_000
# In a cached tokenizer's folder: how long its training took.
TOKENIZER_TIMING = "training_time.json"


@dataclass
class PreparationReport:
    """What preparation did to one split; counts are `None` for a streaming split (not known ahead)."""

    rows: int | None = None
    empty: int | None = None
    overlong: int | None = None
    policy: str = "filter"
    kept: int | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self, split: str) -> str:
        if self.rows is None:
            return f"{split}: streaming; empty rows dropped and over-long pairs {self.policy}ed on the fly"
        verb = "dropped" if self.policy == "filter" else "truncated"
        return (
            f"{split}: {self.rows} pairs, {self.empty} empty dropped, {self.overlong} over-long {verb}, "
            f"{self.kept} kept"
        )


def load_or_train_tokenizer(
    train_pairs: Dataset | IterableDataset,
    tokenizer_path: str | None,
    vocab_size: int,
    min_frequency: int,
    model_max_length: int,
    sample_pairs: int = 1_000_000,
    kind: str = "bpe",
    seed: int = 42,
) -> PreTrainedTokenizerBase:
    """The tokenizer at `tokenizer_path`, or a new one (`kind` "bpe", "char" or "morpheme") trained on
    both sides of the training pairs: of a split larger than `sample_pairs`, a random sample of that
    many (drawn with `seed`; a merge learned from two million sentences is learned from more too);
    of a stream, its first `sample_pairs`.

    A tokenizer trained on a split that `datasets` caches on disk is kept beside its cache files
    (`tokenizer_cache`), and a later run on the same pairs and settings loads it.
    A morpheme tokenizer without its analyzer (kiwipiepy) is a `TrainingInputError` here, before any
    data is tokenized.
    """
    tokenizer = _load_or_train(
        train_pairs, tokenizer_path, vocab_size, min_frequency, model_max_length, sample_pairs, kind, seed
    )
    try:
        tokenizer("가")  # a saved morpheme tokenizer loads without its analyzer but cannot encode
    except ImportError as error:
        raise TrainingInputError(str(error)) from error
    return tokenizer


def _load_or_train(
    train_pairs: Dataset | IterableDataset,
    tokenizer_path: str | None,
    vocab_size: int,
    min_frequency: int,
    model_max_length: int,
    sample_pairs: int,
    kind: str,
    seed: int,
) -> PreTrainedTokenizerBase:
    if tokenizer_path:
        try:
            # Without trust_remote_code: a tokenizer that needs code of its own is refused by transformers.
            return load_tokenizer(tokenizer_path)
        # A damaged tokenizer.json surfaces as KeyError, TypeError or the `tokenizers` parser's bare Exception.
        except Exception as error:
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            raise TrainingInputError(
                f"cannot load the tokenizer {tokenizer_path!r} ({reason}); pass a folder saved by "
                "tokenizer.save_pretrained, or leave --tokenizer out to train one"
            ) from error
    settings = {"vocab_size": vocab_size, "min_frequency": min_frequency, "model_max_length": model_max_length}
    cached = tokenizer_cache(train_pairs, kind=kind, sample_pairs=sample_pairs, seed=seed, **settings)
    if cached is not None and os.path.isfile(os.path.join(cached, TOKENIZER_TIMING)):
        with open(os.path.join(cached, TOKENIZER_TIMING), encoding="utf-8") as handle:
            seconds = json.load(handle)["seconds"]
        logger.info(
            "tokenizer: the one trained on the same pairs and settings by an earlier run (%.1f s then), from %s",
            seconds, cached,
        )  # fmt: skip
        return load_cached_tokenizer(cached, kind)
    if isinstance(train_pairs, IterableDataset):
        pairs = train_pairs.take(sample_pairs)
    elif len(train_pairs) > sample_pairs:  # in file order, so that reading the sample stays sequential
        pairs = train_pairs.select(sorted(random.Random(seed).sample(range(len(train_pairs)), sample_pairs)))
        logger.info(
            "tokenizer: trained on %d of the %d training pairs, drawn at random", sample_pairs, len(train_pairs)
        )
    else:
        pairs = train_pairs

    def texts() -> Iterator[str]:
        for batch in pairs.iter(batch_size=1000):
            yield from batch["source"]
            yield from batch["target"]

    started = time.perf_counter()
    try:
        tokenizer = train_tokenizer(texts(), kind=kind, **settings)
    except ValueError as error:
        raise TrainingInputError(f"--vocab-size: {error}") from error
    except ImportError as error:
        raise TrainingInputError(str(error)) from error
    if cached is None:
        return tokenizer
    save_cached_tokenizer(tokenizer, cached, time.perf_counter() - started)
    # Loaded back, so that this run's tokenizer is the object a later run loads: the same hash, and
    # so the same `datasets` cache files of the tokenized split.
    return load_cached_tokenizer(cached, kind)


def cache_folder(split: Dataset | IterableDataset) -> str | None:
    """The folder of a split's `datasets` cache files, where what this module keeps about it goes;
    None for a split without any (a stream, data held in memory)."""
    if not isinstance(split, Dataset) or not split.cache_files:
        return None
    return os.path.dirname(split.cache_files[0]["filename"])


def tokenizer_cache(train_pairs: Dataset | IterableDataset, **settings: Any) -> str | None:
    """Where the tokenizer trained on `train_pairs` with `settings` is kept: a folder beside the
    split's `datasets` cache files, named by the split's fingerprint, the settings and the code
    that trains it. None for a split without cache files (a stream, data held in memory)."""
    folder = cache_folder(train_pairs)
    if folder is None:
        return None
    key = json.dumps(
        {
            "pairs": train_pairs._fingerprint,  # datasets' own key of this split's content and history
            "settings": settings,
            "tokenizers": tokenizers.__version__,
            "code": inspect.getsource(tokenization_seq2seq_rnn),
        },
        sort_keys=True,
    )
    return os.path.join(folder, f"seq2seq_rnn-tokenizer-{hashlib.sha256(key.encode()).hexdigest()[:16]}")


def load_cached_tokenizer(folder: str, kind: str) -> PreTrainedTokenizerBase:
    """The tokenizer `save_cached_tokenizer` kept, as the class `train_tokenizer` makes for `kind`. (Not
    through `AutoTokenizer`: alone in its folder, the morpheme tokenizer names its class as code of
    its own, which `load_tokenizer` rightly refuses to run.)"""
    wrapper = Seq2SeqRNNMorphemeTokenizer if kind == "morpheme" else PreTrainedTokenizerFast
    return wrapper.from_pretrained(folder)


def save_cached_tokenizer(tokenizer: PreTrainedTokenizerBase, folder: str, seconds: float) -> None:
    """Save `tokenizer` to `folder` whole or not at all (written beside it, then renamed), with the
    seconds its training took; another process that saved it first wins."""
    partial = f"{folder}.{os.getpid()}.partial"
    tokenizer.save_pretrained(partial)
    with open(os.path.join(partial, TOKENIZER_TIMING), "w", encoding="utf-8") as handle:
        json.dump({"seconds": round(seconds, 3)}, handle)
    try:
        os.rename(partial, folder)
    except OSError:  # saved by another process meanwhile
        shutil.rmtree(partial, ignore_errors=True)


def check_tokenizer_matches(tokenizer: PreTrainedTokenizerBase, config: Seq2SeqRNNConfig) -> None:
    """Raise `TrainingInputError` unless the tokenizer's ids fit the model's vocabulary and special ids."""
    problems = []
    if len(tokenizer) > config.vocab_size:
        problems.append(f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}")
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        token_id, model_id = getattr(tokenizer, name), getattr(config, name)
        if token_id != model_id:
            problems.append(f"{name}: tokenizer {token_id}, model {model_id}")
    if problems:
        raise TrainingInputError("the tokenizer does not match the model: " + "; ".join(problems))


def preparation_workers(requested: int | None, rows: int | None) -> int:
    """The processes that tokenize and filter a split: `requested`, else the CPUs this process may
    use (`usable_cpus`) for `PARALLEL_MIN_ROWS` rows or more, else one (starting the workers would
    cost more than they save). A stream (`rows` None) is read by one process."""
    if requested is not None:
        return requested
    if rows is None or rows < PARALLEL_MIN_ROWS:
        return 1
    return usable_cpus()


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, truncate: bool
) -> list[list[int]]:
    """The token ids of each text, `</s>` included: what `tokenizer(texts, truncation=truncate,
    max_length=max_length)["input_ids"]` gives.

    A plain fast tokenizer without truncation is asked through its `tokenizers` backend, which
    gives the same ids without building the `BatchEncoding` (half the time of a training set's
    tokenization; tests/test_training_data.py compares the two). Any other tokenizer (a subclass,
    such as the morpheme tokenizer, may change the text first) goes through its own call.
    """
    if truncate or type(tokenizer) is not PreTrainedTokenizerFast:
        return tokenizer(texts, truncation=truncate, max_length=max_length)["input_ids"]
    backend = tokenizer.backend_tokenizer
    if backend.truncation is not None or backend.padding is not None:
        # Left by an earlier call with truncation or padding; the transformers call sets both each time.
        backend.no_truncation()
        backend.no_padding()
    return [encoding.ids for encoding in backend.encode_batch_fast(texts)]


def _tokenize_batch(
    batch: dict[str, list[str]],
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int,
    max_target_length: int,
    overlong: str,
    drop: bool,
) -> dict[str, list]:
    """Batched `datasets.map` function: pairs to token ids. With `drop`, a map-style split's single
    pass: with `overlong="filter"` the pairs longer than the limits are left out here (no second pass
    over the data, no index mapping after it), and a pair without a source or a target is kept as a
    row without tokens and of `length` 0 (no pair has that length), for the caller to count and drop.
    Without it (a stream's rows, one at a time, filtered before and after) every row stays."""
    filled = _not_empty(batch)
    if all(filled):
        sources, targets = batch["source"], batch["target"]
    else:
        sources = [source for source, keep in zip(batch["source"], filled, strict=True) if keep]
        targets = [target for target, keep in zip(batch["target"], filled, strict=True) if keep]
    truncate = overlong == "truncate"
    encoded = zip(
        encode_texts(tokenizer, sources, max_source_length, truncate),
        encode_texts(tokenizer, targets, max_target_length, truncate),
        strict=True,
    )
    rows = []
    for keep in filled:
        if not keep:
            rows.append(([], []))
            continue
        source, target = next(encoded)
        if drop and not truncate and (len(source) > max_source_length or len(target) > max_target_length):
            continue
        rows.append((source, target))
    return {
        "input_ids": [source for source, _ in rows],
        "attention_mask": [[1] * len(source) for source, _ in rows],
        "labels": [target for _, target in rows],
        "length": [_grouping_length(source, target) if target else 0 for source, target in rows],
    }


def _grouping_length(source: list[int], target: list[int]) -> int:
    """The key that `LengthGroupedBatchSampler` sorts pairs by: the target length first, then the
    source length. The decoder runs as many steps as the longest target of a batch (one by one with
    input feeding), and the encoder reads packed sequences. It leaves far fewer padded targets than
    the sum of both lengths (tests/test_training_data.py)."""
    return len(target) * 65536 + len(source)


def _has_tokens(lengths: list[int]) -> list[bool]:
    return [length > 0 for length in lengths]


def _not_empty(batch: dict[str, list[str]]) -> list[bool]:
    return [bool(s) and bool(t) for s, t in zip(batch["source"], batch["target"], strict=True)]


def _fits(batch: dict[str, list], max_source_length: int, max_target_length: int) -> list[bool]:
    return [
        len(source) <= max_source_length and len(target) <= max_target_length
        for source, target in zip(batch["input_ids"], batch["labels"], strict=True)
    ]


def tokenize_pairs(
    pairs: Dataset | IterableDataset,
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int,
    max_target_length: int,
    overlong: str = "filter",
    num_proc: int | None = None,
) -> tuple[Dataset | IterableDataset, PreparationReport]:
    """Tokenize pairs into `input_ids`, `attention_mask`, `labels` and `length` (`_grouping_length`).

    Empty rows are dropped; pairs longer than the limits (in tokens, `</s>` included) are dropped
    (`overlong="filter"`) or cut (`"truncate"`, keeping the final `</s>`), all in one pass over the
    data. `num_proc`: the processes of a map-style split's pass (`preparation_workers` chooses when
    it is None).
    """
    if overlong not in OVERLONG_POLICIES:
        raise TrainingInputError(f"overlong={overlong!r}; accepted values: {', '.join(OVERLONG_POLICIES)}")
    streaming = isinstance(pairs, IterableDataset)
    report = PreparationReport(policy=overlong)
    lengths = {"max_source_length": max_source_length, "max_target_length": max_target_length}
    if streaming:
        # One row per call, so that a resumed stream reads no row twice (training.stream): a row
        # dropped by an unbatched map is a filter's work.
        tokenized = pairs.filter(one_row(_not_empty)).map(
            one_row(_tokenize_batch),
            remove_columns=["source", "target"],
            fn_kwargs={"tokenizer": tokenizer, **lengths, "overlong": overlong, "drop": False},
        )
        if overlong == "filter":
            tokenized = tokenized.filter(one_row(_fits), fn_kwargs=lengths)
        return tokenized, report
    report.rows = len(pairs)
    workers = preparation_workers(num_proc, report.rows)
    tokenized = pairs.map(
        _tokenize_batch,
        batched=True,
        remove_columns=["source", "target"],
        fn_kwargs={"tokenizer": tokenizer, **lengths, "overlong": overlong, "drop": True},
        num_proc=workers if workers > 1 else None,  # None: the cache files of a run that never asked for workers
        desc="Tokenizing",
    )
    columns = tokenized.with_format("arrow", columns=["input_ids", "labels", "length"])[:]
    compute = pyarrow.compute
    report.empty = int(compute.sum(compute.equal(columns["length"], 0)).as_py() or 0)
    if overlong == "filter":
        report.overlong = report.rows - len(tokenized)
    else:
        cut = compute.or_(
            compute.equal(compute.list_value_length(columns["input_ids"]), max_source_length),
            compute.equal(compute.list_value_length(columns["labels"]), max_target_length),
        )
        report.overlong = int(compute.sum(cut).as_py() or 0)
    if report.empty:  # rare: a pass (and an index mapping) only then
        tokenized = tokenized.filter(_has_tokens, batched=True, input_columns="length", desc="Dropping empty rows")
    report.kept = len(tokenized)
    return tokenized, report


def log_preparation_time(tokenized: Dataset | IterableDataset, seconds: float) -> float | None:
    """Log how long preparing the training split took, and, when an earlier run prepared the same
    data with the same settings (the tokenized split has the same `datasets` fingerprint, so this
    run read it from the cache), how long that took and the time saved. Returns the earlier time."""
    folder = cache_folder(tokenized)
    if folder is None:
        return None
    record = os.path.join(folder, f"seq2seq_rnn-preparation-{tokenized._fingerprint}.json")
    if os.path.isfile(record):
        with open(record, encoding="utf-8") as handle:
            earlier = json.load(handle)["seconds"]
        logger.info(
            "data prepared in %.1f s from the datasets cache in %s: the first run on the same data and settings "
            "took %.1f s (%.1f s saved)",
            seconds, folder, earlier, earlier - seconds,
        )  # fmt: skip
        return earlier
    with open(record, "w", encoding="utf-8") as handle:
        json.dump({"seconds": round(seconds, 3)}, handle)
    logger.info(
        "data prepared in %.1f s; a later run on the same data and settings reads it from the datasets cache in %s",
        seconds, folder,
    )  # fmt: skip
    return None


def grouping_lengths(tokenized: Dataset) -> list[int]:
    """The `length` column of a tokenized split, read as one Arrow column (not row by row)."""
    return tokenized.with_format("arrow", columns=["length"])[:]["length"].to_pylist()


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of pairs of similar length, to limit padding, in a random but reproducible order.

    Each epoch: shuffle all indices with `seed + epoch`, cut them into windows of
    `batch_size * window_batches`, sort each window by length, cut it into batches, and shuffle the
    batches. The same (seed, epoch) always gives the same batches, which is what lets a resumed run
    skip the batches it already trained on.
    """

    def __init__(
        self, lengths: list[int], batch_size: int, seed: int = 0, window_batches: int = 64, shuffle: bool = True
    ):
        if batch_size < 1:
            raise TrainingInputError(f"batch_size={batch_size} must be at least 1")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.window = batch_size * window_batches
        self.shuffle = shuffle
        self.drop_last = False
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        count = len(self.lengths)
        order = torch.randperm(count, generator=generator).tolist() if self.shuffle else list(range(count))
        batches = []
        for start in range(0, count, self.window):
            window = sorted(order[start : start + self.window], key=self.lengths.__getitem__, reverse=True)
            batches.extend(window[i : i + self.batch_size] for i in range(0, len(window), self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        yield from batches

    def __len__(self) -> int:
        full_windows, rest = divmod(len(self.lengths), self.window)
        return full_windows * math.ceil(self.window / self.batch_size) + math.ceil(rest / self.batch_size)
