"""Loading training data through `datasets` and turning any supported schema into source/target pairs.

One code path serves a Hub name (`load_dataset("Helsinki-NLP/opus_books", "en-fr")`) and local
files (`load_dataset("csv", data_files=...)`): only the builder and its arguments differ. Supported
files: `.csv`, `.tsv` (tab-separated; a header row, unless the first row is a pair: see
`has_header`), `.json` / `.jsonl`, `.parquet`, and `.txt` with one `source<TAB>target` pair per
line (further tab-separated fields, such as Tatoeba's attribution, are ignored). A UTF-8 text file
with any other extension (`test.de`, `newstest2014.en`) holds one source per line and no targets:
`training.predict` decodes it (the references come from `--references`); training refuses it.

The schemas (`training.schema`) turn the rows of any supported layout into pairs; `schema_of`
detects the schema of a loaded dataset and `to_pairs` applies it.

What to read (`DataSpec`, the data keys) and the builder of each local file extension
(`LOCAL_BUILDERS`) are declared in `training.data_spec`; like `training.schema`, it does not import
`datasets`.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import os
import re
from collections.abc import Iterator
from functools import partial
from typing import Any

import datasets
import pyarrow.compute
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from .data_spec import LOCAL_BUILDERS, PLAIN_TEXT_COLUMN, DataSpec, check_plain_text, data_spec
from .errors import TrainingInputError
from .schema import KNOWN_COLUMN_PAIRS, Schema, conversation_pairs, detect_schema, pairs_from_batch
from .stream import one_row

logger = logging.getLogger(__name__)

# A .csv or .tsv read without a header row gets these column names.
HEADERLESS_COLUMNS = ["source", "target"]
# How much of a local .csv or .tsv is read to tell a header from a first pair.
SNIFF_ROWS = 200
# A first row of two such bare words (`english french`, `Q A`) rather names columns than holds a pair.
COLUMN_NAME = re.compile(r"[^\W\d]\w*")


def load_raw(
    name_or_path: str,
    dataset_config: str | None = None,
    streaming: bool = False,
    split_name: str = "train",
    spec: DataSpec | None = None,
) -> DatasetDict | IterableDatasetDict:
    """Load a Hub dataset or a local file with `datasets.load_dataset`, every split it has.

    A local file becomes the split `split_name`, read as `local_reader` says (`spec`'s column and
    language flags help tell a header row from a first pair). Failures become `TrainingInputError`.
    """
    extension = os.path.splitext(name_or_path)[1].lower()
    looks_local = os.path.exists(name_or_path) or extension in LOCAL_BUILDERS or name_or_path.startswith((".", "/"))
    if looks_local:
        if not os.path.isfile(name_or_path):
            raise TrainingInputError(f"data file not found: {name_or_path}")
        if os.path.getsize(name_or_path) == 0:
            raise TrainingInputError(f"the data file {name_or_path} is empty (0 bytes); it needs at least two pairs")
        builder, builder_kwargs = local_reader(name_or_path, spec)
        arguments: dict[str, Any] = {"path": builder, "data_files": {split_name: name_or_path}, **builder_kwargs}
    else:
        arguments = {"path": name_or_path, "name": dataset_config}
    try:
        loaded = _load_dataset(arguments, streaming, name_or_path if looks_local else None)
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as error:
        raise TrainingInputError(
            f"dataset {name_or_path!r} not found (is the name right, is the Hub reachable?): {error}"
        ) from error
    except ConnectionError as error:
        raise TrainingInputError(f"dataset {name_or_path!r} could not be downloaded: {error}") from error
    except ValueError as error:
        if "corresponds to no data" in str(error):
            raise TrainingInputError(f"the data in {name_or_path} is empty (no rows)") from error
        if looks_local:  # a parse error (older datasets raise pandas' ValueError for bad JSON)
            raise _parse_error(name_or_path, extension, error) from error
        # Among others: a missing or wrong config name; the message lists the available ones.
        raise TrainingInputError(f"dataset {name_or_path!r} could not be loaded: {error}") from error
    except Exception as error:  # pyarrow and pandas parse errors have no common base class
        raise _parse_error(name_or_path, extension, error) from error
    if looks_local and extension not in LOCAL_BUILDERS:  # plain text: each line is a source
        loaded = loaded.rename_column("text", PLAIN_TEXT_COLUMN)
    return loaded


def _load_dataset(arguments: dict[str, Any], streaming: bool, local_path: str | None) -> Any:
    """`datasets.load_dataset(**arguments)`; a local .csv or .tsv with rows of another field count than
    its first row is read without them (`_without_bad_rows`). A stream is checked before it is read
    (pandas would fail at the bad row, mid-training); an in-memory read only when pandas refuses it."""
    is_table = local_path is not None and arguments["path"] == "csv"
    if is_table and streaming:
        bad = _bad_rows(local_path, arguments)
        if bad:
            return _without_bad_rows(local_path, arguments, streaming, bad)
    try:
        return datasets.load_dataset(**arguments, streaming=streaming)
    except Exception as error:
        bad = _bad_rows(local_path, arguments) if is_table and "fields in line" in _root_cause(error) else []
        if not bad:  # another parse error, or one the csv module does not see: the caller reports it
            raise
        return _without_bad_rows(local_path, arguments, streaming, bad)


def _table_rows(path: str, arguments: dict[str, Any]) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The column names of a .csv or .tsv (`column_names`, else its first row) and its other
    non-empty rows with their line numbers, read lazily with the csv module."""
    options = {key: value for key, value in arguments.items() if key in ("delimiter", "quoting")}

    def rows() -> Iterator[tuple[int, list[str]]]:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, **options)
            yield from ((reader.line_num, row) for row in reader if row)

    lines = rows()
    names = arguments.get("column_names") or next(lines, (0, []))[1]
    return names, lines


