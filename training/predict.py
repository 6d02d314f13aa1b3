"""Translate (or answer) a test set with a trained model, write the outputs, and score them.

    python -m training.predict --model runs/demo-translation --dataset test.tsv --output hyp.txt
    python -m training.predict --model runs/demo-translation --dataset - --output - < sentences.txt
    python -m training.predict --model runs/seed1 --model runs/seed2 --dataset test.tsv --output hyp.txt  # an ensemble
    python -m training.predict --model runs/dot --model runs/additive --compare --dataset test.tsv --output side.tsv
    seq2seq-rnn-predict --model runs/opus-en-fr --dataset Helsinki-NLP/opus_books --dataset-config en-fr \\
        --split train --output hyp.txt --num-beams 5 --n-best 3 --alignments align.jsonl --hard-alignments align.txt
    python -m training.predict --model runs/demo-translation --dataset newstest2013.de --dataset newstest2014.de \\
        --references newstest2013.en --references newstest2014.en --output hyps/  # the model loaded once

The data is read as training reads it (`training.data`: a local file in any format training accepts,
or a Hub dataset and `--split`, with the same schema detection and column flags); a plain-text file
of another extension (`test.de`) and `--dataset -` (stdin) hold one source per line, their
references given by `--references`; they are read line by line, without importing `datasets`.
Decoding goes through `seq2seq_tools.generation.generate_texts`, the path training and the chatbot
use: batches sorted by length, outputs in the input's order.
Any `generate()` setting not given comes from the model's `generation_config.json` (the settings
training evaluated with), so the BLEU printed here is the training evaluation's on the same data.

Writes, each atomically (a temporary file, then `os.replace`): `--output` (one line per input,
the best hypothesis), `--n-best-output` (`index ||| text ||| score`, K lines per input, Moses'
n-best layout), `--alignments` (one JSON line per input: source and output tokens and the attention
matrix of every hypothesis), `--hard-alignments` (Pharaoh `i-j` pairs of the best hypothesis, one
line per input) and `--summary` (metrics, settings, sentences/s, model, data, CPU). Bad input
ends with one line on stderr and exit code 2.

Several `--dataset` are decoded one after the other with the model loaded once (its start-up, a few
seconds of imports and loading, is paid once), each as a run of its own would decode it (same
settings, same seed). `--output` then names an existing folder, and each input's files go there
under the input's file name: `hyps/newstest2014.de.hyp` and `hyps/newstest2014.de.summary.json`
(its own metrics), and with `--n-best`, `--alignments` or `--hard-alignments` (each an existing
folder) `.nbest`, `.alignments.jsonl` and `.hard-alignments.txt` (`prediction.INPUT_SUFFIXES`);
`--references` is then given once per `--dataset`, in the same order. Every input is read, and
every output path checked, before the model loads: a missing file, two inputs of the same name,
`--output -` or a plain file as `--output` stop the run before anything is decoded or written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any

import torch
import transformers

import hf_seq2seq_rnn  # noqa: F401  (registers our model type with the Auto classes)
from seq2seq_tools import machine
from seq2seq_tools.attention import hard_alignment, pharaoh
from seq2seq_tools.decoding import effective_settings
from seq2seq_tools.decoding_options import DECODING_KEYS
from seq2seq_tools.generation import Generated, has_attention
from seq2seq_tools.options import OptionParser, add_options, from_namespace

from .compare import compare
from .errors import TrainingInputError, run_command
from .evaluation import compute_metrics, load_metrics
from .prediction import (
    STDIO,
    PredictData,
    PredictInput,
    PredictSettings,
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


def build_parser() -> argparse.ArgumentParser:
    parser = OptionParser(
        prog="python -m training.predict",
        allow_abbrev=False,
        description="Decode a test set with a trained hf_seq2seq_rnn model, write the outputs and score them. A "
        "switch is on given alone or with true, off with false or --no-SWITCH.",
    )
    fields = sorted(dataclasses.fields(PredictSettings), key=lambda item: not item.metadata["required"])
    names = [item.name for item in fields if item.name not in DECODING_KEYS]
    add_options(parser, PredictSettings, names)  # --model, --dataset, --output first
    decoding = parser.add_argument_group("decoding (what is not given comes from the model's generation_config.json)")
    add_options(decoding, PredictSettings, DECODING_KEYS)
    return parser


def parse_settings(argv: list[str] | None = None) -> PredictSettings:
    """The command line's settings; the decoding ones are checked with the model's generation config
    (`generation_settings`), where generate() checks them."""
    settings = from_namespace(PredictSettings, build_parser().parse_args(argv))
    if settings.summary == STDIO and settings.output == STDIO:
        raise TrainingInputError("--summary - with --output -: both would go to stdout; pass --summary FILE")
    if settings.n_best and settings.output == STDIO and settings.n_best_output is None:
        raise TrainingInputError("--n-best with --output -: pass --n-best-output FILE for the n-best lists")
    return settings


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
    decoder = Decoder(model, tokenizer, task, generation_settings(model, settings, tokenizer))
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


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 on bad input (one line on stderr)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = "python -m training.predict " + shlex.join(arguments)
    return run_command(lambda: predict(parse_settings(arguments), command=command))


__all__ = ["build_parser", "main", "parse_settings", "predict", "predict_input"]

if __name__ == "__main__":
    sys.exit(main())
