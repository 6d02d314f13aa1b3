"""A second training run on the same data and settings prepares it from the `datasets` cache.

Real `python -m training.train` processes on a real file, with a cache folder of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from safetensors.torch import load_file

from tests.test_training_data import tatoeba_like_pairs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--max-steps", "2", "--embedding-size", "16", "--hidden-size", "32", "--num-beams", "1", "--num-samples", "0",
    "--eval-steps", "1000", "--max-eval-samples", "8", "--validation-size", "50", "--report-to", "none",
    "--num-threads", "1", "--mixed-precision", "no", "--vocab-size", "400", "--preprocessing-num-workers", "2",
]  # fmt: skip


def train(data: str, cache: str, output: str, *extra: str) -> str:
    """The log of one training run with `HF_DATASETS_CACHE=cache`."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO, "HF_DATASETS_CACHE": cache}
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--dataset", data, "--output-dir", output, *TINY, *extra],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    return log


def test_a_second_run_reads_the_tokenizer_and_the_tokenized_pairs_from_the_cache_and_says_what_it_saved(tmp_path):
    data = tmp_path / "pairs.txt"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in tatoeba_like_pairs(3000)), encoding="utf-8")
    cache = str(tmp_path / "cache")
    first = train(str(data), cache, str(tmp_path / "first"))
    assert "Tokenizing" in first and "a later run on the same data and settings reads it from" in first
    assert "tokenizer: the one trained" not in first

    second = train(str(data), cache, str(tmp_path / "second"))
    assert "tokenizer: the one trained on the same pairs and settings by an earlier run" in second
    assert "Tokenizing" not in second  # no pass over the data ran
    saved = [line for line in second.splitlines() if "from the datasets cache in" in line]
    assert len(saved) == 1 and "s saved)" in saved[0], second[-3000:]
    tokenizers = [json.loads((tmp_path / run / "tokenizer.json").read_text()) for run in ("first", "second")]
    assert tokenizers[0]["model"] == tokenizers[1]["model"]
    weights = [load_file(tmp_path / run / "model.safetensors") for run in ("first", "second")]
    assert all((weights[0][name] == weights[1][name]).all() for name in weights[0])

    other = train(str(data), cache, str(tmp_path / "other"), "--vocab-size", "420")
    assert "tokenizer: the one trained" not in other and "Tokenizing" in other
