"""The benchmarks' corpus: a local file of `source<TAB>target` lines, or a `datasets` Hub id.

    pairs = read_pairs("data/eng-fra.txt")                      # a tab-separated file
    pairs = read_pairs("Helsinki-NLP/opus_books", "en-fr")      # a Hub dataset's train split

Without network access the Hub id fails with a message that says how to pass a file instead.
"""

from __future__ import annotations

import os
import sys

# Used when no corpus is given: a public English-French parallel corpus on the Hub.
DEFAULT_HUB_CORPUS = "Helsinki-NLP/opus_books"
DEFAULT_HUB_CONFIG = "en-fr"


def read_pairs(corpus: str, hub_config: str | None = None) -> list[tuple[str, str]]:
    """Non-empty (source, target) pairs of `corpus`; exits with a one-line message when it cannot be read."""
    if os.path.isfile(corpus):
        with open(corpus, encoding="utf-8") as handle:
            rows = [line.rstrip("\n").split("\t")[:2] for line in handle]
        pairs = [(row[0].strip(), row[1].strip()) for row in rows if len(row) == 2]
    else:
        pairs = _hub_pairs(corpus, hub_config)
    pairs = [(source, target) for source, target in pairs if source and target]
    if not pairs:
        sys.exit(f"no source<TAB>target pairs in {corpus}")
    return pairs


def _hub_pairs(name: str, hub_config: str | None) -> list[tuple[str, str]]:
    import datasets

    try:
        split = datasets.load_dataset(name, hub_config, split="train")
    except Exception as error:  # offline, unknown id, no such config: all end in the same advice
        sys.exit(
            f"cannot load the Hub dataset {name!r} (config {hub_config!r}): {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}. Offline or without the Hub, pass a local file "
            "of source<TAB>target lines instead, e.g. `python benchmarks/bench_training.py path/to/eng-fra.txt`."
        )
    if "translation" in split.column_names:  # {"en": ..., "fr": ...} per row
        languages = (hub_config or "").split("-")
        pairs = []
        for row in split["translation"]:
            source_lang, target_lang = languages if len(languages) == 2 else list(row)[:2]
            pairs.append((row[source_lang], row[target_lang]))
        return pairs
    text_columns = [column for column, feature in split.features.items() if getattr(feature, "dtype", "") == "string"]
    if len(text_columns) < 2:
        sys.exit(f"{name!r} has no 'translation' column and fewer than two text columns: {split.column_names}")
    return list(zip(split[text_columns[0]], split[text_columns[1]], strict=True))
