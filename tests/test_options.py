"""Options are declared once (`seq2seq_tools.options`) and read alike by every command: the values a
type accepts, switches, lists, null, bounds, old names and `--help` lines; the decoding settings are
declared once (`seq2seq_tools.decoding_options`) for training, predict and the chatbot, and a bad one
gets the same words every way in, generate() included."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import torch

from chatbot import __main__ as chatbot_cli
from chatbot.inference import DecodingSettings
from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from hf_seq2seq_rnn.search_seq2seq_rnn import SEARCH_SETTINGS
from seq2seq_tools.decoding_options import DECODING_KEYS, SEARCH_KEYS, DecodingOptions
from seq2seq_tools.options import (
    InputError,
    OptionParser,
    OptionValueError,
    add_options,
    convert,
    describe,
    from_namespace,
    option,
    type_hints,
)
from training import predict, prediction
from training.config import TrainingConfig, parse_config
from training.errors import TrainingInputError
from training.predict_options import PREDICT_SHORTLIST

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Example:
    """A command with one option of each kind."""

    name: str = option("free text", "x")
    count: int | None = option("a count", None, minimum=1)
    rate: float = option("a rate", 0.5, minimum=0)
    share: float = option("a share", 0.5, above=0, maximum=1)
    decay: float | None = option("a decay", None, above=0, below=1)
    workers: int = option("a count under its new name", 1, minimum=1, deprecated_names=("jobs",))
    switch: bool = option("a switch", False)
    precision: Literal["auto", "no", "bf16"] = option("a closed set with a word YAML reads as a boolean", "auto")
    items: list[str] = option("a list", [])


def parse(arguments: list[str]) -> Example:
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    return from_namespace(Example, parser.parse_args(arguments))


def test_each_kind_of_value_reads_from_the_command_line():
    assert parse([]) == Example()
    assert parse(["--name", "no", "--count", "3", "--rate", "2", "--precision", "no"]) == Example(
        name="no", count=3, rate=2.0, precision="no"
    )  # free text keeps a word YAML would read as false (--source-lang no)
    assert parse(["--count", "null"]).count is None


@pytest.mark.parametrize(
    ("arguments", "value"),
    [
        ([], False),
        (["--switch"], True),
        (["--switch", "true"], True),
        (["--switch", "no"], False),
        (["--no-switch"], False),
    ],
)
def test_a_switch_is_bare_given_a_value_or_negated(arguments, value):
    assert parse(arguments).switch is value


def test_a_list_option_repeats_and_takes_a_yaml_list():
    assert parse(["--items", "a", "--items", "b c"]).items == ["a", "b c"]
    assert parse(["--items", "[a, b]", "--items", "c"]).items == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--count", "0"], "argument --count: '0': expected a whole number of at least 1"),
        (["--count", "2.5"], "argument --count: '2.5': expected int or null"),
        (["--rate", "-1"], "argument --rate: '-1': expected a number of at least 0"),
        (["--rate", "nan"], "argument --rate: 'nan': expected a number of at least 0"),
        (["--share", "0"], "argument --share: '0': expected a number greater than 0 and at most 1"),
        (["--share", "1.5"], "argument --share: '1.5': expected a number greater than 0 and at most 1"),
        (["--decay", "1"], "argument --decay: '1': expected a number greater than 0 and less than 1"),
        (["--decay", "inf"], "argument --decay: 'inf': expected a number greater than 0 and less than 1"),
        (["--jobs", "0"], "argument --jobs: '0': expected a whole number of at least 1"),
        (["--precision", "fp8"], "argument --precision: 'fp8' is not supported; accepted values: auto, no, bf16"),
        (["--switch", "maybe"], "argument --switch: 'maybe': expected bool"),
    ],
)
def test_a_bad_value_names_the_flag_the_value_and_what_is_accepted(arguments, message, capsys):
    with pytest.raises(SystemExit):
        parse(arguments)
    assert message in capsys.readouterr().err


def test_a_value_from_yaml_is_read_by_the_same_rules():
    assert (
        convert("precision", False, typing.get_type_hints(Example)["precision"]) == "no"
    )  # YAML 1.1 read `no` as false
    with pytest.raises(OptionValueError, match=r"^count=0: expected a whole number of at least 1$"):
        convert("count", 0, int | None, minimum=1)
    with pytest.raises(OptionValueError, match=r"^share=1.5: expected a number greater than 0 and at most 1$"):
        convert("share", 1.5, float, above=0, maximum=1)
    assert convert("share", 1, float, above=0, maximum=1) == 1.0
    with pytest.raises(OptionValueError, match=r"^rate=True: expected float$"):
        convert("rate", True, float)


def test_a_number_option_may_declare_a_word_beside_null():
    """`float | Literal["none"] | None`: a number, the word (in any case: `None` is not null here), or null."""
    hint = float | Literal["none"] | None
    assert [convert("cap", text, hint, minimum=0) for text in ("2", "none", "None", "null", "~")] == [
        2.0, "none", "none", None, None
    ]  # fmt: skip
    assert convert("cap", 3, hint, minimum=0) == 3.0 and convert("cap", "none", hint) == "none"  # as YAML reads them
    with pytest.raises(OptionValueError, match=r"^cap='ten': expected float, none or null$"):
        convert("cap", "ten", hint, minimum=0)
    with pytest.raises(OptionValueError, match=r"^cap=False: expected float, none or null$"):
        convert("cap", False, hint, minimum=0)  # YAML 1.1 reads `off` and `no` as false: not the word
    with pytest.raises(OptionValueError, match=r"^cap=-1.0: expected a number of at least 0$"):
        convert("cap", "-1", hint, minimum=0)
    assert describe(hint) == "float, none or null" and describe(int | None) == "int or null"


def test_help_gives_each_option_its_text_kind_least_value_and_default():
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    text = " ".join(parser.format_help().split())
    assert "a count (int or null, at least 1; default: null)" in text
    assert "a closed set with a word YAML reads as a boolean (one of auto, no, bf16; default: auto)" in text
    assert "--no-switch" not in text  # accepted, not listed


@pytest.mark.parametrize(
    ("settings", "command"),
    [
        (TrainingConfig, "training.train"),
        (prediction.PredictSettings, "training.predict"),
        (chatbot_cli.ChatbotSettings, "chatbot"),
    ],
)
def test_every_command_makes_each_declared_field_a_documented_flag(settings, command):
    result = subprocess.run([sys.executable, "-m", command, "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for item in dataclasses.fields(settings):
        if item.metadata.get("help") is not None:
            assert "--" + item.name.replace("_", "-") + " " in result.stdout, item.name


def test_the_one_parser_raises_one_line_naming_the_flag_and_the_help():
    parser = OptionParser(prog="python -m example")
    add_options(parser, Example)
    with pytest.raises(InputError) as raised:
        parser.parse_args(["--share", "2"])
    assert str(raised.value) == (
        "argument --share: '2': expected a number greater than 0 and at most 1 (see python -m example --help)"
    )
    assert issubclass(TrainingInputError, InputError)  # training's own errors end the same way (exit 2)


def test_an_old_name_works_unlisted_and_warns_once(capsys):
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    assert from_namespace(Example, parser.parse_args(["--jobs", "3", "--jobs", "4"])).workers == 4
    assert capsys.readouterr().err.splitlines() == [
        "warning: --jobs is renamed --workers; the old name goes in the next release"
    ]
    assert from_namespace(Example, parser.parse_args([])).workers == 1
    assert "--jobs" not in parser.format_help()


def test_bounds_show_in_help():
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    text = " ".join(parser.format_help().split())
    assert "a share (float, greater than 0 and at most 1; default: 0.5)" in text
    assert "a decay (float or null, greater than 0 and less than 1; default: null)" in text


def test_each_decoding_setting_is_declared_once_for_every_command():
    """predict, the chatbot and training take the decoding settings from `DecodingOptions`: the same
    help, bounds and metavar (training its own defaults, and no null where it needs a value)."""
    declared = {item.name: item for item in dataclasses.fields(DecodingOptions)}
    assert tuple(declared) == DECODING_KEYS or set(DECODING_KEYS) == set(declared)
    assert SEARCH_KEYS == SEARCH_SETTINGS  # the search module's own names for its settings
    commands = {
        "predict": (prediction.PredictSettings, DECODING_KEYS),
        "chatbot": (chatbot_cli.ChatbotSettings, SEARCH_KEYS),
        "training": (TrainingConfig, ("num_beams", "max_new_tokens", "max_length_a", "max_length_b")),
    }
    for command, (settings, keys) in commands.items():
        fields = {item.name: item for item in dataclasses.fields(settings)}
        for key in keys:
            metadata, expected = dict(fields[key].metadata), dict(declared[key].metadata)
            if (command, key) == ("predict", "shortlist"):  # the declared help, with predict's own default
                shared = expected.pop("help").split("; null or none")[0]
                help_text = metadata.pop("help")
                assert help_text.startswith(shared) and f"predict's default: {PREDICT_SHORTLIST}" in help_text
            assert metadata == expected, (command, key)
    training_hints = type_hints(TrainingConfig)
    assert training_hints["num_beams"] is int and training_hints["max_length_a"] == float | Literal["none"] | None
    assert (
        TrainingConfig().num_beams == 4
        and prediction.PredictSettings(model=["m"], dataset="d", output="o").num_beams is None
    )


def test_the_length_cap_takes_none_for_off_and_null_for_the_models_own_on_every_command():
    """`--max-length-a none` is the word none (the term off, generate() gets None over the model's
    value); null leaves the term to the model's generation config (a command passes nothing)."""
    flags = ["--model", "m", "--dataset", "d", "--output", "o"]
    given = predict.parse_settings([*flags, "--max-length-a", "none", "--max-length-b", "None"])
    assert (given.max_length_a, given.max_length_b) == ("none", "none")  # the word, in any case
    left = predict.parse_settings([*flags, "--max-length-a", "null"])
    assert (left.max_length_a, left.max_length_b) == (None, None)
    model = tiny_model()
    model.generation_config.max_length_a, model.generation_config.max_length_b = 2.0, 10.0
    off = prediction.generation_settings(model, given)
    assert "max_length_a" in off and off["max_length_a"] is None and off["max_length_b"] is None
    assert "max_length_a" not in prediction.generation_settings(model, left)  # the model's 2 x source + 10
    chatbot = chatbot_cli.parse_arguments(["--max-length-a", "none", "--max-length-b", "3"])
    assert chatbot.search_settings() == {"max_length_a": None, "max_length_b": 3.0}
    assert parse_config(["--demo", "translation", "--max-length-a", "none"]).max_length_a == "none"
    assert convert("max_length_b", "none", type_hints(DecodingOptions)["max_length_b"], minimum=0) == "none"  # YAML
    with pytest.raises(InputError, match=r"argument --max-length-a: 'off': expected float, none or null"):
        predict.parse_settings([*flags, "--max-length-a", "off"])
    help_text = " ".join(predict.build_parser().format_help().split())
    assert "none: no A term (with B none too: no cap) (float, none or null, at least 0; default: null)" in help_text


