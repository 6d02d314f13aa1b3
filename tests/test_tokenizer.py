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


CHARACTER_CORPUS = ["september 27, 1994", "1994-09-27", "16+75", "91", "안녕하세요 세계"] * 3


@pytest.fixture(scope="module")
def char_tokenizer():
    return train_tokenizer(CHARACTER_CORPUS, vocab_size=100, kind="char")


def test_char_tokenizer_has_one_token_per_character_and_no_word_marks(char_tokenizer):
    text = "1994-09-27 안녕"
    tokens = char_tokenizer.convert_ids_to_tokens(char_tokenizer(text)["input_ids"])
    assert tokens == [*text, "</s>"]
    assert len(char_tokenizer) == 4 + len(set("".join(CHARACTER_CORPUS)))
    assert char_tokenizer.decode(char_tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_char_tokenizer_maps_unseen_characters_to_unk_unless_bytes_are_asked_for(char_tokenizer):
    assert char_tokenizer.convert_ids_to_tokens(char_tokenizer("9é")["input_ids"]) == ["9", "<unk>", "</s>"]
    with_bytes = train_tokenizer(CHARACTER_CORPUS, vocab_size=300, kind="char", byte_fallback=True)
    ids = with_bytes("9é")["input_ids"]
    assert with_bytes.convert_ids_to_tokens(ids) == ["9", "<0xC3>", "<0xA9>", "</s>"]
    assert with_bytes.decode(ids, skip_special_tokens=True) == "9é"
    assert display_tokens(with_bytes, ids) == ["9", "·", "é", "</s>"]


def test_char_tokenizer_keeps_the_most_frequent_characters_within_vocab_size():
    tokenizer = train_tokenizer(["aaaa bbb cc d"], vocab_size=7, kind="char", min_frequency=1)
    assert sorted(tokenizer.get_vocab()) == sorted(["<pad>", "<s>", "</s>", "<unk>", "a", "b", " "])


def test_char_tokenizer_reloads_with_auto_tokenizer_and_labels_each_character(char_tokenizer, tmp_path):
    char_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
    text = "16+75 세계"
    assert reloaded(text)["input_ids"] == char_tokenizer(text)["input_ids"]
    assert display_tokens(reloaded, reloaded(text)["input_ids"]) == [*text, "</s>"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(kind="char", vocab_size=4), "vocab_size=4 is too small for the char tokenizer"),
        (dict(kind="char", vocab_size=100, byte_fallback=True), "vocab_size=100 is too small"),
        (dict(kind="word", vocab_size=100), "kind='word' is not supported; accepted values: 'bpe', 'char'"),
        (dict(kind="bpe", vocab_size=400, byte_fallback=False), "only accepted with kind='char'"),
    ],
)
def test_char_tokenizer_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        train_tokenizer(CHARACTER_CORPUS, **arguments)
