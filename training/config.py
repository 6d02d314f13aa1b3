"""The training configuration: one flat dataclass, filled from defaults, a YAML file, then the command line.

Every key can be set in YAML (`hidden_size: 256`) and overridden on the command line with the same
name in kebab case (`--hidden-size 512`). The model's keys are not listed here: they are the
arguments of `Seq2SeqRNNConfig.__init__`, with its types, defaults and documented help (`ModelSettings`),
so an option added to the model config is a training key and flag with no edit in this package. Command-line values are read as YAML scalars, so
`--max-steps 100`, `--streaming true`, `--validation-split null` and `--sample-prompts '[hi, bye]'`
all mean what they say. An unknown key, in the file or on the line, is an error naming it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import inspect
import math
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from hf_seq2seq_rnn import Seq2SeqRNNConfig
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import MISSING_ANALYZER, TOKENIZER_KINDS

from . import demos
from .data import DataSpec
from .errors import TrainingInputError

TASKS = ("translation", "qa")
TEACHER_FORCING_SCHEDULES = ("constant", "linear", "inverse_sigmoid")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
# `Seq2SeqRNNConfig` arguments that a training run sets itself rather than take as keys: the
# vocabulary and special tokens come from the tokenizer (`vocab_size` is the tokenizer's key),
# the teacher-forcing ratio from its schedule, the rest are fixed for this model.
NOT_MODEL_KEYS = frozenset(
    {
        "vocab_size",
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "unk_token_id",
        "decoder_start_token_id",
        "is_encoder_decoder",
        "use_cache",
        "teacher_forcing_ratio",
    }
)


def _model_parameters() -> list[inspect.Parameter]:
    """The architecture arguments of `Seq2SeqRNNConfig.__init__`, in its order."""
    parameters = list(inspect.signature(Seq2SeqRNNConfig.__init__).parameters.values())[1:]
    return [
        parameter
        for parameter in parameters
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and parameter.name not in NOT_MODEL_KEYS
    ]


def model_help() -> dict[str, str]:
    """Each argument's help text, from the `Args:` entries of `Seq2SeqRNNConfig`'s docstring."""
    text = inspect.getdoc(Seq2SeqRNNConfig) or ""
    entries = re.findall(r"^    (\w+) \(`[^)]*\)?:\s*(.*?)(?=^    \w|\Z)", text, flags=re.M | re.S)
    return {name: " ".join(body.split()) for name, body in entries}


# The model's keys: a dataclass made from `Seq2SeqRNNConfig.__init__` (names, annotations, defaults).
ModelSettings = dataclasses.make_dataclass(
    "ModelSettings",
    [(parameter.name, parameter.annotation, field(default=parameter.default)) for parameter in _model_parameters()],
)
MODEL_KEYS = tuple(item.name for item in dataclasses.fields(ModelSettings))
# The data keys: the fields of `DataSpec` (what `load_pairs` reads), `dataset` optional here (a demo has none).
DataSettings = dataclasses.make_dataclass(
    "DataSettings",
    [
        ("dataset", "str | None", field(default=None))
        if item.name == "dataset"
        else (item.name, item.type, field(default=item.default))
        for item in dataclasses.fields(DataSpec)
    ],
)
DATA_KEYS = tuple(item.name for item in dataclasses.fields(DataSettings))


@dataclass
class TrainingConfig(ModelSettings, DataSettings):
    """All settings of a training run: the data keys (`DataSettings`, from `DataSpec`), the model's keys
    (`ModelSettings`, from `Seq2SeqRNNConfig`) and the run's own below; `training/configs/*.yaml`
    document each key."""

    # data: the keys of `DataSettings`, and
    demo: str | None = None
    demo_size: int = 6000
    shuffle_buffer_size: int = 10000
    max_train_samples: int | None = None
    max_eval_samples: int | None = 500
    task: str = "translation"
    # tokenizer and preprocessing
    tokenizer: str | None = None
    tokenizer_type: str = "bpe"
    vocab_size: int = 8000
    min_frequency: int = 2
    max_source_length: int = 64
    max_target_length: int = 64
    overlong: str = "filter"
    preprocessing_num_workers: int | None = None
    # model: the keys of `ModelSettings`, and
    model_name_or_path: str | None = None
    # optimization
    batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    max_minutes: float | None = None
    num_epochs: int = 10
    mixed_precision: str | None = "auto"
    num_threads: int | None = None  # (`seed` is a data key: it seeds the validation split and the run)
    teacher_forcing_start: float = 1.0
    teacher_forcing_end: float = 1.0
    teacher_forcing_schedule: str = "constant"
    # evaluation and generation
    eval_steps: int | None = 500
    eval_on_start: bool = False
    eval_batch_size: int = 128
    num_beams: int = 4
    max_new_tokens: int = 64
    num_samples: int = 5
    sample_prompts: list[str] = field(default_factory=list)
    metric_for_best: str = "eval_loss"
    # checkpoints, logging, publishing
    output_dir: str = "runs/model"
    checkpointing_steps: int | None = 500
    resume_from_checkpoint: str | None = None
    report_to: str = "tensorboard"
    logging_steps: int = 50
    push_to_hub: bool = False
    hub_model_id: str | None = None
    command: str | None = None

    def model_arguments(self) -> dict[str, Any]:
        """The `Seq2SeqRNNConfig` arguments this run sets."""
        return {key: getattr(self, key) for key in MODEL_KEYS}


def _expected_types(annotation: str) -> tuple[type, ...]:
    """The runtime types a field accepts, from its annotation string (`int | None`, `list[str]`)."""
    hint = eval(annotation, {"list": list, "Literal": typing.Literal}, {})  # noqa: S307 - our own dataclass annotations only
    if typing.get_origin(hint) is typing.Literal:
        return tuple({type(arg) for arg in typing.get_args(hint)})
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(typing.get_origin(arg) or arg for arg in typing.get_args(hint))
    return (typing.get_origin(hint) or hint,)


FIELD_TYPES = {item.name: _expected_types(item.type) for item in dataclasses.fields(TrainingConfig)}


# Words YAML 1.1 reads as booleans (`no`, `off`, `false`) that are documented values of a string key.
BOOLEAN_SPELLINGS = {"mixed_precision": {False: "no"}}


def _coerce(key: str, value: Any) -> Any:
    """`value` as the type of config key `key`, or `TrainingInputError`."""
    accepted = FIELD_TYPES[key]
    if value is None and type(None) in accepted:
        return None
    if isinstance(value, bool) and value in BOOLEAN_SPELLINGS.get(key, {}):
        return BOOLEAN_SPELLINGS[key][value]  # `--mixed-precision no`: YAML read the word `no` as false
    if isinstance(value, bool) and bool not in accepted:
        raise TrainingInputError(f"{key}={value!r}: expected {_type_names(accepted)}")
    if float in accepted and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    if str in accepted and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # e.g. --dataset-config 2014
    if list in accepted and isinstance(value, str):
        return [value]
    if not isinstance(value, tuple(t for t in accepted if t is not type(None))):
        raise TrainingInputError(f"{key}={value!r}: expected {_type_names(accepted)}")
    return value


def _type_names(accepted: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in accepted)


def _unknown_key_message(key: str, where: str) -> str:
    close = difflib.get_close_matches(key, FIELD_TYPES, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see training/configs/*.yaml for the keys"
    return f"unknown config key {key!r} in {where}{hint}"


def load_yaml(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise TrainingInputError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        try:
            content = yaml.safe_load(handle) or {}
        except yaml.YAMLError as error:
            raise TrainingInputError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise TrainingInputError(f"{path} must hold a mapping of config keys")
    for key in content:
        if key not in FIELD_TYPES:
            raise TrainingInputError(_unknown_key_message(key, path))
    return content


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        allow_abbrev=False,
        description="Train the recurrent encoder-decoder of hf_seq2seq_rnn with Accelerate. "
        "Every config key is also a flag (--hidden-size 512, --streaming true).",
    )
    parser.add_argument("--config", help="YAML file of config keys (training/configs/*.yaml)")
    helps = model_help()
    for item in dataclasses.fields(TrainingConfig):
        if item.name == "command":
            continue
        flag = "--" + item.name.replace("_", "-")
        help_text = None
        if item.name in MODEL_KEYS:
            help_text = f"model: {helps.get(item.name, 'see Seq2SeqRNNConfig')} (default: {item.default})"
        parser.add_argument(
            flag,
            dest=item.name,
            type=yaml.safe_load,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=help_text.replace("%", "%%") if help_text else None,
        )
    return parser


def parse_config(argv: list[str] | None = None) -> TrainingConfig:
    """Defaults, then the `--config` YAML file, then the flags: the run's `TrainingConfig`."""
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(_expand_bare_flags(argv))
    if unknown:
        flag = unknown[0].split("=")[0]
        raise TrainingInputError(_unknown_key_message(flag.lstrip("-").replace("-", "_"), "the command line"))
    values: dict[str, Any] = {}
    if namespace.config:
        values.update(load_yaml(namespace.config))
    values.update({key: value for key, value in vars(namespace).items() if key != "config"})
    config = TrainingConfig(**{key: _coerce(key, value) for key, value in values.items()})
    validate(config)
    return config


