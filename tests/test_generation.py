"""The one text -> generate -> text path (`seq2seq_tools.generation.generate_texts`) and the dependency
direction it serves: training and the chatbot share it and never import each other."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import scramble_general_score, tiny_model
from test_search import step_rows

from hf_seq2seq_rnn.search_seq2seq_rnn import compact_search
from seq2seq_tools.generation import generate_texts

REPO = Path(__file__).resolve().parent.parent
TEXTS = ["red cat", "the sun and the moon over water", "dog", "fire water earth wind sun moon cat", "moon"]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    model, tokenizer = tiny_model(num_layers=1)
    # A random general score W_a: the default init's zero one attends uniformly, whatever the batch.
    return scramble_general_score(model), tokenizer


@pytest.mark.parametrize("settings", [dict(num_beams=1, do_sample=False), dict(num_beams=3)], ids=["greedy", "beam"])
def test_batched_results_equal_one_text_at_a_time_in_the_callers_order(model_and_tokenizer, settings):
    model, tokenizer = model_and_tokenizer
    batched = generate_texts(model, tokenizer, TEXTS, batch_size=3, with_attention=True, max_new_tokens=8, **settings)
    for text, result in zip(TEXTS, batched, strict=True):
        [alone] = generate_texts(model, tokenizer, [text], with_attention=True, max_new_tokens=8, **settings)
        assert result.token_ids == alone.token_ids and result.text == alone.text
        assert result.attention.source_labels == alone.attention.source_labels
        assert result.attention.output_labels == alone.attention.output_labels
        np.testing.assert_allclose(result.attention.weights, alone.attention.weights, atol=1e-5)
        assert result.attention.weights.shape == (len(result.token_ids), len(tokenizer(text)["input_ids"]))


@pytest.mark.parametrize("beams", [1, 3], ids=["greedy", "beam"])
def test_the_next_batch_joins_a_batch_s_last_open_sentence(model_and_tokenizer, beams):
    """At batch_size=8 the last open sentence of a batch (an eighth) decodes in the next batch's steps:
    only the last batch ends in steps of one sentence, where batches one after another each do
    (`custom_generate=compact_search`: one generate() a batch); never more than 8 sentences in a step,
    and each output the one its batch gives alone."""
    model, tokenizer = model_and_tokenizer
    # Batches of 8 texts as long as one another (so sorting keeps their order): 7 of 3 tokens and 1 of 12.
    # Each output runs to its source-relative cap (this model never chooses </s>): one long output a batch.
    texts = ["x y z w v u" if index % 8 == 7 else ("water water", "cat cat cat")[index % 2] for index in range(40)]
    settings = dict(num_beams=beams, max_new_tokens=30, max_length_a=2.0, max_length_b=0)
    with step_rows(model) as joined_rows:
        joined = generate_texts(model, tokenizer, texts, batch_size=8, **settings)
    with step_rows(model) as apart_rows:
        apart = generate_texts(model, tokenizer, texts, batch_size=8, custom_generate=compact_search, **settings)
    assert [r.token_ids for r in joined] == [r.token_ids for r in apart]

    def lone_runs(rows: list[int]) -> int:
        """Runs of steps that decode one sentence only (its beams)."""
        return sum(1 for before, now in itertools.pairwise([beams + 1, *rows]) if now <= beams < before)

    assert lone_runs(apart_rows) >= 3
    assert lone_runs(joined_rows) == 1
    assert max(joined_rows) <= 8 * beams


def sampled(model, tokenizer, seed: int, **settings) -> list[list[int]]:
    torch.manual_seed(seed)
    return [r.token_ids for r in generate_texts(model, tokenizer, TEXTS, max_new_tokens=6, **settings)]


def test_seeded_sampling_is_generates_own_sampling_and_each_seed_draws_its_own(model_and_tokenizer):
    """The same seed draws what `model.generate(do_sample=True)` draws on the same batch (the
    texts in order of length, as generate_texts batches them); another seed draws otherwise, and
    neither is greedy decoding."""
    model, tokenizer = model_and_tokenizer
    first = sampled(model, tokenizer, 5, do_sample=True)
    assert sampled(model, tokenizer, 5, do_sample=True) == first
    order = sorted(range(len(TEXTS)), key=lambda index: len(TEXTS[index]))
    inputs = tokenizer([TEXTS[index] for index in order], return_tensors="pt", padding=True)
    torch.manual_seed(5)
    with torch.inference_mode():
        direct = model.generate(**inputs, do_sample=True, max_new_tokens=6)  # (B, 1 + T)
    for row, index in enumerate(order):
        expected = direct[row, 1:].tolist()
        while expected and expected[-1] == tokenizer.pad_token_id:
            expected.pop()
        assert first[index] == expected, TEXTS[index]
    assert sampled(model, tokenizer, 6, do_sample=True) != first
    assert sampled(model, tokenizer, 5, do_sample=False) != first


def test_empty_input_gives_no_results(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert generate_texts(model, tokenizer, []) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(texts=[3]), "texts must be strings, got int"),
        (dict(texts=["a"], batch_size=0), "batch_size=0 must be an integer >= 1"),
        (dict(texts=["a"], num_return_sequences=0), "num_return_sequences=0 must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_named(model_and_tokenizer, arguments, message):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match=message):
        generate_texts(model, tokenizer, **arguments)


def imported_packages(folder: str, module_level_only: bool = False) -> set[str]:
    """Top-level packages imported by the Python files under `folder` (absolute imports), anywhere
    in the files or, with `module_level_only`, at import time."""
    found = set()
    for path in (REPO / folder).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body if module_level_only else ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def test_dependencies_run_one_way():
    assert "chatbot" not in imported_packages("training")
    assert "training" not in imported_packages("chatbot")
    assert not imported_packages("seq2seq_tools") & {"training", "chatbot", "benchmarks"}
    assert "matplotlib" not in imported_packages("seq2seq_tools", module_level_only=True)  # imported when drawing
    assert not imported_packages("hf_seq2seq_rnn") & {"seq2seq_tools", "training", "chatbot", "matplotlib"}
