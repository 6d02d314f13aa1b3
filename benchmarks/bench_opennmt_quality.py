"""Time to quality and decoding speed against OpenNMT-py 3.5.1, side by side in one run.

    python -m benchmarks.bench_opennmt_quality --corpus ../shared/data/tatoeba-eng-fra/eng-fra.txt \\
        --max-train 25000 --epochs 10 --budget-minutes 8 --reference-minutes 8 --eval-steps 100 --threads 1

The data: `common.reference_split` of the corpus (2,000 test pairs), and the first `--max-train` of its
training pairs, as `source<TAB>target` for us and as word-level `.src` / `.tgt` files for OpenNMT-py.

1. **Training, both systems at once**, each in its own process with `--threads` threads (one each on a
   2-core machine: neither waits for the other's core), each with its own recipe:
   - OpenNMT-py: its reference configuration (`bench_opennmt.onmt_config`: a 2-layer bidirectional
     LSTM encoder of 256, a 2-layer LSTM decoder of 256, general attention with input feeding, Adam
     1e-3, batch 64 sentences, words) for `--epochs` epochs, a checkpoint after each epoch;
   - ours: the README's CPU recipe (`training/configs/translation_cpu.yaml`, precision `--mixed-precision`) for
     `--budget-minutes` of training time, with the test split as its validation set: every
     `--eval-steps` it translates the 2,000 test sources greedily and scores them (that time is left
     out of its clock; greedy, because an early model's beam search runs every beam to the length
     limit and took minutes per evaluation);
   - then ours at OpenNMT-py's reference shape, same recipe otherwise, for `--reference-minutes`: the
     model the decoding comparison needs (same shape as OpenNMT-py's).
   Each system's own clock counts training only: vocabulary and tokenizer building are left out of
   both, and so is OpenNMT-py's start-up before its first step (`onmt_training_times`).
2. **Scoring OpenNMT-py's checkpoints**: `onmt_translate`, greedy like our evaluations, on the test
   sources, scored with the metric code our training and `training.predict` use (sacrebleu, cased,
   detokenized).
3. **Decoding, side by side**: `onmt_translate` and `python -m training.predict` on the same 2,000 test
   sources, one at a time, `--threads` threads each, beam 5 and greedy, ours in fp32 and int8, with the
   same-shape models of step 1; each system's own decoding clock (model loading excluded; the whole
   process's wall time beside it), fastest of `--repeats`, and the BLEU of each. `onmt_translate` runs
   twice: stopping as ours does (at `</s>` or `MAX_NEW_TOKENS`; the ratios are to this one) and with its
   default cap at 1.25 x the source's words, which ours has no counterpart of. Its scoring of the
   checkpoints in step 2 keeps that default.

Without OpenNMT-py (`bench_opennmt.ensure_onmt`: `--install-onmt` installs it), its rows are left out
with one line that says so, and ours are printed alone.

Printed: greedy BLEU against minutes for both, the time ours needs to reach OpenNMT-py's final BLEU
as a fraction of OpenNMT-py's time (the goal: at most 1/6), the decoding table (beam 5 and greedy,
with each one's BLEU) with ratios to `onmt_translate`, and the floor that this run's matrix-product
rate sets for ours.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from training.evaluation import compute_metrics, load_metrics

from .bench_model import matmul_rate
from .bench_opennmt import (
    add_onmt_arguments,
    beam_gflop,
    build_onmt_vocab,
    onmt_config,
    onmt_reports,
    onmt_setup,
    onmt_step_seconds,
)
from .bench_training import RECIPE
from .common import (
    REPO,
    add_quick_run_arguments,
    add_threads_argument,
    machine_line,
    print_table,
    read_pairs,
    reference_split,
    run_measured,
    write_pairs,
)

BEAM_SIZE, MAX_NEW_TOKENS, BATCH_SIZE = 5, 60, 64
SEARCHES = {"beam 5": BEAM_SIZE, "greedy": 1}
ONMT_SAME_RULE = "OpenNMT-py"  # onmt_translate stopping as ours does: </s> or MAX_NEW_TOKENS

# OpenNMT-py's reference shape in our flags (bench_opennmt.reference_config); the rest is the recipe.
REFERENCE_SHAPE = {
    "vocab-size": "8000", "embedding-size": "256", "hidden-size": "256", "num-layers": "2",
    "bidirectional-encoder": "true", "attention-type": "general", "input-feeding": "true",
    "batch-size": "64", "dropout": "0.3",
}  # fmt: skip


def prepare_data(corpus: Path, work: Path, max_train: int, split_sizes: tuple[int, int]) -> dict[str, Path]:
    """The test split and the first `max_train` training pairs, in both systems' formats."""
    splits = reference_split(read_pairs(str(corpus)), *split_sizes)
    train, test = splits["train"][:max_train], splits["test"]
    files = {
        "train_pairs": Path(write_pairs(train, work / "train.txt")),
        "test_pairs": Path(write_pairs(test, work / "test.txt")),
        "train_src": work / "train.src",
        "train_tgt": work / "train.tgt",
        "test_src": work / "test.src",
        "test_ref": work / "test.ref",
    }
    for name, rows, side in (("train_src", train, 0), ("train_tgt", train, 1), ("test_src", test, 0), ("test_ref", test, 1)):  # fmt: skip
        files[name].write_text("".join(row[side] + "\n" for row in rows), encoding="utf-8")
    return files