def test_adding_a_field_adds_its_flag_with_no_other_edit():
    @dataclass
    class Extended(Example):
        new_option: int = option("an option added in one place", 7, minimum=2)

    parser = argparse.ArgumentParser()
    add_options(parser, Extended)
    assert from_namespace(Extended, parser.parse_args(["--new-option", "9"])).new_option == 9
    assert "an option added in one place (int, at least 2; default: 7)" in " ".join(parser.format_help().split())


def tiny_model() -> Seq2SeqRNNForConditionalGeneration:
    return Seq2SeqRNNForConditionalGeneration(Seq2SeqRNNConfig(vocab_size=12, hidden_size=8, embedding_size=4))


def by_training(key: str, value: float) -> None:
    parse_config(["--demo", "translation", "--" + key.replace("_", "-"), str(value)])


def by_chatbot_command(key: str, value: float) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", "--" + key.replace("_", "-"), str(value)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    raise ValueError(result.stderr)


def by_predict_command(key: str, value: float) -> None:
    flags = ["--model", "m", "--dataset", "d", "--output", "o", "--" + key.replace("_", "-"), str(value)]
    predict.parse_settings(flags)


def by_predict(key: str, value: float) -> None:
    settings = prediction.PredictSettings(model=["m"], dataset="d", output="o", **{key: value})
    prediction.generation_settings(tiny_model(), settings)


