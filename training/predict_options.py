"""The options of `python -m training.predict`, declared once (`PredictSettings`: each field is a flag),
without torch, transformers or `datasets`: the command reads its command line, and answers `--help`
or a bad flag, before it imports what decoding needs (`training.predict_run`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Literal

from seq2seq_tools.decoding_options import DecodingOptions
from seq2seq_tools.options import option, redeclared

from .data_spec import DataSpec

STDIO = "-"
# What `--shortlist` is when not given and a translation model has a shortlist (`training.prediction.default_shortlist`):
# on two models' held-out Tatoeba sets it cost no BLEU (benchmarks/README.md, "Fewer products per row").
PREDICT_SHORTLIST = "100,100"
_SHORTLIST = {item.name: item for item in dataclasses.fields(DecodingOptions)}["shortlist"]
NO_SUMMARY = "none"  # `--summary none`
# Training's data keys that say how to read a test set, declared once in `DataSpec` (type, default, help).
# `--source-lang` / `--target-lang` default to the model's own (its training_info.json).
DATA_KEYS = ("dataset_config", "source_column", "target_column", "source_lang", "target_lang", "context_column")
LANGUAGE_DEFAULT = dict.fromkeys(("source_lang", "target_lang"), "; default: the model's, from its training_info.json")
_DATA_TYPES = typing.get_type_hints(DataSpec)
DataFlags = dataclasses.make_dataclass(
    "DataFlags",
    [
        redeclared(item, _DATA_TYPES[item.name], item.default, suffix=LANGUAGE_DEFAULT.get(item.name, ""))
        for item in dataclasses.fields(DataSpec)
        if item.name in DATA_KEYS
    ],
)


@dataclass
class PredictSettings(DecodingOptions, DataFlags):
    """The options of `python -m training.predict`; each field is a flag (`num_beams` -> `--num-beams`): the
    data flags of training (`DataFlags`, from `DataSpec`), the decoding settings (`DecodingOptions`; what is
    not given comes from the model's generation_config.json), and these."""

    model: list[str] = option(
        "a folder written by training.train (save_pretrained), or a Hub id; repeat it to decode with an ensemble "
        "of the models (their log-probabilities averaged at each step; they must share a tokenizer, and the "
        "decoding settings and task are the first model's)",
        required=True,
    )
    dataset: list[str] = option(
        "the test data: a local file (.tsv, .csv, .json, .jsonl, .parquet, .txt, or UTF-8 text with any other "
        "extension, such as test.de, read as one source per line), a Hub dataset name, or - for one source per "
        "line on stdin. Repeat it to decode several inputs with the model loaded once: --output then names an "
        "existing folder, where each input's files are named after it (OUT/test.de.hyp, OUT/test.de.summary.json)",
        required=True,
    )
    shortlist: str | None = dataclasses.field(  # SearchOptions' flag, with predict's default
        default=None,
        metadata={
            **_SHORTLIST.metadata,
            "help": _SHORTLIST.metadata["help"].replace("null or none: the whole vocabulary", "")
            + f"predict's default: {PREDICT_SHORTLIST} for a translation model with a shortlist; none: the whole "
            "vocabulary",
        },
    )
    output: str = option(
        "where the outputs go, one line per input (- for stdout); with several --dataset, an existing folder that "
        "gets INPUT.hyp for each (INPUT: the input's file name)",
        required=True,
    )
    # and the data flags of training (`DataFlags`, from `DataSpec`), then
    split: str = option("the split of a Hub dataset to decode (a local file is read whole)", "test")
    references: list[str] = option(
        "a file of references, one per line, for sources without their own; with several --dataset, one per "
        "--dataset, in their order",
        [],
    )
    task: Literal["translation", "qa"] | None = option(
        "the metrics: BLEU and chrF (translation) or exact match and token F1 (qa); default: the model's task"
    )
    n_best: int | None = option("write the K best hypotheses per input with their scores (K <= --num-beams)", minimum=1)
    batch_size: int = option("sources per generate() call (batches hold sources of similar length)", 64, minimum=1)
    max_input_tokens: int | None = option(
        "truncate longer sources (default: the tokenizer's model_max_length)", minimum=1
    )
    seed: int = option("seed of sampling", 42)
    quantize: Literal["none", "int8"] = option(
        "int8: dynamic int8 weights in the LSTM/GRU and linear layers (CPU)", "none"
    )
    num_threads: int | None = option("torch threads (default: torch's own choice)", minimum=1)
    # more outputs; with several --dataset, each names an existing folder that gets INPUT + its suffix
    n_best_output: str | None = option(
        "where the n-best lists go (default: OUTPUT.nbest; with several --dataset, a folder for INPUT.nbest, by "
        "default the --output folder)"
    )
    alignments: str | None = option(
        "write one JSON line per input with tokens and attention matrices here (with several --dataset, a folder "
        "for INPUT.alignments.jsonl)"
    )
    hard_alignments: str | None = option(
        "write Pharaoh i-j pairs (argmax source token per output token) here (with several --dataset, a folder for "
        "INPUT.hard-alignments.txt)"
    )
    summary: str | None = option(
        "write the JSON summary here: a file, - for stdout, or none for no summary (default: OUTPUT.summary.json "
        "when --output is a file, none when it is -; with several --dataset, a folder for INPUT.summary.json, by "
        "default the --output folder, or none)"
    )
    trust_remote_code: bool = option("run the model folder's own code to load a model type this package lacks", False)
    compare: bool = option(
        "with two or more --model: decode with each model on its own, alike, and write their outputs, scores and "
        "lengths side by side (a TSV at --output) with each alignment's agreement with the first model's "
        "(training/compare.py), instead of an ensemble",
        False,
    )


__all__ = ["DATA_KEYS", "NO_SUMMARY", "STDIO", "PredictSettings"]
