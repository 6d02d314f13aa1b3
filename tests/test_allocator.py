"""`python -m training.train` starts itself again under tcmalloc when it is installed (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.allocator import ALLOCATOR_VARIABLE, find_tcmalloc

REPO = Path(__file__).resolve().parent.parent
PROBE = (
    "from training.allocator import relaunch_under_tcmalloc, running_under_tcmalloc; "
    "relaunch_under_tcmalloc(); print(running_under_tcmalloc())"
)


def probe(**environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("LD_PRELOAD", ALLOCATOR_VARIABLE)}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env={**env, **environment}, capture_output=True, text=True
    )


@pytest.mark.skipif(find_tcmalloc() is None, reason="tcmalloc is not installed (apt install libtcmalloc-minimal4)")
def test_relaunches_under_tcmalloc_unless_told_not_to():
    relaunched = probe()
    assert relaunched.returncode == 0 and relaunched.stdout.strip() == "True", relaunched.stderr
    system = probe(**{ALLOCATOR_VARIABLE: "system"})
    assert system.returncode == 0 and system.stdout.strip() == "False", system.stderr


def test_an_unknown_allocator_is_refused_by_name():
    result = probe(**{ALLOCATOR_VARIABLE: "jemalloc"})
    assert result.returncode != 0
    assert "SEQ2SEQ_RNN_ALLOCATOR='jemalloc' is not supported; accepted values: tcmalloc, system" in result.stderr
