"""One task vocabulary: what training saves is what the chatbot reads back."""

from __future__ import annotations

import pytest

from seq2seq_tools.tasks import PIPELINE_TAGS, TASKS, UNKNOWN_TASK, task_of


@pytest.mark.parametrize("task", TASKS)
def test_each_task_reads_back_from_training_info_the_card_tags_or_the_pipeline_tag(task: str) -> None:
    assert task_of({"task": task}, {}) == task
    assert task_of({}, {"tags": ["seq2seq-rnn", task.upper()]}) == task
    assert task_of({}, {"pipeline_tag": PIPELINE_TAGS[task]}) == task
    other = next(name for name in TASKS if name != task)
    assert task_of({"task": task}, {"tags": [other]}) == task  # training_info.json comes first


def test_a_model_saved_without_a_task_is_unknown() -> None:
    assert task_of({}, {}) == UNKNOWN_TASK
    assert task_of({"task": "chat"}, {"tags": ["chatbot"], "pipeline_tag": "fill-mask"}) == UNKNOWN_TASK
