"""The subword tokenizer: no unknown tokens on any script, exact round trips, AutoTokenizer reload."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from hf_seq2seq_rnn import train_tokenizer
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import display_tokens

CORPUS = [
    "I am cold.",
    "Je suis froid.",
    "Where is the station?",
    "Où est la gare ?",
    "안녕하세요, 만나서 반가워요.",
    "오늘 날씨가 좋네요.",
    "Ich bin müde.",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=400)


def test_special_tokens_have_the_model_defaults(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        0,
        1,
        2,
        3,
    )
    assert tokenizer("I am cold.").input_ids[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize(
    "text",
    ["Où est la gare ?", "오늘 날씨가 좋네요.", "Unseen words: zebra, квартира, 猫が好き 😀", "ß ü é ñ"],
)
def test_no_unknown_tokens_and_exact_round_trip(tokenizer, text):
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_reload_with_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in CORPUS[:7]:
        assert reloaded(text).input_ids == tokenizer(text).input_ids
    assert reloaded.pad_token == "<pad>" and reloaded.padding_side == "right"


def test_display_tokens_are_readable(tokenizer):
    ids = tokenizer("猫 오늘").input_ids
    labels = display_tokens(tokenizer, ids)
    assert len(labels) == len(ids)
    assert "猫" in labels  # three byte tokens: the last one shows the character
    assert labels[-1] == "</s>"


def test_too_small_vocabulary_is_refused():
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        train_tokenizer(CORPUS, vocab_size=100)
