"""The training configuration: one flat dataclass, filled from defaults, a YAML file, then the command line.

Every key can be set in YAML (`hidden_size: 256`) and overridden on the command line with the same
name in kebab case (`--hidden-size 512`). Each key is declared once, with its type, default and help
(`seq2seq_tools.options.option`): the model's keys in `Seq2SeqRNNSettings` (so a setting added to the
model is a training key and flag with no edit in this package), the data keys in `DataSpec`, the
run's own below. Values are read by their type, alike from the file and the line (`seq2seq_tools.options`):
`--max-steps 100`, `--streaming true`, `--validation-split null` and `--sample-prompts '[hi, bye]'`
all mean what they say. An unknown key, in the file or on the line, is an error naming it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import os
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from hf_seq2seq_rnn import Seq2SeqRNNConfig
from hf_seq2seq_rnn.configuration_seq2seq_rnn import SETTING_TYPES, SETTINGS
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import MISSING_ANALYZER, TOKENIZER_KINDS
from seq2seq_tools.decoding_options import decoding_fields
from seq2seq_tools.options import (
    OptionParser,
    OptionValueError,
    add_options,
    bounds_of,
    convert,
    option,
    redeclared,
    type_hints,
)
from seq2seq_tools.tasks import TASKS

from . import demos
from .data_spec import DataSpec
from .demos import DEMO_LANGUAGES, DEMOS
from .errors import TrainingInputError
from .prepare import OVERLONG_POLICIES

TEACHER_FORCING_SCHEDULES = ("constant", "linear", "inverse_sigmoid")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
# Model settings that a training run sets itself rather than take as keys: the vocabulary comes
# from the tokenizer (`vocab_size` is the tokenizer's key), the teacher-forcing ratio from its schedule.
NOT_MODEL_KEYS = frozenset({"vocab_size", "teacher_forcing_ratio"})


# The model's keys: the settings of `Seq2SeqRNNSettings`, where each is declared once with its help.
ModelSettings = dataclasses.make_dataclass(
    "ModelSettings",
    [
        redeclared(item, SETTING_TYPES[name], prefix="model: ")
        for name, item in SETTINGS.items()
        if name not in NOT_MODEL_KEYS
    ],
)
MODEL_KEYS = tuple(item.name for item in dataclasses.fields(ModelSettings))
# The data keys: the fields of `DataSpec` (what `load_pairs` reads), `dataset` optional here (a demo has none).
_DATA_TYPES = typing.get_type_hints(DataSpec)
DataSettings = dataclasses.make_dataclass(
    "DataSettings",
    [
        ("dataset", str | None, option(item.metadata["help"] + "; usually a flag", None))
        if item.name == "dataset"
        else redeclared(item, _DATA_TYPES[item.name])
        for item in dataclasses.fields(DataSpec)
    ],
)
# The decoding settings that evaluation uses and generation_config.json keeps: declared once, in
# `seq2seq_tools.decoding_options` (help, bounds), with training's defaults; a beam count and a length
# are needed, the length cap may be off (null).
GenerationSettings = dataclasses.make_dataclass(
    "GenerationSettings",
    decoding_fields(
        {"num_beams": 4, "max_new_tokens": 64, "max_length_a": 2.0, "max_length_b": 10.0},
        whole=("num_beams", "max_new_tokens"),
    ),
)
GENERATION_KEYS = tuple(item.name for item in dataclasses.fields(GenerationSettings))


@dataclass
class TrainingConfig(GenerationSettings, ModelSettings, DataSettings):
    """All settings of a training run: the data keys (`DataSettings`, from `DataSpec`), the model's keys
    (`ModelSettings`, from `Seq2SeqRNNConfig`), the decoding settings of evaluation and the saved
    generation config (`GenerationSettings`, from `seq2seq_tools.decoding_options`) and the run's own below. `python -m training.train --help`
    prints each key's help, type and accepted values."""

    # data: the keys of `DataSettings`, and
    demo: Literal[*DEMOS] | None = option(
        "an embedded corpus instead of --dataset (no network); the translation demo takes --source-lang and "
        f"--target-lang from {', '.join(DEMO_LANGUAGES)}",
        None,
    )
    demo_size: int = option("pairs the translation or dates demo generates", 6000)
    shuffle_buffer_size: int = option("shuffle buffer of a streaming dataset", 10000, minimum=1)
    max_train_samples: int | None = option("use only the first N training pairs (quick experiments)", None, minimum=1)
    max_eval_samples: int | None = option("validation pairs scored at each evaluation", 500, minimum=1)
    task: Literal[*TASKS] = option(
        "the metrics: BLEU and chrF (translation), or exact match and token F1 (qa)", "translation"
    )
    # tokenizer and preprocessing
    tokenizer: str | None = option("a saved tokenizer to reuse instead of training one", None)
    tokenizer_type: Literal[*TOKENIZER_KINDS] = option(
        "bpe: subwords with byte fallback; char: one token per character, no word marks", "bpe"
    )
    vocab_size: int = option("the vocabulary trained on the training pairs (both sides)", 8000)
    min_frequency: int = option("merges seen fewer times are not learned", 2)
    tokenizer_sample_pairs: int = option(
        "pairs the tokenizer is trained on: a random sample (with --seed) of a larger training split, the first "
        "pairs of a stream",
        1_000_000,
        minimum=1,
    )
    max_source_length: int = option("longest source in tokens, </s> included", 64)
    max_target_length: int = option("longest target in tokens, </s> included", 64)
    overlong: Literal[*OVERLONG_POLICIES] = option("longer pairs are dropped (filter) or cut (truncate)", "filter")
    preprocessing_num_workers: int | None = option(
        "processes that filter and tokenize the training split (datasets.map num_proc); null: the CPUs the process "
        "may use for 50,000 pairs or more, else 1",
        None,
        minimum=1,
    )
    # model: the keys of `ModelSettings`, and
    model_name_or_path: str | None = option("continue training a saved model (its tokenizer too)", None)
    # optimization
    batch_size: int = option("pairs per batch and process", 64, minimum=1)
    gradient_accumulation_steps: int = option("batches per optimizer step", 1, minimum=1)
    learning_rate: float = option("AdamW's peak learning rate", 0.001, above=0)
    weight_decay: float = option("AdamW's weight decay", 0.0, minimum=0)
    lr_scheduler: str = option(
        "a transformers scheduler name: linear, cosine, constant_with_warmup, ...; with --max-minutes, linear and "
        "cosine decay to 0 over the time budget (training time, or the step count if that ends sooner), "
        "otherwise over the steps",
        "linear",
    )
    warmup_steps: int = option("steps of linear warm-up", 100)
    lr_decay_fraction: float = option(
        "linear and cosine: the share at the end of the run over which the rate decays; before it, the peak "
        "rate holds (warmup-stable-decay); 1: the whole run",
        1.0,
        above=0,
        maximum=1,
    )
    max_grad_norm: float = option("gradients are clipped to this norm", 1.0, minimum=0)
    max_steps: int | None = option("optimizer steps (overrides --num-epochs)", None, minimum=1)
    max_minutes: float | None = option(
        "stop after this much training time (evaluation excluded; a resumed run continues the clock of its "
        "checkpoint); null: no limit",
        None,
        above=0,
    )
    ema_decay: float | None = option(
        "evaluate and save an exponential moving average of the weights with this decay, e.g. 0.999 "
        "(Marian's --exponential-smoothing); null: the trained weights",
        None,
        above=0,
        below=1,
    )
    num_epochs: int = option("epochs when --max-steps is null", 10)
    mixed_precision: Literal[*MIXED_PRECISION] | None = option(
        "auto: on a CPU, time fp32 against bf16 and take bf16 only where faster (fp32 where it cannot run; "
        "logged); on a GPU, what accelerate launch says (as null). bf16 on CPU and GPU, fp16 on a GPU",
        "auto",
    )
    num_threads: int | None = option(
        "torch threads (CPU); null: torch's default, at most the usable CPUs", None, minimum=1
    )
    teacher_forcing_start: float = option("teacher forcing ratio at the start", 1.0)
    teacher_forcing_end: float = option("teacher forcing ratio at the end (below 1: decoded step by step, slower)", 1.0)
    teacher_forcing_schedule: Literal[*TEACHER_FORCING_SCHEDULES] = option(
        "how the ratio moves from start to end (inverse_sigmoid: Bengio et al. 2015)", "constant"
    )
    # evaluation and generation (also saved as generation_config.json)
    eval_steps: int | None = option("evaluate every N steps and at the end; null: at the end only", 500, minimum=1)
    eval_on_start: bool = option("also measure the validation loss before training", False)
    eval_batch_size: int = option("pairs per evaluation batch", 128, minimum=1)
    # and the decoding keys of `GenerationSettings`
    num_samples: int = option("sample outputs logged and printed", 5)
    sample_prompts: list[str] = option("extra inputs whose outputs are printed at the end", [])
    metric_for_best: str = option(
        'the checkpoint kept as "best": eval_loss, perplexity, bleu, chrf, exact_match or f1', "eval_loss"
    )
    # checkpoints, logging, publishing
    output_dir: str = option("where the model, checkpoints/ and logs/ go", "runs/model")
    checkpointing_steps: int | None = option("save the full training state every N steps", 500, minimum=1)
    keep_checkpoints: int = option(
        "checkpoints kept: the newest N plus the best. At least 2 lets --resume-from-checkpoint latest skip a newest "
        "one that cannot be read; training.average averages the newest ones",
        3,
        minimum=1,
    )
    resume_from_checkpoint: str | None = option("latest, best, or a checkpoint folder to continue from", None)
    report_to: str = option("tracker: tensorboard, wandb, all or none", "tensorboard")
    logging_steps: int = option("log training loss, learning rate and tokens/s every N steps", 50)
    shortlist_pairs: int = option(
        "at the end, learn the vocabulary shortlist (shortlist.safetensors, for decoding with --shortlist FIRST,BEST) "
        "from a seeded sample of this many training pairs (not from a stream: python -m training.shortlist); 0: none",
        200_000,
        minimum=0,
    )
    push_to_hub: bool = option("upload the final model folder to the Hub", False)
    hub_model_id: str | None = option("the Hub repository (user/name); default: the output folder's name", None)
    # several processes and machines
    connect_timeout: float = option(
        "a process other than the main one: seconds to wait for the main process to answer at MASTER_ADDR:"
        "MASTER_PORT (accelerate launch's --main_process_ip and --main_process_port) before stopping with a message",
        300.0,
        above=0,
    )
    command: str | None = field(default=None, metadata={"help": None})  # the command line, recorded by main

    def model_arguments(self) -> dict[str, Any]:
        """The `Seq2SeqRNNConfig` arguments this run sets."""
        return {key: getattr(self, key) for key in MODEL_KEYS}


