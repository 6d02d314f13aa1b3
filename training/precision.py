"""`--mixed-precision auto`: measure fp32 against bf16 autocast on this machine and keep the faster.

Whether bf16 pays on a CPU depends on the CPU and on torch's kernels for it: on one AVX-512 machine
bf16 autocast nearly doubled the training rate, on another with the same flags it cost 45%. So the
choice is a measurement: a matrix product at the decoder's gate size and one training step
(forward and backward) of the run's own model shape on a synthetic batch, each timed in fp32 and
in bf16 autocast, alternating. bf16 is used only when its training step is faster by a margin.

Where bf16 cannot train at all (a CPU without AVX-512, where oneDNN has no bf16 LSTM, or any error
in the probe's bf16 step), `auto` chooses fp32 and says why; nothing here raises for it.

On a GPU, `auto` leaves the choice to `accelerate launch` (its `--mixed_precision`), as `null` does.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from seq2seq_tools.machine import autocast_unavailable, has_accelerator

from . import checkpoints
from .errors import TrainingInputError

# bf16 must beat fp32 by this fraction of the fp32 step time: a tie goes to fp32 (exact, no casts).
MARGIN = 0.05
PROBE_SOURCE_LENGTH = 16
PROBE_TARGET_LENGTH = 16


@dataclass
class PrecisionProbe:
    """The precision chosen and why: the probe's timings (best of the repeats, seconds), or the reason
    bf16 could not be timed at all (`unavailable`; the timings are then None)."""

    choice: str
    matmul_fp32: float | None = None
    matmul_bf16: float | None = None
    step_fp32: float | None = None
    step_bf16: float | None = None
    unavailable: str | None = None

    def describe(self) -> str:
        if self.unavailable is not None:
            return f"mixed precision auto -> {self.choice}: {self.unavailable}"
        return (
            f"mixed precision auto -> {self.choice}: one training step {self.step_fp32 * 1e3:.2f} ms in fp32, "
            f"{self.step_bf16 * 1e3:.2f} ms in bf16 autocast; gate-size matmul {self.matmul_fp32 * 1e3:.2f} ms "
            f"fp32, {self.matmul_bf16 * 1e3:.2f} ms bf16"
        )


def _seconds(function, dtype: torch.dtype) -> float:
    started = time.perf_counter()
    function(dtype)
    return time.perf_counter() - started


def resolve_mixed_precision(
    requested: str | None,
    checkpoint: str | None,
    model_config: Callable[[], Seq2SeqRNNConfig],
    batch_size: int,
) -> tuple[str | None, str | None]:
    """The precision to train in and, for `auto`, the line that says why (`requested`: the
    `--mixed-precision` value; `checkpoint`: the one resumed from; `model_config`: the run's model
    shape, made only when the probe needs it).

    `auto` on a GPU is what `accelerate launch` says (as `null`); on a CPU a resumed run keeps its
    checkpoint's precision where this CPU can train in it, several processes keep fp32 (their probes
    could disagree), and a new single-process run times fp32 against bf16 autocast (`probe_precision`).
    bf16 or fp16 asked for by name on a CPU that cannot train in it is an input error, not a crash.
    """
    if has_accelerator():
        if requested == "auto":
            return None, "mixed precision auto on a GPU: what accelerate launch says"
        return requested, None
    if requested in ("bf16", "fp16"):
        unavailable = autocast_unavailable(requested)
        if unavailable is not None:
            raise TrainingInputError(f"--mixed-precision {requested}: {unavailable}; pass --mixed-precision no")
    if requested != "auto":
        return requested, None
    if checkpoint is not None:
        kept = checkpoints.read_trainer_state(checkpoint).get("mixed_precision")
        if kept in ("bf16", "fp16") and (unavailable := autocast_unavailable(kept)) is not None:
            return "no", f"mixed precision auto -> no: {checkpoint} trained in {kept}, but {unavailable}"
        if kept is not None:
            return kept, f"mixed precision auto -> {kept}: kept from {checkpoint}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "no", "mixed precision auto -> no: several processes (pass --mixed-precision bf16 to choose it)"
    probe = probe_precision(model_config(), batch_size)
    return probe.choice, probe.describe()


def probe_precision(model_config: Seq2SeqRNNConfig, batch_size: int, repeats: int = 3) -> PrecisionProbe:
    """Time fp32 against bf16 autocast on the CPU for a model of `model_config`'s shape.

    Uses its own model, inside a forked random state, so the run's weights and random stream are
    untouched. Measured once per process, shape and thread count: a later run in the same process
    (a notebook, a test) gets the same answer, and Accelerate keeps one precision per process.
    """
    return _cached_probe(model_config.to_json_string(), batch_size, repeats, torch.get_num_threads())


@functools.cache
def _cached_probe(config_json: str, batch_size: int, repeats: int, num_threads: int) -> PrecisionProbe:
    model_config = Seq2SeqRNNConfig.from_dict(json.loads(config_json))
    unavailable = autocast_unavailable("bf16")
    if unavailable is not None:
        return PrecisionProbe("no", unavailable=unavailable)
    with torch.random.fork_rng(devices=[]):
        try:
            return _probe(model_config, batch_size, repeats, seed=0)
        except Exception as error:  # a kernel missing for this shape: train in fp32
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            return PrecisionProbe("no", unavailable=f"bf16 autocast failed a training step of this model ({reason})")


def _probe(model_config: Seq2SeqRNNConfig, batch_size: int, repeats: int, seed: int) -> PrecisionProbe:
    generator = torch.Generator().manual_seed(seed)
    hidden = model_config.hidden_size
    # The decoder's gate product: (batch, input + hidden) @ (input + hidden, 4 * hidden).
    left = torch.randn(batch_size, 2 * hidden, generator=generator)
    right = torch.randn(2 * hidden, 4 * hidden, generator=generator)
    torch.manual_seed(seed)
    model = Seq2SeqRNNForConditionalGeneration(model_config).train()
    special = max(
        model_config.pad_token_id, model_config.bos_token_id, model_config.eos_token_id, model_config.unk_token_id or 0
    )
    low, high = special + 1, model_config.vocab_size
    if high <= low:
        low = 0
    input_ids = torch.randint(low, high, (batch_size, PROBE_SOURCE_LENGTH), generator=generator)
    labels = torch.randint(low, high, (batch_size, PROBE_TARGET_LENGTH), generator=generator)
    attention_mask = torch.ones_like(input_ids)

    def matmul(dtype: torch.dtype) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            for _ in range(20):
                torch.mm(left, right)

    def step(dtype: torch.dtype) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    timings = {}
    for name, function in (("matmul", matmul), ("step", step)):
        for dtype in (torch.float32, torch.bfloat16):
            function(dtype)  # warm-up: first-call allocations and kernel selection
        best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
        for _ in range(repeats):  # alternate A/B/A/B so that a change in load hits both
            for dtype in best:
                best[dtype] = min(best[dtype], _seconds(function, dtype))
        timings[name] = best
    step_fp32, step_bf16 = timings["step"][torch.float32], timings["step"][torch.bfloat16]
    return PrecisionProbe(
        choose_by_timing(step_fp32, step_bf16),
        timings["matmul"][torch.float32],
        timings["matmul"][torch.bfloat16],
        step_fp32,
        step_bf16,
    )


def choose_by_timing(step_fp32: float, step_bf16: float) -> str:
    """ "bf16" when its training step beats fp32's by more than `MARGIN`, else "no" (fp32)."""
    return "bf16" if step_bf16 < (1 - MARGIN) * step_fp32 else "no"
