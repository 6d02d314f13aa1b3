"""The alignment agreement of two outputs (`seq2seq_tools.compare`), against cases worked by hand,
and the chatbot's comparison of models on one input (`chatbot.compare`, no Gradio).

    pytest tests/test_compare.py
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from chatbot.compare import TOO_FEW_MODELS, compare_replies
from chatbot.inference import DecodingSettings, EmptyInputError, load_served_model
from seq2seq_tools.attention import AttentionMap
from seq2seq_tools.compare import AlignmentAgreement, aligned_sources, alignment_agreement, pooled

try:  # the trained-model fixtures live beside the inference tests
    from test_chatbot_inference import (  # noqa: F401
        tiny_additive_model_dir,
        tiny_model_dir,
        tiny_model_without_attention_dir,
    )
except ModuleNotFoundError:
    from tests.test_chatbot_inference import (  # noqa: F401
        tiny_additive_model_dir,
        tiny_model_dir,
        tiny_model_without_attention_dir,
    )

SOURCE = ["a", "b", "c", "</s>"]


def one_hot_map(aligned: list[int], source: list[str] = SOURCE, end: bool = True) -> AttentionMap:
    """A map whose output token t puts 0.6 on source position `aligned[t]`, the rest spread evenly,
    and, when `end`, a final output `</s>` that attends to the source `</s>`."""
    rows = []
    for position in aligned:
        row = np.full(len(source), 0.4 / (len(source) - 1))
        row[position] = 0.6
        rows.append(row)
    labels = [f"o{t}" for t in range(len(aligned))]
    if end:
        rows.append(np.eye(len(source))[-1])
        labels.append("</s>")
    weights = np.array(rows, dtype=np.float32).reshape(len(rows), len(source))
    return AttentionMap(source_labels=list(source), output_labels=labels, weights=weights)


def test_outputs_of_different_lengths_are_compared_by_position_over_the_longer_length() -> None:
    reference = one_hot_map([0, 1, 2])  # 3 tokens, then </s>
    other = one_hot_map([0, 2, 2, 1])  # 4 tokens, then </s>
    # Positions 0..2 are compared: 0 = 0 agrees, 1 vs 2 does not, 2 = 2 agrees; the 4th token has no
    # counterpart and counts as a disagreement: 2 of max(3, 4) = 4.
    agreement = alignment_agreement(reference, other)
    assert agreement == AlignmentAgreement(agreed=2, compared=4)
    assert agreement.share == 0.5
    assert agreement.describe() == "2 of 4 output tokens (50%)"
    # The rule is symmetric in the two outputs.
    assert alignment_agreement(other, reference) == agreement


def test_special_tokens_take_no_part() -> None:
    # The first row puts most weight on the source </s> (0.7) but, among real tokens, most on "b":
    # its alignment is "b". The output </s> rows are not counted as tokens.
    weights = np.array([[0.1, 0.15, 0.05, 0.7], [0.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    reference = AttentionMap(list(SOURCE), ["x", "</s>"], weights)
    assert aligned_sources(reference) == [1]
    assert alignment_agreement(reference, one_hot_map([1])) == AlignmentAgreement(1, 1)
    assert alignment_agreement(reference, one_hot_map([1], end=False)) == AlignmentAgreement(1, 1)


def test_identical_alignments_agree_fully_and_empty_outputs_are_not_a_disagreement() -> None:
    assert alignment_agreement(one_hot_map([2, 0]), one_hot_map([2, 0])).share == 1.0
    empty = one_hot_map([])
    assert alignment_agreement(empty, empty) == AlignmentAgreement(0, 0)
    assert alignment_agreement(empty, empty).share == 1.0
    assert alignment_agreement(empty, one_hot_map([0, 1])) == AlignmentAgreement(0, 2)


def test_nothing_to_compare_without_attention_or_with_other_source_tokens() -> None:
    assert alignment_agreement(None, one_hot_map([0])) is None
    assert alignment_agreement(one_hot_map([0]), None) is None
    other_tokens = one_hot_map([0], source=["a", "bc", "</s>"])
    assert alignment_agreement(one_hot_map([0]), other_tokens) is None


def test_pooled_agreement_weights_each_input_by_its_tokens() -> None:
    total = pooled([AlignmentAgreement(2, 4), None, AlignmentAgreement(3, 3)])
    assert total == AlignmentAgreement(5, 7)
    assert pooled([None, None]) is None


@pytest.fixture(scope="module")
def three_models(tiny_model_dir: Path, tiny_additive_model_dir: Path, tiny_model_without_attention_dir: Path):
    from chatbot.app import model_names

    return model_names(
        [
            load_served_model(path)
            for path in (tiny_model_dir, tiny_additive_model_dir, tiny_model_without_attention_dir)
        ]
    )


@pytest.mark.slow  # trains the additive reverser (about 25 s) unless another test did
def test_models_compared_on_one_input_decode_alike_and_report_their_agreement(three_models) -> None:
    names = list(three_models)
    assert names == ["tiny-reverser", "tiny-additive", "tiny-no-attention"]
    comparison = compare_replies(three_models, names, "red cat dog tree", DecodingSettings(mode="beam", num_beams=3))
    general, additive, plain = comparison.replies
    assert general.reply.text == additive.reply.text == "tree dog cat red"
    assert general.length == additive.length == 4  # </s> not counted
    assert all(compared.reply.score is not None and compared.reply.score <= 0 for compared in comparison.replies)
    # Each agreement is the one computed from the two maps directly.
    assert additive.agreement == alignment_agreement(general.reply.attention, additive.reply.attention)
    assert additive.agreement.compared == 4
    assert general.agreement is None  # the reference itself
    assert plain.reply.attention is None and plain.agreement is None and not plain.has_attention
    assert comparison.shared_source
    data = comparison.to_dict()
    assert [model["name"] for model in data["models"]] == names
    assert data["models"][2]["attention"] is None


@pytest.mark.slow
def test_a_comparison_needs_two_models_and_an_input(three_models) -> None:
    settings = DecodingSettings()
    with pytest.raises(ValueError, match=re.escape(TOO_FEW_MODELS)):
        compare_replies(three_models, ["tiny-reverser"], "red cat", settings)
    with pytest.raises(EmptyInputError):
        compare_replies(three_models, ["tiny-reverser", "tiny-additive"], "   ", settings)
    with pytest.raises(ValueError, match="unknown model"):
        compare_replies(three_models, ["tiny-reverser", "nope"], "red cat", settings)


@pytest.mark.slow
def test_predict_compare_writes_the_models_side_by_side_with_their_agreement(
    tiny_model_dir: Path, tiny_additive_model_dir: Path, tiny_model_without_attention_dir: Path, tmp_path: Path
) -> None:
    import csv
    import json

    from training.predict import main

    rows = [
        ("red cat dog tree", "tree dog cat red"),
        ("sun moon", "moon sun"),
        ("book door road car", "car road door book"),
    ]
    test_file = tmp_path / "test.tsv"
    test_file.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    output = tmp_path / "side.tsv"
    models = [tiny_model_dir, tiny_additive_model_dir, tiny_model_without_attention_dir]
    arguments = [argument for model in models for argument in ("--model", str(model))]
    code = main([*arguments, "--compare", "--dataset", str(test_file), "--output", str(output), "--task", "qa"])
    assert code == 0
    with output.open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle, delimiter="\t"))
    labels = [model.name for model in models]
    assert [row["source"] for row in table] == [source for source, _ in rows]
    assert [row["reference"] for row in table] == [target for _, target in rows]
    assert [row[labels[0]] for row in table] == [target for _, target in rows]  # the reverser reverses
    assert all(row[f"{labels[2]} agreement"] == "" for row in table)  # no attention, nothing to compare
    summary = json.loads((tmp_path / "side.tsv.summary.json").read_text(encoding="utf-8"))
    first, additive, plain = summary["compare"]
    assert first["metrics"]["exact_match"] == 100.0 and first["agreement_with_first"] is None
    assert plain["agreement_with_first"] is None
    # The pooled agreement compares, per input, max(m, n) tokens of the two outputs.
    lengths = [(int(row[f"{labels[0]} tokens"]), int(row[f"{labels[1]} tokens"])) for row in table]
    assert additive["compared_tokens"] == sum(max(pair) for pair in lengths)
    shares = [float(row[f"{labels[1]} agreement"]) for row in table]
    agreed = sum(round(share * max(pair)) for share, pair in zip(shares, lengths, strict=True))
    assert additive["agreed_tokens"] == agreed


def test_predict_compare_refuses_one_model_and_flags_it_cannot_honour() -> None:
    from training.compare import check_compare_settings
    from training.errors import TrainingInputError
    from training.predict import parse_settings

    one = parse_settings(["--model", "a", "--compare", "--dataset", "t.tsv", "--output", "o.tsv"])
    with pytest.raises(TrainingInputError, match="two --model flags or more"):
        check_compare_settings(one)
    both = parse_settings(
        ["--model", "a", "--model", "b", "--compare", "--n-best", "2", "--dataset", "t", "--output", "o"]
    )
    with pytest.raises(TrainingInputError, match="--n-best does not combine with --compare"):
        check_compare_settings(both)
