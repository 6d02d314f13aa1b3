"""The classic encoder–decoder experiments on character-level tasks, each variant through `training.train`.

    python -m benchmarks.bench_variants --threads 2 --plot benchmarks/variants.png

Two tasks, generated here with a fixed seed (no files, no network):
- addition: `16+75` -> `91`, operands 0–999;
- dates: one day between 1950 and 2049 written by Babel in one of 4 formats and 5 locales
  (`Wednesday, September 7, 1994`, `07.09.94`, `7 de septiembre de 1994` ...) -> `1994-09-07`.
  Spanish short dates (`7/9/94`) are left out: they read like American ones with day and month swapped.

Addition trains 25 epochs as in the textbook (about 3 s an epoch on one quiet thread), dates 2 epochs; each variant
trains with the settings of Saito's textbook ("Deep Learning from Scratch 2", chapters 7–8):
one LSTM layer of hidden 128 (addition) or 256 (dates), embedding 16, batch 128, Adam 1e-3 at a constant
rate, gradient clipping at 5, no dropout, a character tokenizer. Exact match (training's `qa` metric:
lowercase, punctuation dropped) is measured by greedy decoding on held-out pairs at the end of every epoch.

The variants: on addition, the fixed context vector (Sutskever et al., 2014; Cho et al., 2014) plain,
with reversed source, with peeky decoding and with both; on dates, reversed source with dot, general
and additive attention, general attention with input feeding, and a bidirectional encoder.

Every run is `python -m training.train ...`, run in this process; the table prints each command, so any
line can be repeated alone. `--init uniform` (Sutskever's U(-0.1, 0.1)) or `--init pytorch` (each
layer's PyTorch init) repeats the table with another init than the default, `scaled_embeddings`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import time

from hf_seq2seq_rnn.configuration_seq2seq_rnn import INIT_SCHEMES
from training.demos import dates_demo

from .common import REPO, add_threads_argument, machine_line

# name -> (task, hidden size, model flags)
VARIANTS = {
    "baseline": ("addition", 128, {"attention-type": "none"}),
    "reverse": ("addition", 128, {"attention-type": "none", "reverse-source": "true"}),
    "peeky": ("addition", 128, {"attention-type": "none", "peeky": "true"}),
    "reverse+peeky": ("addition", 128, {"attention-type": "none", "reverse-source": "true", "peeky": "true"}),
    "attention dot": ("dates", 256, {"attention-type": "dot", "reverse-source": "true"}),
    "attention general": ("dates", 256, {"attention-type": "general", "reverse-source": "true"}),
    "attention additive": ("dates", 256, {"attention-type": "additive", "reverse-source": "true"}),
    "input feeding": ("dates", 256, {"attention-type": "general", "reverse-source": "true", "input-feeding": "true"}),
    "bidirectional": ("dates", 256, {"attention-type": "general", "bidirectional-encoder": "true"}),
}


def addition_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` distinct `a+b` -> `a + b` pairs, operands uniform in 0–999."""
    rng = random.Random(seed)
    pairs: dict[str, str] = {}
    while len(pairs) < count:
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        pairs[f"{a}+{b}"] = str(a + b)
    return list(pairs.items())


