"""Training benchmark on an English-French corpus: speed, time to a BLEU, BLEU per budget.

    python -m benchmarks.bench_training path/to/eng-fra.txt --minutes 20 --threads 2
    python -m benchmarks.bench_training --minutes 20 --threads 2    # the Hub's Helsinki-NLP/opus_books en-fr

The corpus is a file of `english<TAB>french` lines (the reference numbers below are for the whole
Tatoeba eng-fra.txt of manythings.org) or a `datasets` Hub id (`--hub-config` names its configuration).

The split is `common.reference_split`, the one of the OpenNMT-py reference run: the non-empty pairs
shuffled with seed 1, then 1,000 validation, 2,000 test, the rest for training. Training runs
`python -m training.train` with the CPU recipe, `training/configs/translation_cpu.yaml`, for
`--minutes` of training time (evaluation excluded), with
`torch.set_num_threads(--threads)`; the test split is then translated with beam search and scored
with sacrebleu (cased, detokenized, default settings). Prints a table; writes nothing to the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import yaml

from hf_seq2seq_rnn.configuration_seq2seq_rnn import INIT_SCHEMES

from .common import (
    DEFAULT_HUB_CONFIG,
    DEFAULT_HUB_CORPUS,
    REPO,
    add_quick_run_arguments,
    add_threads_argument,
    machine_line,
    print_table,
    read_pairs,
    reference_split,
    thread_environment,
    write_pairs,
)

RECIPE = "training/configs/translation_cpu.yaml"


def recipe_value(key: str) -> Any:
    """A key of the CPU recipe's config file, which every run here trains with."""
    with open(os.path.join(REPO, RECIPE), encoding="utf-8") as handle:
        return yaml.safe_load(handle)[key]


def score_test(model_dir: str, test_path: str, threads: int, num_beams: int) -> dict[str, float]:
    """Translate the test split with the saved model and score it with sacrebleu."""
    import sacrebleu
    import torch

    from seq2seq_tools.generation import generate_texts
    from seq2seq_tools.loading import load_model, load_tokenizer

    torch.set_num_threads(threads)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir).eval()
    with open(test_path, encoding="utf-8") as handle:
        sources, references = zip(*(line.rstrip("\n").split("\t") for line in handle), strict=True)
    started = time.perf_counter()
    results = generate_texts(model, tokenizer, sources, batch_size=64, num_beams=num_beams, max_new_tokens=60)
    predictions = [result.text for result in results]
    seconds = time.perf_counter() - started
    return {
        "bleu": sacrebleu.corpus_bleu(predictions, [list(references)]).score,
        "chrf": sacrebleu.corpus_chrf(predictions, [list(references)]).score,
        "translate_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "corpus",
        nargs="?",
        default=DEFAULT_HUB_CORPUS,
        help=f"a file of english<TAB>french lines, or a datasets Hub id (default: {DEFAULT_HUB_CORPUS})",
    )
    parser.add_argument(
        "--hub-config",
        default=DEFAULT_HUB_CONFIG,
        help=f"the Hub dataset's configuration (default: {DEFAULT_HUB_CONFIG})",
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="training time budget (evaluation excluded)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train this many optimizer steps instead of --minutes: a comparison (of inits, say) that the "
        "machine's load cannot tilt",
    )
    add_threads_argument(parser, default=2)
    parser.add_argument(
        "--target-bleu", type=float, default=10.0, help="report the training time to this validation BLEU"
    )
    parser.add_argument("--eval-steps", type=int, default=1000, help="validation BLEU every N steps")
    parser.add_argument("--work-dir", default=None, help="where splits and the model go (default: a temp folder)")
    parser.add_argument(
        "--mixed-precision", default="no", choices=["no", "bf16"], help="autocast of the training steps (default: no)"
    )
    parser.add_argument(
        "--init",
        default="scaled_embeddings",
        choices=INIT_SCHEMES,
        help="the model's init (default: scaled_embeddings)",
    )
    add_quick_run_arguments(parser)
    arguments = parser.parse_args(argv)
    pairs = read_pairs(arguments.corpus, arguments.hub_config)
    folder = arguments.work_dir or tempfile.mkdtemp(prefix="bench-training-")
    os.makedirs(folder, exist_ok=True)
    paths = {
        name: write_pairs(rows, os.path.join(folder, f"{name}.txt"))
        for name, rows in reference_split(pairs, *arguments.split_sizes).items()
    }
    output = os.path.join(folder, "model")
    # --steps: a step count instead of the recipe's budget (its schedule then decays over the steps).
    length = (
        ["--max-minutes", str(arguments.minutes)]
        if arguments.steps is None
        else ["--max-steps", str(arguments.steps), "--max-minutes", "null"]
    )
    command = [
        sys.executable, "-m", "training.train", "--config", RECIPE,
        "--dataset", paths["train"], "--validation-file", paths["validation"], "--output-dir", output,
        *length, "--num-threads", str(arguments.threads), "--eval-steps", str(arguments.eval_steps),
        "--mixed-precision", arguments.mixed_precision, "--init", arguments.init, "--checkpointing-steps", "1000000",
        *arguments.training_flags,
    ]  # fmt: skip
    subprocess.run(command, cwd=REPO, env=thread_environment(arguments.threads), check=True)
    with open(os.path.join(output, "training_info.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    history = [entry for entry in info["eval_history"] if "bleu" in entry]
    reached = next((e for e in history if e["bleu"] >= arguments.target_bleu and "training_seconds" in e), None)
    test = score_test(output, paths["test"], arguments.threads, recipe_value("num_beams"))
    rows = [
        ("training pairs (after filtering)", f"{info['data']['train']['kept']:,}"),
        ("threads (torch.set_num_threads)", str(arguments.threads)),
        ("mixed precision", arguments.mixed_precision),
        ("init", arguments.init),
        (
            "training budget",
            f"{arguments.steps} steps" if arguments.steps else f"{arguments.minutes:g} min (evaluation excluded)",
        ),
        ("optimizer steps", str(history[-1]["step"] if history else "?")),
        ("training target tokens/s", f"{info['throughput']['target_tokens_per_second']:,.0f}"),
        (
            f"time to validation BLEU {arguments.target_bleu:g}",
            f"{reached['training_seconds'] / 60:.1f} min (step {reached['step']})" if reached else "not reached",
        ),
        (
            "validation BLEU / chrF (500 pairs)",
            f"{history[-1]['bleu']:.1f} / {history[-1]['chrf']:.1f}" if history else "?",
        ),
        (
            f"test BLEU / chrF ({arguments.split_sizes[1]:,} pairs, beam {recipe_value('num_beams')})",
            f"{test['bleu']:.1f} / {test['chrf']:.1f}",
        ),
        ("test translation time", f"{test['translate_seconds']:.0f} s"),
    ]
    print(f"\n{machine_line(arguments.threads)}\n")
    print_table(["measure", "value"], rows)
    print("\ncommand:", " ".join(command[1:]))


if __name__ == "__main__":
    main()
