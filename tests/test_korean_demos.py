"""The Korean demos: the chat demo speaks Korean with `--source-lang ko`, the Korean -> English CLDR
demo has Korean sources, and a short run of each Korean demo config learns, saves Korean example
prompts, and answers a Korean greeting in Korean.

    pytest tests/test_korean_demos.py            # the fast checks
    pytest tests/test_korean_demos.py -m slow    # the training runs
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from training.demos import chat_demo, demo_splits, describe_demo, translation_demo
from training.errors import TrainingInputError
from training.train import main

try:  # the run settings live beside the other training runs
    from test_training_run import REPO, SMALL, history
except ModuleNotFoundError:
    from tests.test_training_run import REPO, SMALL, history

HANGUL = re.compile("[\uac00-\ud7a3]")


def test_chat_demo_language_is_the_source_language():
    korean = demo_splits("chat", "ko", None, 0, 0)["train"]
    assert len(korean) > 400 and "category" in korean.column_names
    turns = [turn for conversation in korean["conversation"] for turn in conversation]
    assert sum(bool(HANGUL.search(turn)) for turn in turns) > 0.9 * len(turns)
    assert "안녕하세요" in turns
    english = chat_demo("en")["conversation"]
    assert not any(HANGUL.search(turn) for conversation in english for turn in conversation)
    assert describe_demo("chat", "ko", None).startswith("Korean conversations")


@pytest.mark.parametrize(
    ("source_lang", "target_lang", "message"),
    [
        ("ja", None, "source_lang='ja': the chat demo speaks en, ko"),
        ("ko", "en", "target_lang='en': the chat demo replies in its source_lang ('ko')"),
    ],
)
def test_chat_demo_refuses_languages_it_does_not_have(source_lang, target_lang, message):
    with pytest.raises(TrainingInputError, match=re.escape(message)):
        demo_splits("chat", source_lang, target_lang, 0, 0)


def test_korean_to_english_demo_has_korean_sources_and_english_targets():
    pairs = translation_demo(300, "ko", "en", seed=3)
    assert len(pairs) == 300
    assert all(HANGUL.search(source) or re.fullmatch(r"[\d. ]+", source) for source in pairs["source"])
    assert not any(HANGUL.search(target) for target in pairs["target"])
    assert any("년" in source and "월" in source for source in pairs["source"])


def test_a_bad_chat_language_is_one_line_and_exit_2(tmp_path):
    command = [sys.executable, "-m", "training.train", "--config", "training/configs/chat_demo_ko.yaml"]
    command += ["--source-lang", "jp", "--output-dir", str(tmp_path / "run")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: source_lang='jp': the chat demo speaks en, ko"


def generate(output, prompts: list[str]) -> list[str]:
    """The saved model's greedy replies, from a fresh process that reads only the saved files."""
    load = (
        "import json, sys; from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        "tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "inputs = tokenizer(json.loads(sys.argv[2]), return_tensors='pt', padding=True)\n"
        "ids = model.generate(**inputs, num_beams=1, max_new_tokens=30)\n"
        "print(json.dumps(tokenizer.batch_decode(ids, skip_special_tokens=True)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", load, str(output), json.dumps(prompts)],
        cwd=output.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
def test_korean_chat_demo_learns_and_answers_a_korean_greeting_in_korean(tmp_path):
    output = tmp_path / "demo-chat-ko"
    arguments = ["--config", "training/configs/chat_demo_ko.yaml", "--output-dir", str(output)]
    arguments += [*SMALL, "--max-steps", "300", "--eval-steps", "300", "--learning-rate", "0.005"]
    assert main(arguments) == 0
    evaluations = history(output)
    assert evaluations[-1]["step"] == 300 and evaluations[-1]["eval_loss"] < 0.85 * evaluations[0]["eval_loss"]
    info = json.loads((output / "training_info.json").read_text(encoding="utf-8"))
    assert info["examples"][0] == "안녕하세요" and all(HANGUL.search(example) for example in info["examples"])
    assert "Korean conversations of chatterbot-corpus" in info["description"]
    replies = generate(output, ["안녕하세요", "안녕"])
    assert all(HANGUL.search(reply) for reply in replies), replies


@pytest.mark.slow
def test_korean_to_english_demo_learns_to_translate_into_english(tmp_path):
    output = tmp_path / "demo-translation-ko"
    arguments = ["--config", "training/configs/translation_demo_ko.yaml", "--output-dir", str(output)]
    arguments += [*SMALL, "--max-steps", "400", "--eval-steps", "400", "--demo-size", "3000"]
    arguments += ["--validation-size", "100", "--max-eval-samples", "64", "--learning-rate", "0.005"]
    assert main(arguments) == 0
    evaluations = history(output)
    assert evaluations[-1]["eval_loss"] < 0.5 * evaluations[0]["eval_loss"]
    info = json.loads((output / "training_info.json").read_text(encoding="utf-8"))
    assert info["examples"][0] == "1999년 12월 24일 금요일"
    # A tiny model after 400 steps gets the form, not yet every number: English words, no Hangul.
    translations = generate(output, ["2030년 3월 3일", "1999년 12월 24일 금요일", "3개월 후"])
    assert all(re.search("[A-Za-z]{3}", text) and not HANGUL.search(text) for text in translations), translations
