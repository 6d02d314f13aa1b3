"""`benchmarks.bench_chatbot` runs end to end on tiny settings and prints its tables (the figures
themselves are the benchmark's business, not a test's).

    pytest tests/test_bench_chatbot.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

try:  # the trained-model fixtures live beside the inference tests
    from test_chatbot_inference import tiny_model_dir  # noqa: F401
except ModuleNotFoundError:
    from tests.test_chatbot_inference import tiny_model_dir  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def test_bench_chatbot_prints_its_tables(tiny_model_dir: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.bench_chatbot", "--model", str(tiny_model_dir), "--threads", "1"]
    command += ["--policies", "none", "continuous", "--clients", "1", "3", "--requests", "6", "--max-new-tokens", "8"]
    command += ["--soak", "4", "--soak-every", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert "| batching | endpoint | clients | requests/s |" in table
    rows = [line for line in table.splitlines() if line.startswith(("| none |", "| continuous |"))]
    assert len(rows) == 2 * 2 * 2  # two policies, two endpoints, two client counts
    assert all(row.split("|")[-2].strip() == "" for row in rows), "a measured request failed"
    assert "| continuous | json | 3 |" in table and "1.00x" in table
    assert "decoding (generate_reply, alone)" in table and "heatmap figure" in table
    assert "Soak: 4 page requests" in table and "| 4 |" in table
    assert "CPU:" in table and "torch.set_num_threads(1)" in table


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
