"""Average the weights of a run's last checkpoints into a model folder that loads like any other.

    python -m training.average --checkpoints runs/demo-translation --last 3 --output runs/demo-translation-avg3
    python -m training.predict --model runs/demo-translation-avg3 --dataset test.tsv --output hyp.txt

The mean of the parameters of the last few checkpoints of one run (Vaswani et al. 2017, section 6.1;
fairseq's `scripts/average_checkpoints.py`) is often a little better than the last one alone. The
run keeps the newest `--keep-checkpoints` checkpoints (training/checkpoints.py); this command takes
the newest `--last` of them that read back (an unreadable one is reported and skipped), sums their
weights in float64, divides, and writes the mean in the weights' own dtype.

The output folder is what training writes at its end, so the chatbot, `training.predict` and
`AutoModelForSeq2SeqLM` load it as they load a run: the weights with the model's code
(`save_pretrained`), config.json, generation_config.json and the tokenizer taken from the run's
folder, and `training_info.json` and the model card, which name the checkpoints averaged. The run's
metrics were measured on its final weights, not on the mean: they move to `averaged.run_metrics`.

Model weights in a checkpoint: accelerate's `save_state` writes `model.safetensors`
(`pytorch_model.bin` with `safe_serialization=False`); keys wrapped by DistributedDataParallel
(`module.`) or `torch.compile` (`_orig_mod.`) are unwrapped. Bad input ends with one line on stderr
and exit code 2.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import SAFE_WEIGHTS_NAME, WEIGHTS_NAME
from safetensors.torch import load_file
from transformers import GenerationConfig

import hf_seq2seq_rnn  # noqa: F401  (registers the model's code, which save_pretrained copies beside the weights)
from hf_seq2seq_rnn import Seq2SeqRNNForConditionalGeneration
from seq2seq_tools.loading import MODEL_TYPE, load_config, load_tokenizer, read_config_dict, read_training_info
from seq2seq_tools.options import OptionParser, add_options, from_namespace, option

from . import checkpoints
from .errors import TrainingInputError, run_command
from .model_card import public_name, write_model_card

logger = logging.getLogger(__name__)

# Wrappers whose attribute name prefixes every key of a state dict saved without unwrapping.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# What training writes into its output folder at the end, and this command copies from it.
RUN_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "training_info.json")


@dataclass
class AverageSettings:
    """The options of `python -m training.average`; each field is a flag."""

    checkpoints: str = option(
        "the run's output folder (--output-dir of training) or its checkpoints/", dataclasses.MISSING, required=True
    )
    last: int = option("how many of the newest readable checkpoints", dataclasses.MISSING, required=True)
    output: str = option("the model folder to write (created if missing)", dataclasses.MISSING, required=True)


def build_parser() -> OptionParser:
    parser = OptionParser(
        prog="python -m training.average",
        allow_abbrev=False,
        description="Average the weights of the last N checkpoints of a training run into a model folder.",
    )
    add_options(parser, AverageSettings)
    return parser


def find_run(path: str) -> str:
    """The run's output folder for `--checkpoints` (the folder itself, or the one above `checkpoints/`)."""
    if not os.path.isdir(path):
        raise TrainingInputError(f"--checkpoints {path}: no such folder; pass a training run's --output-dir")
    if os.path.isdir(checkpoints.checkpoint_root(path)):
        return path
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.basename(os.path.abspath(path)) == os.path.basename(checkpoints.checkpoint_root(parent)):
        return parent
    raise TrainingInputError(
        f"--checkpoints {path} holds no checkpoints/ folder; pass a training run's --output-dir "
        "(trained with --checkpointing-steps)"
    )


def newest_readable(run: str, count: int) -> list[str]:
    """The newest `count` checkpoint folders of `run` that read back, oldest first (unreadable ones are skipped)."""
    if count < 1:
        raise TrainingInputError(f"--last {count}: must be at least 1")
    readable, skipped = [], []
    for path in checkpoints.checkpoint_folders(run):
        problem = checkpoints.checkpoint_problem(path)
        if problem is None:
            readable.append(path)
            if len(readable) == count:
                break
        else:
            skipped.append(f"{os.path.basename(path)}: {problem}")
    if len(readable) < count:
        names = ", ".join(os.path.basename(path) for path in reversed(readable)) or "none"
        unreadable = f"; unreadable: {'; '.join(skipped)}" if skipped else ""
        raise TrainingInputError(
            f"--last {count}: {checkpoints.checkpoint_root(run)} has {len(readable)} readable checkpoint(s) ({names}"
            f"{unreadable}); pass --last {max(len(readable), 1)} or fewer, or train with a larger --keep-checkpoints"
        )
    for problem in skipped:
        logger.warning("skipping checkpoint %s", problem)
    return list(reversed(readable))


def read_weights(checkpoint: str) -> dict[str, torch.Tensor]:
    """The model's weights saved in `checkpoint` by accelerate's `save_state`, keys unwrapped."""
    safetensors_file, torch_file = os.path.join(checkpoint, SAFE_WEIGHTS_NAME), os.path.join(checkpoint, WEIGHTS_NAME)
    if os.path.isfile(safetensors_file):
        weights = load_file(safetensors_file)
    elif os.path.isfile(torch_file):
        weights = torch.load(torch_file, map_location="cpu", weights_only=True)
    else:
        raise TrainingInputError(
            f"{checkpoint} has no {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME}; a sharded (FSDP) checkpoint must first be "
            "merged with `accelerate merge-weights`"
        )
    return {_unwrapped(key): tensor for key, tensor in weights.items()}


