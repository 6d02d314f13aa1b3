"""The chatbot's inference module on a small model trained here (no Gradio involved).

The fixture trains a one-layer LSTM with general attention to reverse the word order of short
English phrases (1000 steps, under a minute on one core), saves it with its tokenizer, a model card and a
generation config, and the tests load it back through the Auto classes as the app does.

    pytest tests/test_chatbot_inference.py
"""

from __future__ import annotations

import itertools
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from chatbot.inference import (
    AttentionMap,
    DecodingSettings,
    EmptyInputError,
    attention_figure,
    encode,
    generate_reply,
    load_served_model,
    stream_reply,
)
from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer

WORDS = [
    "red",
    "blue",
    "green",
    "cat",
    "dog",
    "bird",
    "tree",
    "house",
    "sun",
    "moon",
    "water",
    "fire",
    "book",
    "door",
    "road",
    "car",
]
MODEL_CARD = """---
model_name: {name}
datasets:
- reversed-word-order-phrases
tags:
- seq2seq-rnn
- qa
widget:
- text: {examples[0]}
- text: {examples[1]}
---
# {name}

Answers a phrase with its words in reverse order.
"""


def phrase_pair(rng: random.Random, vocabulary: list[str] = WORDS) -> tuple[str, str]:
    """A phrase of 2 to 5 words and its reply: the same words in reverse order."""
    words = rng.choices(vocabulary, k=rng.randint(2, 5))
    return " ".join(words), " ".join(reversed(words))


def train_tiny_model(
    directory: Path,
    attention_type: str = "general",
    steps: int = 1000,
    name: str = "tiny-reverser",
    vocabulary: list[str] = WORDS,
    examples: tuple[str, str] = ("red cat dog", "sun moon water fire"),
) -> Path:
    """Train a tiny reverser of phrases over `vocabulary` for a fixed number of steps, with a fixed
    seed, in fp32 on this process' one thread (tests/conftest.py), the learning rate falling
    linearly to 0; save it.

    A fixed count keeps the weights the same however busy the machine is. With attention, 1000
    steps answer all 50 held-out phrases right from step 800 on (what the tests below need: the
    replies are compared as strings)."""
    torch.manual_seed(0)
    rng = random.Random(0)
    corpus = [text for _ in range(600) for text in phrase_pair(rng, vocabulary)]
    tokenizer = train_tokenizer(corpus, vocab_size=400, min_frequency=1, model_max_length=16)
    config = Seq2SeqRNNConfig(
        vocab_size=len(tokenizer),
        embedding_size=32,
        hidden_size=64,
        num_layers=1,
        attention_type=attention_type,
        dropout=0.0,
    )
    model = Seq2SeqRNNForConditionalGeneration(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    for _ in range(steps):
        batch = [phrase_pair(rng, vocabulary) for _ in range(64)]
        inputs = tokenizer([source for source, _ in batch], return_tensors="pt", padding=True)
        labels = tokenizer([target for _, target in batch], return_tensors="pt", padding=True).input_ids
        labels[labels == tokenizer.pad_token_id] = -100
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    model.generation_config.num_beams = 3
    model.generation_config.max_new_tokens = 12
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "README.md").write_text(MODEL_CARD.format(name=name, examples=examples), encoding="utf-8")
    return directory


def cached_tiny_model(tmp_path_factory: pytest.TempPathFactory, attention_type: str) -> Path:
    """One trained model per attention type and test session, shared by all chatbot test files."""
    directory = tmp_path_factory.getbasetemp() / f"chatbot-tiny-{attention_type}"
    if not (directory / "config.json").is_file():
        steps = 1000 if attention_type != "none" else 20  # the model without attention only needs to run
        name = {"general": "tiny-reverser", "none": "tiny-no-attention"}.get(attention_type, f"tiny-{attention_type}")
        train_tiny_model(directory, attention_type, steps=steps, name=name)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_tiny_model(tmp_path_factory, "general")


@pytest.fixture(scope="session")
def tiny_model_without_attention_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_tiny_model(tmp_path_factory, "none")