# Flags that read better without a value: `--push-to-hub` alone means `--push-to-hub true`.
BARE_FLAGS = ("--push-to-hub", "--streaming")


def _expand_bare_flags(arguments: list[str] | None) -> list[str]:
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    expanded = []
    for index, argument in enumerate(arguments):
        expanded.append(argument)
        is_last = index + 1 == len(arguments)
        if argument in BARE_FLAGS and (is_last or arguments[index + 1].startswith("--")):
            expanded.append("true")
    return expanded


def validate(config: TrainingConfig) -> None:
    """Raise `TrainingInputError` for values no run could use (model values are checked by the model config)."""
    choices = {
        "task": TASKS,
        "teacher_forcing_schedule": TEACHER_FORCING_SCHEDULES,
        "overlong": ("filter", "truncate"),
        "tokenizer_type": TOKENIZER_KINDS,
    }
    for key, accepted in choices.items():
        if getattr(config, key) not in accepted:
            raise TrainingInputError(f"{key}={getattr(config, key)!r}; accepted values: {', '.join(accepted)}")
    if config.tokenizer_type == "morpheme" and config.tokenizer is None and config.model_name_or_path is None:
        try:  # before the data is read: the analyzer is an optional extra
            importlib.import_module("kiwipiepy")
        except ImportError as error:
            raise TrainingInputError(MISSING_ANALYZER) from error
    if config.mixed_precision is not None and config.mixed_precision not in MIXED_PRECISION:
        raise TrainingInputError(f"mixed_precision={config.mixed_precision!r}; accepted: {', '.join(MIXED_PRECISION)}")
    if config.dataset is None and config.demo is None:
        raise TrainingInputError("pass --dataset (a Hub name or a file) or use a demo config (--demo translation|chat)")
    if config.dataset is None:
        demos.check_languages(config.demo, config.source_lang, config.target_lang)
    for key in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "num_beams", "max_new_tokens"):
        if getattr(config, key) < 1:
            raise TrainingInputError(f"{key}={getattr(config, key)} must be at least 1")
    for key in ("max_steps", "eval_steps", "checkpointing_steps", "max_train_samples", "max_eval_samples"):
        value = getattr(config, key)
        if value is not None and value < 1:
            raise TrainingInputError(f"{key}={value} must be at least 1 (or null)")
    if config.streaming and config.max_steps is None:
        raise TrainingInputError("a streaming dataset has no known length: pass --max-steps")
    if config.validation_size <= 0:
        raise TrainingInputError(f"validation_size={config.validation_size} must be positive")
    try:  # the model's own checks, at parse time rather than after the data is loaded
        Seq2SeqRNNConfig(**config.model_arguments())
    except ValueError as error:
        raise TrainingInputError(f"bad model setting: {error}") from error
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise TrainingInputError(f"learning_rate={config.learning_rate}: expected a finite number above 0, e.g. 0.001")
    for key in ("weight_decay", "max_grad_norm"):
        value = getattr(config, key)
        if not (math.isfinite(value) and value >= 0):
            raise TrainingInputError(f"{key}={value}: expected a finite number, 0 or more")
