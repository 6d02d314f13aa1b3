"""An exponential moving average of the weights (`--ema-decay`), Marian's `--exponential-smoothing`.

After every optimizer step, each averaged tensor moves toward the trained one:

    average = decay_t * average + (1 - decay_t) * weight,   decay_t = min(decay, (1 + t) / (10 + t))

where t counts the updates. The second term (the "num_updates" form of TensorFlow's
`ExponentialMovingAverage`) keeps the first steps, whose weights are still random, from weighing on
the average for a long time: at t = 0 the average is mostly the new weight. The average is kept in
fp32 beside the model, on the model's device; evaluation and the saved model use it
(`applied_to`), training keeps stepping the raw weights. Registered with Accelerate's
checkpointing, it is saved in every checkpoint and restored on resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class WeightAverage:
    """The moving average of a model's floating-point parameters."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay={decay}: expected a number between 0 and 1 (both excluded), e.g. 0.999")
        self.decay = decay
        self.updates = 0
        self.names = [name for name, tensor in model.named_parameters() if tensor.is_floating_point()]
        parameters = dict(model.named_parameters())
        self.average = [parameters[name].detach().float().clone() for name in self.names]

    def _parameters(self, model: torch.nn.Module) -> list[torch.Tensor]:
        parameters = dict(model.named_parameters())
        return [parameters[name] for name in self.names]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One step of the average toward the model's current weights."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        weights = [parameter.detach().float() for parameter in self._parameters(model)]
        torch._foreach_lerp_(self.average, weights, 1.0 - decay)
        self.updates += 1

    @contextmanager
    def applied_to(self, model: torch.nn.Module) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own again after it."""
        parameters = self._parameters(model)
        with torch.no_grad():
            trained = [parameter.detach().clone() for parameter in parameters]
            torch._foreach_copy_(parameters, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(parameters, trained)

    def state_dict(self) -> dict[str, object]:
        return {
            "decay": self.decay,
            "updates": self.updates,
            "average": dict(zip(self.names, self.average, strict=True)),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        saved = state["average"]
        if sorted(saved) != sorted(self.names):  # type: ignore[arg-type]
            raise ValueError("the checkpoint's weight average is of another model (its parameter names differ)")
        self.updates = int(state["updates"])  # type: ignore[arg-type]
        for average, name in zip(self.average, self.names, strict=True):
            average.copy_(saved[name])  # type: ignore[index]
