"""The best model a time budget buys: today's recipe against the budget-aware one, weight averaging
and an ensemble, side by side on one machine.

    python -m benchmarks.bench_budget --corpus path/to/eng-fra.txt --budgets 8 20

For each budget (minutes of training, evaluation excluded) it trains, on the split of
`common.reference_split` (1,000 validation, 2,000 test, the rest for training):

- `constant`: the CPU recipe (`training/configs/translation_cpu.yaml`) with the schedule it had
  before the budget-aware one: `constant_with_warmup`, no weight average;
- `budget`: the recipe as it stands, linear decay to zero at the budget, plus an exponential moving
  average of the weights (`--ema-decay 0.999`), which the run evaluates and saves; its trained
  weights (the recipe's model) are those of its last checkpoint;
- `budget, seed 2`: the same with another seed, for the ensemble;
- `budget-checkpoints` (the budgets of `--checkpoint-average`): the `budget` run with a checkpoint
  every `--checkpoints-apart` steps, the last 5 kept and averaged by `python -m training.average`.

Every run has one torch thread and its own core (`taskset`); two run at once. The test split is then
translated by `python -m training.predict` (beam 4, at most 60 new tokens, the saved length cap) and scored
with sacrebleu (cased, detokenized): each run's model, the `budget` run's raw weights, and the
ensemble of the two `budget` models. A run whose model folder is already in `--work-dir` is not
trained again, so a second call only scores. Prints one table; writes nothing to the repo.
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    REPO,
    add_quick_run_arguments,
    machine_line,
    print_table,
    read_pairs,
    reference_split,
    thread_environment,
    write_pairs,
)

RECIPE = "training/configs/translation_cpu.yaml"
VARIANTS = {
    "constant": ["--lr-scheduler", "constant_with_warmup", "--ema-decay", "null"],
    "budget": ["--ema-decay", "0.999"],  # the recipe; the average does not change the trained weights
    "budget-seed2": ["--ema-decay", "0.999", "--seed", "43"],
}
# The `budget` run again, with checkpoints close together at its end, for checkpoint averaging.
CHECKPOINTS_AVERAGED = 5


@dataclass
class Job:
    name: str
    minutes: float
    flags: list[str]


def train(job: Job, core: int, data: dict[str, str], work: Path, args: argparse.Namespace) -> None:
    output = work / job.name
    if (output / "training_info.json").is_file():
        return
    shutil.rmtree(output, ignore_errors=True)
    command = [
        "taskset", "-c", str(core), sys.executable, "-m", "training.train", "--config", RECIPE,
        "--dataset", data["train"], "--validation-file", data["validation"], "--output-dir", str(output),
        "--max-minutes", str(job.minutes), "--num-threads", "1", "--mixed-precision", args.mixed_precision,
        "--eval-steps", str(args.eval_steps), "--num-samples", "0", *job.flags, *args.training_flags,
    ]  # fmt: skip
    with open(work / f"{job.name}.log", "w", encoding="utf-8") as log:
        subprocess.run(command, cwd=REPO, env=thread_environment(1), stdout=log, stderr=subprocess.STDOUT, check=True)


def on_cores(tasks: list, work: Callable[[Any, int], Any]) -> list:
    """`work(task, core)` for each task, two at a time, each on a core of its own; results in order."""
    free: queue.Queue[int] = queue.Queue()
    for core in (0, 1):
        free.put(core)

    def run(task: Any) -> Any:
        core = free.get()
        try:
            return work(task, core)
        finally:
            free.put(core)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(run, tasks))


def raw_weights(work: Path, name: str) -> Path:
    """A model folder with the run's trained (not averaged) weights: those of its last checkpoint."""
    run, folder = work / name, work / f"{name}-raw"
    index = json.loads((run / "checkpoints" / "index.json").read_text(encoding="utf-8"))
    if not folder.is_dir():
        shutil.copytree(run, folder, ignore=shutil.ignore_patterns("checkpoints", "logs"))
        shutil.copy(run / "checkpoints" / index["last"] / "model.safetensors", folder / "model.safetensors")
    return folder


def checkpoint_average(work: Path, name: str) -> Path:
    """A model folder with the mean of the run's last checkpoints, by `training.average`."""
    folder = work / f"{name}-average"
    if not folder.is_dir():
        command = [
            sys.executable, "-m", "training.average", "--checkpoints", str(work / name),
            "--last", str(CHECKPOINTS_AVERAGED), "--output", str(folder),
        ]  # fmt: skip
        subprocess.run(command, cwd=REPO, env=thread_environment(1), check=True, stdout=subprocess.DEVNULL)
    return folder