def by_generate(key: str, value: float) -> None:
    tiny_model().generate(torch.tensor([[5, 6, 2]]), **{key: value}, max_new_tokens=3)


# The same bad decoding setting, given each way in: the bounds declared with the option on a command
# line (which names the flag), `decoding_settings` in Python (which names the setting), in the same
# words (the chatbot page's sliders have ranges of their own, which answer first for the counts).
BAD_DECODING = [
    (by_training, "num_beams", 0, "'0': expected a whole number of at least 1"),
    (by_predict, "num_beams", 0, "num_beams=0: expected a whole number of at least 1"),
    (by_generate, "num_beams", 0, "num_beams=0: expected a whole number of at least 1"),
    (by_training, "max_length_a", -1.0, "'-1.0': expected a number of at least 0"),
    (by_predict, "max_length_a", -1.0, "max_length_a=-1.0: expected a number of at least 0"),
    (by_chatbot_command, "max_length_a", -1.0, "'-1.0': expected a number of at least 0"),
    (by_generate, "max_length_a", -1.0, "max_length_a=-1.0: expected a number of at least 0"),
    (by_predict_command, "top_p", 1.5, "'1.5': expected a number greater than 0 and at most 1"),
    (by_predict, "top_p", 1.5, "top_p=1.5: expected a number greater than 0 and at most 1"),
    (DecodingSettings, "top_p", 1.5, "top_p=1.5: expected a number greater than 0 and at most 1"),
    (by_generate, "top_p", 1.5, "top_p=1.5: expected a number greater than 0 and at most 1"),
]


@pytest.mark.parametrize(
    ("way", "key", "value", "message"),
    BAD_DECODING,
    ids=[f"{way.__name__}-{key}" for way, key, _, _ in BAD_DECODING],
)
def test_a_bad_decoding_setting_gets_the_same_message_every_way_in(way, key, value, message):
    with pytest.raises((ValueError, InputError), match=message):
        way(**{key: value}) if way is DecodingSettings else way(key, value)
