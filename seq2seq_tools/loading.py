"""Load a saved model, its config and its tokenizer without running Python code that came with it.

A folder written by `save_pretrained` (or a Hub repository made from one) carries copies of this
package's `.py` files and an `auto_map`, so that someone without the package can load it with
`trust_remote_code=True`. Wherever this module runs, the package is installed, so:

- a model of our type (`model_type: seq2seq_rnn` in config.json) is loaded with the installed
  classes (`Seq2SeqRNNConfig`, `Seq2SeqRNNForConditionalGeneration`); no `.py` file of the folder
  is imported, whatever `trust_remote_code` says;
- any other model type is refused with `UntrustedModelError` (one line that names
  `--trust-remote-code`), unless the caller passes `trust_remote_code=True`: then it goes through
  transformers' Auto classes, which import the folder's code if it has any;
- a tokenizer loads through `AutoTokenizer`, with `trust_remote_code` as given: it needs no code
  of ours, and without the flag transformers imports none of the folder's.

The installed classes are used directly, not through the Auto classes: transformers 5.0 (our
floor) imports a folder's code whenever `trust_remote_code=True`, even for a type registered in
the process, and only later releases prefer the registered class.

Version skew: the config records the release that wrote it (`seq2seq_rnn_version`). Loading a
model written by another release logs one line with both versions; a model whose config.json has
settings the installed release does not know is refused with `IncompatibleModelError`, which says
to upgrade.

Every command that loads a model goes through here (the chatbot, training's fine-tuning, resuming
and `--tokenizer`, the predict command, averaging):

    from seq2seq_tools.loading import load_model, load_model_and_tokenizer, load_tokenizer, read_training_info
    model = load_model("runs/demo-translation")        # a folder or a Hub id; in eval mode
    tokenizer = load_tokenizer("runs/demo-translation")
    model, tokenizer = load_model_and_tokenizer("runs/demo-translation", quantize="int8")
    read_training_info("runs/demo-translation")        # {"task": "translation", "source_lang": "en", ...}
    load_model("someone/another-type")                 # UntrustedModelError
    load_model("someone/another-type", trust_remote_code=True)  # its code runs
    load_model("runs/typo")                            # FileNotFoundError: the local path runs/typo does not exist; ...
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any

import transformers
from packaging.version import InvalidVersion, Version
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from hf_seq2seq_rnn import SEQ2SEQ_RNN_VERSION, VERSION_KEY, Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from hf_seq2seq_rnn.configuration_seq2seq_rnn import SETTINGS

from .quantization import check_quantize, maybe_quantize

logger = logging.getLogger(__name__)

MODEL_TYPE = Seq2SeqRNNConfig.model_type
TRAINING_INFO = "training_info.json"
TRUST_FLAG = "--trust-remote-code"
# Keys that transformers itself reads or writes in a config.json, beyond those of a default
# `PreTrainedConfig().to_dict()`: they never mean that a newer hf-seq2seq-rnn wrote the file.
TRANSFORMERS_KEYS = frozenset(
    {
        "architectures",
        "attn_implementation",
        "auto_map",
        "custom_pipelines",
        "dtype",
        "experts_implementation",
        "model_type",
        "name_or_path",
        "num_labels",
        "output_attentions",
        "quantization_config",
        "torch_dtype",
        "transformers_version",
        "_attn_implementation_autoset",
        "_commit_hash",
        "_name_or_path",
    }
)


def looks_like_a_path(name_or_path: str) -> bool:
    """Whether `name_or_path` can only be a local path: a Hub id is `name` or `user/name`, never more."""
    return (
        name_or_path.startswith((".", "/", "~"))
        or name_or_path.count("/") > 1
        or os.sep in name_or_path.replace("/", "")
    )


class UntrustedModelError(ValueError):
    """The model is not of our type and `trust_remote_code` is off: loading it could run code that
    ships with it. The message is one line that says so and names `--trust-remote-code`."""

    def __init__(self, source: str, model_type: str | None) -> None:
        self.source = source
        self.model_type = model_type
        what = f"a {model_type!r} model" if model_type else "a model without a model_type"
        super().__init__(
            f"{source} is {what}, not {MODEL_TYPE!r}; loading it may run Python code that ships with it, so it "
            f"is refused: pass {TRUST_FLAG} (trust_remote_code=True in Python) if you trust where it comes from"
        )


class IncompatibleModelError(ValueError):
    """The model needs settings that the installed hf-seq2seq-rnn lacks; the message says to upgrade."""


def read_config_dict(source: str | Path) -> dict[str, Any]:
    """config.json of a folder or a Hub id, as a dict, read as data: no code is imported.

    Raises `OSError` when there is no config.json to read (transformers' message says where it looked).
    """
    config_dict, _ = PreTrainedConfig.get_config_dict(str(source))
    return config_dict


def load_config(source: str | Path, *, trust_remote_code: bool = False) -> PreTrainedConfig:
    """The config of the model at `source` (a folder written by `save_pretrained`, or a Hub id).

    Args:
        source: the folder or Hub id.
        trust_remote_code: allow a model of another type than `seq2seq_rnn`, loaded through
            `AutoConfig`, which may run the folder's code. Ours never runs it.

    Returns:
        A `Seq2SeqRNNConfig` for our type, otherwise what `AutoConfig` makes of it.

    Raises:
        UntrustedModelError: another type, without `trust_remote_code`.
        IncompatibleModelError: config.json has settings that the installed release does not know.
        OSError: there is no config.json at `source`.
    """
    config_dict = read_config_dict(source)
    if config_dict.get("model_type") != MODEL_TYPE:
        if not trust_remote_code:
            raise UntrustedModelError(str(source), config_dict.get("model_type"))
        return AutoConfig.from_pretrained(str(source), trust_remote_code=True)
    return _our_config(str(source), config_dict)


def check_model_path(source: str | Path) -> None:
    """Refuse a local path that holds no model, in words a user can act on: transformers would
    take it for a Hub id and say that the id is malformed or not found.

    Raises:
        FileNotFoundError: `source` looks like a local path and does not exist, or it exists
            without a config.json.
    """
    source = str(source)
    if looks_like_a_path(source) and not os.path.exists(source):
        raise FileNotFoundError(
            f"the local path {source} does not exist; pass a folder written by save_pretrained "
            "or a Hub id of the form user/model"
        )
    if os.path.exists(source) and not os.path.isfile(os.path.join(source, "config.json")):
        raise FileNotFoundError(
            f"{source} is not a model folder (no config.json); pass a folder written by "
            "training.train (its --output-dir) or save_pretrained, or a Hub id"
        )


def load_model(
    source: str | Path, *, quantize: str | None = None, trust_remote_code: bool = False, **kwargs: Any
) -> PreTrainedModel:
    """The model at `source` (a folder written by `save_pretrained`, or a Hub id), in eval mode.

    Args:
        source: the folder or Hub id.
        quantize: "int8" for int8 weights in the recurrent and linear layers
            (`seq2seq_tools.quantization`, CPU only); `None` or "none" keeps the saved weights.
        trust_remote_code: allow a model of another type than `seq2seq_rnn`, loaded through
            `AutoModelForSeq2SeqLM`, which may run the folder's code. Ours never runs it.
        kwargs: passed to `from_pretrained` (`dtype=`, `device_map=`, ...).

    Returns:
        A `Seq2SeqRNNForConditionalGeneration` for our type (with the folder's
        `generation_config.json`), otherwise what `AutoModelForSeq2SeqLM` loads.

    Raises:
        ValueError: a `quantize` value other than those above (checked before loading).
        FileNotFoundError: as `check_model_path`.
        UntrustedModelError, IncompatibleModelError, OSError: as `load_config`.
    """
    check_quantize(quantize)
    check_model_path(source)
    config = load_config(source, trust_remote_code=trust_remote_code)
    if not isinstance(config, Seq2SeqRNNConfig):
        model = AutoModelForSeq2SeqLM.from_pretrained(str(source), config=config, trust_remote_code=True, **kwargs)
    else:
        model = Seq2SeqRNNForConditionalGeneration.from_pretrained(str(source), config=config, **kwargs)
    return maybe_quantize(model.eval(), quantize)


def load_model_and_tokenizer(
    source: str | Path, *, quantize: str | None = None, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`load_model(source, ...)` and `load_tokenizer(source, ...)`: what a command that decodes needs.

    Raises:
        What `load_model` and `load_tokenizer` raise.
    """
    model = load_model(source, quantize=quantize, trust_remote_code=trust_remote_code)
    return model, load_tokenizer(source, trust_remote_code=trust_remote_code)


def read_training_info(source: str | Path) -> dict[str, Any]:
    """The `training_info.json` that training saves beside a model (task, languages, example prompts,
    metrics, configuration), from a folder or a Hub repository; `{}` for a model without one.

    Raises:
        ValueError: the file is there but is not a JSON object.
    """
    path = Path(source) / TRAINING_INFO
    if not Path(source).is_dir():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = Path(hf_hub_download(str(source), TRAINING_INFO))
        except (OSError, EntryNotFoundError) as error:  # not on the Hub, or the Hub out of reach
            logger.info("no %s for %s: %s", TRAINING_INFO, source, error)
            return {}
    if not path.is_file():
        return {}
    info = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(info, dict):
        raise ValueError(f"{path} holds a JSON {type(info).__name__}, not an object")
    return info


def load_tokenizer(source: str | Path, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer saved at `source`: beside a model, or alone (a folder written by
    `tokenizer.save_pretrained`, as training's `--tokenizer` takes).

    `AutoTokenizer` with `trust_remote_code` as given: without it, a tokenizer that names code of
    its own (an `auto_map` in tokenizer_config.json) and no class of transformers is refused by
    transformers, and no file of the folder is imported. Beside a model of our type, that type is
    handed to it directly: given no config, transformers 5.0 reads one through `AutoConfig`, which
    with `trust_remote_code=True` imports the folder's configuration file.

    Raises:
        ValueError, OSError: transformers' own, when the tokenizer cannot be loaded.
    """
    try:
        ours = read_config_dict(source).get("model_type") == MODEL_TYPE
    except OSError:  # a tokenizer on its own: nothing but the tokenizer files
        ours = False
    config = Seq2SeqRNNConfig() if ours else None
    return AutoTokenizer.from_pretrained(str(source), config=config, trust_remote_code=trust_remote_code)


def _our_config(source: str, config_dict: dict[str, Any]) -> Seq2SeqRNNConfig:
    """`Seq2SeqRNNConfig` from config.json, after the version checks; a value the installed
    release rejects becomes `IncompatibleModelError` when a newer release wrote the file."""
    written = config_dict.get(VERSION_KEY)
    _log_version_skew(source, written)
    unknown = sorted(set(config_dict) - _known_keys())
    if unknown:
        if _is_newer(config_dict.get("transformers_version"), transformers.__version__) and not _is_newer(
            written, SEQ2SEQ_RNN_VERSION
        ):
            logger.warning(
                "%s: ignoring config.json keys %s, written by transformers %s (installed: %s), not by hf-seq2seq-rnn",
                source,
                ", ".join(unknown),
                config_dict.get("transformers_version"),
                transformers.__version__,
            )
        else:
            raise IncompatibleModelError(
                f"{source} needs settings that hf-seq2seq-rnn {SEQ2SEQ_RNN_VERSION} does not have "
                f"({', '.join(unknown)} in config.json); it was written by hf-seq2seq-rnn "
                f"{written or 'of an unknown version'}: upgrade with `pip install -U hf-seq2seq-rnn`"
            )
    try:
        return Seq2SeqRNNConfig.from_dict(config_dict)
    except ValueError as error:
        if _is_newer(written, SEQ2SEQ_RNN_VERSION):
            raise IncompatibleModelError(
                f"{source} was written by hf-seq2seq-rnn {written}, and the installed hf-seq2seq-rnn "
                f"{SEQ2SEQ_RNN_VERSION} rejects its config ({error}): upgrade with `pip install -U hf-seq2seq-rnn`"
            ) from error
        raise ValueError(f"{source} has a bad config.json: {error}") from error


def _log_version_skew(source: str, written: object) -> None:
    if written is None:
        logger.info(
            "%s does not say which hf-seq2seq-rnn release wrote it (installed: %s)", source, SEQ2SEQ_RNN_VERSION
        )
    elif written != SEQ2SEQ_RNN_VERSION:
        logger.warning(
            "%s was written by hf-seq2seq-rnn %s; the installed release is %s", source, written, SEQ2SEQ_RNN_VERSION
        )


def _known_keys() -> set[str]:
    """config.json keys that the installed config class or transformers understands."""
    ours = set(SETTINGS) | set(inspect.signature(Seq2SeqRNNConfig.__init__).parameters) - {"self", "kwargs"}
    generation = set(GenerationConfig._get_default_generation_params())  # transformers drops these when read
    return ours | {VERSION_KEY} | set(PreTrainedConfig().to_dict()) | TRANSFORMERS_KEYS | generation


def _is_newer(version: object, than: str) -> bool:
    """Whether `version` is a release after `than`; False when it is missing or not a version."""
    try:
        return Version(str(version)) > Version(than)
    except InvalidVersion:
        return False
