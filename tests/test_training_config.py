"""A model option is defined once: every setting of `Seq2SeqRNNSettings` is a training key and flag, with
the model's type, default and help, and reaches the model's config. The test reads the settings from
the model package itself, so a setting added there is checked here with no edit."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from hf_seq2seq_rnn import Seq2SeqRNNConfig, configuration_seq2seq_rnn
from hf_seq2seq_rnn.configuration_seq2seq_rnn import Seq2SeqRNNSettings
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer
from seq2seq_tools.options import InputError
from training.config import MODEL_KEYS, NOT_MODEL_KEYS, TrainingConfig, build_parser, parse_config
from training.data import DataSpec
from training.errors import TrainingInputError
from training.model_card import training_info, write_model_card
from training.train import build_model, data_spec

# The model's settings, each declared once in `Seq2SeqRNNSettings`, that training takes as keys.
PARAMETERS = {item.name: item for item in dataclasses.fields(Seq2SeqRNNSettings) if item.name not in NOT_MODEL_KEYS}


def other_value(name: str, default: object) -> object:
    """A valid value other than the default: the flipped flag, a different number, another choice."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 2  # stays even: hidden_size must be with a bidirectional encoder
    if isinstance(default, float):
        return default / 2 if default else 0.05
    choices = [
        value
        for value in vars(configuration_seq2seq_rnn).values()
        if isinstance(value, tuple) and default in value and all(isinstance(item, str) for item in value)
    ]
    assert choices, f"no tuple of accepted values for {name}={default!r} in configuration_seq2seq_rnn"
    return next(item for item in choices[0] if item != default)


def test_the_model_keys_are_the_model_config_arguments():
    assert set(MODEL_KEYS) == set(PARAMETERS)
    defaults = TrainingConfig(demo="translation")
    for name, parameter in PARAMETERS.items():
        assert getattr(defaults, name) == parameter.default, name


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_every_model_option_is_a_flag_that_reaches_the_model_config(name):
    value = other_value(name, PARAMETERS[name].default)
    flag = "--" + name.replace("_", "-")
    config = parse_config(["--demo", "translation", flag, str(value).lower()])
    assert getattr(config, name) == value
    assert getattr(Seq2SeqRNNConfig(**config.model_arguments()), name) == value


def test_model_flags_carry_the_model_config_help():
    text = " ".join(build_parser().format_help().split())
    for name in PARAMETERS:
        metavar = "[VALUE]" if isinstance(PARAMETERS[name].default, bool) else "VALUE"  # a switch: bare is true
        assert f"--{name.replace('_', '-')} {metavar} model: " in text, name
    assert "width of the token embeddings. (int, at least 1; default: 256)" in text


def test_the_built_model_has_the_flags_values():
    config = parse_config(
        ["--demo", "translation", "--cell-type", "gru", "--attention-type", "additive", "--hidden-size", "12"]
        + ["--embedding-size", "10", "--num-layers", "1", "--peeky", "true"]
    )
    tokenizer = train_tokenizer(["hello there", "general kenobi"] * 20, vocab_size=300)
    model = build_model(config, tokenizer)
    for name, value in config.model_arguments().items():
        assert getattr(model.config, name) == value, name


def test_the_saved_length_cap_is_training_s_default_or_none_when_switched_off():
    tokenizer = train_tokenizer(["hello there", "general kenobi"] * 20, vocab_size=300)
    small = ["--demo", "translation", "--hidden-size", "8", "--embedding-size", "4", "--num-layers", "1"]
    default = build_model(parse_config(small), tokenizer).generation_config
    assert (default.max_length_a, default.max_length_b) == (2.0, 10.0)
    off = parse_config([*small, "--max-length-a", "none", "--max-length-b", "none"])
    saved = build_model(off, tokenizer).generation_config
    assert (saved.max_length_a, saved.max_length_b) == (None, None)  # generation_config.json: no cap


def test_a_bad_model_value_is_refused_at_parse_time_with_the_model_message():
    with pytest.raises(TrainingInputError, match="hidden_size=7 must be even with bidirectional_encoder=True"):
        parse_config(["--demo", "translation", "--hidden-size", "7"])


