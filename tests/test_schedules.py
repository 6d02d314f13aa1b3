"""Schedules that know the budget (training/schedules.py) and the weight average (training/ema.py):
the formulas against hand values, the step-only schedules unchanged, and real runs whose every
evaluation shows the learning rate the clock implies, across a resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import get_scheduler

from tests.test_training_run import SMALL, history
from training.ema import WeightAverage
from training.schedules import BudgetedDecay, Horizon, make_lr_scheduler, teacher_forcing_ratio
from training.train import main


def optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def advance(scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """One step of `scheduler`, after its optimizer's, as in training (torch warns otherwise)."""
    scheduler.optimizer.step()
    scheduler.step()


def test_the_horizon_is_the_nearer_of_the_steps_and_the_budget():
    horizon = Horizon(total_steps=1000, budget_seconds=60.0)
    assert horizon.progress(100, 30.0) == 0.5  # the clock is ahead
    assert horizon.progress(900, 30.0) == 0.9  # the steps are ahead
    assert horizon.progress(10, 75.0) == 1.0  # never past the end
    assert Horizon(total_steps=1000).progress(250, 1e9) == 0.25  # no budget: steps alone


@pytest.mark.parametrize(
    ("shape", "seconds", "expected"),
    [("linear", 0.0, 1.0), ("linear", 15.0, 0.75), ("linear", 60.0, 0.0), ("cosine", 30.0, 0.5), ("cosine", 60.0, 0.0)],
)
def test_budgeted_decay_follows_the_clock_after_the_warm_up(shape, seconds, expected):
    decay = BudgetedDecay(shape, warmup_steps=10, horizon=Horizon(10**9, 60.0))
    decay.training_seconds = seconds
    assert decay(20) == pytest.approx(expected)
    assert decay(5) == pytest.approx(0.5 * expected)  # half-way through the warm-up


@pytest.mark.parametrize(
    ("shape", "progress", "expected"),
    [("linear", 0.5, 1.0), ("linear", 0.8, 1.0), ("linear", 0.9, 0.5), ("linear", 1.0, 0.0), ("cosine", 0.9, 0.5)],
)
def test_a_decay_fraction_holds_the_peak_and_decays_over_the_last_part(shape, progress, expected):
    """Warmup-stable-decay: with fraction 0.2 the rate is at its peak until 80% of the horizon, then
    decays to zero; the same on a step horizon and on a budget."""
    on_steps = BudgetedDecay(shape, warmup_steps=0, horizon=Horizon(1000), fraction=0.2)
    assert on_steps(int(progress * 1000)) == pytest.approx(expected)
    on_budget = BudgetedDecay(shape, warmup_steps=0, horizon=Horizon(10**9, 100.0), fraction=0.2)
    on_budget.training_seconds = progress * 100.0
    assert on_budget(1) == pytest.approx(expected)
    scheduler, decay = make_lr_scheduler(shape, optimizer(), 0, Horizon(1000), fraction=0.2)
    assert decay is not None  # a step horizon with a fraction below 1 needs this schedule too


def test_without_a_budget_the_scheduler_is_transformers_own_step_for_step():
    ours, decay = make_lr_scheduler("linear", optimizer(), 5, Horizon(50))
    theirs = get_scheduler("linear", optimizer(), num_warmup_steps=5, num_training_steps=50)
    assert decay is None
    for _ in range(50):
        assert ours.get_last_lr() == theirs.get_last_lr()
        advance(ours)
        advance(theirs)


def test_a_schedule_with_no_budgeted_form_keeps_its_steps_under_a_budget():
    scheduler, decay = make_lr_scheduler("constant_with_warmup", optimizer(), 4, Horizon(10**6, 60.0))
    assert decay is None
    for _ in range(10):
        advance(scheduler)
    assert scheduler.get_last_lr() == [1.0]


def test_a_resumed_scheduler_keeps_its_step_and_takes_the_horizon_and_clock_it_is_given():
    scheduler, decay = make_lr_scheduler("linear", optimizer(), 0, Horizon(10**6, 100.0))
    decay.training_seconds = 40.0
    advance(scheduler)
    restored, restored_decay = make_lr_scheduler("linear", optimizer(), 0, Horizon(10**6, 200.0))
    restored.load_state_dict(scheduler.state_dict())
    assert restored.last_epoch == 1 and restored.get_last_lr() == pytest.approx([0.6])
    restored_decay.training_seconds = 50.0
    advance(restored)
    assert restored.get_last_lr() == pytest.approx([0.75])  # 1 - 50 / 200: the new budget


