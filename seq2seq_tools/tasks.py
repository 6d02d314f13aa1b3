"""The task vocabulary: one set of names from the training config to the model card to the chatbot.

A model is trained for a task (`translation` or `qa`, the `task` key of the training config), which
`training_info.json` records under `"task"` and the model card as a tag and a Hub pipeline tag. The
chatbot reads the task back from those files with `task_of`, never from the model's name, and
serves a `translation` model on its Translate tab and a `qa` model on its Chat tab.

A model saved without a task (an older or hand-made folder) is `UNKNOWN_TASK`: the chatbot offers
it on both tabs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TASKS = ("translation", "qa")
UNKNOWN_TASK = "unknown"
# The Hub's pipeline tag for each task (the Hub has no question-answering tag for free-form
# generated answers, so `qa` models are tagged as text generation).
PIPELINE_TAGS = {"translation": "translation", "qa": "text-generation"}


def task_of(training_info: Mapping[str, Any], card: Mapping[str, Any]) -> str:
    """The task a saved model was trained for: `training_info.json`'s `"task"`, else a task among
    the model card's tags, else the task of its pipeline tag, else `UNKNOWN_TASK`."""
    task = training_info.get("task")
    if task in TASKS:
        return task
    tags: Iterable[Any] = card.get("tags") or []
    for tag in tags:
        if str(tag).lower() in TASKS:
            return str(tag).lower()
    by_tag = {tag: task for task, tag in PIPELINE_TAGS.items()}
    return by_tag.get(str(card.get("pipeline_tag") or "").lower(), UNKNOWN_TASK)


__all__ = ["PIPELINE_TAGS", "TASKS", "UNKNOWN_TASK", "task_of"]
