"""Several models on one test set, side by side: `python -m training.predict --compare`.

    python -m training.predict --model runs/no-attention --model runs/additive --compare \\
        --dataset test.tsv --output compare.tsv

Each `--model` decodes the whole test set on its own (no ensemble), all with the same settings:
the flags given, the rest from the first model's generation config. `--output` gets a TSV with one
row per input: the source, its reference when there is one, then for each model its output, its
score (log-probability per token), its length in tokens and, for every model after the first, the
share of output tokens whose most-attended source token is the first model's
(`seq2seq_tools.compare.alignment_agreement`, where outputs of different lengths are compared
position by position over the longer one; empty where either model has no attention). The summary
gives each model's metrics, mean score, mean length and pooled agreement (agreed over compared
tokens, summed over the test set).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import torch
import transformers

from seq2seq_tools.compare import AlignmentAgreement, alignment_agreement, pooled
from seq2seq_tools.decoding import effective_settings
from seq2seq_tools.generation import Generated

from .errors import TrainingInputError
from .evaluation import compute_metrics, load_metrics
from .predict_options import STDIO, PredictSettings
from .prediction import (
    PredictData,
    check_writable,
    cpu_description,
    decode,
    generation_settings,
    load_model_and_tokenizer,
    model_task,
    one_line,
    output_paths,
    predict_inputs,
    read_data,
    write_output,
)


def model_labels(paths: list[str]) -> list[str]:
    """A short column label per model: the folder's name, the whole path where two names clash."""
    names = [Path(path.rstrip("/")).name or path for path in paths]
    return [name if names.count(name) == 1 else path for name, path in zip(names, paths, strict=True)]


def check_compare_settings(settings: PredictSettings) -> None:
    """The flags that do not combine with `--compare`, refused before anything loads."""
    if len(settings.model) < 2:
        raise TrainingInputError("--compare needs two --model flags or more (the models to put side by side)")
    if len(settings.dataset) > 1:
        raise TrainingInputError("--compare puts models side by side on one --dataset; run it once per test set")
    for key in ("n_best", "alignments", "hard_alignments"):
        if getattr(settings, key):
            raise TrainingInputError(f"--{key.replace('_', '-')} does not combine with --compare; drop one of them")


def output_length(tokenizer: Any, result: Generated) -> int:
    """The output's length in tokens, special tokens (`</s>`, padding) not counted."""
    special = set(tokenizer.all_special_ids)
    return sum(1 for token in result.token_ids if token not in special)


def comparison_rows(
    labels: list[str],
    data: PredictData,
    results: list[list[Generated]],
    lengths: list[list[int]],
    agreements: list[list[AlignmentAgreement | None]],
) -> str:
    """The TSV: a header, then one row per input (see the module docstring)."""
    header = ["index", "source"] + (["reference"] if data.references is not None else [])
    for position, label in enumerate(labels):
        header += [label, f"{label} score", f"{label} tokens"]
        if position:
            header.append(f"{label} agreement")
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    for index, source in enumerate(data.sources):
        row: list[Any] = [index, one_line(source)]
        if data.references is not None:
            row.append(one_line(data.references[index]))
        for position in range(len(labels)):
            result = results[position][index]
            row += [one_line(result.text), f"{result.score:.4f}", lengths[position][index]]
            if position:
                agreement = agreements[position][index]
                row.append("" if agreement is None else f"{agreement.share:.4f}")
        writer.writerow(row)
    return text.getvalue()


def model_summaries(
    paths: list[str],
    labels: list[str],
    task: str,
    data: PredictData,
    results: list[list[Generated]],
    lengths: list[list[int]],
    agreements: list[list[AlignmentAgreement | None]],
    seconds: list[float],
) -> list[dict[str, Any]]:
    """The summary of each model: its metrics (with references), mean score and length, pooled
    agreement with the first model's alignment (None for the first) and decoding time."""
    metrics = load_metrics(task) if data.references is not None else None
    models = []
    for position, label in enumerate(labels):
        scores = [result.score for result in results[position]]
        total = pooled(agreements[position]) if position else None
        models.append(
            {
                "model": paths[position],
                "label": label,
                "metrics": None
                if metrics is None
                else compute_metrics(metrics, task, [r.text for r in results[position]], data.references),
                "mean_score": round(sum(scores) / len(scores), 4),
                "mean_tokens": round(sum(lengths[position]) / len(lengths[position]), 2),
                "agreement_with_first": None if total is None else round(total.share, 4),
                "agreed_tokens": None if total is None else total.agreed,
                "compared_tokens": None if total is None else total.compared,
                "seconds": round(seconds[position], 3),
            }
        )
    return models


def report_comparison(first: str, sentences: int, models: list[dict[str, Any]], report: TextIO) -> None:
    """A few lines for the terminal: each model's metrics, mean score, length and agreement."""
    print(f"{sentences} sentences, each model decoded alike; agreement: with {first}'s alignment", file=report)
    for model in models:
        scored = ", ".join(f"{name} {value:.2f}" for name, value in (model["metrics"] or {}).items())
        agreement = model["agreement_with_first"]
        print(
            f"  {model['label']}: {scored or 'no metrics'}; mean score {model['mean_score']:.3f}; "
            f"mean length {model['mean_tokens']:.1f} tokens; agreement "
            + ("—" if agreement is None else f"{100 * agreement:.1f}%"),
            file=report,
        )


def compare(settings: PredictSettings, command: str = "") -> dict[str, Any]:
    """Decode the test set with every model, write the side-by-side TSV and the summary; returns it."""
    check_compare_settings(settings)
    [item] = predict_inputs(settings)
    paths = output_paths(settings, item)
    check_writable(paths)
    loaded = [load_model_and_tokenizer(path, settings.trust_remote_code, settings.quantize) for path in settings.model]
    labels = model_labels(settings.model)
    task, info = model_task(settings)
    # Every model decodes with the first one's settings: predict's default shortlist only when each has one.
    given = generation_settings(loaded[0][0], settings, task=task, others=[model for model, _ in loaded[1:]])
    shared = {**effective_settings(loaded[0][0], given), "num_return_sequences": 1}  # every model decodes alike
    data = read_data(settings, info, item)
    results, lengths, seconds = [], [], []
    for label, (model, tokenizer) in zip(labels, loaded, strict=True):
        decoded, took = decode(
            model, tokenizer, data, settings, f"Decoding ({label})", with_attention=True, with_scores=True, **shared
        )
        seconds.append(took)
        results.append(decoded)
        lengths.append([output_length(tokenizer, result) for result in decoded])
    agreements = [  # per model, per input: with the first model's alignment (the first's own row unused)
        [alignment_agreement(ref.attention, result.attention) for ref, result in zip(results[0], own, strict=True)]
        for own in results
    ]
    models = model_summaries(settings.model, labels, task, data, results, lengths, agreements, seconds)
    summary = {
        "compare": models,
        "sentences": len(data.sources),
        "settings": {**shared, "batch_size": settings.batch_size, "quantize": settings.quantize, "task": task},
        "data": data.description,
        "outputs": paths,
        "cpu": cpu_description(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "command": command,
    }
    write_output(item.output, comparison_rows(labels, data, results, lengths, agreements))
    if "summary" in paths:
        write_output(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    report_comparison(labels[0], len(data.sources), models, sys.stderr if item.output == STDIO else sys.stdout)
    return summary


__all__ = ["compare", "model_labels"]
