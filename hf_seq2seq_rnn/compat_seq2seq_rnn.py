"""Where transformers releases differ at this model's boundary: the name of the generation state.

transformers up to 5.23 hands the decoder state to `forward` as `past_key_values`, 5.24 on as
`cache` (the old name stays a deprecated alias until 5.40), and the output classes name their
field to match. `forward` accepts both names (`given_state`) and returns the state in the field its
output class declares (`cache_field`). A flat sibling of the modeling file, which imports it, so
`save_pretrained` copies it beside the weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transformers import __version__ as transformers_version
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput


def cache_field(output_class: type[ModelOutput]) -> str:
    """The field in which `output_class` carries the decoder state: `cache` from transformers 5.24,
    `past_key_values` before. Writing the other name is a deprecation warning (5.24) or an error."""
    fields = {field.name for field in dataclasses.fields(output_class)}
    return "cache" if "cache" in fields else "past_key_values"


CACHE_FIELD = cache_field(Seq2SeqLMOutput)


def given_state(cache: Any, past_key_values: Any, other: dict[str, Any], state_class: type) -> Any:
    """The decoder state (a `state_class`) passed to `forward` under either name (`cache`, or the
    older `past_key_values`).

    `other` holds the keyword arguments `forward` does not name. A state among them means the caller
    (a newer transformers) calls it something else: ignoring it would restart every generation step
    from the encoder's state, so that is an error.
    """
    for name, value in other.items():
        if isinstance(value, state_class):
            raise RuntimeError(
                f"forward() was given the decoder state as {name}=, a name this model does not read "
                f"(it reads cache= or past_key_values=; transformers {transformers_version}): the state "
                "would not be carried between generation steps"
            )
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError("pass the decoder state once, as cache= (or past_key_values= before transformers 5.24)")
    return cache if cache is not None else past_key_values
