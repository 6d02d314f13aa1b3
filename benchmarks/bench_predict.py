"""Decoding speed and quality of `training.predict`: fp32 against int8, greedy against beam 5, one process.

    python -m benchmarks.bench_predict --model runs/demo-translation --dataset test.tsv --threads 1 [--repeats 3]

Each setting decodes the whole test set through the same path as `python -m training.predict`
(`generate_texts`, length-sorted batches), after one warm-up batch; the settings take turns, each
repeat running all of them once, so that a change in the machine's load falls on all of them
alike, and the fastest repeat of each is reported. The table gives sentences/s, the ratio to fp32
with the same search, and BLEU / chrF (or exact match / F1) against the references. torch's thread
count is fixed (`--threads`) and printed with the CPU and the load average.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from seq2seq_tools.generation import generate_texts
from seq2seq_tools.loading import read_training_info
from seq2seq_tools.quantization import quantize_int8
from training.evaluation import compute_metrics, load_metrics
from training.predict_options import PredictSettings
from training.prediction import load_model_and_tokenizer, predict_inputs, read_data

from .common import add_threads_argument, machine_line, print_table

SEARCHES = {"greedy": dict(num_beams=1, do_sample=False), "beam-5": dict(num_beams=5, early_stopping=True)}


def decode(model, tokenizer, sources: list[str], search: dict, batch_size: int, max_new_tokens: int):
    """The outputs and the seconds the decoding took."""
    started = time.perf_counter()
    results = generate_texts(model, tokenizer, sources, batch_size=batch_size, max_new_tokens=max_new_tokens, **search)
    return [result.text for result in results], time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder written by training.train")
    parser.add_argument("--dataset", required=True, help="a test file with references (any format predict reads)")
    add_threads_argument(parser, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each setting; the fastest counts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = PredictSettings(model=[args.model], dataset=[args.dataset], output="-")
    info = read_training_info(args.model)
    task = info.get("task", "translation")
    fp32, tokenizer = load_model_and_tokenizer(args.model)
    [item] = predict_inputs(settings)
    data = read_data(settings, info, item)
    if data.references is None:
        print(f"error: {args.dataset} has no references", file=sys.stderr)
        return 2
    models = {"fp32": fp32, "int8": quantize_int8(fp32)}
    metrics = load_metrics(task)
    seconds: dict[tuple[str, str], float] = {}
    scores: dict[tuple[str, str], dict[str, float]] = {}
    for search in SEARCHES.values():
        for model in models.values():  # warm-up: first-call allocations and kernel selection
            decode(model, tokenizer, data.sources[: args.batch_size], search, args.batch_size, args.max_new_tokens)
    for _ in range(args.repeats):
        for search_name, search in SEARCHES.items():
            for precision, model in models.items():
                outputs, spent = decode(model, tokenizer, data.sources, search, args.batch_size, args.max_new_tokens)
                key = (search_name, precision)
                seconds[key] = min(spent, seconds.get(key, float("inf")))
                scores[key] = compute_metrics(metrics, task, outputs, data.references)
    print(f"\n{machine_line(args.threads)}")
    print(f"{len(data.sources)} sentences, batch {args.batch_size}, fastest of {args.repeats}; model {args.model}\n")
    names = list(next(iter(scores.values())))
    rows = []
    for search_name, precision in seconds:
        rate = len(data.sources) / seconds[(search_name, precision)]
        baseline = len(data.sources) / seconds[(search_name, "fp32")]
        values = [f"{scores[(search_name, precision)][name]:.2f}" for name in names]
        rows.append([search_name, precision, f"{rate:.0f}", f"{rate / baseline:.2f}x", *values])
    print_table(["search", "weights", "sentences/s", "vs fp32", *names], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
