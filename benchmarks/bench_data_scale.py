"""From the command to the first training step on a corpus of millions of pairs, first run and second.

    python -m benchmarks.bench_data_scale --corpus ../shared/data/tatoeba-eng-fra/eng-fra.txt \
        [--sizes 1000000 4500000] [--variants ours one-worker before] [--before-tree DIR] [--threads 2] \
        [--training-flags '--hidden-size 16'] [--stream-resume-at 0.9]

For each size, the corpus's pairs are repeated (in order) to that many lines of a `.txt` file, as a
WMT-sized corpus would come: one file of source<TAB>target lines. Then, for each variant, with a
`datasets` cache of its own that starts empty:

- `ours`: `python -m training.train --config training/configs/translation_cpu.yaml --dataset FILE
  --max-steps 1` (a 1,000-pair validation split held out of the file, an evaluation of 8 pairs);
- `one-worker`: the same with `--preprocessing-num-workers 1`;
- `before`: the same command in the checkout `--before-tree` (an earlier commit's tree).

Each variant runs twice: the first run prepares the data, the second finds it in the cache. Printed per
size, variant and run: seconds from the command to the training plan (the log line just before the
first step), seconds of the whole command (the first step, the 8-pair evaluation and the save
included), the peak memory of the process tree (proportional set sizes summed, so that the pages
forked workers share with their parent count once; sampled every 0.1 s) and the peak resident set of
its largest process, and the ratio of the seconds to the first variant's first run.

With `--stream-resume-at F` (e.g. 0.9), then, per size: the `--streaming` pipeline of that command
(with the tokenizer of the first run), read to the fraction F of its rows, its position taken as a
checkpoint takes it (`ShuffledStream.state_dict()`); then a new pipeline resumed from that position
to its next row. Printed: the seconds of reading the consumed rows again (what a resume did before
the stream saved its position, through this pipeline's own reading), of the resume from the saved
position, and the size of the saved position.

Not a test: the times depend on the machine, its disk and what else runs on it.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import pickle
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

from .common import REPO, machine_line, print_table, thread_environment

CONFIG = "training/configs/translation_cpu.yaml"
# The log line written once the data, the model and the optimizer are ready, before the first step.
PLAN_LINE = " parameters for "
VARIANTS = ("ours", "one-worker", "before")


def write_corpus(corpus: Path, size: int, path: Path) -> Path:
    """`size` lines of `corpus`'s pairs, repeated in order, at `path`."""
    with open(corpus, encoding="utf-8") as handle:
        lines = [line if line.endswith("\n") else line + "\n" for line in handle if "\t" in line]
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(itertools.islice(itertools.cycle(lines), size))
    return path


def command(variant: str, data: Path, output: Path, threads: int, flags: list[str]) -> list[str]:
    arguments = [
        sys.executable, "-m", "training.train", "--config", CONFIG, "--dataset", str(data), "--output-dir", str(output),
        "--max-steps", "1", "--eval-steps", "100000", "--max-eval-samples", "8", "--num-samples", "0",
        "--num-threads", str(threads),
    ]  # fmt: skip
    if variant == "one-worker":
        arguments += ["--preprocessing-num-workers", "1"]
    return arguments + flags


def run(arguments: list[str], tree: Path, cache: Path, log: Path, threads: int) -> dict[str, float]:
    """Run one training command in `tree`: its seconds to the plan line and to the end, and its peak memory."""
    environment = {**thread_environment(threads), "PYTHONPATH": str(tree), "HF_DATASETS_CACHE": str(cache)}
    started = time.time()
    tree_peak = largest = 0
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(arguments, cwd=tree, env=environment, stdout=handle, stderr=subprocess.STDOUT)
        root = psutil.Process(process.pid)
        while process.poll() is None:
            try:  # proportional set sizes: forked workers share most of their pages with their parent
                sizes = [member.memory_full_info() for member in [root, *root.children(recursive=True)]]
            except psutil.Error:  # a worker ended between the listing and the reading
                continue
            tree_peak = max(tree_peak, sum(size.pss for size in sizes))
            largest = max(largest, *(size.rss for size in sizes))
            time.sleep(0.1)
    seconds = time.time() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[:4])} ... failed ({process.returncode}); see {log}")
    return {
        "plan": plan_seconds(log, started),
        "total": seconds,
        "tree_mb": tree_peak / 2**20,
        "largest_mb": largest / 2**20,
    }


def plan_seconds(log: Path, started: float) -> float:
    """Seconds from `started` (a wall-clock time) to the log's training plan line."""
    for line in log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines():
        if PLAN_LINE in line and line[:4].isdigit():
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp() - started
    raise RuntimeError(f"no training plan line in {log}")


