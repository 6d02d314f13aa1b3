"""The served models, some of them still training: the page opens at once and each model joins when
its training ends (no Gradio here).

    registry = ModelRegistry(ready_models, pending=["demo-chat", "demo-translation"])
    train_in_background(registry, functools.partial(train_demo_model, home=home), load_served_model)
    registry.models      # the models ready now, by the name the page shows
    registry.status()    # name -> Training(state, fraction, detail, seconds_left)

Models train one after another in one daemon thread (two at once would only share the same cores).
A model whose training or loading fails is marked failed, with the reason, and logged; the others
go on.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only named in annotations: chatbot.demo_models reads this module without torch
    from .inference import LoadedModel

logger = logging.getLogger(__name__)

WAITING, TRAINING, READY, FAILED = "waiting", "training", "ready", "failed"
# The share of a training measured before its time left is estimated: the pace of the first steps
# alone says little about the rest.
MEASURED_BEFORE_ESTIMATE = 0.03


@dataclass(frozen=True)
class Training:
    """Where a model stands: `state` is waiting, training, ready or failed; `fraction` the share of
    its training done (None when unknown); `detail` the reason of a failure or the last progress line;
    `seconds_left` the estimated training time left (`TimeLeft`), None until it can be estimated."""

    state: str
    fraction: float | None = None
    detail: str = ""
    seconds_left: float | None = None

    def describe(self) -> str:
        """What the page says of the model: "training (40%, about 2 min left)", "training failed: REASON",
        or the state."""
        if self.state == TRAINING:
            shown = [] if self.fraction is None else [f"{100 * self.fraction:.0f}%"]
            shown += [] if self.seconds_left is None else [time_left_text(self.seconds_left)]
            return "training" + (f" ({', '.join(shown)})" if shown else "")
        if self.state == FAILED:
            return f"training failed: {self.detail}"
        return self.state


def time_left_text(seconds: float) -> str:
    """An estimated time left in words: "less than a minute left", "about 3 min left"."""
    return "less than a minute left" if seconds < 60 else f"about {math.ceil(seconds / 60)} min left"


class TimeLeft:
    """The training time left, from the pace measured since the first progress reading: the time
    since then times the share left, over the share done since then. No estimate (None) before
    `MEASURED_BEFORE_ESTIMATE` of the training has been measured.

        time_left = TimeLeft()
        time_left.update(0.0, now=10.0)   # None: the first reading starts the measurement
        time_left.update(0.1, now=40.0)   # 270.0: 10% took 30 s, so 90% takes 270 s
    """

    def __init__(self) -> None:
        self.start: tuple[float, float] | None = None  # (time, fraction) of the first reading

    def update(self, fraction: float | None, now: float) -> float | None:
        """The seconds left at time `now` (in seconds, on any clock that does not go back) with
        `fraction` (0 to 1) of the training done; None while that is unknown or too little is measured."""
        if fraction is None:
            return None
        if self.start is None:
            self.start = (now, fraction)
            return None
        start_time, start_fraction = self.start
        measured = fraction - start_fraction
        if measured < MEASURED_BEFORE_ESTIMATE or now <= start_time:
            return None
        return (now - start_time) * (1.0 - fraction) / measured


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

    def progress(self, name: str, fraction: float | None, detail: str = "", seconds_left: float | None = None) -> None:
        with self._lock:
            self._status[name] = replace(
                self._status[name], state=TRAINING, fraction=fraction, detail=detail, seconds_left=seconds_left
            )

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
    """Train and load each model the registry is waiting for, one after another (in the registry's
    order of the pending models), in a daemon thread.

    Args:
        train: `train(name, progress=callback) -> folder`, raising on failure (`train_demo_model`);
            it calls `callback(fraction, line, seconds_left)` as the training goes.
        load: the folder -> the loaded model (`chatbot.inference.load_served_model` with the server's settings).
    """

    def run() -> None:
        for name, training in registry.status().items():
            if training.state != WAITING:
                continue
            registry.progress(name, None, "starting")
            try:
                folder = train(name, progress=functools.partial(registry.progress, name))
                registry.add(name, load(folder))
                logger.warning("The model %s is trained and now served", name)
            except Exception as error:  # one failed model must not stop the others
                logger.error("The model %s could not be trained or loaded: %s", name, error)
                registry.fail(name, f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=run, name="chatbot-train-models", daemon=True)
    thread.start()
    return thread


__all__ = ["ModelRegistry", "TimeLeft", "Training", "time_left_text", "train_in_background"]
