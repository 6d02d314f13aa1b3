"""From source/target pairs to padded batches: tokenizer, tokenization, filtering, length grouping.

    pairs --(train_tokenizer or seq2seq_tools.loading.load_tokenizer)--> tokenizer
    pairs --drop empty rows--> --tokenize (batched datasets.map)--> --drop or truncate over-long-->
          --LengthGroupedBatchSampler + DataCollatorForSeq2Seq--> batches

Counts of what was dropped or truncated are returned, so the training script can report them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from datasets import Dataset, IterableDataset
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase

from hf_seq2seq_rnn import Seq2SeqRNNConfig
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer
from seq2seq_tools.loading import load_tokenizer

from .errors import TrainingInputError
from .stream import one_row

logger = logging.getLogger(__name__)

OVERLONG_POLICIES = ("filter", "truncate")


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
    max_examples: int = 300_000,
    kind: str = "bpe",
) -> PreTrainedTokenizerBase:
    """The tokenizer at `tokenizer_path`, or a new one (`kind` "bpe", "char" or "morpheme") trained on
    both sides of the training pairs.

    A streaming split contributes its first `max_examples` pairs to the training of the tokenizer.
    A morpheme tokenizer without its analyzer (kiwipiepy) is a `TrainingInputError` here, before any
    data is tokenized.
    """
    tokenizer = _load_or_train(
        train_pairs, tokenizer_path, vocab_size, min_frequency, model_max_length, max_examples, kind
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
    max_examples: int,
    kind: str,
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
    pairs = train_pairs.take(max_examples) if isinstance(train_pairs, IterableDataset) else train_pairs

    def texts() -> Iterator[str]:
        for batch in pairs.iter(batch_size=1000):
            yield from batch["source"]
            yield from batch["target"]

    try:
        return train_tokenizer(
            texts(), vocab_size=vocab_size, min_frequency=min_frequency, model_max_length=model_max_length, kind=kind
        )
    except ValueError as error:
        raise TrainingInputError(f"--vocab-size: {error}") from error
    except ImportError as error:
        raise TrainingInputError(str(error)) from error


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


def _tokenize_batch(
    batch: dict[str, list[str]],
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int,
    max_target_length: int,
    truncate: bool,
) -> dict[str, list]:
    sources = tokenizer(batch["source"], truncation=truncate, max_length=max_source_length)
    targets = tokenizer(batch["target"], truncation=truncate, max_length=max_target_length)
    return {
        "input_ids": sources["input_ids"],
        "attention_mask": sources["attention_mask"],
        "labels": targets["input_ids"],
        "length": [_grouping_length(s, t) for s, t in zip(sources["input_ids"], targets["input_ids"], strict=True)],
    }


def _grouping_length(source: list[int], target: list[int]) -> int:
    """The key that `LengthGroupedBatchSampler` sorts pairs by: the target length first, then the
    source length. The decoder runs as many steps as the longest target of a batch (one by one with
    input feeding), and the encoder reads packed sequences. It leaves far fewer padded targets than
    the sum of both lengths (tests/test_training_data.py)."""
    return len(target) * 65536 + len(source)


def _fits(batch: dict[str, list], max_source_length: int, max_target_length: int) -> list[bool]:
    return [
        len(source) <= max_source_length and len(target) <= max_target_length
        for source, target in zip(batch["input_ids"], batch["labels"], strict=True)
    ]


def _not_empty(batch: dict[str, list[str]]) -> list[bool]:
    return [bool(s) and bool(t) for s, t in zip(batch["source"], batch["target"], strict=True)]


def tokenize_pairs(
    pairs: Dataset | IterableDataset,
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int,
    max_target_length: int,
    overlong: str = "filter",
    num_proc: int | None = None,
) -> tuple[Dataset | IterableDataset, PreparationReport]:
    """Tokenize pairs into `input_ids`, `attention_mask`, `labels` (and `length`, their sum).

    Empty rows are dropped; pairs longer than the limits (in tokens, `</s>` included) are dropped
    (`overlong="filter"`) or cut (`"truncate"`, keeping the final `</s>`).
    """
    if overlong not in OVERLONG_POLICIES:
        raise TrainingInputError(f"overlong={overlong!r}; accepted values: {', '.join(OVERLONG_POLICIES)}")
    streaming = isinstance(pairs, IterableDataset)
    report = PreparationReport(policy=overlong)
    map_arguments = {} if streaming else {"num_proc": num_proc, "desc": "Tokenizing"}
    filter_arguments = {} if streaming else {"num_proc": num_proc, "desc": "Dropping empty rows"}
    # A stream is prepared one row per call, so that a resumed stream reads no row twice (training.stream).
    per_row = one_row if streaming else lambda function: function
    if not streaming:
        report.rows = len(pairs)
    pairs = pairs.filter(per_row(_not_empty), batched=not streaming, **filter_arguments)
    if not streaming:
        report.empty = report.rows - len(pairs)
    tokenized = pairs.map(
        per_row(_tokenize_batch),
        batched=not streaming,
        remove_columns=["source", "target"],
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_source_length": max_source_length,
            "max_target_length": max_target_length,
            "truncate": overlong == "truncate",
        },
        **map_arguments,
    )
    if overlong == "filter":
        before = None if streaming else len(tokenized)
        if not streaming:
            filter_arguments["desc"] = "Dropping over-long pairs"
        tokenized = tokenized.filter(
            per_row(_fits),
            batched=not streaming,
            fn_kwargs={"max_source_length": max_source_length, "max_target_length": max_target_length},
            **filter_arguments,
        )
        if not streaming:
            report.overlong = before - len(tokenized)
    elif not streaming:
        report.overlong = sum(
            1
            for source, target in zip(tokenized["input_ids"], tokenized["labels"], strict=True)
            if len(source) == max_source_length or len(target) == max_target_length
        )
    if not streaming:
        report.kept = len(tokenized)
    return tokenized, report


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