def _bad_rows(path: str, arguments: dict[str, Any]) -> list[tuple[int, int]]:
    """(line, field count) of every row whose field count differs from the column names'."""
    names, rows = _table_rows(path, arguments)
    return [(line, len(row)) for line, row in rows if len(row) != len(names)]


def _without_bad_rows(
    path: str, arguments: dict[str, Any], streaming: bool, bad: list[tuple[int, int]]
) -> DatasetDict | IterableDatasetDict:
    """A .csv or .tsv read with the csv module without its `bad` rows (`_bad_rows`), whose count and
    first line are logged. (pandas' `on_bad_lines="skip"` would do it, but older `datasets` releases
    drop that argument under pandas 3.)"""
    logger.warning(
        "%s: skipped %d row(s) whose field count differs from the first row's (line %d has %d fields; a .tsv "
        "row is source<TAB>target with no tab inside either)",
        path, len(bad), bad[0][0], bad[0][1],
    )  # fmt: skip

    def kept() -> Iterator[dict[str, str]]:
        names, rows = _table_rows(path, arguments)
        for _, row in rows:
            if len(row) == len(names):
                yield dict(zip(names, row, strict=True))

    [split_name] = arguments["data_files"]
    if streaming:
        return IterableDatasetDict({split_name: IterableDataset.from_generator(kept)})
    return DatasetDict({split_name: Dataset.from_list(list(kept()))})


def local_reader(path: str, spec: DataSpec | None = None) -> tuple[str, dict[str, Any]]:
    """The `datasets` builder and its arguments for a local file, by its extension (`LOCAL_BUILDERS`).

    A `.csv` or `.tsv` whose first row is a pair, not a header (`has_header`), is read with the
    column names `source` and `target`, its first row kept as a pair. Any other extension is read as
    plain text, one source per line, if the file is UTF-8 text; binary content is refused.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in LOCAL_BUILDERS:
        check_plain_text(path, extension)
        return "text", {}
    builder, arguments = LOCAL_BUILDERS[extension]
    if builder == "csv" and not has_header(path, arguments, spec):
        logger.info(
            "%s has no header row (its first row is a pair): read as %s", path, " and ".join(HEADERLESS_COLUMNS)
        )
        arguments = {**arguments, "column_names": list(HEADERLESS_COLUMNS)}
    return builder, arguments


def has_header(path: str, csv_arguments: dict[str, Any], spec: DataSpec | None = None) -> bool:
    """Whether the first row of a `.csv` or `.tsv` (read with `csv_arguments`) names its columns.

    It does, unless every one of the first `SNIFF_ROWS` rows holds exactly two non-empty fields and
    the first row does not look like names: not a pair of `KNOWN_COLUMN_PAIRS` (either order), not
    the `--source-lang`/`--target-lang` pair, not two bare words (`english french`). Column flags
    name a header's columns, so with `--source-column`/`--target-column` the first row is a header.
    In doubt the answer is a header, as before; `schema_of` then says how to pass a file without one.
    """
    if spec is not None and (spec.source_column or spec.target_column):
        return True
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            rows = [row for row in itertools.islice(csv.reader(handle, **csv_arguments), SNIFF_ROWS) if row]
    except csv.Error:  # e.g. a field over the csv module's size limit: not two short texts
        return True
    if not rows or any(len(row) != 2 or not (row[0].strip() and row[1].strip()) for row in rows):
        return True
    first = (rows[0][0].strip(), rows[0][1].strip())
    lower = (first[0].lower(), first[1].lower())
    if lower in KNOWN_COLUMN_PAIRS or lower[::-1] in KNOWN_COLUMN_PAIRS:
        return True
    if spec is not None and {spec.source_lang, spec.target_lang} == set(first):
        return True
    return all(COLUMN_NAME.fullmatch(name) for name in first)


def _parse_error(path: str, extension: str, error: BaseException) -> TrainingInputError:
    """A local file that `datasets` could not parse: where, for JSON, else the innermost message."""
    detail = _json_problem(path) if extension in (".json", ".jsonl") else None
    return TrainingInputError(
        f"{path} could not be parsed as {extension or 'a dataset'}: {detail or _root_cause(error)}"
    )


def _root_cause(error: BaseException) -> str:
    """The innermost message of a chained exception (datasets wraps parse errors in a generic one)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return " ".join(f"{type(error).__name__}: {error}".split())


