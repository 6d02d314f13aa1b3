"""Schedules that know the run's horizon: the learning rate and the teacher forcing ratio.

Without a time budget the learning rate follows transformers' `get_scheduler` over the step count,
as any transformers script does. With a budget (`--max-minutes`), `linear` and `cosine` decay over
the elapsed fraction of the horizon instead: the training clock (evaluation excluded) against the
budget, or the steps against the step bound when that ends sooner,

    progress = max(step / total_steps, training_seconds / budget_seconds)
    decayed  = max(0, progress - (1 - fraction)) / fraction      (fraction: --lr-decay-fraction)
    linear:  lr = peak * warmup(step) * (1 - decayed)
    cosine:  lr = peak * warmup(step) * (1 + cos(pi * decayed)) / 2
    warmup(step) = min(1, step / warmup_steps)

so the rate reaches zero when the budget is spent, whatever the machine's speed. Decaying linearly to
zero over the whole budget (fraction 1) is the schedule Li, Yumer and Ramanan ("Budgeted Training",
ICLR 2020, section 4) found best at every budget they tried; a fraction below 1 holds the peak rate
and decays over the last part only, the warmup-stable-decay schedule (Hägele et al., "Scaling Laws
and Compute-Optimal Training Beyond Fixed Training Durations", NeurIPS 2024), which keeps the fast
early learning of a short budget. The same rule applies to a step horizon when the fraction is
below 1. The factor is a function of the step and the clock only, so a resumed run, whose clock
continues from its checkpoint, follows the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import get_scheduler

BUDGET_SCHEDULES = ("linear", "cosine")


@dataclass
class Horizon:
    """Where a run ends: `total_steps` optimizer steps, or `budget_seconds` of training, whichever
    comes first (`budget_seconds` None: the steps alone)."""

    total_steps: int
    budget_seconds: float | None = None

    def progress(self, step: int, training_seconds: float) -> float:
        """The fraction of the run done, in [0, 1]."""
        done = step / max(self.total_steps, 1)
        if self.budget_seconds is not None:
            done = max(done, training_seconds / self.budget_seconds)
        return min(done, 1.0)

    def describe(self) -> str:
        if self.budget_seconds is None:
            return f"{self.total_steps:,} steps"
        return (
            f"the time budget of {self.budget_seconds / 60:g} min of training (or {self.total_steps:,} steps if sooner)"
        )


class BudgetedDecay:
    """The learning-rate factor of `linear` or `cosine` over a `Horizon`, for `torch.optim.lr_scheduler.LambdaLR`.

    The clock is read from `training_seconds`, which the loop sets before each scheduler step (the
    same value on every process, continued from the checkpoint on resume).
    """

    def __init__(self, shape: str, warmup_steps: int, horizon: Horizon, fraction: float = 1.0) -> None:
        if shape not in BUDGET_SCHEDULES:
            raise ValueError(f"no budgeted form of the {shape!r} schedule; accepted: {', '.join(BUDGET_SCHEDULES)}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"lr_decay_fraction={fraction}: expected a number above 0 and at most 1")
        self.shape, self.warmup_steps, self.fraction = shape, warmup_steps, fraction
        self.horizon = horizon
        self.training_seconds = 0.0

    def __call__(self, step: int) -> float:
        warmup = min(1.0, step / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        progress = self.horizon.progress(step, self.training_seconds)
        decayed = max(0.0, progress - (1.0 - self.fraction)) / self.fraction
        if self.shape == "linear":
            return warmup * (1.0 - decayed)
        return warmup * 0.5 * (1.0 + math.cos(math.pi * decayed))


def make_lr_scheduler(
    name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, horizon: Horizon, fraction: float = 1.0
) -> tuple[torch.optim.lr_scheduler.LRScheduler, BudgetedDecay | None]:
    """The scheduler, and the decay whose clock the loop sets (None: transformers' own, over the steps)."""
    if name not in BUDGET_SCHEDULES or (horizon.budget_seconds is None and fraction == 1.0):
        scheduler = get_scheduler(
            name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=horizon.total_steps
        )
        return scheduler, None
    decay = BudgetedDecay(name, warmup_steps, horizon, fraction)
    # Wrapped in a function, which LambdaLR leaves out of its saved state (it saves an object's
    # attributes): a resumed run keeps the horizon it is given, e.g. a longer --max-minutes.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: decay(step)), decay


def describe_lr_schedule(name: str, warmup_steps: int, horizon: Horizon, fraction: float = 1.0) -> str:
    """One log line: the schedule and the horizon it decays over."""
    warmup = f" after {warmup_steps} warm-up steps" if warmup_steps else ""
    if name not in ("linear", "cosine", "cosine_with_restarts", "polynomial"):
        return f"learning rate: {name}{warmup}"
    if name in BUDGET_SCHEDULES:
        part = "" if fraction == 1.0 else f"the last {fraction:.0%} of "
        held = "" if fraction == 1.0 else ", at its peak until then"
        return f"learning rate: {name} decay to 0 over {part}{horizon.describe()}{warmup}{held}"
    return f"learning rate: {name} over {horizon.total_steps:,} steps{warmup}"


def teacher_forcing_ratio(schedule: str, start: float, end: float, progress: float) -> float:
    """The teacher forcing ratio at `progress` (the fraction of the horizon done): constant, linear,
    or an inverse sigmoid (Bengio et al., 2015, section 2.4) from `start` to `end`."""
    if schedule == "constant":
        return start
    if schedule == "linear":
        return start + (end - start) * progress
    return end + (start - end) / (1.0 + math.exp(10.0 * (progress - 0.5)))