def onmt_training_times(log: Path) -> tuple[dict[int, float], float]:
    """Step -> seconds of training, from OpenNMT-py's reports, and the start-up taken out of them: its
    clock starts before it loads data (it reads the corpus until a 262,144-example bucket is full), so
    the start-up is the first report's time less its steps at the mean pace of the rest."""
    reports = onmt_reports(log)
    first, first_seconds = min(reports.items())
    start_up = first_seconds - first * onmt_step_seconds(log)
    return {step: seconds - start_up for step, seconds in reports.items()}, start_up


def ours_training_command(data: dict, output: Path, args: argparse.Namespace, shape: dict[str, str]) -> list[str]:
    """Our recipe, or OpenNMT-py's reference `shape` (then only a final evaluation)."""
    minutes, eval_steps = (args.reference_minutes, 10**9) if shape else (args.budget_minutes, args.eval_steps)
    flags = {
        **shape, "num-beams": "1", "max-new-tokens": str(MAX_NEW_TOKENS), "max-eval-samples": "2000",
        "num-samples": "0", "eval-steps": str(eval_steps), "mixed-precision": args.mixed_precision,
    }  # fmt: skip
    return [
        sys.executable, "-m", "training.train", "--config", RECIPE, "--checkpointing-steps", "1000000",
        "--dataset", str(data["train_pairs"]), "--validation-file", str(data["test_pairs"]),
        "--output-dir", str(output), "--max-minutes", str(minutes), "--num-threads", str(args.threads),
        *(f"--{key}={value}" for key, value in flags.items()), *args.training_flags,
    ]  # fmt: skip


