"""What data to read and how each local file is read, without importing `datasets`.

`DataSpec` declares the data keys once (every field a training config key and flag; predict's data
flags are some of them); `LOCAL_BUILDERS` names the `datasets` builder of each local file extension,
and a file of any other extension is plain text, one source per line (`check_plain_text`).
`training.data` reads the data through `datasets`; these pieces live apart from it so that a command
can declare its options, and `training.predict` read a text file (`text_file_column`,
`read_text_rows`), without waiting for `datasets`' import (pyarrow and pandas with it).
"""

from __future__ import annotations

import codecs
import dataclasses
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from seq2seq_tools.options import option

from .errors import TrainingInputError

# Builder and its arguments for each local file extension. A `.tsv` has no quoting (sentences
# contain quotes) and, like a `.csv`, a header row unless its first row is a pair (`has_header`);
# a `.txt` is read as lines and split on the first tab. Other extensions: plain text (`local_reader`).
LOCAL_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": 3}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
    ".txt": ("text", {}),
}
# How much of a file of unknown extension is read to tell text from binary content.
SNIFF_BYTES = 1 << 16
# The column of a plain-text file's lines (`load_raw` renames the text builder's `text`): a lone
# column of sources (one of `training.schema.SOURCE_COLUMNS`).
PLAIN_TEXT_COLUMN = "source"


@dataclass
class DataSpec:
    """What to load and how to read it; every field is also a training config key (`--help` shows each)."""

    dataset: str = option(
        "a Hub dataset name or a local file (.csv .tsv .json .jsonl .parquet, or source<TAB>target .txt); a .csv "
        "or .tsv has a header row unless its first row is a pair",
        dataclasses.MISSING,
    )
    dataset_config: str | None = option("the Hub configuration name (e.g. en-fr for Helsinki-NLP/opus_books)", None)
    train_split: str = option("the split to train on", "train")
    validation_split: str | None = option(
        'the split to validate on; null: "validation" when the data has one, else held out of the training split', None
    )
    validation_file: str | None = option("a separate local file of validation pairs (same formats as --dataset)", None)
    target_file: str | None = option(
        "a plain-text file of targets, one per line, for a --dataset file of sources one per line (train.de with "
        "train.en, the layout of WMT and OPUS corpora); the two must have as many lines",
        None,
    )
    validation_size: float = option(
        "pairs held out for validation when there is no validation split: a count, or a fraction if below 1",
        0.05,
        above=0,
    )
    source_column: str | None = option(
        "source column of two-column data (found alone for source/target, src/tgt, question/answer, Q/A, ...)", None
    )
    target_column: str | None = option("target column of two-column data", None)
    source_lang: str | None = option('source language of a "translation" column (found alone when it holds two)', None)
    target_lang: str | None = option('target language of a "translation" column', None)
    context_column: str | None = option(
        'with SQuAD-style data, a column prepended to the question ("question: ... context: ...")', None
    )
    streaming: bool = option(
        "read the data as an IterableDataset, for corpora larger than memory (needs --max-steps)", False
    )
    seed: int = option("the seed of initialization, data order, the validation split and the streaming shuffle", 42)


def data_spec(settings: object, keys: Iterable[str] | None = None, **given: Any) -> DataSpec:
    """The `DataSpec` of a command's settings: each field in `keys` (default: all of them) from the
    attribute of `settings` of the same name (a `TrainingConfig` has every one; predict's settings
    those that say how to read a test set), then `given` over them; any other field at its default."""
    names = [item.name for item in dataclasses.fields(DataSpec)] if keys is None else list(keys)
    return DataSpec(**{**{name: getattr(settings, name) for name in names}, **given})


def check_plain_text(path: str, extension: str) -> None:
    """Refuse a file of unknown extension whose start is not UTF-8 text (a NUL byte or an invalid sequence)."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < SNIFF_BYTES)
        text = b"\x00" not in head
    except UnicodeDecodeError:
        text = False
    if not text:
        raise TrainingInputError(
            f"cannot read {path}: unknown extension {extension!r} and not UTF-8 text (binary content); use one of "
            f"{', '.join(LOCAL_BUILDERS)}, or UTF-8 plain text with one sentence per line"
        )


def text_file_column(path: str) -> str | None:
    """The column a local text file is read into by `training.data.load_raw`, one row per line: `text`
    for a `.txt` (source<TAB>target lines), `PLAIN_TEXT_COLUMN` for a file of an extension without a
    builder (plain text); None for any other file (a table, JSON, Parquet) and for what is not a file."""
    if not os.path.isfile(path):
        return None
    extension = os.path.splitext(path)[1].lower()
    if extension not in LOCAL_BUILDERS:
        return PLAIN_TEXT_COLUMN
    builder, _ = LOCAL_BUILDERS[extension]
    return "text" if builder == "text" else None


def read_text_rows(path: str) -> list[str]:
    """The rows that `datasets`' text builder reads from a local text file (`load_raw`), without `datasets`:
    one per line, UTF-8, universal newlines, the line end dropped. A plain-text file (unknown extension)
    whose start is not UTF-8 text is refused first (`check_plain_text`), as `load_raw` refuses it."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in LOCAL_BUILDERS:
        check_plain_text(path, extension)
    with open(path, "rb") as handle:
        content = handle.read()
    try:
        text = content.decode("utf-8")  # decoded whole, so that an error's position is the byte's in the file
    except UnicodeDecodeError as error:
        raise TrainingInputError(
            f"{path} could not be parsed as {extension or 'a dataset'}: {type(error).__name__}: {error}"
        ) from error
    return [line.removesuffix("\n") for line in io.StringIO(text, newline=None)]  # newline=None: universal


__all__ = [
    "LOCAL_BUILDERS",
    "PLAIN_TEXT_COLUMN",
    "DataSpec",
    "check_plain_text",
    "data_spec",
    "read_text_rows",
    "text_file_column",
]
