"""Streams prepared so that a resumed one reads no row twice.

`datasets` resumes an `IterableDataset` from its `state_dict()`, but a batched `map` or `filter` on
a stream restarts its current batch on resume, reading up to a batch of consumed rows again. A
stream's functions therefore run one row per call (`one_row`), and its rows are python rows (an
Arrow source's state in datasets 4.7 counts a whole table as taken): `state_dict()` then stands at
the last row taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def one_row(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` of a batch (`{column: [values]}`) as a function of one row, for `datasets`' unbatched
    `map` and `filter`: it sees a batch of one, and its result is unwrapped (a row, or a bool).

    On a stream, unbatched functions leave `IterableDataset.state_dict()` at the last row taken; a
    batched one would restart its current batch on resume, reading those rows again.
    """

    def on_one_row(row: dict[str, Any], **kwargs: Any) -> Any:
        result = function({column: [value] for column, value in row.items()}, **kwargs)
        if isinstance(result, dict):
            return {column: values[0] for column, values in result.items()}
        return result[0]

    return on_one_row
