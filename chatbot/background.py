"""The served models, some of them still training: the page opens at once and each model joins when
its training ends (no Gradio here).

    registry = ModelRegistry(ready_models, pending=["demo-chat", "demo-translation"])
    train_in_background(registry, functools.partial(train_demo_model, home=home), load_model)
    registry.models      # the models ready now, by the name the page shows
    registry.status()    # name -> Training(state, fraction, detail)

Models train one after another in one daemon thread (two at once would only share the same cores).
A model whose training or loading fails is marked failed, with the reason, and logged; the others
go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .inference import LoadedModel

logger = logging.getLogger(__name__)

WAITING, TRAINING, READY, FAILED = "waiting", "training", "ready", "failed"


@dataclass(frozen=True)
class Training:
    """Where a model stands: `state` is waiting, training, ready or failed; `fraction` the share of
    its training done (None when unknown); `detail` the reason of a failure or the last progress line."""

    state: str
    fraction: float | None = None
    detail: str = ""

    def describe(self) -> str:
        if self.state == TRAINING:
            return "training" + ("" if self.fraction is None else f" ({100 * self.fraction:.0f}%)")
        if self.state == FAILED:
            return f"training failed: {self.detail}"
        return self.state


class ModelRegistry:
    """The page's models by name, in a fixed order: those ready at start, then those still training.

    Every name is known from the start (the page's selectors list them all); a name maps to a
    model once that model is ready. Safe to read from request threads while the trainer writes.
    """

    def __init__(self, ready: dict[str, LoadedModel] | None = None, pending: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = dict(ready or {})
        self._status = {name: Training(READY) for name in self._models}
        self._status.update({name: Training(WAITING) for name in pending if name not in self._models})
        self.names: list[str] = list(self._status)

    @property
    def models(self) -> dict[str, LoadedModel]:
        """The models ready now (a copy: it does not change while a request reads it)."""
        with self._lock:
            return dict(self._models)

    def status(self) -> dict[str, Training]:
        with self._lock:
            return dict(self._status)

    @property
    def settled(self) -> bool:
        """Whether no model is waiting or training any more."""
        return all(training.state in (READY, FAILED) for training in self.status().values())

    def progress(self, name: str, fraction: float | None, detail: str = "") -> None:
        with self._lock:
            self._status[name] = replace(self._status[name], state=TRAINING, fraction=fraction, detail=detail)

    def add(self, name: str, loaded: LoadedModel) -> None:
        with self._lock:
            self._models[name] = loaded
            self._status[name] = Training(READY, 1.0)

    def fail(self, name: str, reason: str) -> None:
        with self._lock:
            self._status[name] = Training(FAILED, detail=reason)

    def status_text(self) -> str:
        """A Markdown line per model not ready (training, waiting, failed); empty when all are ready."""
        lines = [
            f"- **{name}**: {training.describe()}"
            for name, training in self.status().items()
            if training.state != READY
        ]
        return (
            "Models still training or failed (the page offers each as soon as it is ready):\n" + "\n".join(lines)
            if lines
            else ""
        )

    def label(self, name: str) -> str:
        """The name as a selector shows it: with its training state while it is not ready."""
        training = self.status().get(name, Training(READY))
        return name if training.state == READY else f"{name}: {training.describe()}"


def train_in_background(
    registry: ModelRegistry,
    train: Callable[..., Path],
    load: Callable[[Path], LoadedModel],
) -> threading.Thread:
    """Train and load each model the registry is waiting for, one after another, in a daemon thread.

    Args:
        train: `train(name, progress=callback) -> folder`, raising on failure (`train_demo_model`).
        load: the folder -> the loaded model (`chatbot.inference.load_model` with the server's settings).
    """

    def run() -> None:
        for name, training in registry.status().items():
            if training.state != WAITING:
                continue
            registry.progress(name, None, "starting")
            try:
                folder = train(name, progress=lambda fraction, line, name=name: registry.progress(name, fraction, line))
                registry.add(name, load(folder))
                logger.warning("The model %s is trained and now served", name)
            except Exception as error:  # one failed model must not stop the others
                logger.error("The model %s could not be trained or loaded: %s", name, error)
                registry.fail(name, f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=run, name="chatbot-train-models", daemon=True)
    thread.start()
    return thread


__all__ = ["ModelRegistry", "Training", "train_in_background"]