def _unwrapped(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def average_weights(paths: list[str]) -> dict[str, torch.Tensor]:
    """The mean of the checkpoints' weights: summed in float64, returned in each weight's dtype.

    Raises `TrainingInputError` when the checkpoints do not hold the same weights (names, shapes, dtypes).
    """
    first = read_weights(paths[0])
    totals = {key: tensor.to(torch.float64) for key, tensor in first.items() if tensor.is_floating_point()}
    weights = first
    for path in paths[1:]:
        weights = read_weights(path)
        difference = _difference(first, weights)
        if difference:
            raise TrainingInputError(
                f"{os.path.basename(path)} and {os.path.basename(paths[0])} hold different models ({difference}); "
                "average checkpoints of one run"
            )
        for key, total in totals.items():
            total += weights[key].to(torch.float64)
    # Integer buffers (none in this model today) are counts, not weights: the newest one is kept.
    return {
        key: (totals[key] / len(paths)).to(tensor.dtype) if key in totals else weights[key]
        for key, tensor in first.items()
    }


def _difference(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """The first way `found` differs from `expected` in names, shapes or dtypes, or None."""
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or extra:
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    for key, tensor in expected.items():
        if tensor.shape != found[key].shape or tensor.dtype != found[key].dtype:
            return f"{key}: {tuple(found[key].shape)} {found[key].dtype}, expected {tuple(tensor.shape)} {tensor.dtype}"
    return None


def check_run_files(run: str) -> None:
    """What training writes at its end is there, for a model of our type."""
    missing = [name for name in RUN_FILES if not os.path.isfile(os.path.join(run, name))]
    if missing:
        raise TrainingInputError(
            f"{run} has no {', '.join(missing)} (training writes the model's config, tokenizer and training_info.json "
            "at its end); let the run finish, e.g. run its command again with --resume-from-checkpoint latest"
        )
    model_type = read_config_dict(run).get("model_type")
    if model_type != MODEL_TYPE:
        raise TrainingInputError(
            f"{os.path.join(run, 'config.json')} is a {model_type!r} model; training.average averages runs of "
            f"training.train ({MODEL_TYPE!r})"
        )


def averaged_model(run: str, weights: dict[str, torch.Tensor], names: list[str]) -> torch.nn.Module:
    """The run's model (config.json, generation_config.json) holding `weights`, in their dtype."""
    config = load_config(run)
    model = Seq2SeqRNNForConditionalGeneration(config)
    dtype = next((tensor.dtype for tensor in weights.values() if tensor.is_floating_point()), None)
    if dtype is not None:
        model.to(dtype)
    expected = model.state_dict()
    # accelerate saves tied weights once: a tied key may be missing, its source carries it.
    tied = {
        key
        for target, source in (model._tied_weights_keys or {}).items()
        if config.tie_word_embeddings
        for key in (target, source)
    }
    missing = sorted(expected.keys() - weights.keys() - tied)
    extra = sorted(weights.keys() - expected.keys())
    shapes = [key for key in expected.keys() & weights.keys() if expected[key].shape != weights[key].shape]
    if missing or extra or shapes:
        shown = f"missing {missing[:3]}, unexpected {extra[:3]}, other shapes {sorted(shapes)[:3]}"
        raise TrainingInputError(
            f"the weights of {', '.join(names)} do not fit {os.path.join(run, 'config.json')} "
            f"(model_type {config.model_type!r}: {shown}); average checkpoints of the run that wrote that folder"
        )
    model.load_state_dict(weights, strict=False)
    model.tie_weights()
    model.generation_config = GenerationConfig.from_pretrained(run)
    return model


def averaged_info(run: str, names: list[str], command: str) -> dict[str, Any]:
    """The run's `training_info.json`, noting the averaged checkpoints; its metrics belong to its final weights."""
    info = read_training_info(run)
    steps = [checkpoints.read_trainer_state(os.path.join(checkpoints.checkpoint_root(run), name)) for name in names]
    info["averaged"] = {
        "run": public_name(run),
        "checkpoints": names,
        "steps": [state["completed_steps"] for state in steps],
        "run_metrics": info.get("metrics", {}),
        "command": command,
    }
    info["metrics"] = {}
    return info


def average(checkpoints_dir: str, last: int, output: str, command: str = "") -> list[str]:
    """Write the mean of the newest `last` readable checkpoints of a run to `output`; returns their names."""
    run = find_run(checkpoints_dir)
    if os.path.realpath(output) in (os.path.realpath(run), os.path.realpath(checkpoints.checkpoint_root(run))):
        raise TrainingInputError(f"--output {output} is the run's own folder; pass a new folder")
    paths = newest_readable(run, last)
    check_run_files(run)
    names = [os.path.basename(path) for path in paths]
    model = averaged_model(run, average_weights(paths), names)
    tokenizer = load_tokenizer(run)
    info = averaged_info(run, names, command)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    write_model_card(output, info)
    return names


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 on bad input (one line on stderr)."""
    arguments = sys.argv[1:] if argv is None else list(argv)

    def average_and_report() -> None:
        settings = from_namespace(AverageSettings, build_parser().parse_args(arguments))
        command = "python -m training.average " + shlex.join(arguments)
        names = average(settings.checkpoints, settings.last, settings.output, command)
        print(f"averaged {', '.join(names)} into {settings.output}")

    return run_command(average_and_report)


if __name__ == "__main__":
    sys.exit(main())