def stream_resume(data: Path, tokenizer: Path, fraction: float, work: Path, flags: list[str]) -> list[str]:
    """Read the streaming pipeline of `data` to `fraction` of its rows, then resume a new one from its
    position: [rows read, seconds reading them, seconds resuming, MB of the position]."""
    from accelerate import PartialState

    from training.config import parse_config
    from training.stream import ShuffledStream
    from training.train import load_data

    PartialState()  # the one process of this pipeline, for the training script's process-aware logging

    config = parse_config([
        "--config", CONFIG, "--dataset", str(data), "--streaming", "--max-steps", "1", "--tokenizer", str(tokenizer),
        "--output-dir", str(work / "stream-run"), *flags,
    ])  # fmt: skip

    def pipeline() -> ShuffledStream:
        prepared = load_data(config)
        return ShuffledStream(prepared.train.remove_columns("length"), config.shuffle_buffer_size, config.seed)

    with open(data, encoding="utf-8") as handle:
        rows = sum(1 for _ in handle)
    target = int(fraction * rows)
    stream = pipeline()
    started = time.perf_counter()
    for _ in zip(range(target), stream, strict=False):
        pass
    reading = time.perf_counter() - started
    state = stream.state_dict()
    size = len(pickle.dumps(state)) / 2**20
    resumed = pipeline()
    started = time.perf_counter()
    resumed.load_state_dict(state)
    next(iter(resumed))
    return [f"{target:,}", f"{reading:.1f}", f"{time.perf_counter() - started:.2f}", f"{size:.1f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a file of source<TAB>target lines to repeat")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_500_000], help="pairs per corpus")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["ours", "one-worker"])
    parser.add_argument("--before-tree", type=Path, help="the checkout the `before` variant runs in")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every run (--num-threads)")
    parser.add_argument(
        "--training-flags", type=shlex.split, default=[], metavar="'FLAGS'",
        help="flags added at the end of every training.train command (they win), e.g. '--hidden-size 16'",
    )  # fmt: skip
    parser.add_argument(
        "--stream-resume-at", type=float, metavar="F",
        help="also time a --streaming resume at this fraction of each corpus (needs the `ours` variant)",
    )  # fmt: skip
    parser.add_argument("--work-dir", type=Path, help="where corpora, caches and runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.stream_resume_at and "ours" not in args.variants:
        parser.error("--stream-resume-at needs the `ours` variant, whose first run trains the tokenizer it uses")
    if "before" in args.variants and not args.before_tree:
        parser.error("the `before` variant needs --before-tree DIR (e.g. a git worktree of an earlier commit)")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)  # this process's own work: the stream resume
    print(machine_line(args.threads))
    rows, resumes = [], []
    for size in args.sizes:
        data = write_corpus(args.corpus, size, work / f"pairs-{size}.txt")
        baseline = None
        for variant in args.variants:
            tree = args.before_tree.resolve() if variant == "before" else REPO
            cache = work / f"cache-{size}-{variant}"
            shutil.rmtree(cache, ignore_errors=True)
            for attempt in ("first", "second"):
                output = work / f"run-{size}-{variant}-{attempt}"
                shutil.rmtree(output, ignore_errors=True)
                log = work / f"log-{size}-{variant}-{attempt}.txt"
                measured = run(
                    command(variant, data, output, args.threads, args.training_flags), tree, cache, log, args.threads
                )
                baseline = baseline or measured["total"]
                rows.append([
                    f"{size:,}", variant, attempt, f"{measured['plan']:.1f}", f"{measured['total']:.1f}",
                    f"{baseline / measured['total']:.2f}x", f"{measured['tree_mb']:.0f}", f"{measured['largest_mb']:.0f}",
                ])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
            shutil.rmtree(cache, ignore_errors=True)
        if args.stream_resume_at:
            tokenizer = work / f"run-{size}-ours-first"
            resumes.append(
                [f"{size:,}", *stream_resume(data, tokenizer, args.stream_resume_at, work, args.training_flags)]
            )
            print(" | ".join(resumes[-1]), flush=True)
        data.unlink()
    print()
    print(machine_line(args.threads))
    print_table(
        ["pairs", "variant", "run", "s to the plan", "s whole command", "speed vs first", "peak MB (tree, PSS)",
         "peak MB (largest process, RSS)"],
        rows,
    )  # fmt: skip
    if resumes:
        print()
        print_table(
            ["pairs", "rows read to the position", "s reading them again", "s resuming from the position",
             "MB of the position"],
            resumes,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
