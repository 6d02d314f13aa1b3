"""The embedded demo models that `python -m chatbot` serves when no `--model` is given.

They live under `$HF_SEQ2SEQ_RNN_HOME` (default `~/.cache/hf-seq2seq-rnn`) as `demo-chat`,
`demo-chat-ko` (Korean), `demo-translation` (English -> French) and `demo-translation-ko`
(Korean -> English); `python -m chatbot --variants` serves the `variants-*` models instead, the
textbook's contrast set on its date task (`VARIANT_DEMOS`). A missing one is trained once by the project's training script, run as a
subprocess exactly as a user would run it:

    python -m training.train --config training/configs/chat_demo.yaml --output-dir DIR

The missing ones train cheapest first (`training_cost`), so that one is usable soon; their time
left is estimated from the pace measured as they train (`chatbot.background.TimeLeft`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import yaml

from .background import TimeLeft, time_left_text

logger = logging.getLogger(__name__)

DEMO_MODELS = {
    "demo-chat": "chat_demo.yaml",
    "demo-chat-ko": "chat_demo_ko.yaml",
    "demo-translation": "translation_demo.yaml",
    "demo-translation-ko": "translation_demo_ko.yaml",
}
# `python -m chatbot --variants`: the textbook's contrast set on its date task (training/demos.py),
# one config and each model's own flags on top of it.
VARIANT_CONFIG = "variants_demo.yaml"
VARIANT_DEMOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "variants-no-attention": (VARIANT_CONFIG, ("--attention-type", "none")),
    "variants-dot": (VARIANT_CONFIG, ("--attention-type", "dot")),
    "variants-additive": (VARIANT_CONFIG, ("--attention-type", "additive")),
    "variants-general-input-feeding": (VARIANT_CONFIG, ("--attention-type", "general", "--input-feeding", "true")),
    "variants-peeky": (VARIANT_CONFIG, ("--attention-type", "none", "--peeky", "true")),
}
# The four the Compare tab starts with (it takes four at most); the first, whose alignment the others'
# are compared with, has attention.
VARIANT_COMPARED = ["variants-dot", "variants-additive", "variants-general-input-feeding", "variants-no-attention"]
# The Compare tab's inputs, from short to long: a model without attention holds the short ones in
# its one context vector and loses the long ones.
VARIANT_EXAMPLES = (
    "25.12.99",
    "12/25/99",
    "Dec 25, 1999",
    "25 décembre 1999",
    "Saturday, December 25, 1999",
    "Samstag, 25. Dezember 1999",
    "sábado, 25 de diciembre de 1999",
)
# A demo: its config file in training/configs/, or that and extra flags of the training script.
DemoSpec = str | tuple[str, tuple[str, ...]]


class DemoModelError(RuntimeError):
    """A demo model is missing and could not be trained; the message says why and what to do."""


def demo_home() -> Path:
    """`$HF_SEQ2SEQ_RNN_HOME`, or `~/.cache/hf-seq2seq-rnn`."""
    return Path(os.environ.get("HF_SEQ2SEQ_RNN_HOME") or Path.home() / ".cache" / "hf-seq2seq-rnn")


def is_trained(directory: Path) -> bool:
    """Whether `directory` holds a saved model and tokenizer."""
    return (directory / "config.json").is_file() and (directory / "tokenizer.json").is_file()


def training_config(file_name: str) -> Path:
    """The path of a config shipped in `training/configs/`; DemoModelError without the package."""
    spec = importlib.util.find_spec("training")
    if spec is None or not spec.submodule_search_locations:
        raise DemoModelError(
            "The demo models are not trained yet and the `training` package is not importable, so they "
            "cannot be trained here. Run from the project's checkout (or install it with its [train] extra), "
            "or serve a model of your own with `python -m chatbot --model DIR_OR_HUB_ID`."
        )
    config = Path(next(iter(spec.submodule_search_locations))) / "configs" / file_name
    if not config.is_file():
        raise DemoModelError(f"The training config {config} is missing; cannot train the demo model.")
    return config


def missing_demo_models(home: Path | None = None, demos: dict[str, DemoSpec] = DEMO_MODELS) -> list[str]:
    """The names of the demo models of `demos` not yet trained under `home`, in the order to train
    them: cheapest first (`training_cost`; those of unknown cost last, in the order of `demos`).

    Raises:
        DemoModelError: a missing model's config cannot be found (`training_config`): it could not
            be trained either.
    """
    home = home or demo_home()
    missing = [name for name in demos if not is_trained(home / name)]
    costs = {name: training_cost(demos[name]) for name in missing}
    return sorted(missing, key=lambda name: (costs[name] is None, costs[name] or 0.0))


# The settings whose product `training_cost` takes: the time of a step grows with each of them.
COST_KEYS = ("max_steps", "batch_size", "num_layers", "max_source_length", "max_target_length", "hidden_size")


def training_cost(spec: DemoSpec) -> float | None:
    """A rough cost of training a demo, only to order the demos by: steps x batch size x layers x
    (source + target length) x hidden size squared, from its config with its flags on top; None
    when the config leaves one of them unset (such as `max_steps` when epochs end the training).

    Raises:
        DemoModelError: the config cannot be found (`training_config`).
    """
    config_name, flags = (spec, ()) if isinstance(spec, str) else spec
    settings = yaml.safe_load(training_config(config_name).read_text(encoding="utf-8"))
    settings = dict(settings) if isinstance(settings, dict) else {}
    pairs = zip(flags[::2], flags[1::2], strict=True)  # the flags are "--name value" pairs
    settings.update({flag.removeprefix("--").replace("-", "_"): value for flag, value in pairs})
    try:
        steps, batch, layers, source, target, hidden = (float(settings[key]) for key in COST_KEYS)
    except (KeyError, TypeError, ValueError):
        return None
    return steps * batch * layers * (source + target) * hidden**2


# tqdm's bar as the training script prints it: "Training:  40%|████      | 150/375 [...]".
PERCENT = re.compile(r"(\d{1,3})%\|")


def train_demo_model(
    name: str,
    home: Path | None = None,
    progress: Callable[[float | None, str], None] | None = None,
    demos: dict[str, DemoSpec] = DEMO_MODELS,
) -> Path:
    """Train the demo model `name` (a key of `demos`) into `home / name` and return that folder.

    It is trained into `NAME.partial` and renamed when the script succeeds, so an interrupted run
    never leaves a half-written model that looks finished. The script's output goes on to this
    process' stderr; `progress(fraction, line, seconds_left)` gets each of its lines, with the
    fraction done (0 to 1) read from its progress bar (None before the bar starts) and the training
    time left estimated from the pace so far (`TimeLeft`; None until a few percent are done). The
    estimate is also logged at each tenth of the training.

    Raises:
        DemoModelError: the script failed, or the `training` package is not importable.
    """
    home = home or demo_home()
    directory = home / name
    config_name, flags = (demos[name], ()) if isinstance(demos[name], str) else demos[name]
    config = training_config(config_name)
    partial = home / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "training.train", "--config", str(config), "--output-dir", str(partial), *flags]
    logger.warning(
        "The demo model %s is not trained yet; training it now (the time left is logged once a few percent are "
        "done): %s",
        name,
        " ".join(command),
    )
    process = subprocess.Popen(
        command, cwd=config.parent.parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    fraction, time_left, logged_tenth = None, TimeLeft(), 0
    for line in _lines(process.stdout):
        sys.stderr.write(line + "\n")
        found = PERCENT.findall(line)
        fraction = int(found[-1]) / 100 if found else fraction
        seconds_left = time_left.update(fraction, time.monotonic())
        if seconds_left is not None and int(10 * fraction) > logged_tenth:
            logged_tenth = int(10 * fraction)
            logger.info("The demo model %s: %.0f%% trained, %s", name, 100 * fraction, time_left_text(seconds_left))
        if progress is not None:
            progress(fraction, line, seconds_left)
    returncode = process.wait()
    if returncode != 0 or not is_trained(partial):
        raise DemoModelError(
            f"Training the demo model {name} failed (exit status {returncode}); see the output above. "
            f"Command: {' '.join(command)}"
        )
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    logger.warning("Trained the demo model %s into %s", name, directory)
    return directory


def _lines(stream: IO[bytes] | None) -> Iterator[str]:
    """The non-empty lines of a byte stream, split at `\\n` and at the `\\r` of progress bars."""
    if stream is None:
        return
    pending = b""
    while chunk := stream.read1(4096):
        pending += chunk
        *lines, pending = re.split(rb"[\r\n]", pending)
        yield from (line.decode("utf-8", "replace") for line in lines if line.strip())
    if pending.strip():
        yield pending.decode("utf-8", "replace")


def ensure_demo_models(home: Path | None = None, demos: dict[str, DemoSpec] = DEMO_MODELS) -> list[Path]:
    """The demo model directories, training the missing ones first, one after another, cheapest
    first (`missing_demo_models`, `train_demo_model`)."""
    home = home or demo_home()
    for name in missing_demo_models(home, demos):
        train_demo_model(name, home, demos=demos)
    return [home / name for name in demos]
