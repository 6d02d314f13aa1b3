"""End-to-end runs of `training.train`: the demos learn and save a loadable model, a killed run resumes
to the same weights, two processes (and two machines on one box, killed and resumed) train together,
and bad input ends in a message (exit code 2).

Runs are real: the script's `main` in-process or `python -m training.train` / `accelerate launch`
subprocesses, writing to tmp_path. Models are small so that the whole file takes a few minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # Accelerate's own dependency
import pytest
import torch
from conftest import free_port
from safetensors.torch import load_file

from training.train import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small model and short run; every key is a real config key given as a flag. The precision is
# fixed: runs whose weights are compared must not each pick one by timing (`auto` has its own test).
SMALL = [
    "--embedding-size", "32", "--hidden-size", "64", "--report-to", "none", "--num-beams", "2",
    "--eval-on-start", "true", "--logging-steps", "10", "--num-threads", "1", "--mixed-precision", "no",
]  # fmt: skip


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}


def run_training(arguments: list[str], launcher: list[str] | None = None, **kwargs) -> subprocess.Popen:
    command = (launcher or [sys.executable]) + ["-m", "training.train", *arguments]
    return subprocess.Popen(
        command, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
    )


def wait_for_checkpoint(processes: list[subprocess.Popen], output_dir, step: int) -> None:
    """Wait until the runs writing to `output_dir` have saved the checkpoint of `step` or a later one,
    however slow the machine is (pytest's timeout bounds the wait); fails if one ended first."""
    index = Path(output_dir) / "checkpoints" / "index.json"
    while all(process.poll() is None for process in processes):
        if index.is_file() and json.loads(index.read_text())["last"] >= f"step-{step:08d}":
            break
        time.sleep(0.05)
    assert all(process.poll() is None for process in processes), "a run ended before it could be killed"


def run_probe(command: list[str], record_dir, arguments: list[str]) -> str:
    """`command` (a Python or a launcher) running `tests/ddp_probe.py` to the end: its output."""
    result = subprocess.run(
        [*command, PROBE, str(record_dir), *arguments],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def history(output_dir) -> list[dict]:
    with open(os.path.join(output_dir, "training_info.json"), encoding="utf-8") as handle:
        return json.load(handle)["eval_history"]


@pytest.mark.parametrize(
    ("demo", "steps", "prompt"),
    [("translation_demo", 120, "Monday, March 5, 2018"), ("chat_demo", 150, "Hello")],
)
def test_demo_learns_and_saves_a_model_a_fresh_process_loads(tmp_path, demo, steps, prompt):
    output = tmp_path / demo
    arguments = ["--config", f"training/configs/{demo}.yaml", "--output-dir", str(output), "--max-steps", str(steps)]
    arguments += SMALL + ["--eval-steps", str(steps), "--max-eval-samples", "64", "--learning-rate", "0.005"]
    if demo == "translation_demo":
        arguments += ["--demo-size", "1500"]
    assert main([*arguments]) == 0
    evaluations = history(output)
    assert evaluations[0]["step"] == 0 and evaluations[-1]["step"] == steps
    assert evaluations[-1]["eval_loss"] < 0.85 * evaluations[0]["eval_loss"]
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "README.md",
        "training_info.json",
    ):
        assert (output / name).is_file(), name
    assert "description:" in (output / "README.md").read_text(encoding="utf-8")
    load = (
        "import sys; from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        "path, prompt = sys.argv[1], sys.argv[2]\n"
        "tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)\n"
        "model = AutoModelForSeq2SeqLM.from_pretrained(path, trust_remote_code=True)\n"
        "ids = model.generate(**tokenizer([prompt], return_tensors='pt'))\n"
        "print('GENERATED', ids.shape[1], tokenizer.decode(ids[0], skip_special_tokens=True))\n"
    )
    # A fresh process in another directory: only the saved files, not this checkout, define the model.
    result = subprocess.run(
        [sys.executable, "-c", load, str(output), prompt],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "GENERATED" in result.stdout


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    arguments = [
        "--config", "training/configs/translation_demo.yaml", "--demo-size", "500", "--batch-size", "32",
        "--validation-size", "50", "--max-steps", "40", "--checkpointing-steps", "6", "--eval-steps", "20", "--max-eval-samples", "32",
        "--teacher-forcing-schedule", "linear", "--teacher-forcing-end", "0.7", "--dropout", "0.3", *SMALL,
        "--ema-decay", "0.9",  # the saved model is the weight average: equal only if resume restores it
    ]  # fmt: skip
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert main([*arguments, "--output-dir", str(straight)]) == 0

    process = run_training([*arguments, "--output-dir", str(interrupted)], start_new_session=True)
    wait_for_checkpoint([process], interrupted, 18)
    os.killpg(process.pid, signal.SIGKILL)  # no chance to clean up, as after a crash
    process.wait()
    last = json.loads((interrupted / "checkpoints" / "index.json").read_text())["last"]
    assert "step-00000018" <= last < "step-00000040"

    assert main([*arguments, "--output-dir", str(interrupted), "--resume-from-checkpoint", "latest"]) == 0
    expected, resumed = load_file(straight / "model.safetensors"), load_file(interrupted / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0, msg=name)
    assert [e["eval_loss"] for e in history(interrupted)] == [e["eval_loss"] for e in history(straight)]


PROBE = os.path.join(REPO, "tests", "ddp_probe.py")
# Streamed pairs of one length each, char tokens: every batch has the same number of target tokens,
# so the mean of two processes' mean losses is the mean loss of their batches together. dropout 0:
# no random draw differs between one and two processes.
PROBE_FLAGS = [
    "--streaming", "--tokenizer-type", "char", "--max-steps", "6", "--embedding-size", "16", "--hidden-size", "32",
    "--num-layers", "1", "--dropout", "0", "--eval-steps", "1000", "--checkpointing-steps", "1000", "--num-beams", "1",
    "--num-samples", "0", "--num-threads", "1", "--mixed-precision", "no", "--report-to", "none",
]  # fmt: skip
# Two processes against one: the same data in the same steps, gradients summed in another order.
DDP_TOLERANCE = 1e-6


@pytest.mark.slow
def test_two_process_accelerate_launch_equals_one_process_at_twice_the_batch(tmp_path):
    """`accelerate launch --num_processes 2` (gloo on CPU): both processes end with the same
    weights, trained on disjoint samples that together are what one process at twice the batch
    trains on, and their weights equal that run's within DDP_TOLERANCE."""
    pairs = write_pairs(tmp_path / "pairs.csv", [(f"q{i:04d}", f"a{i:04d}"[::-1]) for i in range(600)])
    records = {name: tmp_path / name for name in ("one", "two")}
    for record in records.values():
        record.mkdir()
    # `--multi_gpu` picks Accelerate's torchrun launcher; with no GPU the processes join over gloo.
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    for name, command, batch in (("two", launcher, 8), ("one", [sys.executable], 16)):
        output_dir = records[name] / "out"
        arguments = ["--dataset", pairs, "--output-dir", str(output_dir), "--batch-size", str(batch), *PROBE_FLAGS]
        output = run_probe(command, records[name], arguments)
        assert f"on {2 if name == 'two' else 1} process(es)" in output
        assert (output_dir / "model.safetensors").is_file()
    one = torch.load(records["one"] / "rank-0.pt")
    rank0, rank1 = torch.load(records["two"] / "rank-0.pt"), torch.load(records["two"] / "rank-1.pt")
    for name, weight in rank0["weights"].items():
        assert torch.equal(weight, rank1["weights"][name]), f"{name}: the processes' weights differ"
        torch.testing.assert_close(weight, one["weights"][name], rtol=0, atol=DDP_TOLERANCE, msg=name)
    seen0, seen1 = ({tuple(row) for row in rank["seen"]} for rank in (rank0, rank1))
    assert len(rank0["seen"]) == len(rank1["seen"]) == 6 * 8 == len(seen0) == len(seen1)
    assert not seen0 & seen1, "both processes trained on the same samples"
    assert seen0 | seen1 == {tuple(row) for row in one["seen"]}
    saved = load_file(records["two"] / "out" / "model.safetensors")
    for name, weight in saved.items():
        assert torch.equal(weight, rank0["weights"][name]), f"{name}: the saved model is not what was trained"


def two_machines(machine_rank: int, port: int) -> list[str]:
    """`accelerate launch` as machine `machine_rank` of two, one process each, the main one at 127.0.0.1:`port`."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
        "--num_processes", "2", "--machine_rank", str(machine_rank), "--main_process_ip", "127.0.0.1",
        "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip


def start_two_machines(record_dir, arguments: list[str], log_dir) -> list[subprocess.Popen]:
    """Both machines' `accelerate launch` of the probe at once, on a free port, each in a session of its
    own and writing to `log_dir/machine-R.log` (read once it has ended: no pipe to fill)."""
    port = free_port()
    machines = []
    for rank in (0, 1):
        with open(log_dir / f"machine-{rank}.log", "w", encoding="utf-8") as log:
            machines.append(
                subprocess.Popen(
                    [*two_machines(rank, port), PROBE, str(record_dir), *arguments],
                    cwd=REPO,
                    env=subprocess_env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return machines


def kill_machine(launcher: subprocess.Popen) -> None:
    """SIGKILL to the launcher's process group and to each worker's: torchrun starts every worker in a
    session of its own, and a worker whose launcher alone is killed trains on to the end."""
    groups = {launcher.pid}
    for child in psutil.Process(launcher.pid).children(recursive=True):
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(child.pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    launcher.wait()


# The probe's tiny model and pairs as a map-style dataset, whose length-grouped batches of 8 are dealt
# to the ranks in turn; one process with batches of 16 would group the pairs otherwise, so the reference
# accumulates two batches of 8. 1,568 training pairs after 32 held out: 98 steps of 2 x 8 pairs in the
# first epoch, which the run stays in. Flags given twice: the later wins.
MACHINE_FLAGS = [flag for flag in PROBE_FLAGS if flag != "--streaming"] + [
    "--validation-size", "32", "--max-steps", "90", "--checkpointing-steps", "10", "--batch-size", "8",
]  # fmt: skip


@pytest.mark.slow
def test_two_machines_killed_and_resumed_equal_one_process_accumulating_their_two_batches(tmp_path):
    """Two `accelerate launch` "machines" on this box (gloo on CPU, one process each, one shared
    --output-dir) are killed whole after a checkpoint and launched again with
    `--resume-from-checkpoint latest`. Against one uninterrupted process that accumulates two batches
    per step: the data per step are the same (map-style batches are dealt out to the ranks in turn),
    the gradients their mean in another order.

    The probe records the resumed session only, so: the two ranks trained there on disjoint rows that
    together are the reference's rows after the step resumed from; and both ranks' final weights,
    which depend on every step of both sessions, are equal and equal the reference's within
    DDP_TOLERANCE."""
    pairs = write_pairs(tmp_path / "pairs.csv", [(f"q{i:04d}", f"a{i:04d}"[::-1]) for i in range(1600)])
    one, two, logs = tmp_path / "one", tmp_path / "two", tmp_path / "logs"
    for folder in (one, two, logs):
        folder.mkdir()
    arguments = ["--dataset", pairs, "--output-dir", str(two / "out"), *MACHINE_FLAGS]
    reference = ["--dataset", pairs, "--output-dir", str(one / "out"), *MACHINE_FLAGS]
    reference += ["--gradient-accumulation-steps", "2"]
    run_probe([sys.executable], one, reference)

    machines = start_two_machines(two, arguments, logs)
    wait_for_checkpoint(machines, two / "out", 20)
    index = two / "out" / "checkpoints" / "index.json"
    for machine in machines:  # both at once, as when the power goes
        kill_machine(machine)
    first_session = (logs / "machine-0.log").read_text(encoding="utf-8")
    assert "on 2 process(es)" in first_session, first_session[-3000:]
    last = json.loads(index.read_text())["last"]
    assert "step-00000020" <= last < "step-00000090"
    resumed_at = int(last.removeprefix("step-"))

    machines = start_two_machines(two, [*arguments, "--resume-from-checkpoint", "latest"], logs)
    for rank, machine in enumerate(machines):
        machine.wait(timeout=300)
        log = (logs / f"machine-{rank}.log").read_text(encoding="utf-8")
        assert machine.returncode == 0, log[-3000:]
    log = (logs / "machine-0.log").read_text(encoding="utf-8")
    assert "on 2 process(es)" in log and f"at step {resumed_at}" in log, log[-3000:]

    expected = torch.load(one / "rank-0.pt")
    rank0, rank1 = torch.load(two / "rank-0.pt"), torch.load(two / "rank-1.pt")
    for name, weight in rank0["weights"].items():
        assert torch.equal(weight, rank1["weights"][name]), f"{name}: the machines' weights differ"
        torch.testing.assert_close(weight, expected["weights"][name], rtol=0, atol=DDP_TOLERANCE, msg=name)
    seen0, seen1 = ({tuple(row) for row in rank["seen"]} for rank in (rank0, rank1))
    assert len(rank0["seen"]) == len(rank1["seen"]) == (90 - resumed_at) * 8 == len(seen0) == len(seen1)
    assert not seen0 & seen1, "both machines trained on the same rows"
    assert len(expected["seen"]) == 90 * 16
    assert seen0 | seen1 == {tuple(row) for row in expected["seen"][resumed_at * 16 :]}
    saved = load_file(two / "out" / "model.safetensors")
    for name, weight in saved.items():
        assert torch.equal(weight, rank0["weights"][name]), f"{name}: the saved model is not what was trained"


def write_pairs(path, rows: list[tuple[str, str]], header: str = "Q,A") -> str:
    path.write_text(header + "\n" + "".join(f"{q},{a}\n" for q, a in rows), encoding="utf-8")
    return str(path)


def test_a_tokenizer_that_does_not_match_the_model_is_refused(tmp_path, capsys):
    from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
    from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer

    tokenizer = train_tokenizer(["hello there", "general kenobi"] * 50, vocab_size=400)
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    model = Seq2SeqRNNForConditionalGeneration(
        Seq2SeqRNNConfig(vocab_size=262, embedding_size=8, hidden_size=8, num_layers=1)
    )
    model.save_pretrained(tmp_path / "model")
    pairs = write_pairs(tmp_path / "pairs.csv", [("hello there", "general kenobi")] * 10)
    arguments = [
        "--dataset",
        pairs,
        "--tokenizer",
        str(tmp_path / "tokenizer"),
        "--model-name-or-path",
        str(tmp_path / "model"),
    ]
    assert (
        main([*arguments, "--output-dir", str(tmp_path / "out"), "--report-to", "none", "--mixed-precision", "no"]) == 2
    )
    assert "the tokenizer does not match the model" in capsys.readouterr().err


def test_a_diverging_loss_stops_with_a_message_that_names_the_last_checkpoint_saved_before_it(tmp_path, capsys):
    """With lr 1e36 the first update makes the weights huge but finite and the loss at step 2
    infinite. Saving every step, the run keeps the checkpoint of step 1, and its one-line message
    names that folder, whose weights are finite."""
    output = tmp_path / "nan"
    arguments = ["--config", "training/configs/translation_demo.yaml", "--demo-size", "300", "--validation-size", "30", "--max-steps", "30",
                 "--checkpointing-steps", "1", "--eval-steps", "100", "--output-dir", str(output), *SMALL,
                 "--learning-rate", "1e36", "--warmup-steps", "0"]  # fmt: skip
    assert main(arguments) == 3
    [error] = re.findall(r"error: .*", capsys.readouterr().err)  # after the progress bar, on its line
    assert error.startswith("error: the training loss became inf at step 2; stopped before updating the weights.")
    named = error.split("Last good checkpoint: ")[1].split(". Try")[0]
    index = json.loads((output / "checkpoints" / "index.json").read_text())
    assert index["last"] == "step-00000001"
    assert named == str(output / "checkpoints" / "step-00000001")
    state = load_file(os.path.join(named, "model.safetensors"))
    assert state and all(torch.isfinite(tensor).all() for tensor in state.values())
    assert not (output / "model.safetensors").exists(), "a diverged run must not save a final model"


def test_greedy_evaluation_and_every_documented_precision_word_run_and_save(tmp_path):
    """`--num-beams 1` saves like beam search, and `no` (which YAML reads as false) is a precision."""
    from training.config import parse_config

    config_file = tmp_path / "config.yaml"
    config_file.write_text("demo: translation\nmixed_precision: no\n", encoding="utf-8")
    assert parse_config(["--config", str(config_file)]).mixed_precision == "no"
    output = tmp_path / "greedy"
    arguments = ["--config", "training/configs/translation_demo.yaml", "--demo-size", "300", "--validation-size", "30",
                 "--max-steps", "4", "--eval-steps", "4", "--checkpointing-steps", "4", "--output-dir", str(output),
                 *SMALL, "--num-beams", "1", "--mixed-precision", "no"]  # fmt: skip
    assert main(arguments) == 0
    assert (output / "model.safetensors").is_file() and (output / "tokenizer.json").is_file()
    saved = json.loads((output / "generation_config.json").read_text())
    assert saved["num_beams"] == 1
    # the evaluation's length cap, relative to the source (--max-length-a, --max-length-b), is saved with it
    assert (saved["max_length_a"], saved["max_length_b"]) == (2.0, 10.0)


def test_a_run_trains_on_a_source_file_and_a_target_file(tmp_path):
    from training.demos import translation_demo

    pairs = translation_demo(size=200, seed=1)
    (tmp_path / "train.en").write_text("".join(line + "\n" for line in pairs["source"]), encoding="utf-8")
    (tmp_path / "train.fr").write_text("".join(line + "\n" for line in pairs["target"]), encoding="utf-8")
    output = tmp_path / "run"
    arguments = ["--dataset", str(tmp_path / "train.en"), "--target-file", str(tmp_path / "train.fr"),
                 "--validation-size", "20", "--max-steps", "2", "--eval-steps", "null", "--checkpointing-steps", "null",
                 "--vocab-size", "300", "--output-dir", str(output), *SMALL, "--mixed-precision", "no"]  # fmt: skip
    assert main(arguments) == 0
    info = json.loads((output / "training_info.json").read_text(encoding="utf-8"))
    assert info["config"]["target_file"] == "train.fr" and info["config"]["dataset"] == "train.en"


def test_a_streaming_run_of_unknown_length_trains_to_max_steps_and_saves(tmp_path):
    """One process, a stream: the loader has no length, and nothing may ask for it (the first
    max_eval_samples rows, 500, are held out of the stream for validation)."""
    pairs = write_pairs(tmp_path / "pairs.csv", [(f"q{i:04d}", f"a{i:04d}"[::-1]) for i in range(600)])
    output = tmp_path / "run"
    arguments = ["--dataset", pairs, "--output-dir", str(output), "--batch-size", "8", *PROBE_FLAGS]
    arguments[arguments.index("--max-steps") + 1] = "2"
    assert main(arguments) == 0
    assert (output / "model.safetensors").is_file()
    state = json.loads((output / "checkpoints" / "index.json").read_text(encoding="utf-8"))
    assert state, "a checkpoint is saved at the end"


def test_under_a_time_budget_the_progress_bar_counts_seconds_of_the_budget_and_shows_steps(tmp_path, capsys):
    """`--max-minutes` with a huge `--max-steps`: the bar measures the budget, not the step bound, and the
    scores of the final evaluation are dated in training seconds."""
    output = tmp_path / "budget"
    arguments = ["--config", "training/configs/translation_demo.yaml", "--demo-size", "300", "--validation-size", "30",
                 "--max-steps", "1000000", "--max-minutes", "0.05", "--eval-steps", "null",
                 "--checkpointing-steps", "1000000", "--output-dir", str(output), *SMALL, "--num-beams", "1",
                 "--num-samples", "0"]  # fmt: skip
    assert main(arguments) == 0
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    final = [line for line in bar if "of the time budget" in line][-1]
    assert "/3 s of the time budget" in final and "100%" in final
    done = int(final.split("step ")[1].split(" ")[0])
    assert done >= 1 and "(of at most 1000000)" in final
    assert history(output)[-1]["step"] == done
    assert not any("/1000000" in line for line in bar)
    # With no periodic evaluations the final one runs after the loop; it is dated in training time, read
    # before it ran: the budget's clock, which benchmarks plot scores against, and the throughput's.
    info = json.loads((output / "training_info.json").read_text(encoding="utf-8"))
    assert history(output)[-1]["training_seconds"] == info["throughput"]["training_seconds"] >= 3.0
