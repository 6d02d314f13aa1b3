"""Checkpoints kept (`--keep-checkpoints`) and averaged (`python -m training.average`).

The newest N and the best checkpoints remain; resuming skips a corrupt newest one under the default;
the average of one checkpoint is that checkpoint and of two their mean; the averaged folder loads in
a fresh process, serves and predicts like a trained one; bad input ends in one line and exit code 2.
Runs are real (tiny `training.train` runs on the embedded demo, in-process), files are real.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN
from safetensors.torch import load_file, save_file

from training import average
from training.config import TrainingConfig
from training.train import main as train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Checkpoints every 2 steps with no evaluation between: the first one saved (step 2) stays the best,
# so with the default of keeping 3, a 10-step run keeps steps 6, 8, 10 and 2.
STEPS = [f"step-{step:08d}" for step in (2, 4, 6, 8, 10)]
DEFAULT_KEEP = TrainingConfig.__dataclass_fields__["keep_checkpoints"].default


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> str:
    """A finished 10-step run with the default --keep-checkpoints; tests copy it before changing it."""
    output = tmp_path_factory.mktemp("trained") / "run"
    assert train([*TINY_RUN, "--max-steps", "10", "--output-dir", str(output)]) == 0
    return str(output)


def copy_run(trained_run: str, destination) -> str:
    shutil.copytree(trained_run, destination)
    return str(destination)


def weights_of(run: str, step: str) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(run, "checkpoints", step, "model.safetensors"))


def test_the_default_keeps_the_newest_checkpoints_and_the_best(trained_run):
    assert DEFAULT_KEEP >= 2  # a corrupt newest checkpoint must leave one to resume from
    kept = STEPS[-DEFAULT_KEEP:] + [STEPS[0]]  # the best, step 2, is older than the newest ones
    assert sorted(os.listdir(os.path.join(trained_run, "checkpoints"))) == sorted(["index.json", *kept])
    with open(os.path.join(trained_run, "checkpoints", "index.json"), encoding="utf-8") as handle:
        index = json.load(handle)
    assert index["kept"] == sorted(kept, reverse=True)
    assert (index["last"], index["best"]) == (STEPS[-1], STEPS[0])


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_keep_n_leaves_exactly_the_last_n_and_the_best(tmp_path, keep):
    output = tmp_path / "run"
    assert train([*TINY_RUN, "--max-steps", "10", "--keep-checkpoints", str(keep), "--output-dir", str(output)]) == 0
    expected = sorted({*STEPS[-keep:], STEPS[0]})
    assert sorted(os.listdir(output / "checkpoints")) == ["index.json", *expected]
    assert json.loads((output / "checkpoints" / "index.json").read_text())["kept"] == expected[::-1]


@pytest.mark.parametrize("keep", ["0", "-1"])
def test_keep_checkpoints_below_1_exits_2_with_one_line(tmp_path, capsys, keep):
    assert train([*TINY_RUN, "--max-steps", "2", "--keep-checkpoints", keep, "--output-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"error: argument --keep-checkpoints: '{keep}': expected a whole number of at least 1 "
        "(see python -m training.train --help)"
    ]
    assert not os.path.exists(tmp_path / "checkpoints")


def test_resume_with_a_corrupt_newest_checkpoint_continues_from_the_previous_one(tmp_path, trained_run, caplog):
    output = copy_run(trained_run, tmp_path / "run")
    with open(os.path.join(output, "checkpoints", STEPS[-1], "model.safetensors"), "r+b") as handle:
        handle.truncate(100)
    caplog.set_level(logging.INFO)
    assert train([*TINY_RUN, "--max-steps", "10", "--output-dir", output, "--resume-from-checkpoint", "latest"]) == 0
    assert f"resumed from {os.path.join(output, 'checkpoints', STEPS[-2])} at step 8" in caplog.text
    # Steps 9 and 10 again, from step 8's state: the same final weights as the run that was never damaged.
    expected, resumed = (
        load_file(os.path.join(trained_run, "model.safetensors")),
        load_file(os.path.join(output, "model.safetensors")),
    )
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0, msg=name)
    torch.testing.assert_close(weights_of(output, STEPS[-1]), weights_of(trained_run, STEPS[-1]), rtol=0, atol=0)


def test_averaging_one_checkpoint_gives_its_weights(tmp_path, trained_run):
    output = str(tmp_path / "avg1")
    assert average.main(["--checkpoints", trained_run, "--last", "1", "--output", output]) == 0
    averaged, newest = load_file(os.path.join(output, "model.safetensors")), weights_of(trained_run, STEPS[-1])
    assert averaged.keys() == newest.keys()
    for name in newest:
        torch.testing.assert_close(averaged[name], newest[name], rtol=0, atol=0, msg=name)


def test_averaging_two_checkpoints_gives_their_mean_in_their_dtype(tmp_path, trained_run):
    output = str(tmp_path / "avg2")
    # the checkpoints/ folder itself is accepted too
    assert (
        average.main(["--checkpoints", os.path.join(trained_run, "checkpoints"), "--last", "2", "--output", output])
        == 0
    )
    averaged = load_file(os.path.join(output, "model.safetensors"))
    older, newer = weights_of(trained_run, STEPS[-2]), weights_of(trained_run, STEPS[-1])
    assert any(not torch.equal(older[name], newer[name]) for name in newer)  # two different points to average
    for name in newer:
        mean = ((older[name].double() + newer[name].double()) / 2).to(newer[name].dtype)
        assert averaged[name].dtype == newer[name].dtype
        torch.testing.assert_close(averaged[name], mean, rtol=0, atol=0, msg=name)
    with open(os.path.join(output, "training_info.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    assert info["averaged"]["checkpoints"] == STEPS[-2:] and info["averaged"]["steps"] == [8, 10]
    assert info["metrics"] == {} and info["averaged"]["run_metrics"]
    assert "step-00000008, step-00000010" in Path(output, "README.md").read_text(encoding="utf-8")


def test_wrapped_keys_in_a_torch_file_are_read_as_accelerate_may_save_them(tmp_path, trained_run):
    """`pytorch_model.bin` (save_state with safe_serialization=False) whose keys carry torch.compile's prefix."""
    run = copy_run(trained_run, tmp_path / "run")
    folder = os.path.join(run, "checkpoints", STEPS[-1])
    weights = load_file(os.path.join(folder, "model.safetensors"))
    torch.save(
        {f"_orig_mod.{name}": tensor for name, tensor in weights.items()}, os.path.join(folder, "pytorch_model.bin")
    )
    os.remove(os.path.join(folder, "model.safetensors"))
    output = str(tmp_path / "avg")
    assert average.main(["--checkpoints", run, "--last", "1", "--output", output]) == 0
    averaged = load_file(os.path.join(output, "model.safetensors"))
    for name in weights:
        torch.testing.assert_close(averaged[name], weights[name], rtol=0, atol=0, msg=name)


