"""A training stream that resumes where it stopped, without reading the rows it already gave out.

`datasets`' own `IterableDataset.shuffle` keeps its buffer in memory only: `state_dict()` leaves the
buffer's rows out, so a resumed stream refills the buffer with later rows and yields another order
than the uninterrupted run. And a batched `map` or `filter` on a stream restarts its current batch on
resume, reading up to a batch of consumed rows again. So a stream is prepared here in two parts:

    datasets: pairs, tokens (one row per call: `one_row`)   --state_dict-->  exact source position
    ShuffledStream: a shuffle buffer of our own, last       --state_dict-->  + the buffer's rows and RNG

`ShuffledStream.state_dict()` holds both, small enough for a checkpoint (the buffer's tokenized rows).
Accelerate saves it through torchdata's `StatefulDataLoader` (`use_stateful_dataloader=True`) in
`save_state` and gives it back in `load_state`; the next iteration continues with the row after the
last one trained on. `stream_settings` and `check_stream_settings` keep a checkpoint from resuming
with data settings under which its position means other rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from datasets import IterableDataset

from .errors import TrainingInputError

logger = logging.getLogger(__name__)

# The settings that decide which rows a stream yields, in which order, and how many make a batch:
# a saved position means the same rows only under the same values (`check_stream_settings`).
STREAM_SETTINGS = (
    "dataset",
    "dataset_config",
    "train_split",
    "source_column",
    "target_column",
    "source_lang",
    "target_lang",
    "context_column",
    "validation_file",
    "validation_split",
    "validation_size",
    "seed",
    "shuffle_buffer_size",
    "max_source_length",
    "max_target_length",
    "overlong",
    "tokenizer",
    "model_name_or_path",
    "tokenizer_type",
    "vocab_size",
    "min_frequency",
    "batch_size",
)


def one_row(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` of a batch (`{column: [values]}`) as a function of one row, for `datasets`' unbatched
    `map` and `filter`: it sees a batch of one, and its result is unwrapped (a row, or a bool).

    On a stream, unbatched functions leave `IterableDataset.state_dict()` at the last row taken; a
    batched one would restart its current batch on resume, reading those rows again.
    """

    def on_one_row(row: dict[str, Any], **kwargs: Any) -> Any:
        result = function({column: [value] for column, value in row.items()}, **kwargs)
        if isinstance(result, dict):
            return {column: values[0] for column, values in result.items()}
        return result[0]

    return on_one_row


class ShuffledStream(torch.utils.data.IterableDataset):
    """The rows of `source` shuffled through a buffer of `buffer_size` rows, resumable exactly.

    Fill the buffer; then each new row of `source` replaces a row drawn at random from the buffer,
    which is yielded; when `source` ends, the buffer empties in random order. Each epoch draws with
    its own generator, `numpy.random.default_rng([seed, epoch])`.

    `state_dict()` is the position after the last row yielded: the source's own state (`datasets`),
    the buffer's rows, the generator's state, and counts. After `load_state_dict`, the next
    iteration of the same epoch continues from there without reading any row `source` already
    gave; a later epoch starts afresh.

    Args:
        source: a stream whose `state_dict()` is exact (per-row functions only, see `one_row`).
        buffer_size: rows held for shuffling (1: the source's order).
        seed: the seed of the shuffle.
    """

    def __init__(self, source: IterableDataset, buffer_size: int, seed: int):
        if buffer_size < 1:
            raise ValueError(f"buffer_size={buffer_size}: a shuffle buffer holds at least one row")
        self.source = source
        self.buffer_size = buffer_size
        self.seed = seed
        self.epoch = 0
        self._position: dict[str, Any] | None = None  # the running iteration's, updated in place
        self._resume_from: dict[str, Any] | None = None  # loaded, not yet taken by an iteration

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands: after the last row it yielded (a copy; the rows are shared, never changed)."""
        if self._position is None:
            return self._resume_from or {"epoch": self.epoch, "source": None, "buffer": [], "rng": None}
        position = self._position
        return {
            "epoch": position["epoch"],
            "source": self.source.state_dict(),
            "buffer": list(position["buffer"]),
            "rng": position["rng"].bit_generator.state,
            "taken": position["taken"],
            "yielded": position["yielded"],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` at the next iteration of its epoch."""
        self._resume_from = state if state.get("source") is not None else None
        self._position = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        position = self._start()
        buffer, rng = position["buffer"], position["rng"]
        for row in self.source:
            position["taken"] += 1
            if len(buffer) < self.buffer_size:
                buffer.append(row)
                continue
            index = int(rng.integers(len(buffer)))
            row, buffer[index] = buffer[index], row
            position["yielded"] += 1
            yield row
        while buffer:
            index = int(rng.integers(len(buffer)))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            position["yielded"] += 1
            yield buffer.pop()

    def _start(self) -> dict[str, Any]:
        """The position an iteration starts from: the loaded one if it belongs to this epoch, else the epoch's start."""
        resumed, self._resume_from = self._resume_from, None
        if resumed is not None and resumed["epoch"] > self.epoch:
            raise ValueError(f"the stream's saved position is in epoch {resumed['epoch']}, after epoch {self.epoch}")
        self.source.set_epoch(self.epoch)
        if resumed is not None and resumed["epoch"] == self.epoch:
            self.source.load_state_dict(resumed["source"])
            rng = np.random.default_rng()
            rng.bit_generator.state = resumed["rng"]
            position = {**resumed, "buffer": list(resumed["buffer"]), "rng": rng}
            logger.info(
                "the training stream resumes in epoch %d after the %s rows it gave out: its source continues "
                "after row %s and the shuffle buffer's %s rows come from the checkpoint; no consumed row is read again",
                self.epoch, f"{position['yielded']:,}", f"{position['taken']:,}", f"{len(position['buffer']):,}",
            )  # fmt: skip
        else:  # a new epoch, or one whose saved position ended it
            rng = np.random.default_rng([self.seed, self.epoch])
            position = {"epoch": self.epoch, "buffer": [], "rng": rng, "taken": 0, "yielded": 0}
        self._position = position
        return position


def stream_settings(config: Any, num_processes: int) -> dict[str, Any]:
    """The values of `STREAM_SETTINGS` in `config` (a `TrainingConfig`), and the process count."""
    return {name: getattr(config, name) for name in STREAM_SETTINGS} | {"num_processes": num_processes}


def check_stream_settings(checkpoint: str, saved: dict[str, Any] | None, current: dict[str, Any] | None) -> None:
    """Raise `TrainingInputError` (one line, naming the setting) unless a checkpoint's stream position,
    saved under the settings `saved` (None: a run that did not stream), fits a run with `current`."""
    if saved is None and current is None:
        return
    if current is None:
        raise TrainingInputError(
            f"the checkpoint {checkpoint} was saved by a --streaming run: resume it with --streaming and the same "
            "data settings"
        )
    if saved is None:
        raise TrainingInputError(
            f"the checkpoint {checkpoint} holds no stream position (its run did not stream, or an older version "
            "saved it): resume it without --streaming, or start the streaming run in a new --output-dir"
        )
    for name, value in current.items():
        if saved.get(name) != value:
            setting = "the number of processes" if name == "num_processes" else f"--{name.replace('_', '-')}"
            raise TrainingInputError(
                f"the checkpoint {checkpoint} saved its stream position with {setting} {saved.get(name)!r}, but this "
                f"run has {value!r}: the position means other rows now; resume with the checkpoint's setting, or "
                "start a new run in another --output-dir"
            )
