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
references given by `--references`; these and a `.txt` are read line by line, without importing
`datasets`.
Decoding goes through `seq2seq_tools.generation.generate_texts`, the path training and the chatbot
use: batches sorted by length, outputs in the input's order.
Any `generate()` setting not given comes from the model's `generation_config.json` (the settings
training evaluated with), so the BLEU printed here is the training evaluation's on the same data
with `--shortlist none`: a translation model's vocabulary shortlist, learned at the end of training,
is predict's default (`PREDICT_SHORTLIST`, 100,100) and was in none of training's evaluations.

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

This file reads the command line (the options: `training.predict_options`); the run is
`training.predict_run`, imported once the command line is read, so that `--help` and a bad flag
answer without waiting for torch and transformers.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import shlex
import sys
import typing
from typing import Any

from seq2seq_tools.decoding_options import DECODING_KEYS
from seq2seq_tools.options import OptionParser, add_options, from_namespace

from .errors import TrainingInputError, run_command
from .predict_options import STDIO, PredictSettings


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


def predict(settings: PredictSettings, command: str = "") -> list[dict[str, Any]]:
    """Decode, score and write everything (`training.predict_run.predict`); returns the summary of each
    `--dataset`."""
    # Imported here, once the command line is read: torch and transformers take seconds to import,
    # which `--help` and a bad flag do not need.
    from . import predict_run

    return predict_run.predict(settings, command)


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 on bad input (one line on stderr)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = "python -m training.predict " + shlex.join(arguments)
    return run_command(lambda: predict(parse_settings(arguments), command=command))


def console(argv: list[str] | None = None) -> typing.NoReturn:
    """`main` as a process of its own (`python -m training.predict`, `seq2seq-rnn-predict`): its exit
    code, without the garbage collection over every object of torch and transformers that the
    interpreter's exit would run (about 0.7 s of the command; benchmarks/README.md, "Start-up").
    Everything is written by then: `gc.freeze` only leaves the objects alive to the process's end."""
    code = main(argv)
    gc.freeze()
    sys.exit(code)


__all__ = ["build_parser", "console", "main", "parse_settings", "predict"]

if __name__ == "__main__":
    console()
