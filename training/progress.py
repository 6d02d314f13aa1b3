"""What a run shows and counts as it goes: the progress bar, the running totals of the log line, and
the training clock (wall-clock time less evaluation), which a time budget and tokens/s are measured on."""

from __future__ import annotations

import time

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm


class TrainingProgress:
    """The progress bar: steps done out of the total or, under a time budget (`--max-minutes`), the
    training seconds spent out of the budget, with the steps done beside them.

    With a budget the step total is only an upper bound (often a huge `--max-steps`), so counting
    toward it would show a meaningless ETA; the clock is what ends the run.
    """

    def __init__(
        self,
        total_steps: int,
        completed_steps: int,
        budget_seconds: float | None,
        max_steps: int | None,
        disable: bool = False,
        file=None,
    ) -> None:
        self.budget_seconds, self.max_steps = budget_seconds, max_steps
        if budget_seconds is None:
            self.bar = tqdm(total=total_steps, initial=completed_steps, unit="step", disable=disable, file=file)
            return
        self.bar = tqdm(
            total=budget_seconds,
            disable=disable,
            file=file,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of the time budget{postfix}",
        )
        self.bar.set_description_str(self._steps(completed_steps), refresh=False)

    def _steps(self, completed_steps: int) -> str:
        bound = f" (of at most {self.max_steps})" if self.max_steps is not None else ""
        return f"step {completed_steps}{bound}"

    def advance(self, completed_steps: int, spent_seconds: float) -> None:
        """One optimizer step done; `spent_seconds` of training time (evaluation excluded) so far."""
        if self.budget_seconds is None:
            self.bar.update(1)
            return
        self.bar.set_description_str(self._steps(completed_steps), refresh=False)
        self.bar.update(min(spent_seconds, self.budget_seconds) - self.bar.n)

    def set_postfix(self, **values: str) -> None:
        self.bar.set_postfix(**values)

    def close(self) -> None:
        self.bar.close()


class TrainingClock:
    """Seconds of training: those of the sessions before this one (`earlier_seconds`, restored from the
    checkpoint a run resumes), plus this session's since its start less the time spent evaluating."""

    def __init__(self, earlier_seconds: float = 0.0) -> None:
        self.started = time.perf_counter()
        self.evaluating = 0.0
        self.earlier_seconds = earlier_seconds

    def session_seconds(self) -> float:
        return time.perf_counter() - self.started - self.evaluating

    def training_seconds(self) -> float:
        return self.earlier_seconds + self.session_seconds()

    def add_evaluation(self, seconds: float) -> None:
        self.evaluating += seconds


class RunningTotals:
    """Loss, batches and target tokens since the last log line (on this process), and the target
    tokens of the whole session, for the log line's averages and the final tokens/s."""

    def __init__(self) -> None:
        self.session_tokens = 0
        self.restart()

    def restart(self) -> None:
        """A new window: the log line's averages count from here (also after an evaluation)."""
        self.loss, self.batches, self.tokens = 0.0, 0, 0
        self.window_start = time.perf_counter()

    def pause(self, seconds: float) -> None:
        """Leave `seconds` (an evaluation) out of the window's time."""
        self.window_start += seconds

    def add(self, loss: float, tokens: int) -> None:
        self.loss += loss
        self.batches += 1
        self.tokens += tokens
        self.session_tokens += tokens

    def reduce(self, accelerator: Accelerator) -> tuple[float, float]:
        """The mean training loss and target tokens per second of the window, over every process."""
        elapsed = time.perf_counter() - self.window_start
        totals = accelerator.reduce(
            torch.tensor([self.loss, self.batches, self.tokens], device=accelerator.device, dtype=torch.float64),
            reduction="sum",
        )
        return (totals[0] / totals[1]).item(), totals[2].item() / elapsed