def date_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` distinct written dates -> ISO dates (days 1950–2049, random locale and format): the
    training demo's `dates` corpus, which the chatbot's variants demo trains on."""
    pairs = dates_demo(count, seed)
    return list(zip(pairs["source"], pairs["target"], strict=True))


def write_task(task: str, count: int, seed: int, folder: str) -> str:
    """The task's pairs as `source<TAB>target` lines; returns the path.

    A text file keeps every field a string: JSON lines would have `datasets` read ISO dates as
    timestamps, and CSV would read sums as integers.
    """
    pairs = addition_pairs(count, seed) if task == "addition" else date_pairs(count, seed)
    path = os.path.join(folder, f"{task}.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{source}\t{target}\n" for source, target in pairs)
    return path


def training_arguments(
    data: str, hidden: int, flags: dict[str, str], args: argparse.Namespace, output_dir: str
) -> list[str]:
    """The `training.train` command line of one variant."""
    epochs = args.addition_epochs if "addition" in os.path.basename(data) else args.dates_epochs
    train_pairs = args.pairs - args.validation_pairs
    steps_per_epoch = -(-train_pairs // 128)
    settings = {
        "dataset": data,
        "task": "qa",
        "validation-size": str(args.validation_pairs),
        "max-eval-samples": str(args.eval_pairs),
        "tokenizer-type": "char",
        "vocab-size": "200",
        "min-frequency": "1",
        "max-source-length": "48",
        "max-target-length": "16",
        "embedding-size": "16",
        "hidden-size": str(hidden),
        "num-layers": "1",
        "bidirectional-encoder": "false",
        "dropout": "0",
        "init": args.init,
        **flags,
        "batch-size": "128",
        "learning-rate": "0.001",
        "lr-scheduler": "constant",
        "warmup-steps": "0",
        "max-grad-norm": "5",
        "num-epochs": str(epochs),
        "eval-steps": str(steps_per_epoch),
        "num-beams": "1",
        "max-new-tokens": "16",
        "num-samples": "0",
        "seed": str(args.seed),
        "num-threads": str(args.threads),
        "checkpointing-steps": str(10**9),
        "logging-steps": str(10**9),
        "report-to": "none",
        "output-dir": output_dir,
    }
    return [item for key, value in settings.items() for item in (f"--{key}", value)]


def run_variant(arguments: list[str], output_dir: str) -> tuple[list[float], float]:
    """Train one variant in this process; returns exact match (%) after each epoch and the seconds taken."""
    from training.train import main as train

    start = time.perf_counter()
    code = train(arguments)
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}: python -m training.train {shlex.join(arguments)}")
    with open(os.path.join(output_dir, "training_info.json"), encoding="utf-8") as handle:
        history = json.load(handle)["eval_history"]
    by_step = {entry["step"]: entry["exact_match"] for entry in history if entry["step"] > 0}
    return [by_step[step] for step in sorted(by_step)], time.perf_counter() - start


def plot(results: dict[str, list[float]], path: str, init: str) -> None:
    """One panel per task: exact match against epoch, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({VARIANTS[name][0] for name in results})
    figure, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for name, curve in results.items():
            if VARIANTS[name][0] == task:
                axis.plot(range(1, len(curve) + 1), curve, marker="o", label=name)
        axis.set(title=f"{task} (init={init})", xlabel="epoch", ylabel="exact match (%)", ylim=(0, 100))
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    parser.add_argument("--pairs", type=int, default=50_000, help="pairs generated per task (default 50,000)")
    parser.add_argument("--validation-pairs", type=int, default=5_000, help="held out of them (default 5,000)")
    parser.add_argument("--eval-pairs", type=int, default=1_000, help="held-out pairs scored each epoch")
    parser.add_argument("--addition-epochs", type=int, default=25, help="epochs on addition (default 25)")
    parser.add_argument("--dates-epochs", type=int, default=2, help="epochs on dates (default 2)")
    parser.add_argument(
        "--init", choices=INIT_SCHEMES, default=INIT_SCHEMES[0], help="the model's init (default: %(default)s)"
    )
    add_threads_argument(parser, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", default=os.path.join(REPO, "runs", "variants"))
    parser.add_argument("--plot", default=None, help="PNG of the curves (default OUTPUT_DIR/variants.png)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.makedirs(args.output_dir, exist_ok=True)
    data = {
        task: write_task(task, args.pairs, args.seed, args.output_dir)
        for task in sorted({VARIANTS[name][0] for name in args.variants})
    }
    print(f"{machine_line(args.threads)}; init={args.init}; {args.pairs} pairs per task\n")
    results: dict[str, list[float]] = {}
    rows = []
    for name in args.variants:
        task, hidden, flags = VARIANTS[name]
        output_dir = os.path.join(args.output_dir, name.replace(" ", "-").replace("+", "-"))
        arguments = training_arguments(data[task], hidden, flags, args, output_dir)
        curve, seconds = run_variant(arguments, output_dir)
        results[name] = curve
        rows.append((task, name, curve, seconds, arguments))
        print(
            f"done: {task} {name}: {' '.join(f'{value:.1f}' for value in curve)} ({seconds / 60:.1f} min)", flush=True
        )
    epochs = max(len(curve) for curve in results.values())
    print(f"\n{'task':<9} {'variant':<19} {'time':>7} " + " ".join(f"{f'ep {e + 1}':>5}" for e in range(epochs)))
    for task, name, curve, seconds, _ in rows:
        print(f"{task:<9} {name:<19} {seconds / 60:5.1f} m " + " ".join(f"{value:5.1f}" for value in curve))
    print(f"total {sum(row[3] for row in rows) / 60:.1f} minutes")
    print(
        f"\nexact match (%) on {args.eval_pairs} held-out pairs after each epoch; load average now "
        f"{os.getloadavg()[0]:.2f}\n"
    )
    for _, name, _, _, arguments in rows:
        print(f"{name}: python -m training.train {shlex.join(arguments)}")
    path = args.plot or os.path.join(args.output_dir, "variants.png")
    plot(results, path, args.init)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
