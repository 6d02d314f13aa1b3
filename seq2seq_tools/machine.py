"""What this machine can do, read where the code picks something by it, each answer safe to act on.

CPUs differ in instruction set, not only in speed: AVX2-only machines (most laptops, AMD before
Zen 4, Intel client CPUs since Alder Lake) have no bf16 kernels at all, and oneDNN refuses to build
a bf16 or fp16 LSTM there. A process may also be allowed fewer CPUs than the machine has (an
affinity mask, a container's CPU quota). Every function here answers without raising, so a caller
can always fall back to the plain path (fp32, fewer threads) and say why in one line.
"""

from __future__ import annotations

import functools
import math
import os
import platform
from pathlib import Path

import torch

# The subset of /proc/cpuinfo flags that decides what torch's CPU kernels can do.
REPORTED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_bf16",
    "amx_bf16",
    "avx512_fp16",
)
# oneDNN's reduced-precision LSTM needs at least AVX512_CORE: these four extensions together.
AVX512_CORE = ("avx512f", "avx512bw", "avx512vl", "avx512dq")
ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """The first CPU's model name and flags from /proc/cpuinfo (empty where there is none)."""
    name, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return name, flags


def cpu_name() -> str:
    return _cpuinfo()[0] or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo spells them (`avx2`, `avx512_bf16`, ...); empty off Linux."""
    return _cpuinfo()[1]


def describe_cpu() -> str:
    """One line for logs and benchmark tables: the model, the flags that matter, and what torch dispatches to,
    e.g. `AMD EPYC (avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16; torch dispatch AVX512)`."""
    flags = [flag for flag in REPORTED_FLAGS if flag in cpu_flags()]
    dispatch = [f"torch dispatch {torch.backends.cpu.get_cpu_capability()}"]
    if os.environ.get(ONEDNN_ISA_VARIABLE):
        dispatch.append(f"{ONEDNN_ISA_VARIABLE}={os.environ[ONEDNN_ISA_VARIABLE]}")
    return f"{cpu_name()} ({' '.join(flags) or 'flags unknown'}; {', '.join(dispatch)})"


def has_accelerator() -> bool:
    """Whether torch sees a GPU (or another device) to run on."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.current_accelerator() is not None
    return torch.cuda.is_available()


def _onednn_reduced_precision() -> bool | None:
    """oneDNN's own answer (it honours ONEDNN_MAX_CPU_ISA), or None where this torch does not say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def _missing_feature() -> str:
    """What this CPU (or the dispatch it is held to) lacks for oneDNN's bf16 LSTM, in words."""
    capped = os.environ.get(ONEDNN_ISA_VARIABLE)
    if capped:
        return f"oneDNN is held to {ONEDNN_ISA_VARIABLE}={capped}, and its bf16 LSTM needs AVX512_CORE"
    flags = cpu_flags()
    if flags and not all(flag in flags for flag in AVX512_CORE):
        return "no AVX-512 (oneDNN has no bf16 LSTM below AVX512_CORE; the CPU has AVX2 at most)"
    return "oneDNN reports no bf16 support"


def _autocast_step(dtype: torch.dtype) -> None:
    """Forward and backward of a tiny LSTM and GRU under CPU autocast: what the model's training step asks of oneDNN."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(2, 3, 8, generator=generator)
    with torch.random.fork_rng(devices=[]), torch.autocast("cpu", dtype=dtype):
        torch.manual_seed(0)
        outputs = [torch.nn.LSTM(8, 8, batch_first=True)(inputs)[0], torch.nn.GRU(8, 8, batch_first=True)(inputs)[0]]
    sum(output.float().sum() for output in outputs).backward()


@functools.cache
def autocast_unavailable(precision: str) -> str | None:
    """Why CPU autocast in `precision` ("bf16" or "fp16") cannot train the model here, or None where it can.

    Asks oneDNN first (bf16), then runs a tiny recurrent step in that precision, since that is what
    fails on CPUs without the kernels: `could not create a primitive descriptor for the LSTM forward
    propagation primitive`. Any exception counts as unavailable; nothing is raised.
    """
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if precision == "bf16" and _onednn_reduced_precision() is False:
        return f"bf16 unavailable on this CPU, {cpu_name()}: {_missing_feature()}"
    try:
        _autocast_step(dtype)
    except Exception as error:  # any failure means: train in fp32
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"{precision} autocast cannot run an LSTM step on this CPU, {cpu_name()} ({first_line.rstrip('.')})"
    return None


def _cgroup_cpu_limit(cpu_max: Path) -> int | None:
    """The CPUs a cgroup v2 quota allows (`cpu.max` holds "quota period" or "max period"), rounded up."""
    try:
        quota, period = cpu_max.read_text(encoding="utf-8").split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may run on: its affinity mask, lowered by a container's CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cpu_max)
    return min(count, limit) if limit else count


def choose_threads(requested: int | None, usable: int | None = None) -> tuple[int, str | None]:
    """The torch thread count to use and, where it differs from what was asked or torch's default, why.

    A count asked for is kept even above the usable CPUs (the user chose it), with a warning line; the
    default is lowered to the usable CPUs, since torch counts the machine's cores and ignores quotas.
    """
    usable = usable_cpus() if usable is None else usable
    if requested is not None:
        if requested > usable:
            return requested, (
                f"{requested} threads asked for, but this process may use {usable} CPU(s): "
                "the threads will wait on each other"
            )
        return requested, None
    default = torch.get_num_threads()
    if default > usable:
        return usable, f"torch would start {default} threads, but this process may use {usable} CPU(s): using {usable}"
    return default, None
