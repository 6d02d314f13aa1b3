"""Learn a model's vocabulary shortlist from training pairs, and save it beside the model.

    python -m training.shortlist --model runs/opus-en-fr --dataset train.tsv
    python -m training.shortlist --model runs/opus-en-fr --dataset Helsinki-NLP/opus_books \\
        --dataset-config en-fr --split train --max-pairs 300000

Training learns one at its end (`--shortlist-pairs`); this command is for a model trained before, or
from other data. It reads the data as training reads it, tokenizes both sides with the model's
tokenizer, learns the lexical table (`hf_seq2seq_rnn.shortlist_seq2seq_rnn.build_shortlist`: target
frequencies and IBM Model 1's p(t | s) by EM) from a seeded sample of at most `--max-pairs` pairs,
and writes `shortlist.safetensors` into the model folder (or `--output-dir`). Decoding then takes
`--shortlist FIRST,BEST` (predict, the chatbot) or `generate(shortlist=(first, best))`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shlex
import sys
import time
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_seq2seq_rnn.shortlist_seq2seq_rnn import (
    CANDIDATES_KEPT,
    FREQUENT_KEPT,
    Shortlist,
    build_shortlist,
    vocabulary_fingerprint,
)
from seq2seq_tools import loading
from seq2seq_tools.options import OptionParser, add_options, from_namespace, option, redeclared

from .data import DataSpec, data_spec, load_raw, schema_of, to_pairs
from .errors import TrainingInputError, run_command

logger = logging.getLogger(__name__)

# The pairs a shortlist is learned from at most, by default: EM keeps every co-occurrence of a source
# and a target token in memory (about 24 bytes each, some 150 per Tatoeba pair).
SHORTLIST_PAIRS = 200_000
_DATA_KEYS = ("dataset_config", "source_column", "target_column", "source_lang", "target_lang", "context_column")
_DATA_TYPES = typing.get_type_hints(DataSpec)
_DataFlags = dataclasses.make_dataclass(
    "_DataFlags",
    [redeclared(item, _DATA_TYPES[item.name]) for item in dataclasses.fields(DataSpec) if item.name in _DATA_KEYS],
)


@dataclass
class ShortlistSettings(_DataFlags):
    """The options of `python -m training.shortlist`."""

    model: str = option("the model folder (written by training.train)", required=True)
    dataset: str = option(
        "the training pairs: a local file or a Hub dataset name, read as training reads it", required=True
    )
    split: str = option("the split of a Hub dataset to learn from (a local file is read whole)", "train")
    max_pairs: int = option("learn from a seeded sample of at most this many pairs", SHORTLIST_PAIRS, minimum=1)
    frequent: int = option(
        "the most frequent target tokens kept (FIRST of --shortlist can go up to it)", FREQUENT_KEPT, minimum=1
    )
    candidates: int = option(
        "the candidates kept per source token (BEST of --shortlist can go up to it)", CANDIDATES_KEPT, minimum=1
    )
    seed: int = option("seed of the sample", 42)
    output_dir: str | None = option("where shortlist.safetensors goes (default: the model folder)")


def sample_indices(total: int, most: int, seed: int) -> list[int]:
    """A seeded sample of at most `most` of `range(total)`, in order (all of them when `total <= most`)."""
    if total <= most:
        return list(range(total))
    return sorted(random.Random(seed).sample(range(total), most))


def learn_shortlist(
    id_pairs: Iterable[tuple[Sequence[int], Sequence[int]]],
    tokenizer: Any,
    vocab_size: int,
    frequent: int = FREQUENT_KEPT,
    candidates: int = CANDIDATES_KEPT,
) -> Shortlist:
    """A shortlist from tokenized `(source_ids, target_ids)` pairs; special tokens are left out of the
    counts (they are always in the list)."""
    specials = set(tokenizer.all_special_ids)
    pairs = (
        ([i for i in source if i not in specials], [i for i in target if i not in specials])
        for source, target in id_pairs
    )
    return build_shortlist(
        pairs,
        vocab_size,
        specials,
        vocabulary=vocabulary_fingerprint(tokenizer),
        frequent=frequent,
        candidates=candidates,
    )


def shortlist_from_data(settings: ShortlistSettings) -> Path:
    """Read, sample, tokenize, learn and save; returns the file written."""
    try:
        loading.check_model_path(settings.model)
    except FileNotFoundError as error:
        raise TrainingInputError(f"--model {error}") from error
    config = loading.load_config(settings.model)
    tokenizer = loading.load_tokenizer(settings.model)
    spec = data_spec(settings, ("dataset", *_DATA_KEYS))
    splits = load_raw(spec.dataset, spec.dataset_config, streaming=False, split_name=settings.split, spec=spec)
    if settings.split not in splits:
        raise TrainingInputError(
            f"split {settings.split!r} not found in {settings.dataset}; its splits are {sorted(splits)}"
        )
    raw = splits[settings.split]
    pairs = to_pairs(raw, schema_of(raw, spec, settings.dataset))
    chosen = pairs.select(sample_indices(len(pairs), settings.max_pairs, settings.seed))
    if len(chosen) == 0:
        raise TrainingInputError(f"{settings.dataset} holds no pairs to learn a shortlist from")
    started = time.perf_counter()
    sources = tokenizer(list(chosen["source"]), add_special_tokens=False)["input_ids"]
    targets = tokenizer(list(chosen["target"]), add_special_tokens=False)["input_ids"]
    try:
        shortlist = learn_shortlist(
            zip(sources, targets, strict=True), tokenizer, config.vocab_size, settings.frequent, settings.candidates
        )
    except ValueError as error:
        raise TrainingInputError(f"{settings.dataset}: {error}") from error
    path = shortlist.save(settings.output_dir or settings.model)
    logger.info("shortlist learned from %d pairs in %.1f s", shortlist.pairs, time.perf_counter() - started)
    return path


def build_parser() -> OptionParser:
    parser = OptionParser(
        prog="python -m training.shortlist",
        description="Learn a model's vocabulary shortlist (Marian's lexical shortlist) from training pairs and save it "
        "beside the model, for --shortlist FIRST,BEST in decoding.",
    )
    add_options(parser, ShortlistSettings)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 on bad input (one line on stderr)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def run() -> None:
        settings = from_namespace(ShortlistSettings, build_parser().parse_args(arguments))
        path = shortlist_from_data(settings)
        print(f"shortlist written to {path} (python -m training.shortlist {shlex.join(arguments)})")

    return run_command(run)


__all__ = ["SHORTLIST_PAIRS", "ShortlistSettings", "learn_shortlist", "main", "sample_indices", "shortlist_from_data"]

if __name__ == "__main__":
    sys.exit(main())