def test_the_card_names_a_local_file_without_its_directories_and_lists_every_model_key(tmp_path):
    data_file = tmp_path / "private" / "folder" / "pairs.csv"
    data_file.parent.mkdir(parents=True)
    data_file.write_text("source,target\nhi,salut\n", encoding="utf-8")
    config = parse_config(["--dataset", str(data_file), "--validation-file", str(data_file)])
    info = training_info("pairs.csv, source/target", dataclasses.asdict(config), {}, {}, "cmd", examples=["hi"])
    write_model_card(str(tmp_path), info)
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    saved = (tmp_path / "training_info.json").read_text(encoding="utf-8")
    assert str(data_file.parent) not in card and str(data_file.parent) not in saved
    assert json.loads(saved)["dataset"] == "pairs.csv" and json.loads(saved)["examples"] == ["hi"]
    assert "datasets:" not in card.split("---")[1]  # a local file is not a Hub dataset
    for key in MODEL_KEYS:
        assert f"| `{key}` | {getattr(config, key)} |" in card, key


def test_the_card_lists_a_hub_dataset_by_its_id(tmp_path):
    config = parse_config(["--dataset", "Helsinki-NLP/opus_books"])
    write_model_card(str(tmp_path), training_info("opus", dataclasses.asdict(config), {}, {}, "cmd"))
    assert "datasets:\n- Helsinki-NLP/opus_books" in (tmp_path / "README.md").read_text(encoding="utf-8")


def test_the_data_keys_are_the_data_spec_fields_and_reach_it():
    spec_fields = {item.name: item for item in dataclasses.fields(DataSpec)}
    config = parse_config(["--dataset", "some/hub-id", "--source-column", "Q", "--target-column", "A", "--seed", "7"])
    spec = data_spec(config)
    for name, item in spec_fields.items():
        assert getattr(spec, name) == getattr(config, name), name
        if name != "dataset":
            assert getattr(TrainingConfig(), name) == item.default, name
    assert (spec.dataset, spec.source_column, spec.seed) == ("some/hub-id", "Q", 7)


def test_help_documents_every_key_with_its_type_and_default():
    """`--help` is the one place keys are documented: each flag has text, a type or its choices, and a default."""
    import dataclasses

    help_text = build_parser().format_help()
    entries = {
        entry.split()[0]: " ".join(entry.split()[2:]) for entry in re.split(r"\n  (?=--)", help_text)[1:]
    }  # each option's help starts on a line of its own: "  --flag VALUE  text"
    for item in dataclasses.fields(TrainingConfig):
        if item.name == "command":
            continue
        entry = entries["--" + item.name.replace("_", "-")]
        assert len(entry) > 20 and "default: " in entry, (item.name, entry)
    text = " ".join(help_text.split())
    assert "--mixed-precision VALUE auto: on a CPU" in text
    assert "(one of auto, no, bf16, fp16, null; default: auto)" in text
    assert "(one of bpe, char, morpheme; default: bpe)" in text


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--task",
            "chat",
            "argument --task: 'chat' is not supported; accepted values: translation, qa (see python -m training.train --help)",
        ),
        (
            "--tokenizer-type",
            "wordpiece",
            "argument --tokenizer-type: 'wordpiece' is not supported; accepted values: bpe, char, morpheme (see python -m training.train --help)",
        ),
        (
            "--mixed-precision",
            "fp8",
            "argument --mixed-precision: 'fp8' is not supported; accepted values: auto, no, bf16, fp16 (see python -m training.train --help)",
        ),
        (
            "--overlong",
            "wrap",
            "argument --overlong: 'wrap' is not supported; accepted values: filter, truncate (see python -m training.train --help)",
        ),
    ],
)
def test_a_value_outside_a_keys_choices_is_refused_naming_them(flag, value, message):
    with pytest.raises(InputError) as raised:
        parse_config(["--demo", "translation", flag, value])
    assert str(raised.value) == message


def test_a_streamed_demo_is_refused_with_what_to_pass():
    with pytest.raises(TrainingInputError, match=r"^the embedded demos are read into memory: leave out --streaming"):
        parse_config(["--demo", "translation", "--streaming", "--max-steps", "5"])
    with pytest.raises(InputError, match=r"--shuffle-buffer-size"):
        parse_config(["--dataset", "pairs.csv", "--streaming", "--max-steps", "5", "--shuffle-buffer-size", "0"])
