"""`python -m training.train` starts itself again under tcmalloc when it is installed (real processes)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

from conftest import skip_or_fail_in_ci

from training.allocator import ALLOCATOR_VARIABLE, find_tcmalloc

REPO = Path(__file__).resolve().parent.parent
PROBE = (
    "from training.allocator import relaunch_under_tcmalloc, running_under_tcmalloc; "
    "relaunch_under_tcmalloc(); print(running_under_tcmalloc())"
)


def run_clean(command: list[str], **environment: str) -> subprocess.CompletedProcess:
    """`command` in the repository, without this process's allocator settings, plus `environment`."""
    env = {key: value for key, value in os.environ.items() if key not in ("LD_PRELOAD", ALLOCATOR_VARIABLE)}
    return subprocess.run(command, cwd=REPO, env={**env, **environment}, capture_output=True, text=True, timeout=300)


def probe(**environment: str) -> subprocess.CompletedProcess:
    return run_clean([sys.executable, "-c", PROBE], **environment)


def require_tcmalloc() -> None:
    if find_tcmalloc() is None:
        skip_or_fail_in_ci("allocator", "tcmalloc is not installed (apt install libtcmalloc-minimal4)")


def test_relaunches_under_tcmalloc_unless_told_not_to():
    require_tcmalloc()
    relaunched = probe()
    assert relaunched.returncode == 0 and relaunched.stdout.strip() == "True", relaunched.stderr
    system = probe(**{ALLOCATOR_VARIABLE: "system"})
    assert system.returncode == 0 and system.stdout.strip() == "False", system.stderr


def test_an_unknown_allocator_is_refused_by_name():
    result = probe(**{ALLOCATOR_VARIABLE: "jemalloc"})
    assert result.returncode != 0
    assert "SEQ2SEQ_RNN_ALLOCATOR='jemalloc' is not supported; accepted values: tcmalloc, system" in result.stderr


def test_the_training_command_runs_under_tcmalloc():
    """`python -m training.train` itself, through the relaunch at the top of its module (the dynamic
    loader's LD_DEBUG=libs names every library it initialises)."""
    require_tcmalloc()
    result = run_clean([sys.executable, "-m", "training.train", "--help"], LD_DEBUG="libs")
    assert result.returncode == 0, result.stderr[-2000:]
    assert any("calling init" in line and "tcmalloc" in line for line in result.stderr.splitlines())


def test_a_broken_tcmalloc_library_keeps_the_system_allocator_with_one_line(tmp_path):
    """A file that is not a shared library where tcmalloc should be: the process goes on under glibc."""
    broken = tmp_path / "libtcmalloc_minimal.so.4"
    broken.write_bytes(b"not an ELF file")
    command = (
        "from training.allocator import relaunch_under_tcmalloc, running_under_tcmalloc; "
        f"relaunch_under_tcmalloc({str(broken)!r}); print(running_under_tcmalloc())"
    )
    result = run_clean([sys.executable, "-c", command])
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"warning: training keeps the system allocator: {broken} does not load (")


def test_an_ld_preload_the_user_set_is_kept_and_tcmalloc_not_added():
    """Two allocators in one LD_PRELOAD do not mix: the user's setting wins, said in one line."""
    require_tcmalloc()
    libc = ctypes.util.find_library("c")
    result = probe(LD_PRELOAD=libc)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
    [line] = result.stderr.splitlines()
    assert line == (
        f"warning: training keeps the system allocator: LD_PRELOAD is already set ({libc}); "
        f"set {ALLOCATOR_VARIABLE}=system to keep it without this line"
    )