def entries_for(
    work: Path, tag: str, ensemble: bool, checkpoints_apart: int | None
) -> list[tuple[str, str, list[Path]]]:
    """(row label, the run it comes from, the model folders to decode) for one budget."""
    entries = [
        ("constant", f"constant-{tag}", [work / f"constant-{tag}"]),
        ("budget, trained weights", f"budget-{tag}", [raw_weights(work, f"budget-{tag}")]),
        ("budget, moving average (--ema-decay)", f"budget-{tag}", [work / f"budget-{tag}"]),
        ("budget seed 2, moving average", f"budget-seed2-{tag}", [work / f"budget-seed2-{tag}"]),
    ]
    if ensemble:
        models = [work / f"budget-{tag}", work / f"budget-seed2-{tag}"]
        entries.append(("ensemble of the two moving averages", f"budget-{tag}", models))
    if checkpoints_apart is not None:
        run = f"budget-checkpoints-{tag}"
        entries += [
            (f"budget (checkpoints {checkpoints_apart} steps apart), trained weights", run, [raw_weights(work, run)]),
            (f"the same, average of its last {CHECKPOINTS_AVERAGED} checkpoints", run, [checkpoint_average(work, run)]),
        ]
    return entries


def score(models: list[Path], name: str, data: dict[str, str], work: Path, core: int) -> dict[str, float]:
    """Test BLEU / chrF of `models` (several: their ensemble) through `training.predict`."""
    import sacrebleu

    output = work / f"{name}.hyp"
    if not output.is_file():
        command = [
            "taskset", "-c", str(core), sys.executable, "-m", "training.predict",
            *(flag for model in models for flag in ("--model", str(model))), "--dataset", data["test"],
            "--output", str(output), "--num-beams", "4", "--max-new-tokens", "60",
            "--num-threads", "1",
        ]  # fmt: skip
        with open(work / f"{name}.predict.log", "w", encoding="utf-8") as log:
            subprocess.run(command, cwd=REPO, env=thread_environment(1), check=True, stdout=log, stderr=log)
    hypotheses = output.read_text(encoding="utf-8").splitlines()
    references = [line.split("\t")[1] for line in Path(data["test"]).read_text(encoding="utf-8").splitlines()]
    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
    }


def slug(label: str, tag: str) -> str:
    return f"{tag}-" + "".join(character if character.isalnum() else "-" for character in label).strip("-")


def run_info(work: Path, name: str) -> dict:
    return json.loads((work / name / "training_info.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="a file of english<TAB>french lines (Tatoeba eng-fra.txt)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[8.0, 20.0], help="minutes of training")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench-budget"), help="splits, runs, outputs")
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16"], help="the same for every run")
    parser.add_argument("--eval-steps", type=int, default=500, help="validation BLEU every N steps (for the curve)")
    parser.add_argument("--no-ensemble", action="store_true", help="skip the ensemble rows")
    parser.add_argument(
        "--checkpoint-average",
        type=float,
        nargs="*",
        default=[8.0],
        help="the budgets (of --budgets) that also get a run with checkpoints to average (none: no such run)",
    )
    parser.add_argument("--checkpoints-apart", type=int, default=100, help="steps between those checkpoints")
    add_quick_run_arguments(parser)
    args = parser.parse_args(argv)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    data = {
        name: write_pairs(rows, work / f"{name}.txt")
        for name, rows in reference_split(read_pairs(args.corpus, None), *args.split_sizes).items()
    }
    # The runs compared run at the same time, one per core: constant beside budget, then the others.
    budgets = sorted(args.budgets, reverse=True)
    jobs = [Job(f"{name}-{minutes:g}min", minutes, VARIANTS[name]) for minutes in budgets for name in VARIANTS]
    checkpointed = [
        "--checkpointing-steps",
        str(args.checkpoints_apart),
        "--keep-checkpoints",
        str(CHECKPOINTS_AVERAGED),
    ]
    jobs += [Job(f"budget-checkpoints-{minutes:g}min", minutes, checkpointed) for minutes in args.checkpoint_average]
    jobs.sort(key=lambda job: job.name.startswith(("budget-seed2", "budget-checkpoints")))
    on_cores(jobs, lambda job, core: train(job, core, data, work, args))
    rows = []
    for minutes in args.budgets:
        tag = f"{minutes:g}min"
        checkpoints = args.checkpoints_apart if minutes in args.checkpoint_average else None
        entries = entries_for(work, tag, not args.no_ensemble, checkpoints)
        scores = on_cores(entries, lambda entry, core, tag=tag: score(entry[2], slug(entry[0], tag), data, work, core))
        baseline = scores[0]["bleu"]
        for (label, run, _), result in zip(entries, scores, strict=True):
            steps = run_info(work, run)["eval_history"][-1]["step"]
            bleu = f"{result['bleu']:.1f} / {result['chrf']:.1f}"
            rows.append((f"{minutes:g}", label, str(steps), bleu, f"{result['bleu'] - baseline:+.1f}"))
    print(f"\n{machine_line(1)}; every run on its own core, two at once; {args.mixed_precision}\n")
    print_table(["minutes", "model", "steps", "test BLEU / chrF (beam 4)", "BLEU vs constant"], rows)


if __name__ == "__main__":
    main()
