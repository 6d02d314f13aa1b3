"""A saved directory loads as a Hub checkpoint does: in a fresh process, through the Auto classes
and the pipeline, with remote code and without this package imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import tiny_model
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

SENTENCES = ["the cat sleeps", "le chat dort", "a dog runs", "un chien court", "안녕하세요", "잘 지내요"] * 10


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    model, tokenizer = tiny_model(
        SENTENCES, embedding_size=16, hidden_size=32, cell_type="gru", attention_type="additive", input_feeding=True
    )
    model.generation_config.max_new_tokens = 6
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def run_fresh(code: str, cwd: Path) -> str:
    """Run `code` in a new interpreter that cannot import this package, offline, as a Hub user would."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    # The package is installed here; a Hub user has only the files in the directory.
    script = "import sys; sys.modules['hf_seq2seq_rnn'] = None\n"
    result = subprocess.run(
        [sys.executable, "-c", script + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_directory_has_code_and_auto_map(saved_dir):
    config = json.loads((saved_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_seq2seq_rnn.Seq2SeqRNNConfig",
        "AutoModel": "modeling_seq2seq_rnn.Seq2SeqRNNModel",
        "AutoModelForSeq2SeqLM": "modeling_seq2seq_rnn.Seq2SeqRNNForConditionalGeneration",
    }
    assert "seq2seq-rnn" in config["custom_pipelines"]
    for name in [
        "configuration_seq2seq_rnn.py",
        "modeling_seq2seq_rnn.py",
        "attention_seq2seq_rnn.py",
        "recurrent_seq2seq_rnn.py",
        "pipeline_seq2seq_rnn.py",
        "tokenizer.json",
        "generation_config.json",
    ]:
        assert (saved_dir / name).is_file(), name


def test_fresh_process_loads_with_remote_code(saved_dir, tmp_path):
    expected = (
        AutoModelForSeq2SeqLM.from_pretrained(saved_dir)
        .generate(
            **AutoTokenizer.from_pretrained(saved_dir, trust_remote_code=True)(["the cat sleeps"], return_tensors="pt"),
            num_beams=2,
        )
        .tolist()
    )
    output = run_fresh(
        f"""
        import json, torch
        from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer
        try:
            import hf_seq2seq_rnn
            raise SystemExit("the package must not be importable here")
        except ImportError:
            pass
        try:
            AutoModelForSeq2SeqLM.from_pretrained({str(saved_dir)!r}, trust_remote_code=False)
            raise SystemExit("loading without trust_remote_code must be refused")
        except ValueError as error:
            assert "trust_remote_code" in str(error)
        model = AutoModelForSeq2SeqLM.from_pretrained({str(saved_dir)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(saved_dir)!r}, trust_remote_code=True)
        base = AutoModel.from_pretrained({str(saved_dir)!r}, trust_remote_code=True)
        print(type(model).__module__.startswith("transformers_modules"), type(base).__name__)
        print(json.dumps(model.generate(**tokenizer(["the cat sleeps"], return_tensors="pt"), num_beams=2).tolist()))
        """,
        tmp_path,
    )
    first, second = output.strip().splitlines()[-2:]
    assert first == "True Seq2SeqRNNModel"
    assert json.loads(second) == expected


def decoded_generate(saved_dir: Path, text: str, **settings) -> list[str]:
    """`tokenizer.decode(model.generate(...))` for one text: what the pipeline must return."""
    tokenizer = AutoTokenizer.from_pretrained(saved_dir, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(saved_dir).eval()
    sequences = model.generate(**tokenizer([text], return_tensors="pt"), **settings)
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in sequences]


def test_pipeline_in_a_fresh_process(saved_dir, tmp_path):
    output = run_fresh(
        f"""
        from transformers import pipeline
        pipe = pipeline("seq2seq-rnn", model={str(saved_dir)!r}, trust_remote_code=True)
        print(type(pipe).__name__, repr(pipe("the cat sleeps", num_beams=2)[0]["generated_text"]))
        """,
        tmp_path,
    )
    name, text = output.strip().splitlines()[-1].split(" ", 1)
    assert name == "Seq2SeqRNNPipeline"
    assert [eval(text)] == decoded_generate(saved_dir, "the cat sleeps", num_beams=2)  # noqa: S307 - our own repr


@pytest.mark.parametrize("batch_size", [1, 2], ids=["one-at-a-time", "batched"])
def test_pipeline_equals_decoding_generate_with_several_sequences(saved_dir, batch_size):
    """For each text, the pipeline's replies are `tokenizer.decode(model.generate(...))` of that
    text alone, in order, also when it batches texts of different lengths (padding) and returns
    several sequences per text."""
    pipe = pipeline("seq2seq-rnn", model=str(saved_dir), trust_remote_code=True)
    texts = ["a dog runs", "안녕하세요", "the cat sleeps", "un chien court"]
    settings = dict(num_beams=3, num_return_sequences=2)
    results = pipe(texts, batch_size=batch_size, **settings)
    expected = [decoded_generate(saved_dir, text, **settings) for text in texts]
    assert [[item["generated_text"] for item in result] for result in results] == expected
    assert len({reply for replies in expected for reply in replies}) > 2, "the replies are too alike to tell apart"
    [single] = pipe(["a dog runs"], return_tensors=True, batch_size=batch_size)
    assert single[0]["generated_token_ids"].tolist() == decoded_ids(saved_dir, "a dog runs")
    with pytest.raises(ValueError, match="seq2seq-rnn pipeline inputs are strings \\(or a list of strings\\), got int"):
        pipe(42)


def decoded_ids(saved_dir: Path, text: str) -> list[int]:
    tokenizer = AutoTokenizer.from_pretrained(saved_dir, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(saved_dir).eval()
    return model.generate(**tokenizer([text], return_tensors="pt"))[0].tolist()
