"""Start-up time of `python -m training.predict`: the whole command on a one-line file, against the
imports under it, each in fresh processes.

    python -m benchmarks.bench_startup --model runs/en-fr --threads 1 [--repeats 5] [--lines 100] [--before-tree DIR]

Rows: the interpreter alone, `import torch`, `import transformers.modeling_utils` (the floor of any
command that loads our model: its classes are `PreTrainedModel`s), `import hf_seq2seq_rnn` (what an
`AutoModel` user imports), `import training.predict`, `python -m training.predict --help`, and the
command on a file of one sentence and of `--lines` sentences (the one sentence repeated; 0: no row).

Each row runs `--repeats` times, each time in a new process, after `--warmup` untimed rounds (.pyc
files, the page cache); the rows take turns, one round running each once, so that a change in the
machine's load falls on all of them alike. The table gives the fastest and the median wall time
(from the start of the process to its exit), the fastest's ratio to `import transformers.modeling_utils`
of the same run, and the peak RSS. Every process runs offline with OMP_NUM_THREADS set to `--threads`,
and the command with `--num-threads` too. With `--before-tree DIR` (a checkout of an earlier commit,
e.g. `git worktree add --detach ../before COMMIT`) the rows that run our code run there as well, in
the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .common import REPO, add_threads_argument, machine_line, print_table, run_measured, thread_environment

BASELINE = "import transformers.modeling_utils"


@dataclass(frozen=True)
class Row:
    """One measured command: `python ARGUMENTS`; `ours` when it runs this repository's code (and so
    runs in `--before-tree` too)."""

    name: str
    arguments: tuple[str, ...]
    ours: bool


def startup_rows(model: str, threads: int, sentence: str, lines: int, work: Path) -> list[Row]:
    """The rows of the table; the command's input files are written to `work`."""
    predict = ("-m", "training.predict", "--model", model, "--num-threads", str(threads))
    rows = [
        Row("python -c pass", ("-c", "pass"), ours=False),
        Row("import torch", ("-c", "import torch"), ours=False),
        Row(BASELINE, ("-c", BASELINE), ours=False),
        Row("import hf_seq2seq_rnn", ("-c", "import hf_seq2seq_rnn"), ours=True),
        Row("import training.predict", ("-c", "import training.predict"), ours=True),
        Row("training.predict --help", ("-m", "training.predict", "--help"), ours=True),
    ]
    for count in (1, lines) if lines > 1 else (1,):
        data = work / f"{count}-lines.txt"
        data.write_text(f"{sentence}\n" * count, encoding="utf-8")
        output = str(work / f"{count}-lines.out")
        label = "1 line" if count == 1 else f"{count} lines"
        rows.append(Row(f"training.predict, {label}", (*predict, "--dataset", str(data), "--output", output), True))
    return rows


def measure(row: Row, tree: Path, threads: int, log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one run of `row` in `tree`; exits with the end of its log if it fails."""
    env = {**thread_environment(threads), "PYTHONPATH": str(tree)}
    try:
        return run_measured([sys.executable, *row.arguments], env, log, cwd=tree)
    except RuntimeError as error:
        sys.exit(f"{row.name} ({tree}): {error}\n{log.read_text(encoding='utf-8', errors='replace')[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder written by training.train")
    add_threads_argument(parser, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each row (fastest and median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--lines", type=int, default=100, help="the size of the second input file (0: none)")
    parser.add_argument("--sentence", default="How are you?", help="the sentence of the input files")
    parser.add_argument("--before-tree", type=Path, help="a checkout of an earlier commit to run our rows in too")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    trees = {"this": REPO}
    if args.before_tree:
        trees["before"] = args.before_tree.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        work = Path(folder)
        rows = startup_rows(str(Path(args.model).resolve()), args.threads, args.sentence, args.lines, work)
        runs = [(row, name, tree) for row in rows for name, tree in trees.items() if row.ours or name == "this"]
        seconds: dict[tuple[str, str], list[float]] = {(row.name, name): [] for row, name, _ in runs}
        peaks: dict[tuple[str, str], float] = {}
        for round_ in range(args.warmup + args.repeats):
            for row, name, tree in runs:
                wall, peak = measure(row, tree, args.threads, work / "log.txt")
                if round_ >= args.warmup:
                    seconds[(row.name, name)].append(wall)
                    peaks[(row.name, name)] = max(peak, peaks.get((row.name, name), 0.0))
    import transformers  # only for the versions line, after the measured processes

    print(f"\n{machine_line(args.threads)}; transformers {transformers.__version__}")
    print(f"fastest and median of {args.repeats} runs each, in new processes; model {args.model}\n")
    baseline = min(seconds[(BASELINE, "this")])
    table = []
    for row, name, _ in runs:
        walls = seconds[(row.name, name)]
        tree = [name if row.ours else ""] if len(trees) > 1 else []
        table.append([
            row.name, *tree, f"{min(walls):.2f}", f"{statistics.median(walls):.2f}", f"{min(walls) / baseline:.2f}x",
            f"{peaks[(row.name, name)]:.0f}",
        ])  # fmt: skip
    headers = ["what", *(["tree"] if len(trees) > 1 else []), "fastest s", "median s", f"vs {BASELINE}", "peak MB"]
    print_table(headers, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
