"""The training configuration: one flat dataclass, filled from defaults, a YAML file, then the command line.

Every key can be set in YAML (`hidden_size: 256`) and overridden on the command line with the same
name in kebab case (`--hidden-size 512`). Command-line values are read as YAML scalars, so
`--max-steps 100`, `--streaming true`, `--validation-split null` and `--sample-prompts '[hi, bye]'`
all mean what they say. An unknown key, in the file or on the line, is an error naming it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import TrainingInputError

TASKS = ("translation", "qa")
TEACHER_FORCING_SCHEDULES = ("constant", "linear", "inverse_sigmoid")
MIXED_PRECISION = ("no", "bf16", "fp16")
# The keys that become `Seq2SeqRNNConfig` arguments.
MODEL_KEYS = (
    "embedding_size",
    "hidden_size",
    "num_layers",
    "cell_type",
    "bidirectional_encoder",
    "attention_type",
    "input_feeding",
    "peeky",
    "reverse_source",
    "dropout",
    "label_smoothing",
    "tie_word_embeddings",
    "init",
    "init_range",
)


@dataclass
class TrainingConfig:
    """All settings of a training run; `training/configs/*.yaml` document each key."""

    # data
    dataset: str | None = None
    dataset_config: str | None = None
    demo: str | None = None
    demo_size: int = 6000
    train_split: str = "train"
    validation_split: str | None = None
    validation_file: str | None = None
    validation_size: float = 0.05
    source_column: str | None = None
    target_column: str | None = None
    context_column: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    streaming: bool = False
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
    # model
    model_name_or_path: str | None = None
    embedding_size: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    cell_type: str = "lstm"
    bidirectional_encoder: bool = True
    attention_type: str = "general"
    input_feeding: bool = False
    peeky: bool = False
    reverse_source: bool = False
    dropout: float = 0.1
    label_smoothing: float = 0.0
    tie_word_embeddings: bool = False
    init: str = "default"
    init_range: float = 0.1
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
    mixed_precision: str | None = None
    seed: int = 42
    num_threads: int | None = None
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
        return {key: getattr(self, key) for key in MODEL_KEYS}


def _expected_types(annotation: str) -> tuple[type, ...]:
    """The runtime types a field accepts, from its annotation string (`int | None`, `list[str]`)."""
    hint = eval(annotation, {"list": list}, {})  # noqa: S307 - our own dataclass annotations only
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
    for item in dataclasses.fields(TrainingConfig):
        if item.name == "command":
            continue
        flag = "--" + item.name.replace("_", "-")
        parser.add_argument(flag, dest=item.name, type=yaml.safe_load, default=argparse.SUPPRESS, metavar="VALUE")
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
        "tokenizer_type": ("bpe", "char"),
    }
    for key, accepted in choices.items():
        if getattr(config, key) not in accepted:
            raise TrainingInputError(f"{key}={getattr(config, key)!r}; accepted values: {', '.join(accepted)}")
    if config.mixed_precision is not None and config.mixed_precision not in MIXED_PRECISION:
        raise TrainingInputError(f"mixed_precision={config.mixed_precision!r}; accepted: {', '.join(MIXED_PRECISION)}")
    if config.dataset is None and config.demo is None:
        raise TrainingInputError("pass --dataset (a Hub name or a file) or use a demo config (--demo translation|chat)")
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
