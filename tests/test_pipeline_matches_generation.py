"""The Hub-copied pipeline keeps its own copy of text -> generate -> text (it must run where
`seq2seq_tools` is not installed); its outputs must equal `generate_texts`', the project's one path."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_model
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

from seq2seq_tools.generation import generate_texts

SENTENCES = ["the cat sleeps", "le chat dort", "a dog runs", "un chien court", "안녕하세요", "잘 지내요"] * 10
TEXTS = ["a dog runs", "안녕하세요", "the cat sleeps", "un chien court le chat dort"]


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained model (its outputs differ from text to text all the same), saved as a Hub user gets it."""
    directory = tmp_path_factory.mktemp("pipeline-model")
    model, tokenizer = tiny_model(
        SENTENCES, embedding_size=16, hidden_size=32, cell_type="gru", attention_type="additive", input_feeding=True
    )
    model.generation_config.max_new_tokens = 8
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize(
    "settings",
    [{"num_beams": 1}, {"num_beams": 3}, {"num_beams": 3, "num_return_sequences": 2}],
    ids=["greedy", "beam", "n-best"],
)
def test_the_pipeline_returns_what_generate_texts_returns(saved_dir: Path, settings: dict) -> None:
    pipe = pipeline("seq2seq-rnn", model=str(saved_dir), trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(saved_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved_dir, trust_remote_code=True)
    expected = [
        [result.text for result in (generated, *generated.alternatives)]
        for generated in generate_texts(model, tokenizer, TEXTS, batch_size=2, **settings)
    ]
    # generate_texts strips the decoded text; the pipeline returns the decoding as it is.
    found = [[item["generated_text"].strip() for item in replies] for replies in pipe(TEXTS, batch_size=2, **settings)]
    assert found == expected
    assert len({text for texts in expected for text in texts}) > 2, "the outputs are too alike to tell apart"
