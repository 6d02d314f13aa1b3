"""The one check of a numeric setting, shared by the config, the search and the chatbot.

Python counts `True` as the int 1, and `float("nan")` and `float("inf")` are floats: none of them is a
number a setting can use (a NaN compares False with every bound, so a range check alone lets it in).
A flat sibling of the configuration file, which imports it, so `save_pretrained` copies it beside the
weights; it imports nothing, so the configuration stays free of torch.
"""

from __future__ import annotations

import math


def is_number(value: object) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value: object) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = ["is_number", "is_whole"]
