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
from typing import Any, Literal

import yaml

from hf_seq2seq_rnn import Seq2SeqRNNConfig
from hf_seq2seq_rnn.search_seq2seq_rnn import SearchSettings
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import MISSING_ANALYZER, TOKENIZER_KINDS
from seq2seq_tools.tasks import TASKS

from . import demos
from .data import DataSpec
from .demos import DEMO_LANGUAGES, DEMOS
from .errors import TrainingInputError
from .prepare import OVERLONG_POLICIES

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


def _key(default: Any, help: str) -> Any:
    """A config field with its `--help` text: each key is documented here, once."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


# The model's keys: a dataclass made from `Seq2SeqRNNConfig.__init__` (names, annotations, defaults,
# and the help of its docstring).
_MODEL_HELP = model_help()
ModelSettings = dataclasses.make_dataclass(
    "ModelSettings",
    [
        (
            parameter.name,
            parameter.annotation,
            _key(parameter.default, "model: " + _MODEL_HELP.get(parameter.name, "see Seq2SeqRNNConfig")),
        )
        for parameter in _model_parameters()
    ],
)
MODEL_KEYS = tuple(item.name for item in dataclasses.fields(ModelSettings))
# The data keys: the fields of `DataSpec` (what `load_pairs` reads), `dataset` optional here (a demo has none).
DataSettings = dataclasses.make_dataclass(
    "DataSettings",
    [
        ("dataset", "str | None", _key(None, item.metadata["help"] + "; usually a flag"))
        if item.name == "dataset"
        else (item.name, item.type, field(default=item.default, metadata=item.metadata))
        for item in dataclasses.fields(DataSpec)
    ],
)


@dataclass
class TrainingConfig(ModelSettings, DataSettings):
    """All settings of a training run: the data keys (`DataSettings`, from `DataSpec`), the model's keys
    (`ModelSettings`, from `Seq2SeqRNNConfig`) and the run's own below. `python -m training.train --help`
    prints each key's help, type and accepted values."""

    # data: the keys of `DataSettings`, and
    demo: Literal[*DEMOS] | None = _key(
        None,
        "an embedded corpus instead of --dataset (no network); the translation demo takes --source-lang and "
        f"--target-lang from {', '.join(DEMO_LANGUAGES)}",
    )
    demo_size: int = _key(6000, "pairs the translation or dates demo generates")
    shuffle_buffer_size: int = _key(10000, "shuffle buffer of a streaming dataset")
    max_train_samples: int | None = _key(None, "use only the first N training pairs (quick experiments)")
    max_eval_samples: int | None = _key(500, "validation pairs scored at each evaluation")
    task: Literal[*TASKS] = _key(
        "translation", "the metrics: BLEU and chrF (translation), or exact match and token F1 (qa)"
    )
    # tokenizer and preprocessing
    tokenizer: str | None = _key(None, "a saved tokenizer to reuse instead of training one")
    tokenizer_type: Literal[*TOKENIZER_KINDS] = _key(
        "bpe", "bpe: subwords with byte fallback; char: one token per character, no word marks"
    )
    vocab_size: int = _key(8000, "the vocabulary trained on the training pairs (both sides)")
    min_frequency: int = _key(2, "merges seen fewer times are not learned")
    max_source_length: int = _key(64, "longest source in tokens, </s> included")
    max_target_length: int = _key(64, "longest target in tokens, </s> included")
    overlong: Literal[*OVERLONG_POLICIES] = _key("filter", "longer pairs are dropped (filter) or cut (truncate)")
    preprocessing_num_workers: int | None = _key(None, "processes for datasets.map")
    # model: the keys of `ModelSettings`, and
    model_name_or_path: str | None = _key(None, "continue training a saved model (its tokenizer too)")
    # optimization
    batch_size: int = _key(64, "pairs per batch and process")
    gradient_accumulation_steps: int = _key(1, "batches per optimizer step")
    learning_rate: float = _key(0.001, "AdamW's peak learning rate")
    weight_decay: float = _key(0.0, "AdamW's weight decay")
    lr_scheduler: str = _key(
        "linear",
        "a transformers scheduler name: linear, cosine, constant_with_warmup, ...; with --max-minutes, linear and "
        "cosine decay to 0 over the time budget (training time, or the step count if that ends sooner), "
        "otherwise over the steps",
    )
    warmup_steps: int = _key(100, "steps of linear warm-up")
    lr_decay_fraction: float = _key(
        1.0,
        "linear and cosine: the share at the end of the run over which the rate decays; before it, the peak "
        "rate holds (warmup-stable-decay); 1: the whole run",
    )
    max_grad_norm: float = _key(1.0, "gradients are clipped to this norm")
    max_steps: int | None = _key(None, "optimizer steps (overrides --num-epochs)")
    max_minutes: float | None = _key(
        None,
        "stop after this much training time (evaluation excluded; a resumed run continues the clock of its "
        "checkpoint); null: no limit",
    )
    ema_decay: float | None = _key(
        None,
        "evaluate and save an exponential moving average of the weights with this decay, e.g. 0.999 "
        "(Marian's --exponential-smoothing); null: the trained weights",
    )
    num_epochs: int = _key(10, "epochs when --max-steps is null")
    mixed_precision: Literal[*MIXED_PRECISION] | None = _key(
        "auto",
        "auto: on a CPU, time fp32 against bf16 and take bf16 only where faster (fp32 where it cannot run; "
        "logged); on a GPU, what accelerate launch says (as null). bf16 on CPU and GPU, fp16 on a GPU",
    )
    num_threads: int | None = _key(None, "torch threads (CPU); null: torch's default, at most the usable CPUs")
    teacher_forcing_start: float = _key(1.0, "teacher forcing ratio at the start")
    teacher_forcing_end: float = _key(1.0, "teacher forcing ratio at the end (below 1: decoded step by step, slower)")
    teacher_forcing_schedule: Literal[*TEACHER_FORCING_SCHEDULES] = _key(
        "constant", "how the ratio moves from start to end (inverse_sigmoid: Bengio et al. 2015)"
    )
    # evaluation and generation (also saved as generation_config.json)
    eval_steps: int | None = _key(500, "evaluate every N steps and at the end; null: at the end only")
    eval_on_start: bool = _key(False, "also measure the validation loss before training")
    eval_batch_size: int = _key(128, "pairs per evaluation batch")
    num_beams: int = _key(4, "beam size for evaluation and the saved generation config")
    max_new_tokens: int = _key(64, "longest generated output")
    max_length_a: float | None = _key(
        2.0,
        "cap each output at A x its source's tokens + B new tokens, in evaluation and the saved generation config "
        "(fairseq's --max-len-a/b), so that an early model stops babbling; null with max_length_b null: no cap",
    )
    max_length_b: float | None = _key(10.0, "B of that cap, in tokens")
    num_samples: int = _key(5, "sample outputs logged and printed")
    sample_prompts: list[str] = _key([], "extra inputs whose outputs are printed at the end")
    metric_for_best: str = _key(
        "eval_loss", 'the checkpoint kept as "best": eval_loss, perplexity, bleu, chrf, exact_match or f1'
    )
    # checkpoints, logging, publishing
    output_dir: str = _key("runs/model", "where the model, checkpoints/ and logs/ go")
    checkpointing_steps: int | None = _key(500, "save the full training state every N steps")
    keep_checkpoints: int = _key(
        3,
        "checkpoints kept: the newest N plus the best. At least 2 lets --resume-from-checkpoint latest skip a newest "
        "one that cannot be read; training.average averages the newest ones",
    )
    resume_from_checkpoint: str | None = _key(None, "latest, best, or a checkpoint folder to continue from")
    report_to: str = _key("tensorboard", "tracker: tensorboard, wandb, all or none")
    logging_steps: int = _key(50, "log training loss, learning rate and tokens/s every N steps")
    push_to_hub: bool = _key(False, "upload the final model folder to the Hub")
    hub_model_id: str | None = _key(None, "the Hub repository (user/name); default: the output folder's name")
    command: str | None = field(default=None, metadata={"help": None})  # the command line, recorded by main

    def model_arguments(self) -> dict[str, Any]:
        """The `Seq2SeqRNNConfig` arguments this run sets."""
        return {key: getattr(self, key) for key in MODEL_KEYS}


