"""The decoding settings as command options, declared once: their type, help and bounds.

`python -m training.predict` takes every one (`DecodingOptions`), `python -m chatbot` this project's
own search settings (`SearchOptions`: the page chooses beams and sampling per message), and training
those it evaluates with and saves in `generation_config.json` (`decoding_fields`, with its defaults).
The chatbot's JSON endpoint reads the same names (`DECODING_KEYS`). A setting left `None` (null) comes
from the model's generation config; `generate()` checks a value passed to it in Python by the same rules
(`hf_seq2seq_rnn.search_seq2seq_rnn.decoding_settings`). The length cap's terms also take the word
`none` (`NO_CAP`): that term off, whatever the model's generation config says, which is `None` passed to
`generate()` (`generate_value`); `--max-length-a none --max-length-b none` decodes without the cap that
training saves. This module imports no torch, so that a command's `--help` stays quick.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from .options import option, redeclared, type_hints

# A length cap term switched off (`--max-length-a none`, `max_length_a: none` in YAML, "none" in a JSON
# request), where null leaves the term to the model's generation config: `generate()` takes it as None.
NO_CAP = "none"


@dataclass
class SearchOptions:
    """The settings of this project's own search, which transformers' `GenerationConfig` lacks
    (`hf_seq2seq_rnn.search_seq2seq_rnn.SearchSettings`, whose `SEARCH_SETTINGS` names the same)."""

    max_length_a: float | Literal["none"] | None = option(
        "cap each output at A x its source's tokens + B new tokens (fairseq's --max-len-a/--max-len-b), so that an "
        "early model stops babbling; none: no A term (with B none too: no cap)",
        minimum=0,
        metavar="A",
    )
    max_length_b: float | Literal["none"] | None = option(
        "B of that cap, in tokens; none: no B term (with A none too: no cap)", minimum=0, metavar="B"
    )
    coverage_penalty: float | None = option(
        "beam search: beta of the coverage penalty of Wu et al. (2016), which favours outputs whose attention "
        "covers the whole source (OpenNMT-py's -coverage_penalty wu -beta); null: off",
        minimum=0,
        metavar="BETA",
    )
    shortlist: str | None = option(
        "choose each token among the batch's vocabulary shortlist (Marian's lexical shortlist): the FIRST most "
        "frequent target tokens, the BEST translation candidates of each source token, and the special tokens; "
        "needs the model's shortlist.safetensors (python -m training.shortlist); null or none: the whole vocabulary",
        metavar="FIRST,BEST",
    )


@dataclass
class DecodingOptions(SearchOptions):
    """Every decoding setting a command takes: transformers' own that `generate()` reads, then those of
    `SearchOptions`."""

    num_beams: int | None = option("beams of beam search (1: greedy search, or sampling)", minimum=1)
    do_sample: bool | None = option("sample instead of searching")
    temperature: float | None = option("sampling: the logits are divided by this", above=0)
    top_k: int | None = option("sampling: from the k most likely tokens only (0: all)", minimum=0)
    top_p: float | None = option(
        "sampling: from the smallest set of tokens with this much probability (nucleus)", above=0, maximum=1
    )
    length_penalty: float | None = option(
        "beam search: a hypothesis's log-probability is divided by its length to this power"
    )
    max_new_tokens: int | None = option("the longest output, in tokens", minimum=1)


SEARCH_KEYS = tuple(item.name for item in dataclasses.fields(SearchOptions))
# transformers' settings, passed to `generate()` when given.
GENERATE_KEYS = tuple(item.name for item in dataclasses.fields(DecodingOptions) if item.name not in SEARCH_KEYS)
# Every decoding setting: transformers', then this project's search's.
DECODING_KEYS = (*GENERATE_KEYS, *SEARCH_KEYS)
_FIELDS = {item.name: item for item in dataclasses.fields(DecodingOptions)}
_HINTS = type_hints(DecodingOptions)


def generate_value(value: Any) -> Any:
    """A decoding setting's value as `generate()` takes it: `NO_CAP` ("none") is `None`, the setting off
    over the model's own (a length cap term; `--shortlist none` means the same, the whole vocabulary)."""
    return None if value == NO_CAP else value


def decoding_fields(defaults: dict[str, Any], whole: typing.Collection[str] = ()) -> list[tuple]:
    """`dataclasses.make_dataclass` entries for the decoding settings named in `defaults`, each with its
    declared help and bounds and the default given. The names in `whole` take no null: their type is
    the declared one without `None` (training needs a beam count; "null" there would mean nothing)."""
    entries = []
    for name, default in defaults.items():
        hint = _HINTS[name]
        if name in whole:
            hint = typing.Union[tuple(member for member in typing.get_args(hint) if member is not type(None))]  # noqa: UP007
        entries.append(redeclared(_FIELDS[name], hint, default))
    return entries


__all__ = [
    "DECODING_KEYS",
    "GENERATE_KEYS",
    "NO_CAP",
    "SEARCH_KEYS",
    "DecodingOptions",
    "SearchOptions",
    "decoding_fields",
    "generate_value",
]
