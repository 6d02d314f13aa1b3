"""Every benchmark runs: each `benchmarks/bench_*.py` on tiny settings, as its command line, prints its table.

These check that a benchmark still runs end to end against the code it measures (an import that
moved, a renamed flag), not its figures: the models are untrained or trained for a few steps.
`bench_chatbot.py` has its own test. The benchmarks that train several real runs are marked slow.
A benchmark that compares with OpenNMT-py runs its own rows alone when OpenNMT-py is absent, with one
line that says so.
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

try:  # the tiny reverser of the chatbot tests
    from test_chatbot_inference import phrase_pair, train_tiny_model
except ModuleNotFoundError:
    from tests.test_chatbot_inference import phrase_pair, train_tiny_model

REPO = Path(__file__).resolve().parent.parent


def run_benchmark(name: str, *arguments: str, timeout: int = 300) -> str:
    """`python -m benchmarks.NAME ARGUMENTS` in the repository, on one thread and offline; its stdout."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def table_rows(output: str, *headers: str) -> list[list[str]]:
    """The rows of the Markdown table of `output` whose header holds every one of `headers` (its cells
    stripped); fails when there is no such table or it has no row."""
    lines = output.splitlines()
    for index, line in enumerate(lines[:-1]):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and all(header in cells for header in headers):
            assert set(lines[index + 1].replace("|", "").replace(" ", "")) <= set("-:"), lines[index + 1]
            rows = []
            for row in lines[index + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
            assert rows, f"the table {headers} has no row"
            assert all(len(row) == len(cells) for row in rows), rows
            return rows
    raise AssertionError(f"no table with the columns {headers} in:\n{output[-3000:]}")


@pytest.fixture(scope="module")
def reverser(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A reverser trained for 20 steps and a test file of 12 phrases with their references."""
    folder = tmp_path_factory.mktemp("bench-reverser")
    model = train_tiny_model(folder / "model", steps=20)
    rng = random.Random(5)
    test = folder / "test.tsv"
    test.write_text("".join("{}\t{}\n".format(*phrase_pair(rng)) for _ in range(12)), encoding="utf-8")
    return model, test


def test_bench_predict(reverser):
    model, test = reverser
    output = run_benchmark(
        "bench_predict", "--model", str(model), "--dataset", str(test), "--repeats", "1", "--max-new-tokens", "6"
    )
    rows = table_rows(output, "search", "weights", "sentences/s", "vs fp32", "bleu", "chrf")
    assert {(row[0], row[1]) for row in rows} == {(s, w) for s in ("greedy", "beam-5") for w in ("fp32", "int8")}


def test_bench_model():
    output = run_benchmark("bench_model", "--threads", "1", "--steps", "1", "--batch", "2", "--vocab-size", "100")
    assert table_rows(output, "training", "target tok/s", "GFLOP/s", "of ceiling", "peak MB")
    assert [row[0] for row in table_rows(output, "sentences/s")] == ["greedy", "beam-5"]


def test_bench_variants(tmp_path):
    output = run_benchmark(
        "bench_variants", "--variants", "baseline", "attention dot", "--pairs", "300", "--validation-pairs", "40",
        "--eval-pairs", "20", "--addition-epochs", "1", "--dates-epochs", "1", "--output-dir", str(tmp_path),
    )  # fmt: skip
    lines = output.splitlines()
    header = next(index for index, line in enumerate(lines) if line.split()[:2] == ["task", "variant"])
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["addition", "dates"]
    assert (tmp_path / "variants.png").is_file()


@pytest.fixture(scope="module")
def korean_chatbot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A ChatbotData-like CSV (`Q`, `A`, `label`) from the embedded Korean conversations, and a run of
    training.train on it for 2 steps."""
    from training.demos import chat_demo
    from training.train import main as train

    folder = tmp_path_factory.mktemp("bench-korean")
    data = folder / "ChatbotData.csv"
    with open(data, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Q", "A", "label"])
        writer.writerows([*turns[:2], 0] for turns in chat_demo("ko")["conversation"][:120])
    run = folder / "run"
    code = train(
        [
            "--dataset", str(data), "--source-column", "Q", "--target-column", "A", "--task", "qa",
            "--validation-size", "8", "--max-eval-samples", "8", "--vocab-size", "300", "--min-frequency", "1",
            "--embedding-size", "16", "--hidden-size", "16", "--num-layers", "1", "--max-steps", "2",
            "--eval-steps", "null", "--num-beams", "1", "--max-new-tokens", "8", "--num-samples", "0",
            "--report-to", "none", "--num-threads", "1", "--mixed-precision", "no",
            "--checkpointing-steps", "null", "--output-dir", str(run),
        ]
    )  # fmt: skip
    assert code == 0
    return run, data


def test_bench_korean_chatbot(korean_chatbot):
    run, data = korean_chatbot
    output = run_benchmark("bench_korean_chatbot", str(run), "--dataset", str(data), "--num-beams", "1", "--pairs", "4")
    [row] = table_rows(output, "model", "steps", "perplexity", "BLEU", "chrF", "exact match", "token F1")
    assert row[0] == "run" and row[1] == "2"
    assert "(4 held-out pairs)" in output