def test_teacher_forcing_moves_with_the_progress():
    assert teacher_forcing_ratio("constant", 1.0, 0.5, 0.7) == 1.0
    assert teacher_forcing_ratio("linear", 1.0, 0.5, 0.5) == 0.75
    assert teacher_forcing_ratio("inverse_sigmoid", 1.0, 0.5, 0.5) == 0.75


def test_the_weight_average_moves_by_the_warm_started_decay_and_is_applied_only_inside_the_block():
    model = torch.nn.Linear(2, 1)
    start = model.weight.detach().clone()
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)  # decay_0 = min(0.9, 1/10) = 0.1: the average moves 90% of the way
    expected = start + 0.9
    with average.applied_to(model):
        torch.testing.assert_close(model.weight.detach(), expected)
    torch.testing.assert_close(model.weight.detach(), start + 1.0)  # the trained weights are back
    for _ in range(100):
        average.update(model)  # the warm start grows to the decay: 0.9 from the 80th update on
    with average.applied_to(model):
        torch.testing.assert_close(model.weight.detach(), start + 1.0)
    copy = WeightAverage(torch.nn.Linear(2, 1), decay=0.9)
    copy.load_state_dict(average.state_dict())
    assert copy.updates == 101 and all(torch.equal(a, b) for a, b in zip(copy.average, average.average, strict=True))


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_a_decay_outside_zero_to_one_is_refused(decay, tmp_path, capsys):
    with pytest.raises(ValueError, match="between 0 and 1"):
        WeightAverage(torch.nn.Linear(2, 1), decay)
    arguments = ["--config", "training/configs/translation_demo.yaml", "--output-dir", str(tmp_path)]
    assert main([*arguments, "--ema-decay", str(decay)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"error: argument --ema-decay: '{decay}': expected a number greater than 0 and less than 1 "
        "(see python -m training.train --help)"
    )


BUDGET_RUN = [
    "--config", "training/configs/translation_demo.yaml", "--demo-size", "300", "--validation-size", "20",
    "--max-steps", "1000000", "--eval-steps", "15", "--checkpointing-steps", "15", "--num-samples", "0",
    "--warmup-steps", "5", "--learning-rate", "0.004", "--ema-decay", "0.95", *SMALL, "--num-beams", "1",
]  # fmt: skip


def test_under_a_budget_every_evaluation_shows_the_rate_its_clock_implies_across_a_resume(tmp_path):
    """lr = peak * warmup(step) * (1 - training seconds / budget) at each evaluation, in the first
    session and in the resumed one, whose clock starts where the checkpoint's stopped; at the end
    the rate is zero and the saved model holds the weight average of the last checkpoint."""
    output = tmp_path / "run"
    assert main([*BUDGET_RUN, "--max-minutes", "0.04", "--output-dir", str(output)]) == 0
    first = [entry for entry in history(output) if "learning_rate" in entry]
    spent = first[-1]["training_seconds"]
    assert spent >= 0.04 * 60 and first[-1]["learning_rate"] == 0.0
    assert (
        main([*BUDGET_RUN, "--max-minutes", "0.08", "--output-dir", str(output), "--resume-from-checkpoint", "latest"])
        == 0
    )
    entries = [entry for entry in history(output) if "learning_rate" in entry]
    resumed = entries[len(first) :]
    assert resumed and all(entry["training_seconds"] > spent for entry in resumed)
    assert entries[-1]["training_seconds"] >= 0.08 * 60 and entries[-1]["learning_rate"] == 0.0
    for entry in entries:
        warmup = min(1.0, entry["step"] / 5)
        implied = (
            0.004 * warmup * max(0.0, 1 - entry["training_seconds"] / (0.08 * 60 if entry in resumed else 0.04 * 60))
        )
        assert math.isclose(entry["learning_rate"], implied, rel_tol=1e-9, abs_tol=1e-12), entry
    last = json.loads((output / "checkpoints" / "index.json").read_text())["last"]
    state = json.loads((output / "checkpoints" / last / "trainer_state.json").read_text())
    assert state["training_seconds"] == entries[-1]["training_seconds"]
    averaged = torch.load(output / "checkpoints" / last / "custom_checkpoint_0.pkl", weights_only=True)["average"]
    saved, trained = (
        load_file(output / "model.safetensors"),
        load_file(output / "checkpoints" / last / "model.safetensors"),
    )
    assert not all(torch.equal(saved[name], trained[name]) for name in saved)
    for name, tensor in averaged.items():
        torch.testing.assert_close(saved[name], tensor.to(saved[name].dtype), rtol=0, atol=0, msg=name)
