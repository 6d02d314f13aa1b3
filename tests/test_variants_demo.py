"""The variants demo of `python -m chatbot --variants`: the textbook's contrast set trained for real
on the embedded date task, loaded as the chatbot loads it, and compared on dates of growing length.

    pytest tests/test_variants_demo.py -m slow
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatbot import __main__ as cli
from chatbot.app import model_names
from chatbot.compare import compare_replies
from chatbot.demo_models import VARIANT_DEMOS, VARIANT_EXAMPLES, ensure_demo_models, is_trained
from chatbot.inference import DecodingSettings, load_served_model
from training.demos import dates_demo

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def test_the_dates_corpus_pairs_written_dates_with_their_iso_form() -> None:
    pairs = dates_demo(size=200, seed=1)
    assert len(set(pairs["source"])) == 200
    assert all(ISO_DATE.fullmatch(target) for target in pairs["target"])
    assert dates_demo(size=50, seed=1)["source"] == dates_demo(size=50, seed=1)["source"]


def test_variants_take_no_other_models(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--variants", "--model", "runs/x"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --variants serves its own models; leave out --model and --ensemble (see python -m chatbot --help)"
    ]


@pytest.mark.slow  # trains the five models for real (about 1-3 minutes on 2 cores)
def test_the_variants_train_load_and_reply(tmp_path: Path) -> None:
    directories = ensure_demo_models(tmp_path, VARIANT_DEMOS)
    assert [directory.name for directory in directories] == list(VARIANT_DEMOS)
    assert all(is_trained(directory) for directory in directories)
    models = model_names([load_served_model(directory) for directory in directories])
    assert list(models) == list(VARIANT_DEMOS)
    assert {name: loaded.info.has_attention for name, loaded in models.items()} == {
        "variants-no-attention": False,
        "variants-dot": True,
        "variants-additive": True,
        "variants-general-input-feeding": True,
        "variants-peeky": False,
    }
    settings = DecodingSettings(mode="greedy", max_new_tokens=16)
    for example in VARIANT_EXAMPLES:
        comparison = compare_replies(models, list(models)[:4], example, settings)
        for compared in comparison.replies:
            assert compared.reply.text and compared.reply.score is not None, (compared.name, example)
        assert sum(compared.reply.attention is not None for compared in comparison.replies) == 3
    # The lesson: with attention, the long written-out dates come out right (two of the three at
    # least: one run per model, and bf16 or fp32 training depends on the CPU).
    long_date = "Saturday, December 25, 1999"
    names = ["variants-dot", "variants-additive", "variants-general-input-feeding"]
    comparison = compare_replies(models, names, long_date, settings)
    replies = [compared.reply.text.replace(" ", "") for compared in comparison.replies]
    assert all(ISO_DATE.fullmatch(reply) for reply in replies), replies
    assert replies.count("1999-12-25") >= 2, replies