# In a fresh process, as a user would: the Auto classes with the folder's own code, the project's loader,
# and the chatbot's loader and reply.
LOAD = """
import sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from chatbot.inference import generate_reply, load_served_model as load_for_chat
from seq2seq_tools.loading import load_model

path = sys.argv[1]
expected = load_file(path + "/model.safetensors")
for model in (AutoModelForSeq2SeqLM.from_pretrained(path, trust_remote_code=True), load_model(path)):
    state = model.state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in expected.items())
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
ids = model.generate(**tokenizer(["Monday, March 5, 2018"], return_tensors="pt"))
print("GENERATED", ids.shape[1] > 1)
print("CHAT", bool(generate_reply(load_for_chat(path), "12 kilograms").text.strip()))
"""


@pytest.mark.slow
def test_the_averaged_folder_loads_in_a_fresh_process_chats_and_predicts(tmp_path, trained_run):
    output = str(tmp_path / "avg")
    command = [sys.executable, "-m", "training.average", "--checkpoints", trained_run, "--last", "3"]
    done = subprocess.run(
        [*command, "--output", output], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"averaged {', '.join(STEPS[-3:])} into {output}"
    for name in ("modeling_seq2seq_rnn.py", "configuration_seq2seq_rnn.py", "generation_config.json", "tokenizer.json"):
        assert os.path.isfile(os.path.join(output, name)), name
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD, output],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "GENERATED True" in loaded.stdout and "CHAT True" in loaded.stdout, loaded.stdout
    predicted = subprocess.run(
        [sys.executable, "-m", "training.predict", "--model", output, "--dataset", "-", "--output", "-"],
        input="Monday, March 5, 2018\n12 kilograms\n",
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert len(predicted.stdout.splitlines()) == 2


def rewrite_weights(run: str, step: str, change) -> None:
    path = os.path.join(run, "checkpoints", step, "model.safetensors")
    save_file(change(load_file(path)), path, metadata={"format": "pt"})


def bad_input_cases(tmp_path, trained_run: str) -> dict[str, tuple[list[str], str]]:
    def copied(name: str) -> str:
        return copy_run(trained_run, tmp_path / name)

    corrupt = copied("corrupt")
    with open(os.path.join(corrupt, "checkpoints", STEPS[-1], "model.safetensors"), "r+b") as handle:
        handle.truncate(100)
    reshaped = copied("reshaped")
    first = sorted(weights_of(trained_run, STEPS[-1]))[0]
    rewrite_weights(reshaped, STEPS[-2], lambda weights: {**weights, first: weights[first][:1]})
    other_model = copied("other_model")  # a checkpoint of another architecture: other weight names
    rewrite_weights(other_model, STEPS[-2], lambda weights: {f"other.{name}": value for name, value in weights.items()})
    other_config = copied("other_config")  # the folder's config.json is not the checkpoints' model
    config = json.loads(Path(other_config, "config.json").read_text(encoding="utf-8"))
    Path(other_config, "config.json").write_text(json.dumps({**config, "hidden_size": config["hidden_size"] * 2}))
    other_type = copied("other_type")
    Path(other_type, "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    unfinished = tmp_path / "unfinished"  # killed before its end: checkpoints, no model folder yet
    shutil.copytree(os.path.join(trained_run, "checkpoints"), unfinished / "checkpoints")
    no_checkpoints = tmp_path / "no_checkpoints"
    no_checkpoints.mkdir()
    out = str(tmp_path / "out")
    return {
        "--last 0": (["--checkpoints", trained_run, "--last", "0", "--output", out], "--last 0: must be at least 1"),
        "--last -2": (["--checkpoints", trained_run, "--last", "-2", "--output", out], "--last -2: must be at least 1"),
        "--last not a number": (
            ["--checkpoints", trained_run, "--last", "x", "--output", out],
            "argument --last: 'x': expected int",
        ),
        "fewer checkpoints than --last": (
            ["--checkpoints", trained_run, "--last", "5", "--output", out],
            "has 4 readable checkpoint(s) (step-00000002, step-00000006, step-00000008, step-00000010); pass --last 4",
        ),
        "a corrupt one among too few": (
            ["--checkpoints", corrupt, "--last", "4", "--output", out],
            "has 3 readable checkpoint(s) (step-00000002, step-00000006, step-00000008; unreadable: step-00000010",
        ),
        "different shapes": (["--checkpoints", reshaped, "--last", "2", "--output", out], "hold different models"),
        "different models": (["--checkpoints", other_model, "--last", "3", "--output", out], "hold different models"),
        "config of another shape": (["--checkpoints", other_config, "--last", "2", "--output", out], "do not fit"),
        "another model type": (["--checkpoints", other_type, "--last", "2", "--output", out], "is a 'bert' model"),
        "missing folder": (
            ["--checkpoints", str(tmp_path / "nowhere"), "--last", "2", "--output", out],
            "no such folder",
        ),
        "no checkpoints folder": (
            ["--checkpoints", str(no_checkpoints), "--last", "1", "--output", out],
            "no checkpoints/",
        ),
        "run without its model files": (
            ["--checkpoints", str(unfinished), "--last", "2", "--output", out],
            "has no config.json, generation_config.json, tokenizer_config.json, training_info.json",
        ),
        "output is the run": (
            ["--checkpoints", trained_run, "--last", "2", "--output", trained_run],
            "run's own folder",
        ),
    }


CASE_NAMES = [
    "--last 0", "--last -2", "--last not a number", "fewer checkpoints than --last", "a corrupt one among too few",
    "different shapes", "different models", "config of another shape", "another model type", "missing folder",
    "no checkpoints folder", "run without its model files", "output is the run",
]  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_averaging_input_exits_2_with_one_line(name, tmp_path, trained_run, capsys):
    cases = bad_input_cases(tmp_path, trained_run)
    assert sorted(cases) == sorted(CASE_NAMES)
    arguments, message = cases[name]
    code = average.main(arguments)
    error = capsys.readouterr().err
    assert code == 2, (name, error[-2000:])
    lines = error.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (name, error[-2000:])
    assert not os.path.exists(tmp_path / "out"), name  # nothing half-written


def test_the_command_line_prints_one_line_for_bad_input(tmp_path, trained_run):
    """The real process, logging and all: only the error line reaches stderr."""
    run = copy_run(trained_run, tmp_path / "run")
    with open(os.path.join(run, "checkpoints", STEPS[-1], "model.safetensors"), "r+b") as handle:
        handle.truncate(100)
    command = [sys.executable, "-m", "training.average", "--checkpoints", run, "--last", "4", "--output", "x"]
    done = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "has 3 readable checkpoint(s)" in done.stderr
