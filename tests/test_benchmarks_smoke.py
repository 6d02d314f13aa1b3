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


def test_bench_startup(reverser):
    model, _ = reverser
    output = run_benchmark("bench_startup", "--model", str(model), "--repeats", "1", "--warmup", "0", "--lines", "3")
    rows = table_rows(output, "what", "fastest s", "median s", "vs import transformers.modeling_utils", "peak MB")
    assert [row[0] for row in rows] == [
        "python -c pass", "import torch", "import transformers.modeling_utils", "import hf_seq2seq_rnn",
        "import training.predict", "training.predict --help", "training.predict, 1 line", "training.predict, 3 lines",
    ]  # fmt: skip
    assert rows[2][3] == "1.00x"  # the baseline against itself


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


# A model that shrinks every training run of a benchmark to seconds (the flags come last, so they win).
TINY_TRAINING = (
    "--embedding-size 16 --hidden-size 16 --num-layers 1 --vocab-size 300 --min-frequency 1 --batch-size 16 "
    "--max-eval-samples 8 --num-beams 1 --max-new-tokens 8"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An English<TAB>French file of 400 pairs, from the embedded translation demo."""
    from training.demos import translation_demo

    path = tmp_path_factory.mktemp("bench-corpus") / "eng-fra.txt"
    rows = translation_demo(size=400)
    path.write_text("".join(f"{row['source']}\t{row['target']}\n" for row in rows), encoding="utf-8")
    return path


def test_bench_training(corpus, tmp_path):
    output = run_benchmark(
        "bench_training", str(corpus), "--threads", "1", "--steps", "3", "--eval-steps", "2",
        "--split-sizes", "20", "10", "--work-dir", str(tmp_path), "--training-flags", TINY_TRAINING,
    )  # fmt: skip
    rows = dict(table_rows(output, "measure", "value"))
    assert rows["optimizer steps"] == "3" and rows["training budget"] == "3 steps"
    assert "test BLEU / chrF (10 pairs, beam 4)" in rows


def test_bench_data_scale(corpus, tmp_path):
    output = run_benchmark(
        "bench_data_scale", "--corpus", str(corpus), "--sizes", "1200", "--variants", "ours", "--threads", "1",
        "--work-dir", str(tmp_path), "--training-flags", TINY_TRAINING + " --validation-size 100",
        "--stream-resume-at", "0.5",
    )  # fmt: skip
    rows = table_rows(output, "pairs", "variant", "run", "s to the plan", "s whole command", "speed vs first")
    assert [row[:3] for row in rows] == [["1,200", "ours", "first"], ["1,200", "ours", "second"]]
    assert all(0 < float(row[3]) < float(row[4]) for row in rows)
    assert (tmp_path / "log-1200-ours-second.txt").read_text().count("from the datasets cache in") == 1
    [resume] = table_rows(output, "pairs", "rows read to the position", "s resuming from the position")
    assert resume[:2] == ["1,200", "600"] and float(resume[4]) > 0


@pytest.mark.slow  # seven runs of training.predict and four of training.train, two at a time (about 45 s)
def test_bench_budget(corpus, tmp_path):
    output = run_benchmark(
        "bench_budget", "--corpus", str(corpus), "--budgets", "0.05", "--checkpoint-average", "0.05",
        "--checkpoints-apart", "2", "--mixed-precision", "no", "--eval-steps", "1000", "--split-sizes", "20", "10",
        "--work-dir", str(tmp_path), "--training-flags", TINY_TRAINING,
    )  # fmt: skip
    rows = table_rows(output, "minutes", "model", "steps", "test BLEU / chrF (beam 4)", "BLEU vs constant")
    assert [row[1] for row in rows][:2] == ["constant", "budget, trained weights"] and len(rows) == 7


@pytest.mark.slow  # starts the chatbot server (about 10 s)
def test_bench_soak(reverser):
    model, _ = reverser
    output = run_benchmark(
        "bench_soak", "--model", str(model), "--requests", "4", "--clients", "1", "--large-messages", "1",
        "--every", "2",
    )  # fmt: skip
    rows = table_rows(output, "requests", "server RSS (MiB)", "seconds")
    assert [row[0] for row in rows] == ["0", "1 MB x1", "2", "4"]
    assert "growth from request" in output


@pytest.mark.slow  # three training runs at once, with the Korean morpheme analyzer (about 15 s)
def test_bench_korean_tokenizers(korean_chatbot, tmp_path):
    pytest.importorskip("kiwipiepy", reason="the morpheme tokenizer needs the optional Korean analyzer")
    from training.demos import translation_demo

    _, chatbot_data = korean_chatbot
    tatoeba = tmp_path / "eng-kor.txt"
    rows = translation_demo(size=100, source_lang="en", target_lang="ko")
    tatoeba.write_text("".join(f"{row['source']}\t{row['target']}\tCC-BY\n" for row in rows), encoding="utf-8")
    output = run_benchmark(
        "bench_korean_tokenizers", "--chatbot-data", str(chatbot_data), "--tatoeba", str(tatoeba),
        "--minutes", "0.02", "--only", "chatbot", "--output", str(tmp_path / "runs"),
        "--training-flags", TINY_TRAINING + " --validation-size 8",
    )  # fmt: skip
    rows = table_rows(output, "task", "tokenizer", "steps", "BLEU", "chrF")
    assert [row[1] for row in rows] == ["morpheme", "char", "bpe"]


def without_onmt(output: str, venv: Path) -> None:
    """OpenNMT-py absent: one line says so, and no row of it is printed."""
    assert [line for line in output.splitlines() if "OpenNMT-py not found" in line] == [
        f"OpenNMT-py not found in {venv} (--install-onmt installs it there): its rows are left out"
    ]
    assert not any(line.startswith("| ") and "| OpenNMT-py |" in line for line in output.splitlines())


@pytest.mark.slow  # trains at OpenNMT-py's reference shape and decodes (about 30 s)
def test_bench_opennmt_without_opennmt(corpus, tmp_path):
    venv = tmp_path / "no-onmt"
    output = run_benchmark(
        "bench_opennmt", "--corpus", str(corpus), "--threads", "1", "--steps", "2", "--repeats", "1",
        "--feeding", "yes", "--allocators", "system", "--max-train", "200", "--split-sizes", "20", "10",
        "--onmt-venv", str(venv), "--work-dir", str(tmp_path / "work"), "--training-flags", TINY_TRAINING,
    )  # fmt: skip
    without_onmt(output, venv)
    [row] = table_rows(output, "input feeding", "allocator", "system", "sentences/s", "ms/step")
    assert row[:3] == ["yes", "system", "ours"]
    assert len(table_rows(output, "output length", "OpenNMT-py s", "ours s")) == 2
    assert "peak RSS" in output.splitlines()[-1]


@pytest.mark.slow  # two training runs, then training.predict four times (about 45 s)
def test_bench_opennmt_quality_without_opennmt(corpus, tmp_path):
    venv = tmp_path / "no-onmt"
    output = run_benchmark(
        "bench_opennmt_quality", "--corpus", str(corpus), "--threads", "1", "--max-train", "200",
        "--budget-minutes", "0.03", "--reference-minutes", "0.03", "--eval-steps", "20", "--mixed-precision", "no",
        "--repeats", "1", "--split-sizes", "20", "10", "--onmt-venv", str(venv), "--work-dir", str(tmp_path / "work"),
        "--training-flags", TINY_TRAINING,
    )  # fmt: skip
    without_onmt(output, venv)
    curves = table_rows(output, "system", "training minutes", "step", "BLEU", "chrF")
    assert {row[0] for row in curves} == {"ours", "ours-reference-shape"}
    decoding = table_rows(output, "system", "search", "sentences/s", "vs OpenNMT-py")
    assert {(row[0], row[1]) for row in decoding} == {
        (system, search) for system in ("ours, fp32", "ours, int8") for search in ("beam 5", "greedy")
    }


@pytest.mark.slow  # trains three models and runs training.predict 24 times (about 90 s)
def test_bench_decoding_without_opennmt(corpus, tmp_path):
    venv = tmp_path / "no-onmt"
    output = run_benchmark(
        "bench_decoding", "--corpus", str(corpus), "--threads", "1", "--max-train", "200", "--train-minutes", "0.03",
        "--early-steps", "2", "--test-size", "10", "--batch1-sentences", "3", "--coverage-betas", "0.2",
        "--repeats", "1", "--split-sizes", "20", "10", "--onmt-venv", str(venv), "--work-dir", str(tmp_path / "work"),
        "--training-flags", TINY_TRAINING + " --mixed-precision no", "--shortlists", "10,5", "--shortlist-sweep", "5,5",
    )  # fmt: skip
    without_onmt(output, venv)
    decoding = table_rows(output, "batch", "search", "system", "precision", "sentences/s", "vs onmt_translate fp32")
    # fp32: transformers' loop, compact, compact without the gate table, the shortlist; int8 all but the third
    assert len(decoding) == 4 * 7 and {row[5] for row in decoding} == {"-"}
    assert {row[2] for row in decoding} >= {"ours, shortlist 10,5", "ours, compact, no gate table"}
    commands = table_rows(output, "sources", "search", "onmt_translate s")
    # predict as typed (its default shortlist) and with --shortlist none, then --shortlist 10,5; fp32 and int8
    variants = {"default (shortlist 100,100)", "--shortlist none", "shortlist 10,5"}
    assert len(commands) == 4 * 6
    assert {row[3] for row in commands} == {
        f"{precision}, {name}" for precision in ("fp32", "int8") for name in variants
    }
    assert [row[0] for row in table_rows(output, "option", "BLEU", "chrF")] == [
        "plain", "coverage penalty 0.2", "length cap 2 x source + 10", "shortlist 5,5"
    ]  # fmt: skip
    assert len(table_rows(output, "training steps", "evaluation", "seconds")) == 2


def test_every_benchmark_has_a_smoke_test():
    """A new `benchmarks/bench_*.py` gets its run here too (bench_chatbot.py is tested on its own)."""
    names = sorted(path.stem for path in (REPO / "benchmarks").glob("bench_*.py") if path.stem != "bench_chatbot")
    tests = {name for name in globals() if name.startswith("test_bench_")}
    missing = [name for name in names if not any(test.startswith(f"test_{name}") for test in tests)]
    assert names and not missing, f"no smoke test for {missing}"
