"""One run of `python -m training.predict` (training/predict.py reads its command line): read every
input, load the model once, decode, score and write each input's outputs, and report; with
`--compare`, the models side by side (training/compare.py). The outputs are described in
training/predict.py.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import transformers

import hf_seq2seq_rnn  # noqa: F401  (registers our model type with the Auto classes)
from seq2seq_tools import machine
from seq2seq_tools.attention import hard_alignment, pharaoh
from seq2seq_tools.decoding import effective_settings
from seq2seq_tools.generation import Generated, has_attention

from .compare import compare
from .errors import TrainingInputError
from .evaluation import compute_metrics, load_metrics
from .predict_options import STDIO, PredictSettings
from .prediction import (
    PredictData,
    PredictInput,
    check_model_paths,
    check_writable,
    cpu_description,
    decode,
    generation_settings,
    load_models,
    model_task,
    one_line,
    output_paths,
    predict_inputs,
    read_data,
    write_output,
)

logger = logging.getLogger(__name__)


def hypotheses(result: Generated) -> list[Generated]:
    """A result's n-best list, best first."""
    return [result, *result.alternatives]


def alignment_record(index: int, source: str, result: Generated) -> dict[str, Any]:
    """One line of `--alignments`: the tokens and attention matrix (output x source) of every hypothesis."""
    best = result.attention
    return {
        "index": index,
        "source": source,
        "source_tokens": best.source_labels if best else None,
        "hypotheses": [
            {
                "rank": rank,
                "text": hypothesis.text,
                "score": hypothesis.score,
                "output_tokens": hypothesis.attention.output_labels,
                "attention": hypothesis.attention.weights.astype(float).round(6).tolist(),  # (output, source)
            }
            for rank, hypothesis in enumerate(hypotheses(result), start=1)
        ],
    }


def write_outputs(
    item: PredictInput,
    paths: dict[str, str],
    data: PredictData,
    results: list[Generated],
    summary: dict[str, Any],
) -> None:
    """Every output file of one input, each written atomically."""
    write_output(item.output, "".join(one_line(result.text) + "\n" for result in results))
    if "n_best_output" in paths:
        lines = [
            f"{index} ||| {one_line(hypothesis.text)} ||| {hypothesis.score:.6f}\n"
            for index, result in enumerate(results)
            for hypothesis in hypotheses(result)
        ]
        write_output(paths["n_best_output"], "".join(lines))
    if "alignments" in paths:
        records = [
            alignment_record(index, source, result)
            for index, (source, result) in enumerate(zip(data.sources, results, strict=True))
        ]
        write_output(paths["alignments"], "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    if "hard_alignments" in paths:
        lines = [pharaoh(hard_alignment(result.attention)) + "\n" for result in results]
        write_output(paths["hard_alignments"], "".join(lines))
    summary_path = STDIO if item.summary == STDIO else paths.get("summary")
    if summary_path:
        write_output(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class Decoder:
    """What every input of a run is decoded with: the model (or ensemble) loaded once, its tokenizer,
    the task its outputs are scored for, and the `generate()` arguments (`generation_settings`)."""

    model: torch.nn.Module
    tokenizer: Any
    task: str
    generation: dict[str, Any]


def predict(settings: PredictSettings, command: str = "") -> list[dict[str, Any]]:
    """Decode, score and write everything; returns the summary of each `--dataset`.

    Every input is read and every output path checked before the model loads, so that a bad one
    stops the run before anything is decoded or written."""
    threads, why = machine.choose_threads(settings.num_threads)
    torch.set_num_threads(threads)
    if why:
        logger.warning(why)
    if settings.compare:
        return [compare(settings, command)]
    inputs = predict_inputs(settings)
    paths = [output_paths(settings, item) for item in inputs]
    for item_paths in paths:
        check_writable(item_paths)
    check_model_paths(settings.model)
    task, info = model_task(settings)
    data = [read_data(settings, info, item) for item in inputs]
    model, tokenizer = load_models(settings.model, settings.trust_remote_code, settings.quantize)
    if (settings.alignments or settings.hard_alignments) and not has_attention(model):
        raise TrainingInputError(
            "the model has no attention (attention_type none): drop --alignments / --hard-alignments"
        )
    decoder = Decoder(model, tokenizer, task, generation_settings(model, settings, tokenizer, task))
    if len(inputs) == 1:
        return [predict_input(settings, inputs[0], paths[0], data[0], decoder, command)]
    if len(settings.model) > 1:
        print(f"ensemble of {len(settings.model)} models: {', '.join(settings.model)}")
    summaries = []
    for item, item_paths, item_data in zip(inputs, paths, data, strict=True):
        label = os.path.basename(os.path.normpath(item.dataset))
        summaries.append(predict_input(settings, item, item_paths, item_data, decoder, command, label))
    return summaries


def predict_input(
    settings: PredictSettings,
    item: PredictInput,
    paths: dict[str, str],
    data: PredictData,
    decoder: Decoder,
    command: str,
    label: str | None = None,
) -> dict[str, Any]:
    """Decode one input, score it and write its files; returns its summary. `label` names the input in
    the progress bar, and the line printed starts with its path, with several `--dataset`."""
    model, tokenizer, task, given = decoder.model, decoder.tokenizer, decoder.task, decoder.generation
    with_attention = bool(item.alignments or item.hard_alignments)
    description = "Decoding" if label is None else f"Decoding {label}"
    results, seconds = decode(
        model, tokenizer, data, settings, description, with_attention=with_attention,
        with_scores=bool(settings.n_best), **given,
    )  # fmt: skip
    metrics = None
    if data.references is not None:
        predictions = [result.text for result in results]
        metrics = compute_metrics(load_metrics(task), task, predictions, data.references)
    summary = {
        "metrics": metrics,
        "sentences": len(data.sources),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(len(data.sources) / seconds, 2),
        "settings": {
            **effective_settings(model, given),
            "n_best": settings.n_best,
            "batch_size": settings.batch_size,
            "quantize": settings.quantize,
            "task": task,
            "seed": settings.seed,
        },
        "model": settings.model[0] if len(settings.model) == 1 else settings.model,  # an ensemble: every member
        "data": data.description,
        "outputs": paths,
        "cpu": cpu_description(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "command": command,
    }
    write_outputs(item, paths, data, results, summary)
    report = sys.stderr if item.output == STDIO else sys.stdout
    scored = ", ".join(f"{name} {value:.2f}" for name, value in (metrics or {}).items()) or "no references, no metrics"
    if len(settings.model) > 1 and label is None:
        print(f"ensemble of {len(settings.model)} models: {', '.join(settings.model)}", file=report)
    rate = f"{len(data.sources)} sentences, {summary['sentences_per_second']:.1f} sentences/s; {scored}"
    print(rate if label is None else f"{item.dataset}: {rate}", file=report)
    return summary


__all__ = ["Decoder", "alignment_record", "hypotheses", "predict", "predict_input", "write_outputs"]