def _field_hints() -> dict[str, Any]:
    """Each key's type, resolved from the annotations of the classes that declare it."""
    namespace = {
        **vars(sys.modules[Seq2SeqRNNConfig.__module__]),
        **vars(sys.modules[DataSpec.__module__]),
        **globals(),
    }
    return typing.get_type_hints(TrainingConfig, globalns=namespace)


FIELD_HINTS = _field_hints()


def _union_arguments(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def choices(key: str) -> tuple[Any, ...] | None:
    """The values a `Literal[...]` key accepts (None included where it is optional), else None."""
    literals = [arg for arg in _union_arguments(FIELD_HINTS[key]) if typing.get_origin(arg) is typing.Literal]
    if not literals:
        return None
    optional = type(None) in _union_arguments(FIELD_HINTS[key])
    return tuple(value for literal in literals for value in typing.get_args(literal)) + ((None,) if optional else ())


def _expected_types(hint: Any) -> tuple[type, ...]:
    """The runtime types a key accepts, from its resolved type (`int | None`, `list[str]`, `Literal[...]`)."""
    accepted: list[type] = []
    for arg in _union_arguments(hint):
        if typing.get_origin(arg) is typing.Literal:
            accepted.extend(type(value) for value in typing.get_args(arg))
        else:
            accepted.append(typing.get_origin(arg) or arg)
    return tuple(dict.fromkeys(accepted))


FIELD_TYPES = {name: _expected_types(hint) for name, hint in FIELD_HINTS.items()}


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


def _help(item: dataclasses.Field) -> str:
    """A key's `--help` line: its text, its type or accepted values, and its default."""
    accepted = choices(item.name)
    if accepted is not None:
        kind = "one of " + ", ".join("null" if value is None else str(value) for value in accepted)
    else:
        kind = _type_names(FIELD_TYPES[item.name])
    default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
    shown = "null" if default is None else default
    return f"{item.metadata['help']} ({kind}; default: {shown})".replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        usage="%(prog)s [--config FILE] [--KEY VALUE ...]",
        allow_abbrev=False,
        description="Train the recurrent encoder-decoder of hf_seq2seq_rnn with Accelerate. Every key of a "
        "--config YAML file is also a flag (--hidden-size 512, --streaming true); flags win over the file, "
        "the file over the defaults shown here. Values are read as YAML (true, null, [a, b]).",
    )
    parser.add_argument("--config", help="YAML file of config keys (training/configs/*.yaml)")
    groups = {
        "data": parser.add_argument_group("data (DataSpec)"),
        "model": parser.add_argument_group("model (Seq2SeqRNNConfig)"),
        "run": parser.add_argument_group("the run"),
    }
    data_keys = {item.name for item in dataclasses.fields(DataSettings)}
    for item in dataclasses.fields(TrainingConfig):
        if item.metadata.get("help") is None:
            continue
        group = "model" if item.name in MODEL_KEYS else "data" if item.name in data_keys else "run"
        groups[group].add_argument(
            "--" + item.name.replace("_", "-"),
            dest=item.name,
            type=yaml.safe_load,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=_help(item),
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
    for item in dataclasses.fields(config):
        accepted = choices(item.name)
        value = getattr(config, item.name)
        if accepted is not None and value not in accepted:
            names = ", ".join(str(choice) for choice in accepted if choice is not None)
            raise TrainingInputError(f"{item.name}={value!r}; accepted values: {names}")
    if config.tokenizer_type == "morpheme" and config.tokenizer is None and config.model_name_or_path is None:
        try:  # before the data is read: the analyzer is an optional extra
            importlib.import_module("kiwipiepy")
        except ImportError as error:
            raise TrainingInputError(MISSING_ANALYZER) from error
    if config.dataset is None and config.demo is None:
        raise TrainingInputError(
            "pass --dataset (a Hub name or a file) or use a demo config (--demo translation|chat|dates)"
        )
    if config.dataset is None:
        demos.check_languages(config.demo, config.source_lang, config.target_lang)
    for key in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "num_beams", "max_new_tokens"):
        if getattr(config, key) < 1:
            raise TrainingInputError(f"{key}={getattr(config, key)} must be at least 1")
    for key in ("max_steps", "eval_steps", "checkpointing_steps", "max_train_samples", "max_eval_samples"):
        value = getattr(config, key)
        if value is not None and value < 1:
            raise TrainingInputError(f"{key}={value} must be at least 1 (or null)")
    if config.keep_checkpoints < 1:
        raise TrainingInputError(f"keep_checkpoints={config.keep_checkpoints} must be at least 1 (the default keeps 3)")
    if config.streaming and config.max_steps is None:
        raise TrainingInputError("a streaming dataset has no known length: pass --max-steps")
    if config.validation_size <= 0:
        raise TrainingInputError(f"validation_size={config.validation_size} must be positive")
    try:  # the generation settings' and the model's own checks, at parse time rather than after the data is loaded
        SearchSettings(max_length_a=config.max_length_a, max_length_b=config.max_length_b)
    except ValueError as error:
        raise TrainingInputError(f"bad generation setting: {error}") from error
    try:
        Seq2SeqRNNConfig(**config.model_arguments())
    except ValueError as error:
        raise TrainingInputError(f"bad model setting: {error}") from error
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise TrainingInputError(f"learning_rate={config.learning_rate}: expected a finite number above 0, e.g. 0.001")
    if not (0.0 < config.lr_decay_fraction <= 1.0):
        raise TrainingInputError(
            f"lr_decay_fraction={config.lr_decay_fraction}: expected a number above 0 and at most 1, e.g. 0.2"
        )
    if config.ema_decay is not None and not (0.0 < config.ema_decay < 1.0):
        raise TrainingInputError(
            f"ema_decay={config.ema_decay}: expected a number between 0 and 1 (both excluded), e.g. 0.999, or null"
        )
    if config.max_minutes is not None and not (math.isfinite(config.max_minutes) and config.max_minutes > 0):
        raise TrainingInputError(f"max_minutes={config.max_minutes}: expected a number of minutes above 0, or null")
    for key in ("weight_decay", "max_grad_norm"):
        value = getattr(config, key)
        if not (math.isfinite(value) and value >= 0):
            raise TrainingInputError(f"{key}={value}: expected a finite number, 0 or more")