def train_all(args: argparse.Namespace, bin_dir: Path | None, data: dict, env: dict[str, str]) -> dict[str, float]:
    """Step 1: OpenNMT-py's epochs (without OpenNMT-py: none) beside our two runs (recipe, then reference
    shape); wall seconds of each."""
    started = time.perf_counter()
    onmt, onmt_log = None, args.work_dir / "onmt_train.log"
    if bin_dir is not None:
        pairs = len(data["train_pairs"].read_text(encoding="utf-8").splitlines())
        steps_per_epoch = math.ceil(pairs / 64)
        config = onmt_config(data, args.work_dir, args.epochs * steps_per_epoch, True, save_every=steps_per_epoch)
        build_onmt_vocab(bin_dir, config, args.work_dir, env)
        started = time.perf_counter()
        with open(onmt_log, "w", encoding="utf-8") as log:
            onmt = subprocess.Popen(
                [str(bin_dir / "onmt_train"), "-config", str(config)], cwd=REPO, env=env, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
    walls = {}
    for name, shape in (("ours", {}), ("ours-reference-shape", REFERENCE_SHAPE)):
        output = args.work_dir / name
        shutil.rmtree(output, ignore_errors=True)
        walls[name], _ = run_measured(
            ours_training_command(data, output, args, shape), env, args.work_dir / f"{name}_train.log"
        )
    if onmt is not None:
        if onmt.wait() != 0:
            raise RuntimeError(f"onmt_train failed; see {onmt_log}")
        walls["OpenNMT-py"] = time.perf_counter() - started
    return walls


def onmt_translate(
    bin_dir: Path, checkpoint: Path, data: dict, beams: int, output: Path, env: dict[str, str], capped: bool = True
) -> tuple[float, list[str]]:
    """`onmt_translate` of the test sources: its own decoding time (model loading excluded) and the outputs.
    `capped`: its default stop at 1.25 x the source's words (`-max_length_ratio`), which ours does not
    have; else only the `MAX_NEW_TOKENS` limit that both share."""
    log = output.with_suffix(".log")
    run_measured(
        [str(bin_dir / "onmt_translate"), "-model", str(checkpoint), "-src", str(data["test_src"]),
         "-output", str(output), "-beam_size", str(beams), "-batch_size", str(BATCH_SIZE),
         "-max_length", str(MAX_NEW_TOKENS), "-report_time", *([] if capped else ["-max_length_ratio", "0"])],
        env, log,
    )  # fmt: skip
    line = next(line for line in log.read_text(encoding="utf-8").splitlines() if "Total translation time" in line)
    return float(line.rsplit(":", 1)[1]), output.read_text(encoding="utf-8").splitlines()


def ours_predict(model: Path, data: dict, beams: int, quantize: str, output: Path, threads: int, env: dict) -> dict:
    """`python -m training.predict` of the test pairs: its JSON summary (metrics, decoding seconds)."""
    summary = output.with_suffix(".json")
    command = [
        sys.executable, "-m", "training.predict", "--model", str(model), "--dataset", str(data["test_pairs"]),
        "--output", str(output), "--summary", str(summary), "--num-beams", str(beams), "--batch-size",
        str(BATCH_SIZE), "--max-new-tokens", str(MAX_NEW_TOKENS), "--quantize", quantize, "--num-threads", str(threads),
    ]  # fmt: skip
    wall, _ = run_measured(command, env, output.with_suffix(".log"))
    return {**json.loads(summary.read_text(encoding="utf-8")), "wall": wall}


def bleu_chrf(predictions: list[str], references: list[str]) -> dict[str, float]:
    return compute_metrics(load_metrics("translation"), "translation", predictions, references)


def onmt_curve(args: argparse.Namespace, bin_dir: Path | None, data: dict, env: dict) -> list[tuple[float, int, dict]]:
    """Step 2: (minutes, step, BLEU and chrF) of every OpenNMT-py checkpoint, greedy on the test sources
    (none without OpenNMT-py)."""
    if bin_dir is None:
        return []
    references = data["test_ref"].read_text(encoding="utf-8").splitlines()
    times, start_up = onmt_training_times(args.work_dir / "onmt_train.log")
    print(f"OpenNMT-py's start-up before its first step, left out of its times: {start_up:.0f} s")
    curve = []
    for checkpoint in sorted(args.work_dir.glob("onmt_model_feed1_step_*.pt"), key=lambda p: int(p.stem.rsplit("_", 1)[1])):  # fmt: skip
        step = int(checkpoint.stem.rsplit("_", 1)[1])
        _, outputs = onmt_translate(bin_dir, checkpoint, data, 1, args.work_dir / f"onmt_{step}.txt", env)
        curve.append((times[step] / 60, step, bleu_chrf(outputs, references)))
    return curve


def ours_curve(output: Path) -> list[tuple[float, int, dict]]:
    """(minutes, step, BLEU and chrF) of each of our evaluations on the test split during training."""
    info = json.loads((output / "training_info.json").read_text(encoding="utf-8"))
    return [
        (entry["training_seconds"] / 60, entry["step"], {"bleu": entry["bleu"], "chrf": entry["chrf"]})
        for entry in info["eval_history"]
        if "bleu" in entry and "training_seconds" in entry
    ]


def decode_all(
    args: argparse.Namespace, bin_dir: Path | None, data: dict, env: dict, onmt_checkpoint: Path | None
) -> dict:
    """Step 3: (system, search) -> fastest decoding seconds, wall seconds, outputs' BLEU / chrF and words
    (ours alone without OpenNMT-py)."""
    references = data["test_ref"].read_text(encoding="utf-8").splitlines()
    runs: dict[tuple[str, str], dict] = {}
    for _ in range(args.repeats):  # the systems take turns, so a drift of the machine falls on all alike
        for search, beams in SEARCHES.items():
            onmt_runs = (
                () if bin_dir is None else ((ONMT_SAME_RULE, False), ("OpenNMT-py, its 1.25 x source cap", True))
            )
            for name, capped in onmt_runs:
                started = time.perf_counter()
                output = args.work_dir / f"decode_onmt_{beams}_{'capped' if capped else 'uncapped'}.txt"
                seconds, outputs = onmt_translate(bin_dir, onmt_checkpoint, data, beams, output, env, capped)
                wall = time.perf_counter() - started
                record(runs, (name, search), seconds, wall, bleu_chrf(outputs, references), outputs)
            for quantize in ("none", "int8"):
                output = args.work_dir / f"decode_ours_{beams}_{quantize}.txt"
                model = args.work_dir / "ours-reference-shape"
                summary = ours_predict(model, data, beams, quantize, output, args.threads, env)
                outputs = output.read_text(encoding="utf-8").splitlines()
                name = "ours, int8" if quantize == "int8" else "ours, fp32"
                record(runs, (name, search), summary["seconds"], summary["wall"], summary["metrics"], outputs)
    return runs


def record(runs: dict, key: tuple[str, str], seconds: float, wall: float, scores: dict, outputs: list[str]) -> None:
    best = runs.get(key)
    if best is None or seconds < best["seconds"]:
        words = statistics.mean(len(line.split()) for line in outputs)
        runs[key] = {"seconds": seconds, "wall": wall, "words": words, **scores}


def print_curves(onmt: list, ours: dict[str, list], walls: dict[str, float], test_count: int) -> None:
    print(f"\nBLEU / chrF on the {test_count:,} test pairs (greedy) against each system's training minutes:\n")
    rows = [("OpenNMT-py", minutes, step, scores) for minutes, step, scores in onmt]
    rows += [(name, minutes, step, scores) for name, curve in ours.items() for minutes, step, scores in curve]
    print_table(
        ["system", "training minutes", "step", "BLEU", "chrF"],
        [[name, f"{minutes:.1f}", step, f"{s['bleu']:.1f}", f"{s['chrf']:.1f}"] for name, minutes, step, s in rows],
    )
    print("\nwall time of each training process, start-up and (ours) evaluations included: "
          + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in walls.items()))  # fmt: skip
    if not onmt:
        return
    final_minutes, _, final = onmt[-1]
    target, curve = final["bleu"], [(0.0, 0, {"bleu": 0.0})] + ours["ours"]
    print(f"\nOpenNMT-py after its last epoch: BLEU {target:.1f} at {final_minutes:.1f} min.")
    crossing = next((index for index, (_, _, s) in enumerate(curve) if s["bleu"] >= target), None)
    if crossing is None:
        print(f"Ours did not reach BLEU {target:.1f} within its budget.")
        return
    (before, _, low), (minutes, step, high) = curve[crossing - 1], curve[crossing]
    between = before + (target - low["bleu"]) / (high["bleu"] - low["bleu"]) * (minutes - before)
    print(f"Ours first reached it at its evaluation at {minutes:.1f} min (step {step}): {minutes / final_minutes:.3f} of "
          f"OpenNMT-py's time (goal: at most {1 / 6:.3f}); read linearly between that evaluation and the one "
          f"before, at {between:.1f} min ({between / final_minutes:.3f}).")  # fmt: skip