@pytest.fixture(scope="session")
def tiny_additive_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reverser with additive attention (Bahdanau et al.), for pages that compare attention types."""
    return cached_tiny_model(tmp_path_factory, "additive")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_served_model(tiny_model_dir)


def teacher_forced_attention(loaded, source: str, token_ids: list[int]) -> np.ndarray:
    """The cross-attention of one forward pass over the whole reply: `(len(token_ids), src_len)`."""
    inputs, _ = encode(loaded, source)
    start = loaded.model.config.decoder_start_token_id
    decoder_input_ids = torch.tensor([[start, *token_ids[:-1]]])
    with torch.no_grad():
        outputs = loaded.model(**inputs, decoder_input_ids=decoder_input_ids, output_attentions=True)
    return outputs.cross_attentions[0][0, 0].numpy()


def test_model_info_and_defaults_come_from_the_card_and_generation_config(tiny) -> None:
    assert tiny.info.name == "tiny-reverser"
    assert "reversed-word-order-phrases" in tiny.info.trained_on
    assert tiny.info.task == "qa"  # from the card's tags, not the name
    assert tiny.info.examples == ("red cat dog", "sun moon water fire")
    assert tiny.info.has_attention
    assert tiny.defaults == DecodingSettings(mode="beam", num_beams=3, max_new_tokens=12)
    assert tiny.max_input_tokens == 16


def test_a_directory_without_a_card_still_loads(tiny_model_without_attention_dir: Path, tmp_path: Path) -> None:
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        (tmp_path / name).write_bytes((tiny_model_without_attention_dir / name).read_bytes())
    for code in tiny_model_without_attention_dir.glob("*.py"):
        (tmp_path / code.name).write_bytes(code.read_bytes())
    loaded = load_served_model(tmp_path, max_input_tokens=8)
    assert loaded.info.trained_on.startswith("not stated")
    assert loaded.max_input_tokens == 8
    assert loaded.info.task == "unknown"  # no card, no training_info.json: offered on both tabs
    assert loaded.info.examples == ()  # no prompts that were not made for this model


@pytest.mark.parametrize("mode", ["greedy", "beam"])
def test_the_trained_model_replies_correctly(tiny, mode: str) -> None:
    rng = random.Random(7)
    pairs = [phrase_pair(rng) for _ in range(20)]
    settings = DecodingSettings(mode=mode, num_beams=4)
    correct = sum(generate_reply(tiny, source, settings).text == target for source, target in pairs)
    assert correct >= 18, f"{correct}/20 replies right with {mode}"


def test_streaming_grows_the_reply_and_ends_with_the_full_one(tiny) -> None:
    settings = DecodingSettings(mode="greedy")
    updates = list(stream_reply(tiny, "red cat dog tree", settings))
    assert len(updates) >= 3, "greedy decoding must stream token by token"
    assert [update.done for update in updates] == [False] * (len(updates) - 1) + [True]
    texts = [update.text for update in updates]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    assert texts[-1] == generate_reply(tiny, "red cat dog tree", settings).text == "tree dog cat red"
    assert updates[-1].attention is not None and all(update.attention is None for update in updates[:-1])


def test_streaming_tokenizes_the_message_once(tiny, monkeypatch) -> None:
    calls = []
    tokenize = type(tiny.tokenizer).__call__

    def counted(self, *args, **kwargs):
        calls.append(args)
        return tokenize(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny.tokenizer), "__call__", counted)
    list(stream_reply(tiny, "red cat dog tree", DecodingSettings(mode="greedy")))
    assert len(calls) == 1


def test_sampling_streams_and_a_cold_temperature_matches_greedy(tiny) -> None:
    torch.manual_seed(0)
    cold = list(stream_reply(tiny, "sun moon water", DecodingSettings(mode="sample", temperature=0.05, top_p=0.9)))
    assert len(cold) >= 3
    assert cold[-1].text == "water moon sun"
    hot = generate_reply(tiny, "sun moon water", DecodingSettings(mode="sample", temperature=5.0, max_new_tokens=6))
    assert len(hot.token_ids) <= 6


def sampled_reply(tiny, seed: int, settings: DecodingSettings, streamed: bool = False):
    torch.manual_seed(seed)  # the default generator, which generate() also draws from in the streaming thread
    if streamed:
        return list(stream_reply(tiny, "sun moon water fire", settings))[-1]
    return generate_reply(tiny, "sun moon water fire", settings)


def test_a_seeded_sample_is_generates_own_and_streams_the_same_ids_and_attention(tiny) -> None:
    """Hot sampling: the same seed gives what `model.generate(do_sample=True)` gives and the same
    reply streamed (ids and attention); other seeds give other replies, unlike greedy decoding."""
    settings = DecodingSettings(mode="sample", temperature=3.0, top_p=1.0, max_new_tokens=8)
    assert settings.generate_kwargs()["do_sample"] is True
    reply = sampled_reply(tiny, 11, settings)
    inputs, _ = encode(tiny, "sun moon water fire")
    torch.manual_seed(11)
    with torch.inference_mode():
        direct = tiny.model.generate(**inputs, **settings.generate_kwargs())  # (1, 1 + T)
    assert reply.token_ids == direct[0, 1:].tolist()
    assert reply.text == tiny.tokenizer.decode(reply.token_ids, skip_special_tokens=True).strip()
    streamed = sampled_reply(tiny, 11, settings, streamed=True)
    assert streamed.done and streamed.token_ids == reply.token_ids and streamed.text == reply.text
    assert streamed.attention.output_labels == reply.attention.output_labels
    np.testing.assert_allclose(streamed.attention.weights, reply.attention.weights, atol=1e-6)
    others = {tuple(sampled_reply(tiny, seed, settings).token_ids) for seed in range(12, 16)}
    assert others - {tuple(reply.token_ids)}, "four other seeds all drew the same reply"
    greedy = generate_reply(tiny, "sun moon water fire", DecodingSettings(mode="greedy", max_new_tokens=8))
    assert greedy.text == "fire water moon sun" and (others | {tuple(reply.token_ids)}) != {tuple(greedy.token_ids)}


def test_greedy_streams_the_same_ids_and_attention_as_the_whole_reply(tiny) -> None:
    settings = DecodingSettings(mode="greedy")
    streamed = list(stream_reply(tiny, "green bird house sun", settings))[-1]
    whole = generate_reply(tiny, "green bird house sun", settings)
    assert streamed.token_ids == whole.token_ids and streamed.text == whole.text == "sun house bird green"
    np.testing.assert_allclose(streamed.attention.weights, whole.attention.weights, atol=1e-6)


def test_beam_search_shows_only_the_finished_reply(tiny) -> None:
    updates = list(stream_reply(tiny, "book door road car", DecodingSettings(mode="beam", num_beams=5)))
    assert len(updates) == 1 and updates[0].done
    assert updates[0].text == "car road door book"


@pytest.mark.parametrize("settings", [DecodingSettings(mode="greedy"), DecodingSettings(mode="beam", num_beams=5)])
def test_heatmap_data_has_the_right_shape_and_matches_a_forward_pass(tiny, settings: DecodingSettings) -> None:
    source = "green bird house sun"
    reply = generate_reply(tiny, source, settings)
    attention = reply.attention
    inputs, _ = encode(tiny, source)
    assert attention.weights.shape == (len(reply.token_ids), inputs["input_ids"].shape[1])
    assert len(attention.source_labels) == attention.weights.shape[1]
    assert len(attention.output_labels) == attention.weights.shape[0]
    assert attention.source_labels[-1] == attention.output_labels[-1] == "</s>"
    np.testing.assert_allclose(attention.weights.sum(axis=1), 1.0, atol=1e-5)
    # The rows generate() recorded (for beam search: picked through beam_indices) are the
    # alignments a teacher-forced pass over the returned reply computes.
    expected = teacher_forced_attention(tiny, source, reply.token_ids)
    np.testing.assert_allclose(attention.weights, expected, atol=1e-5)
    as_dict = attention.to_dict()
    assert np.array(as_dict["weights"]).shape == attention.weights.shape


def test_a_model_without_attention_replies_without_a_heatmap(tiny_model_without_attention_dir: Path) -> None:
    loaded = load_served_model(tiny_model_without_attention_dir)
    assert not loaded.info.has_attention
    for settings in (
        DecodingSettings(mode="greedy", max_new_tokens=5),
        DecodingSettings(mode="beam", max_new_tokens=5),
    ):
        reply = list(stream_reply(loaded, "red cat", settings))[-1]
        assert reply.done and reply.attention is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_input_gets_a_friendly_error(tiny, text: str) -> None:
    with pytest.raises(EmptyInputError, match="type a message"):
        generate_reply(tiny, text)
    with pytest.raises(EmptyInputError):
        next(stream_reply(tiny, text))


def test_long_input_is_truncated_with_a_notice(tiny) -> None:
    long_text = " ".join(WORDS * 3)
    inputs, notice = encode(tiny, long_text)
    assert inputs["input_ids"].shape == (1, tiny.max_input_tokens)
    # The same ids as the tokenizer's own truncation, which keeps the final `</s>`.
    own = tiny.tokenizer([long_text], truncation=True, max_length=tiny.max_input_tokens)["input_ids"]
    assert inputs["input_ids"].tolist() == own
    assert "only the first 16 tokens" in notice
    assert generate_reply(tiny, long_text).notice == notice
    assert generate_reply(tiny, "red cat").notice is None


def test_a_huge_message_is_cut_before_tokenizing_and_reads_the_same_tokens(tiny) -> None:
    # 200 KB; tokenizing such messages whole grew the server by about 190 MB per MB
    huge = "red cat " * 25_000
    inputs, notice = encode(tiny, huge)
    whole = tiny.tokenizer([huge.strip()], truncation=True, max_length=tiny.max_input_tokens)["input_ids"]
    assert inputs["input_ids"][0].tolist() == whole[0]
    assert f"{len(huge.strip()):,} characters long" in notice and "only the first 16 tokens" in notice


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "nucleus"}, "greedy, beam, sample"),
        ({"num_beams": 0}, "num_beams"),
        ({"num_beams": 2.5}, "whole number"),
        ({"num_beams": 17}, "from 1 to 16"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": float("inf")}, "top_p"),
        ({"num_beams": float("inf")}, "num_beams"),
        ({"max_new_tokens": True}, "max_new_tokens"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": "40"}, "max_new_tokens"),
    ],
)
def test_invalid_decoding_settings_raise_clear_errors(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecodingSettings(**changes)


def test_decoding_settings_accept_slider_floats_and_map_to_generate() -> None:
    settings = DecodingSettings(mode="beam", num_beams=5.0, max_new_tokens=20.0)
    assert settings.num_beams == 5 and isinstance(settings.num_beams, int)
    assert settings.generate_kwargs()["num_beams"] == 5 and not settings.streams
    sample = DecodingSettings(mode="sample", temperature=0.7, top_p=0.9).generate_kwargs()
    assert sample["do_sample"] and sample["temperature"] == 0.7 and sample["top_p"] == 0.9


def test_heatmap_figure_draws_korean_and_chinese_labels_without_missing_glyphs(tmp_path: Path) -> None:
    attention = AttentionMap([" 안녕", "하세요", "</s>"], [" hello", " 世界", "</s>"], np.eye(3, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph .* missing")
        figure = attention_figure(attention, title="인사")
        figure.savefig(tmp_path / "heatmap.png")
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["안녕", "하세요", "</s>"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["hello", "世界", "</s>"]
    assert (tmp_path / "heatmap.png").stat().st_size > 1000


def test_int8_serving_quantizes_the_layers_and_still_replies_correctly(tiny_model_dir: Path) -> None:
    loaded = load_served_model(tiny_model_dir, quantize="int8")
    dynamic = torch.ao.nn.quantized.dynamic
    assert isinstance(loaded.model.model.decoder.rnn, dynamic.LSTM) and isinstance(loaded.model.lm_head, dynamic.Linear)
    rng = random.Random(7)
    pairs = [phrase_pair(rng) for _ in range(20)]
    correct = sum(
        generate_reply(loaded, source, DecodingSettings(mode="greedy")).text == target for source, target in pairs
    )
    assert correct >= 18, f"{correct}/20 int8 replies right"
    with pytest.raises(ValueError, match="accepted values: none, int8"):
        load_served_model(tiny_model_dir, quantize="int4")
