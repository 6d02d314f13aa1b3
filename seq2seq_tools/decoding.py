"""The decoding settings a command or a request may give, on top of a model's generation config.

    arguments = generate_arguments(model, {"num_beams": 5, "max_length_a": 1.5})
    model.generate(**inputs, **arguments)

`training.predict` (its flags) and the chatbot's JSON endpoint (its request body) pass the same
settings the same way, so that they decode alike: the settings given go to `generate()`, the others
come from the model's `generation_config.json`. The settings and their bounds are declared once, in
`seq2seq_tools.decoding_options`.
"""

from __future__ import annotations

from typing import Any

from hf_seq2seq_rnn.search_seq2seq_rnn import decoding_settings
from hf_seq2seq_rnn.shortlist_seq2seq_rnn import check_setting

from .decoding_options import DECODING_KEYS, GENERATE_KEYS, SEARCH_KEYS, generate_value


def generate_arguments(model: Any, given: dict[str, Any], n_best: int = 1, tokenizer: Any = None) -> dict[str, Any]:
    """The `generate()` arguments for the settings `given` (keys of `DECODING_KEYS`, `None` for not
    given) and `n_best` hypotheses per source, checked where generate() checks them and, strictly,
    by transformers. A shortlist in force is read now, and checked against `tokenizer` when given. A
    length cap term given as `none` (`NO_CAP`) goes to generate() as `None`, which switches it off over
    the model's own value.

    Raises:
        ValueError: a key that is not a decoding setting, or a value that `decoding_settings` refuses
            (the message names the setting and what it accepts), or a shortlist asked of a model
            without a usable one (`load_shortlist`).
    """
    unknown = sorted(set(given) - set(DECODING_KEYS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a decoding setting; the settings are {', '.join(DECODING_KEYS)}")
    arguments = {key: generate_value(value) for key, value in given.items() if value is not None}
    num_beams = arguments.get("num_beams", model.generation_config.num_beams)
    if num_beams == 1 and model.generation_config.early_stopping:
        arguments["early_stopping"] = False  # a beam-search setting, refused with one beam
    arguments["num_return_sequences"] = n_best
    _, search = decoding_settings(model.generation_config, strict=True, **arguments)
    if search.shortlist is not None:  # FIRST and BEST within what the model's shortlist holds
        check_setting(search.shortlist, model.load_shortlist(tokenizer))
    return arguments


def effective_settings(model: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """The decoding settings in force for `generate_arguments`' result (the model's generation config
    under them, merged as generate() merges them), for a summary."""
    config, search = decoding_settings(model.generation_config, **arguments)
    values = {key: getattr(config, key) for key in (*GENERATE_KEYS, "early_stopping")}
    values.update({key: getattr(search, key) for key in SEARCH_KEYS})
    return {key: value for key, value in values.items() if value is not None}


__all__ = ["DECODING_KEYS", "GENERATE_KEYS", "effective_settings", "generate_arguments"]