def print_decoding(runs: dict, data: dict, rate: float) -> None:
    from seq2seq_tools.loading import load_tokenizer

    print(f"\nDecoding the {data['test_count']:,} test sources, batches of {BATCH_SIZE}, at most {MAX_NEW_TOKENS} tokens, same-shape "
          "models (OpenNMT's reference shape), each system's own decoding clock, fastest run:\n")  # fmt: skip
    tokenizer = load_tokenizer(data["ours_model"])
    sources = data["test_src"].read_text(encoding="utf-8").splitlines()
    source_tokens = statistics.mean(len(ids) for ids in tokenizer(sources)["input_ids"])
    rows = []
    for (system, search), run in runs.items():
        onmt = runs.get((ONMT_SAME_RULE, search))
        rate_here = len(sources) / run["seconds"]
        versus = f"{onmt['seconds'] / run['seconds']:.2f}x" if onmt else "-"
        rows.append([
            system, search, f"{rate_here:.0f}", versus, f"{run['wall']:.1f}",
            f"{run['bleu']:.1f}", f"{run['chrf']:.1f}", f"{run['words']:.1f}",
        ])  # fmt: skip
    print_table(
        ["system", "search", "sentences/s", f"vs {ONMT_SAME_RULE}", "process wall s", "BLEU", "chrF", "words/output"],
        rows,
    )
    for search, beams in SEARCHES.items():
        ours = runs[("ours, fp32", search)]
        outputs = Path(data["work_dir"] / f"decode_ours_{beams}_none.txt").read_text(encoding="utf-8").splitlines()
        lengths = [len(ids) + 1 for ids in tokenizer(outputs, add_special_tokens=False, verbose=False)["input_ids"]]
        output_tokens = statistics.mean(lengths)
        floor = beam_gflop(len(sources), output_tokens, source_tokens, beams) / rate
        # generate() steps every row of a batch until its longest output ends; batches as generate_texts makes them
        order = sorted(range(len(sources)), key=lambda index: len(sources[index]))
        batches = [order[start : start + BATCH_SIZE] for start in range(0, len(order), BATCH_SIZE)]
        steps = sum(len(batch) * max(lengths[index] for index in batch) for batch in batches) / len(sources)
        padded = beam_gflop(len(sources), steps, source_tokens, beams) / rate
        if (ONMT_SAME_RULE, search) not in runs:
            print(f"{search}: the matrix products of our outputs take {floor:.1f} s at {rate:.0f} GFLOP/s, "
                  f"{padded:.1f} s stepping each batch to its longest output; fp32 ours used {ours['seconds']:.1f} s")  # fmt: skip
            continue
        onmt_seconds = runs[(ONMT_SAME_RULE, search)]["seconds"]
        print(f"{search}: the matrix products of our outputs ({output_tokens:.1f} tokens each, {source_tokens:.1f} "
              f"per source) take {floor:.1f} s at {rate:.0f} GFLOP/s, so ours is at most {onmt_seconds / floor:.1f}x "
              f"{ONMT_SAME_RULE}; stepping each batch to its longest output ({steps:.1f} steps per sentence, as "
              f"generate() does) takes {padded:.1f} s ({onmt_seconds / padded:.1f}x); fp32 ours used "
              f"{ours['seconds']:.1f} s")  # fmt: skip


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a file of src<TAB>tgt pairs (Tatoeba eng-fra.txt)")
    parser.add_argument("--max-train", type=int, default=25000, help="training pairs (the first of the split)")
    parser.add_argument("--epochs", type=int, default=10, help="OpenNMT-py's epochs (its reference run: 10)")
    parser.add_argument("--budget-minutes", type=float, default=10.0, help="training time of our recipe's run")
    parser.add_argument(
        "--reference-minutes", type=float, default=8.0, help="training time of our run at OpenNMT's shape"
    )
    parser.add_argument("--eval-steps", type=int, default=300, help="our test-set evaluations, every N steps")
    parser.add_argument(
        "--mixed-precision", default="auto", choices=["auto", "no", "bf16"], help="ours (default: auto)"
    )
    add_threads_argument(parser, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="decoding runs of each setting; the fastest counts")
    add_onmt_arguments(parser)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_opennmt_quality"))
    parser.add_argument("--skip-training", action="store_true", help="score and decode what --work-dir holds")
    add_quick_run_arguments(parser)
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"--corpus {args.corpus}: no such file; pass a file of src<TAB>tgt lines")
    return args


