"""`--mixed-precision`: what `auto` picks, and that no CPU makes it crash.

A CPU without AVX-512 (most laptops) has no bf16 kernels: oneDNN cannot build a bf16 LSTM there. The
tests run such a CPU for real by holding oneDNN and ATen to AVX2 dispatch (`AVX2_ONLY`), which
raises the same error as an AVX2-only machine; on an AVX2-only machine the variables change nothing.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN

from seq2seq_tools.machine import autocast_unavailable, choose_threads, usable_cpus
from training.precision import MARGIN, choose_by_timing
from training.train import main

REPO = Path(__file__).resolve().parent.parent
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
TINY = [*TINY_RUN, "--max-steps", "2", "--mixed-precision", "auto"]  # later flags win


def run(arguments: list[str], **environment: str) -> subprocess.CompletedProcess:
    """`python -m training.train ARGUMENTS` in a fresh process, with `environment` added."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **environment}
    command = [sys.executable, "-m", "training.train", *arguments]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def trained_precision(output_dir: Path) -> str:
    index = json.loads((output_dir / "checkpoints" / "index.json").read_text())
    return json.loads((output_dir / "checkpoints" / index["last"] / "trainer_state.json").read_text())[
        "mixed_precision"
    ]


@pytest.mark.parametrize(
    ("step_fp32", "step_bf16", "choice"),
    [(1.0, 0.5, "bf16"), (1.0, 1.0 - 2 * MARGIN, "bf16"), (1.0, 1.0 - MARGIN / 2, "no"), (1.0, 1.45, "no")],
)
def test_auto_takes_bf16_only_when_its_step_is_faster_by_the_margin(step_fp32, step_bf16, choice):
    """bf16 faster, bf16 within the margin (a tie goes to fp32), bf16 slower."""
    assert choose_by_timing(step_fp32, step_bf16) == choice


def test_a_cpu_held_to_avx2_reports_bf16_unavailable_and_names_what_it_lacks():
    probe = "from seq2seq_tools.machine import autocast_unavailable; print(autocast_unavailable('bf16'))"
    env = {**os.environ, "PYTHONPATH": str(REPO), **AVX2_ONLY}
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("bf16 unavailable on this CPU, ") and "AVX512_CORE" in line, line


def test_without_bf16_auto_trains_in_fp32_and_says_why_in_one_line(tmp_path):
    result = run([*TINY, "--output-dir", str(tmp_path / "run")], **AVX2_ONLY)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if "mixed precision auto ->" in line]
    assert "mixed precision auto -> no: bf16 unavailable on this CPU, " in line
    assert "Traceback" not in result.stderr
    assert trained_precision(tmp_path / "run") == "no"


def test_bf16_asked_for_without_bf16_exits_2_naming_the_missing_feature_and_the_way_out(tmp_path):
    result = run([*TINY, "--output-dir", str(tmp_path / "run"), "--mixed-precision", "bf16"], **AVX2_ONLY)
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: --mixed-precision bf16: bf16 unavailable on this CPU, ")
    assert "AVX512_CORE" in line and line.endswith("; pass --mixed-precision no")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_bf16_checkpoint_resumes_in_fp32_on_a_cpu_without_bf16(tmp_path):
    """A run started on a bf16 machine and resumed on a laptop: `auto` cannot keep bf16 there."""
    output = tmp_path / "run"
    assert main([*TINY, "--output-dir", str(output), "--mixed-precision", "no"]) == 0
    # What a bf16 run writes: the same files, with its precision in the trainer state.
    [state_file] = (output / "checkpoints").glob("step-*/trainer_state.json")
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "mixed_precision": "bf16"}))
    arguments = [*TINY, "--output-dir", str(output), "--max-steps", "4", "--resume-from-checkpoint", "latest"]
    result = run(arguments, **AVX2_ONLY)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if "mixed precision auto ->" in line]
    assert f"mixed precision auto -> no: {state_file.parent} trained in bf16, but bf16 unavailable on this CPU" in line
    assert trained_precision(output) == "no"


def test_auto_is_the_default_and_trains_in_what_it_chose_on_this_cpu(tmp_path, caplog):
    """On this CPU, as it is: a bf16 CPU times both and logs the timings its choice follows; one
    without bf16 says so. Either way the run trains in the precision the line names."""
    from training.config import parse_config

    assert parse_config(["--demo", "translation"]).mixed_precision == "auto"
    output = tmp_path / "auto"
    with caplog.at_level(logging.INFO):
        assert main([*TINY, "--output-dir", str(output)]) == 0
    [line] = [record.getMessage() for record in caplog.records if "mixed precision auto ->" in record.getMessage()]
    unavailable = autocast_unavailable("bf16")
    if unavailable is not None:
        assert line.endswith(f"mixed precision auto -> no: {unavailable}")  # after a "[RANK 0] " prefix
    else:
        choice = line.split("-> ")[1].split(":")[0]
        fp32, bf16 = (float(line.split(" ms in " + name)[0].rsplit(" ", 1)[1]) for name in ("fp32", "bf16"))
        assert choice == choose_by_timing(fp32, bf16)
    assert trained_precision(output) == line.split("-> ")[1].split(":")[0]


@pytest.mark.skipif(autocast_unavailable("bf16") is not None, reason="this CPU cannot train in bf16 (tested above)")
def test_bf16_asked_for_on_a_cpu_that_has_it_trains_in_bf16(tmp_path):
    assert main([*TINY, "--output-dir", str(tmp_path / "run"), "--mixed-precision", "bf16"]) == 0
    assert trained_precision(tmp_path / "run") == "bf16"


def test_threads_follow_the_cpus_this_process_may_use(tmp_path):
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # a container limited to 1.5 CPUs
    assert usable_cpus(quota) == min(2, usable_cpus(tmp_path / "missing"))
    quota.write_text("max 100000\n")
    assert usable_cpus(quota) == usable_cpus(tmp_path / "missing")
    assert choose_threads(3, usable=8) == (3, None)
    threads, line = choose_threads(8, usable=2)
    assert threads == 8 and line.startswith("8 threads asked for, but this process may use 2 CPU(s)")
    torch.set_num_threads(2)  # torch's default on a 2-core machine, whatever this session set
    try:
        assert choose_threads(None, usable=1) == (
            1,
            "torch would start 2 threads, but this process may use 1 CPU(s): using 1",
        )
        assert choose_threads(None, usable=2) == (2, None)
    finally:
        torch.set_num_threads(1)


def test_on_one_cpu_the_default_thread_count_is_one():
    """A real affinity mask of one CPU (taskset): torch follows it, and so does the choice."""
    probe = "from seq2seq_tools.machine import choose_threads; print(choose_threads(None))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", probe], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, None)"
