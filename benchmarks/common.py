"""What the benchmarks share: the corpus and its reference split, `--threads`, the machine line,
measured subprocesses and the table printer.

    pairs = read_pairs("data/eng-fra.txt")                      # a tab-separated file
    pairs = read_pairs("Helsinki-NLP/opus_books", "en-fr")      # a Hub dataset's train split
    splits = reference_split(pairs)                             # validation, test, train

Without network access a Hub id fails with a message that says how to pass a file instead.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Used when no corpus is given: a public English-French parallel corpus on the Hub.
DEFAULT_HUB_CORPUS = "Helsinki-NLP/opus_books"
DEFAULT_HUB_CONFIG = "en-fr"


def read_pairs(corpus: str, hub_config: str | None = None) -> list[tuple[str, str]]:
    """Non-empty (source, target) pairs of `corpus`; exits with a one-line message when it cannot be read."""
    if os.path.isfile(corpus):
        with open(corpus, encoding="utf-8") as handle:
            rows = [line.rstrip("\n").split("\t")[:2] for line in handle]
        pairs = [(row[0].strip(), row[1].strip()) for row in rows if len(row) == 2]
    else:
        pairs = _hub_pairs(corpus, hub_config)
    pairs = [(source, target) for source, target in pairs if source and target]
    if not pairs:
        sys.exit(f"no source<TAB>target pairs in {corpus}")
    return pairs


def _hub_pairs(name: str, hub_config: str | None) -> list[tuple[str, str]]:
    import datasets

    try:
        split = datasets.load_dataset(name, hub_config, split="train")
    except Exception as error:  # offline, unknown id, no such config: all end in the same advice
        sys.exit(
            f"cannot load the Hub dataset {name!r} (config {hub_config!r}): {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}. Offline or without the Hub, pass a local file "
            "of source<TAB>target lines instead, e.g. `python -m benchmarks.bench_training path/to/eng-fra.txt`."
        )
    if "translation" in split.column_names:  # {"en": ..., "fr": ...} per row
        languages = (hub_config or "").split("-")
        pairs = []
        for row in split["translation"]:
            source_lang, target_lang = languages if len(languages) == 2 else list(row)[:2]
            pairs.append((row[source_lang], row[target_lang]))
        return pairs
    text_columns = [column for column, feature in split.features.items() if getattr(feature, "dtype", "") == "string"]
    if len(text_columns) < 2:
        sys.exit(f"{name!r} has no 'translation' column and fewer than two text columns: {split.column_names}")
    return list(zip(split[text_columns[0]], split[text_columns[1]], strict=True))


# The split of the reference runs: the non-empty pairs shuffled with `random.seed(1)`, then these
# many validation and test pairs, the rest for training.
VALIDATION_SIZE, TEST_SIZE = 1000, 2000


def reference_split(
    pairs: Sequence[tuple[str, str]], validation_size: int = VALIDATION_SIZE, test_size: int = TEST_SIZE
) -> dict[str, list[tuple[str, str]]]:
    """`validation` (1,000), `test` (2,000) and `train` (the rest) of `pairs`, as every benchmark splits them
    (other sizes only for a quick run: `add_quick_run_arguments`)."""
    shuffled = list(pairs)
    random.Random(1).shuffle(shuffled)
    return {
        "validation": shuffled[:validation_size],
        "test": shuffled[validation_size : validation_size + test_size],
        "train": shuffled[validation_size + test_size :],
    }


def add_quick_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that shrink a benchmark that trains to a quick run (tests/test_benchmarks_smoke.py runs
    each so): the sizes of the reference split, and flags added to every `training.train` command."""
    parser.add_argument(
        "--split-sizes", type=int, nargs=2, default=[VALIDATION_SIZE, TEST_SIZE], metavar=("VALIDATION", "TEST"),
        help=f"pairs held out for validation and test (default: {VALIDATION_SIZE} {TEST_SIZE}, the reference split)",
    )  # fmt: skip
    parser.add_argument(
        "--training-flags", type=shlex.split, default=[], metavar="'FLAGS'",
        help="flags added at the end of every training.train command (they win), e.g. '--hidden-size 16'",
    )  # fmt: skip


def write_pairs(rows: Sequence[tuple[str, str]], path: str | Path) -> str:
    """`rows` as `source<TAB>target` lines at `path`; returns the path."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{source}\t{target}\n" for source, target in rows)
    return str(path)


def add_threads_argument(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--threads", type=int, default=default, help=f"torch.set_num_threads for every run (default: {default})"
    )


def thread_environment(threads: int) -> dict[str, str]:
    """The environment for a measured subprocess: this one's, offline, with OpenMP held to `threads`."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def machine_line(threads: int) -> str:
    """The CPU, its flags, torch's dispatch, the thread count and the load: printed with every table."""
    import torch

    from seq2seq_tools.machine import describe_cpu

    load = os.getloadavg()
    return (
        f"CPU: {describe_cpu()}; torch {torch.__version__}, torch.set_num_threads({threads}); "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def run_measured(command: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> tuple[float, float]:
    """Run `command` in `cwd` (the repository) to completion, its output in `log`: (wall seconds, peak RSS in MB)."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    returncode = os.waitstatus_to_exitcode(status)
    if returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({returncode}); see {log}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, so that it pastes into benchmarks/README.md as printed."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
