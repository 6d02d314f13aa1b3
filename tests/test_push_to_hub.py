"""`--push-to-hub`: offline it stops with one line (exit code 2) and the model stays saved; against
a local stand-in for the Hub's HTTP API (tests/hub_stand_in.py, a real server that
`huggingface_hub` reaches through HF_ENDPOINT) it uploads the files README.md promises, and
nothing from `checkpoints/` or `logs/`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from hub_stand_in import HubStandIn

from training.train import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--config", "training/configs/translation_demo.yaml", "--demo-size", "200", "--validation-size", "20",
    "--max-steps", "2", "--eval-steps", "2", "--checkpointing-steps", "1", "--embedding-size", "16",
    "--hidden-size", "16", "--num-beams", "1", "--num-samples", "0", "--report-to", "tensorboard",
    "--num-threads", "1", "--mixed-precision", "no", "--push-to-hub", "--hub-model-id", "someone/tiny-dates",
]  # fmt: skip
# What README.md promises a pushed repository holds: weights with their code, the tokenizer, the
# generation config, the model card and training_info.json.
PROMISED = {
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "README.md",
    "training_info.json",
    "configuration_seq2seq_rnn.py",
    "modeling_seq2seq_rnn.py",
    "attention_seq2seq_rnn.py",
    "recurrent_seq2seq_rnn.py",
    "pipeline_seq2seq_rnn.py",
}


def test_offline_push_stops_with_one_line_and_keeps_the_saved_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output = tmp_path / "offline"
    assert main([*TINY, "--output-dir", str(output)]) == 2
    errors = re.findall(r"error: .*", capsys.readouterr().err)
    assert len(errors) == 1, errors
    [error] = errors
    assert error.startswith("error: could not push to the Hub as 'someone/tiny-dates' (")
    assert error.endswith(f"); the model is saved in {output}")
    assert "offline" in error.lower()
    assert (output / "model.safetensors").is_file() and (output / "checkpoints").is_dir()


def test_push_uploads_the_promised_files_and_no_checkpoints(tmp_path):
    output = tmp_path / "pushed"
    with HubStandIn() as hub:
        env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "0"}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN="hf_stand_in_token", HF_HUB_DISABLE_XET="1")
        result = subprocess.run(
            [sys.executable, "-m", "training.train", *TINY, "--output-dir", str(output)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert hub.repos == ["someone/tiny-dates"], hub.requests
    assert (output / "checkpoints").is_dir() and (output / "logs").is_dir()  # there, and not sent
    assert set(hub.files) >= PROMISED, sorted(PROMISED - set(hub.files))
    assert not [path for path in hub.files if path.startswith(("checkpoints/", "logs/")) or path.endswith(".png")]
    for path, content in hub.files.items():
        assert (output / path).read_bytes() == content, path
    assert "pushed to https://huggingface.co/someone/tiny-dates" in result.stdout + result.stderr