FIELD_HINTS = type_hints(TrainingConfig)
FIELDS = {item.name: item for item in dataclasses.fields(TrainingConfig)}


def _converted(key: str, value: Any) -> Any:
    """`value` as config key `key` (type, accepted values, least value), or `TrainingInputError`."""
    try:
        return convert(key, value, FIELD_HINTS[key], **bounds_of(FIELDS[key]))
    except OptionValueError as error:
        raise TrainingInputError(str(error)) from error


def _unknown_key_message(key: str, where: str) -> str:
    close = difflib.get_close_matches(key, FIELD_HINTS, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see training/configs/*.yaml for the keys"
    return f"unknown config key {key!r} in {where}{hint}"


def load_yaml(path: str) -> dict[str, Any]:
    """The keys of a YAML config file, as YAML read them (`validate` reads each as its key's type)."""
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
        if key not in FIELD_HINTS:
            raise TrainingInputError(_unknown_key_message(key, path))
    return content


def build_parser() -> argparse.ArgumentParser:
    parser = OptionParser(
        prog="python -m training.train",
        usage="%(prog)s [--config FILE] [--KEY VALUE ...]",
        allow_abbrev=False,
        description="Train the recurrent encoder-decoder of hf_seq2seq_rnn with Accelerate. Every key of a "
        "--config YAML file is also a flag (--hidden-size 512, --streaming true); flags win over the file, "
        "the file over the defaults shown here. Values are read as YAML (true, null, [a, b]).",
    )
    parser.add_argument("--config", help="YAML file of config keys (training/configs/*.yaml)")
    data_keys = [item.name for item in dataclasses.fields(DataSettings)]
    declared = {*MODEL_KEYS, *data_keys, *GENERATION_KEYS}
    run_keys = [name for name in FIELDS if name not in declared]
    for title, keys in (
        ("data (DataSpec)", data_keys),
        ("model (Seq2SeqRNNSettings)", MODEL_KEYS),
        ("evaluation and generation_config.json (seq2seq_tools.decoding_options)", GENERATION_KEYS),
        ("the run", run_keys),
    ):
        add_options(parser.add_argument_group(title), TrainingConfig, keys, keep_defaults=False)
    return parser


def parse_config(argv: list[str] | None = None) -> TrainingConfig:
    """Defaults, then the `--config` YAML file, then the flags: the run's `TrainingConfig`."""
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if unknown:
        flag = unknown[0].split("=")[0]
        raise TrainingInputError(_unknown_key_message(flag.lstrip("-").replace("-", "_"), "the command line"))
    values: dict[str, Any] = {}
    if namespace.config:
        values.update(load_yaml(namespace.config))
    values.update({key: value for key, value in vars(namespace).items() if key != "config"})
    config = TrainingConfig(**values)
    validate(config)
    return config


def validate(config: TrainingConfig) -> None:
    """Read each value as its key's declared type (a YAML `no` for mixed_precision is "no", an int
    learning rate a float), in place; then raise `TrainingInputError` for values no run could use
    (model values are checked by the model config)."""
    for key in FIELDS:  # type, accepted values and least value, as declared (also for a config built in code)
        setattr(config, key, _converted(key, getattr(config, key)))
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
        if config.streaming:
            raise TrainingInputError(
                "the embedded demos are read into memory: leave out --streaming, or pass --dataset"
            )
    if config.target_file is not None and config.dataset is None:
        raise TrainingInputError(
            "--target-file goes with --dataset, the file of its sources: --dataset train.de --target-file train.en"
        )
    if config.target_file is not None and config.streaming:
        raise TrainingInputError(
            "--target-file reads both files into memory; for a corpus larger than memory, join them into "
            "source<TAB>target lines in a .txt and pass --streaming"
        )
    if config.streaming and config.max_steps is None:
        raise TrainingInputError("a streaming dataset has no known length: pass --max-steps")
    try:
        Seq2SeqRNNConfig(**config.model_arguments())
    except ValueError as error:
        raise TrainingInputError(f"bad model setting: {error}") from error