def _json_problem(path: str) -> str | None:
    """Where a `.json` file, or the first bad line of a `.jsonl` file, fails to parse, or `None`."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        if path.lower().endswith(".jsonl"):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except json.JSONDecodeError as error:
                    return (
                        f"line {number} is not valid JSON ({error.msg} at column {error.colno}): {line.strip()[:80]!r}"
                    )
            return None
        try:
            json.load(handle)
        except json.JSONDecodeError as error:
            return f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
    return None


def column_names(dataset: Dataset | IterableDataset) -> list[str]:
    """The columns of a dataset; a streaming dataset without declared features is peeked at."""
    if dataset.column_names is not None:
        return list(dataset.column_names)
    first = next(iter(dataset.take(1)), None)
    return list(first) if first is not None else []


def schema_of(dataset: Dataset | IterableDataset, spec: DataSpec, source: str) -> Schema:
    """`detect_schema` of a loaded dataset. When it fails on a local `.csv` or `.tsv`, whose first row
    was then read as a header (`has_header`), the message says so and how to pass a file without one."""
    columns = column_names(dataset)
    try:
        return detect_schema(columns, spec, dataset.features)
    except TrainingInputError as error:
        extension = os.path.splitext(source)[1].lower()
        if extension not in (".csv", ".tsv") or not os.path.isfile(source) or columns == HEADERLESS_COLUMNS:
            raise
        separator, rename = (",", "") if extension == ".csv" else ("<TAB>", ", or rename the file .txt")
        problem = str(error).rstrip(".")
        raise TrainingInputError(
            f"the first row of {source} was read as a header (column names), and {problem}. If that row is "
            f"a pair (the file has no header), put a line source{separator}target above it{rename}"
        ) from error


def report_extra_fields(dataset: Dataset, column: str, source: str) -> int:
    """Count (and log) the `source<TAB>target` lines with more than two fields: only the first two are read."""
    tabs = pyarrow.compute.count_substring(dataset.data.column(column), "\t")
    extra = int(pyarrow.compute.sum(pyarrow.compute.greater(tabs, 1)).as_py() or 0)
    if extra:
        logger.warning(
            "%s: %d of %d lines have more than two tab-separated fields; the fields after the second were ignored",
            source,
            extra,
            len(dataset),
        )
    return extra


def to_pairs(dataset: Dataset | IterableDataset, schema: Schema) -> Dataset | IterableDataset:
    """The dataset as two string columns, `source` and `target` (empty strings where a row has none)."""
    columns = column_names(dataset)
    features = datasets.Features({"source": datasets.Value("string"), "target": datasets.Value("string")})
    arguments: dict[str, Any] = {"batched": True, "remove_columns": columns, "features": features}
    function = partial(pairs_from_batch, schema=schema)
    if isinstance(dataset, Dataset):
        arguments["desc"] = "Reading pairs"
    else:
        # A stream's state_dict() then stands at the last row taken (training.stream): python rows (from
        # an Arrow source, datasets 4.7 counts a whole table as taken) and one row per call. A conversation
        # gives several pairs: a batch of one row, the one row a resumed stream may read again.
        dataset = dataset.with_format("python")
        if schema.kind == "conversation":
            arguments["batch_size"] = 1
        else:
            function, arguments["batched"] = one_row(function), False
    return dataset.map(function, **arguments)


def _split(
    splits: DatasetDict | IterableDatasetDict, name: str, source: str, spec: DataSpec
) -> Dataset | IterableDataset:
    if name not in splits:
        raise TrainingInputError(f"split {name!r} not found in {source}; its splits are {sorted(splits)}")
    return splits[name]


def load_pairs(spec: DataSpec) -> tuple[dict[str, Dataset | IterableDataset], Schema]:
    """Load the data described by `spec` as `{"train": ..., "validation": ...}` pair datasets.

    The validation pairs come from `validation_file`, else `validation_split`, else a split named
    `validation`, else `validation_size` rows of the training split (shuffled with `seed`).
    """
    if spec.target_file:
        splits = parallel_files(spec.dataset, spec.target_file, spec.train_split)
        return pairs_from_splits(splits, spec, source=f"{spec.dataset} and {spec.target_file}")
    splits = load_raw(spec.dataset, spec.dataset_config, spec.streaming, spec.train_split, spec)
    return pairs_from_splits(splits, spec, source=spec.dataset)


def parallel_files(source_path: str, target_path: str, split_name: str) -> DatasetDict:
    """The pairs of two plain-text files, line `i` of `target_path` the target of line `i` of
    `source_path`, as the split `split_name` with the columns `source` and `target`."""
    lines = {}
    for flag, path in (("--dataset", source_path), ("--target-file", target_path)):
        if not os.path.isfile(path):
            raise TrainingInputError(f"{flag} {path}: file not found")
        check_plain_text(path, os.path.splitext(path)[1])
        with open(path, encoding="utf-8-sig") as handle:
            lines[flag] = [line.rstrip("\r\n") for line in handle]
    sources, targets = lines["--dataset"], lines["--target-file"]
    if len(sources) != len(targets):
        raise TrainingInputError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: --target-file holds one "
            "target line for each source line of --dataset"
        )
    return DatasetDict({split_name: Dataset.from_dict({"source": sources, "target": targets})})


def _training_schema(dataset: Dataset | IterableDataset, spec: DataSpec, source: str) -> Schema:
    """`schema_of` for training, which needs pairs: sources without targets are refused."""
    schema = schema_of(dataset, spec, source)
    if schema.kind == "sources":
        raise TrainingInputError(
            f"cannot train on {source}: it holds {schema.describe()}; training needs pairs (source<TAB>target "
            "lines in a .txt or .tsv, or two text columns); training.predict decodes sources alone (--references)"
        )
    return schema


def pairs_from_splits(
    splits: DatasetDict | IterableDatasetDict, spec: DataSpec, source: str
) -> tuple[dict[str, Dataset | IterableDataset], Schema]:
    """`load_pairs` on already loaded splits (the embedded demo corpora enter here)."""
    train = _split(splits, spec.train_split, source, spec)
    if spec.validation_file:
        validation_splits = load_raw(spec.validation_file, streaming=spec.streaming, split_name="validation", spec=spec)
        validation = validation_splits["validation"]
    elif spec.validation_split:
        validation = _split(splits, spec.validation_split, source, spec)
    elif "validation" in splits and spec.train_split != "validation":
        validation = splits["validation"]
    else:
        validation = None
    columns = column_names(train)
    if not columns:
        raise TrainingInputError(f"the {spec.train_split!r} split of {source} is empty")
    schema = _training_schema(train, spec, source)
    logger.info("Reading %s as %s", source, schema.describe())
    if schema.kind == "text_pairs" and isinstance(train, Dataset):
        report_extra_fields(train, schema.column, source)
    train = to_pairs(train, schema)
    if validation is not None:
        validation = to_pairs(validation, _training_schema(validation, spec, spec.validation_file or source))
    elif isinstance(train, IterableDataset):
        held_out = int(spec.validation_size) if spec.validation_size >= 1 else 500
        validation, train = train.take(held_out), train.skip(held_out)
        if next(iter(train.take(1)), None) is None:  # reads the held-out rows once, not the whole stream
            raise TrainingInputError(
                f"{source} has {held_out} rows or fewer: a stream holds its first {held_out} out for validation, "
                "which leaves none to train on; pass --validation-size N below its row count, a --validation-file, "
                "or leave out --streaming"
            )
    else:
        if len(train) < 2:
            raise TrainingInputError(
                f"the {spec.train_split!r} split of {source} has {len(train)} rows: too few to train"
            )
        size = int(spec.validation_size) if spec.validation_size >= 1 else spec.validation_size
        if isinstance(size, int) and size >= len(train):
            raise TrainingInputError(
                f"validation_size={size} leaves no training pairs: {source} has {len(train)}; lower --validation-size"
            )
        held_out = train.train_test_split(test_size=size, seed=spec.seed)
        train, validation = held_out["train"], held_out["test"]
    if isinstance(train, Dataset) and len(train) == 0:
        raise TrainingInputError(f"the {spec.train_split!r} split of {source} is empty")
    return {"train": train, "validation": validation}, schema


__all__ = [
    "DataSpec",
    "Schema",
    "conversation_pairs",
    "data_spec",
    "detect_schema",
    "has_header",
    "load_pairs",
    "load_raw",
    "local_reader",
    "pairs_from_splits",
    "schema_of",
    "to_pairs",
]