def main() -> None:
    args = parse_arguments()
    bin_dir, env = onmt_setup(args)
    data = prepare_data(args.corpus, args.work_dir, args.max_train, args.split_sizes)
    data.update(
        work_dir=args.work_dir,
        ours_model=args.work_dir / "ours-reference-shape",
        test_count=len(data["test_src"].read_text(encoding="utf-8").splitlines()),
    )
    walls = {} if args.skip_training else train_all(args, bin_dir, data, env)
    onmt = onmt_curve(args, bin_dir, data, env)
    ours = {name: ours_curve(args.work_dir / name) for name in ("ours", "ours-reference-shape")}
    last_checkpoint = args.work_dir / f"onmt_model_feed1_step_{onmt[-1][1]}.pt" if onmt else None
    rate = matmul_rate(args.threads)
    runs = decode_all(args, bin_dir, data, env, last_checkpoint)
    rate = max(rate, matmul_rate(args.threads))

    print(f"\n{machine_line(args.threads)}")
    print(f"{args.max_train:,} training pairs of {args.corpus.name}; OpenNMT-py {args.epochs} epochs, ours "
          f"{args.budget_minutes:g} min (recipe) and {args.reference_minutes:g} min (reference shape); "
          f"{args.threads} thread(s) per process; fp32 matrix-product rate {rate:.0f} GFLOP/s")  # fmt: skip
    print_curves(onmt, ours, walls, data["test_count"])
    print_decoding(runs, data, rate)


if __name__ == "__main__":
    main()
