"""The embedded demo models that `python -m chatbot` serves when no `--model` is given.

They live under `$HF_SEQ2SEQ_RNN_HOME` (default `~/.cache/hf-seq2seq-rnn`) as `demo-chat`,
`demo-chat-ko` (Korean), `demo-translation` (English -> French) and `demo-translation-ko`
(Korean -> English). A missing one is trained once by the project's training script, run as a
subprocess exactly as a user would run it:

    python -m training.train --config training/configs/chat_demo.yaml --output-dir DIR
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

DEMO_MODELS = {
    "demo-chat": "chat_demo.yaml",
    "demo-chat-ko": "chat_demo_ko.yaml",
    "demo-translation": "translation_demo.yaml",
    "demo-translation-ko": "translation_demo_ko.yaml",
}


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


def ensure_demo_models(home: Path | None = None) -> list[Path]:
    """The demo model directories, training the missing ones first (1–3 minutes each on 2 cores).

    Each is trained into `NAME.partial` and renamed when the script succeeds, so an interrupted
    run never leaves a half-written model that looks finished.
    """
    home = home or demo_home()
    directories = []
    for name, config_name in DEMO_MODELS.items():
        directory = home / name
        directories.append(directory)
        if is_trained(directory):
            continue
        config = training_config(config_name)
        partial = home / f"{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "training.train", "--config", str(config), "--output-dir", str(partial)]
        logger.warning(
            "The demo model %s is not trained yet; training it now (1-3 minutes): %s", name, " ".join(command)
        )
        result = subprocess.run(command, cwd=config.parent.parent.parent, check=False)
        if result.returncode != 0 or not is_trained(partial):
            raise DemoModelError(
                f"Training the demo model {name} failed (exit status {result.returncode}); see the output above. "
                f"Command: {' '.join(command)}"
            )
        shutil.rmtree(directory, ignore_errors=True)
        partial.rename(directory)
        logger.warning("Trained the demo model %s into %s", name, directory)
    return directories
