"""A `--streaming` run resumes where it stopped, without reading the rows it consumed again.

Every row read passes through `training.data.pairs_from_batch`; the tests wrap it to record the rows
(`rows_read`). A stream saved at any row and resumed in a fresh pipeline yields the rest of the same
order, and the two sessions together read what one uninterrupted pass reads: no row twice.
Then real runs: a killed streaming run resumes to the same weights, one and two processes, and a
checkpoint resumed under other data settings stops with a line naming the setting.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import training.data
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer
from training.data import DataSpec, load_pairs
from training.errors import TrainingInputError
from training.prepare import tokenize_pairs
from training.stream import ShuffledStream, check_stream_settings
from training.train import main

try:  # the run settings live beside the other training runs
    from test_training_run import REPO, SMALL, history, run_training, subprocess_env, wait_for_checkpoint, write_pairs
except ModuleNotFoundError:
    from tests.test_training_run import (
        REPO,
        SMALL,
        history,
        run_training,
        subprocess_env,
        wait_for_checkpoint,
        write_pairs,
    )

ROWS = 300
HELD_OUT = 20  # the stream's first rows, held out for validation
BUFFER = 32


@pytest.fixture
def rows_read(monkeypatch) -> list[tuple]:
    """Each row read from the data, in order, as the tuple of its column values."""
    read: list[tuple] = []
    pairs_from_batch = training.data.pairs_from_batch

    def recording(batch, schema):
        read.extend(tuple(map(str, row)) for row in zip(*batch.values(), strict=True))
        return pairs_from_batch(batch, schema)

    monkeypatch.setattr(training.data, "pairs_from_batch", recording)
    return read


def write_sources(folder) -> dict[str, str]:
    """The same numbered pairs as a .csv, a .parquet, a .jsonl of translations, a .csv with a bad row
    (read by a generator), and a .jsonl of three-turn conversations (two pairs a row)."""
    import pandas as pd

    pairs = [(f"q{i:04d} " + "x" * (i % 7), f"a{i:04d}" + "y" * (i % 5)) for i in range(ROWS)]
    files = {"csv": write_pairs(folder / "pairs.csv", pairs)}
    pd.DataFrame(pairs, columns=["source", "target"]).to_parquet(folder / "pairs.parquet")
    files["parquet"] = str(folder / "pairs.parquet")
    with open(folder / "opus.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"translation": {"en": s, "fr": t}}) + "\n" for s, t in pairs)
    files["jsonl"] = str(folder / "opus.jsonl")
    files["csv with a bad row"] = write_pairs(folder / "bad.csv", pairs[:100] + [("one,too", "many")] + pairs[100:])
    with open(folder / "chat.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"conversations": [s, t, s.upper()]}) + "\n" for s, t in pairs)
    files["conversations"] = str(folder / "chat.jsonl")
    return files


def shuffled_stream(path: str) -> ShuffledStream:
    """The training stream of `path` as a run prepares it: pairs, tokens, shuffle."""
    splits, _ = load_pairs(DataSpec(dataset=path, streaming=True, validation_size=HELD_OUT))
    tokenizer = train_tokenizer([f"q{i} xy a" for i in range(10)], vocab_size=100, min_frequency=1, kind="char")
    tokenized, _ = tokenize_pairs(splits["train"], tokenizer, 64, 64)
    return ShuffledStream(tokenized.remove_columns("length"), BUFFER, seed=5)


def through_a_checkpoint(state: dict) -> dict:
    """`state` after torch.save and torch.load (weights only), as Accelerate saves and loads it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def rows(examples) -> list[tuple[int, ...]]:
    return [tuple(example["input_ids"]) + tuple(example["labels"]) for example in examples]


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl", "csv with a bad row", "conversations"])
@pytest.mark.parametrize(("epoch", "position"), [(0, 0), (0, 7), (0, 150), (0, 275), (0, 280), (1, 100)])
def test_a_stream_resumed_at_any_row_yields_the_same_rows_and_reads_none_again(
    tmp_path, rows_read, kind, epoch, position
):
    """Saved after `position` rows of `epoch` (in the buffer's filling, its middle, its draining, the
    end) and resumed in a new pipeline: the same order, and the two sessions together read the rows of
    one uninterrupted pass. A conversation row gives two pairs: a resume may read its last row again."""
    path = write_sources(tmp_path)[kind]
    whole = shuffled_stream(path)
    whole.set_epoch(epoch)
    del rows_read[:]
    expected, reads_expected = rows(whole), list(rows_read)

    first = shuffled_stream(path)
    first.set_epoch(epoch)
    del rows_read[:]
    iterator = iter(first)
    before = rows(next(iterator) for _ in range(position))
    state, reads_before = through_a_checkpoint(first.state_dict()), list(rows_read)

    resumed = shuffled_stream(path)  # a new process: reads the validation rows again, not counted
    resumed.set_epoch(epoch)
    resumed.load_state_dict(state)
    del rows_read[:]
    after = rows(resumed)

    assert before + after == expected
    again = 1 if kind == "conversations" and position and rows_read[:1] == reads_before[-1:] else 0
    assert reads_before + rows_read[again:] == reads_expected


def test_a_position_that_ended_its_epoch_leaves_the_next_epoch_to_start_afresh(tmp_path):
    path = write_sources(tmp_path)["csv"]
    stream = shuffled_stream(path)
    epoch_0 = rows(stream)
    state = through_a_checkpoint(stream.state_dict())
    stream.set_epoch(1)
    epoch_1 = rows(stream)
    assert sorted(epoch_1) == sorted(epoch_0) and epoch_1 != epoch_0

    resumed = shuffled_stream(path)
    resumed.load_state_dict(state)
    assert rows(resumed) == []  # epoch 0 had ended
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    assert rows(resumed) == epoch_1


def test_a_differing_process_count_is_named():
    saved = {"seed": 1, "num_processes": 2}
    with pytest.raises(TrainingInputError, match=r"with the number of processes 2, but this run has 1"):
        check_stream_settings("ckpt", saved, {"seed": 1, "num_processes": 1})


STREAM_RUN = [
    "--streaming", "--tokenizer-type", "char", "--batch-size", "8", "--validation-size", "20",
    "--shuffle-buffer-size", "16", "--max-steps", "2", "--checkpointing-steps", "1", "--eval-steps", "100",
    "--embedding-size", "8", "--hidden-size", "8", "--num-layers", "1", "--num-beams", "1", "--num-samples", "0",
    "--num-threads", "1", "--mixed-precision", "no", "--report-to", "none",
]  # fmt: skip


@pytest.fixture(scope="module")
def streamed_checkpoints(tmp_path_factory) -> dict[str, str]:
    """A short streaming run and a short map-style run, each with checkpoints: {"data", "other data",
    "stream", "map"} -> a path."""
    folder = tmp_path_factory.mktemp("runs")
    paths = {
        "data": write_pairs(folder / "pairs.csv", [(f"q{i:03d}", f"a{i:03d}") for i in range(100)]),
        "other data": write_pairs(folder / "other.csv", [(f"r{i:03d}", f"b{i:03d}") for i in range(100)]),
        "stream": str(folder / "stream"),
        "map": str(folder / "map"),
    }
    for name, switch in (("stream", "--streaming"), ("map", "--no-streaming")):
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        arguments = [*STREAM_RUN, switch, "--dataset", paths["data"], "--output-dir", paths[name]]
        assert main(arguments) == 0
    return paths


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--dataset", "other data"], "--dataset"),
        (["--seed", "7"], "--seed 42, but this run has 7"),
        (["--shuffle-buffer-size", "32"], "--shuffle-buffer-size 16, but this run has 32"),
        (["--batch-size", "4"], "--batch-size 8, but this run has 4"),
        (["--max-source-length", "20"], "--max-source-length"),
        (["--overlong", "truncate"], "--overlong 'filter', but this run has 'truncate'"),
        (["--validation-size", "30"], "--validation-size 20.0, but this run has 30.0"),
        (["--tokenizer-type", "bpe"], "--tokenizer-type 'char', but this run has 'bpe'"),
        (["--no-streaming"], "was saved by a --streaming run: resume it with --streaming"),
    ],
)
def test_a_stream_resumed_under_other_data_settings_stops_with_a_line_naming_the_setting(
    streamed_checkpoints, capsys, flags, named
):
    output = streamed_checkpoints["stream"]
    flags = [streamed_checkpoints.get(flag, flag) for flag in flags]
    before = sorted(os.listdir(os.path.join(output, "checkpoints")))
    arguments = [*STREAM_RUN, "--dataset", streamed_checkpoints["data"], *flags, "--max-steps", "4"]
    capsys.readouterr()
    assert main([*arguments, "--output-dir", output, "--resume-from-checkpoint", "latest"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert named in line and "step-00000002" in line
    assert sorted(os.listdir(os.path.join(output, "checkpoints"))) == before, "nothing was trained"


def test_a_map_style_checkpoint_resumed_as_a_stream_stops_with_a_line(streamed_checkpoints, capsys):
    arguments = [*STREAM_RUN, "--dataset", streamed_checkpoints["data"], "--max-steps", "4"]
    assert main([*arguments, "--output-dir", streamed_checkpoints["map"], "--resume-from-checkpoint", "latest"]) == 2
    assert "holds no stream position (its run did not stream" in capsys.readouterr().err


def row_number(row: tuple) -> int:
    return int(row[0][1:5])


@pytest.mark.slow
def test_a_killed_streaming_run_resumes_to_the_same_weights_reading_no_consumed_row(tmp_path, rows_read):
    """SIGKILL after a checkpoint, then `--resume-from-checkpoint latest`: the same weights (atol 0) and
    evaluations as the uninterrupted run. The resumed session reads the held-out rows (validation,
    and the first training row, which the loading checks is there), then exactly the rows after those
    the stream had taken at the checkpoint (the steps' rows and the shuffle buffer's, which comes
    from the checkpoint), each once: at most the remaining steps' rows and one batch read ahead."""
    batch, buffer, steps, held_out = 16, 64, 40, 50
    pairs = write_pairs(tmp_path / "pairs.csv", [(f"q{i:04d}", f"a{i:04d}"[::-1] + "z" * (i % 9)) for i in range(1500)])
    arguments = [
        "--dataset", pairs, "--streaming", "--tokenizer-type", "char", "--batch-size", str(batch),
        "--shuffle-buffer-size", str(buffer), "--validation-size", str(held_out), "--max-steps", str(steps),
        "--checkpointing-steps", "6", "--eval-steps", "20", "--max-eval-samples", "32",
        "--teacher-forcing-schedule", "linear", "--teacher-forcing-end", "0.7", "--dropout", "0.3", *SMALL,
    ]  # fmt: skip
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert main([*arguments, "--output-dir", str(straight)]) == 0
    read_straight = [row_number(row) for row in rows_read]

    process = run_training([*arguments, "--output-dir", str(interrupted)], start_new_session=True)
    wait_for_checkpoint([process], interrupted, 18)
    os.killpg(process.pid, signal.SIGKILL)  # no chance to clean up, as after a crash
    process.wait()
    last = json.loads((interrupted / "checkpoints" / "index.json").read_text())["last"]
    assert "step-00000018" <= last < f"step-{steps:08d}"

    del rows_read[:]
    started = time.perf_counter()
    assert main([*arguments, "--output-dir", str(interrupted), "--resume-from-checkpoint", "latest"]) == 0
    seconds = time.perf_counter() - started
    expected, resumed = load_file(straight / "model.safetensors"), load_file(interrupted / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0, msg=name)
    assert [e["eval_loss"] for e in history(interrupted)] == [e["eval_loss"] for e in history(straight)]

    read = [row_number(row) for row in rows_read]
    held = [row for row in read if row <= held_out]  # validation, and the check of a first training row
    trained = [row for row in read if row > held_out]
    assert read == held + trained and len(held) <= 2 * held_out + 1
    taken = held_out + batch * int(last[len("step-") :]) + buffer  # rows the stream had taken at the checkpoint
    assert trained == list(range(taken, trained[-1] + 1)), "each row after the checkpoint's once, in order"
    assert trained[-1] == read_straight[-1], "the rows the uninterrupted run read, and no more"
    assert len(trained) <= batch * (steps - int(last[len("step-") :])) + batch
    print(f"\nresumed at {last}: {len(read)} rows read ({len(trained)} to train) in {seconds:.1f} s; "
          f"the uninterrupted run read {len(read_straight)}")  # fmt: skip


@pytest.mark.slow
def test_a_two_process_stream_resumes_to_the_same_weights(tmp_path):
    """`accelerate launch --num_processes 2`, rows of different lengths: the first process reads each
    step's batch for both. Resumed from a checkpoint in the middle, the run ends with the weights and
    evaluations of the uninterrupted one (the checkpoint holds the first process's stream position)."""
    rows = [(f"q{i:04d}" + "x" * (i % 9), f"a{i:04d}"[::-1] + "y" * (i % 7)) for i in range(700)]
    pairs = write_pairs(tmp_path / "pairs.csv", rows)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    arguments = [
        "--dataset", pairs, "--streaming", "--tokenizer-type", "char", "--batch-size", "8", "--validation-size", "50",
        "--shuffle-buffer-size", "64", "--max-steps", "12", "--checkpointing-steps", "5", "--keep-checkpoints", "3",
        "--eval-steps", "4", "--max-eval-samples", "20", "--eval-batch-size", "7", "--embedding-size", "16",
        "--hidden-size", "32", "--num-layers", "1", "--dropout", "0.3", "--num-beams", "1", "--num-samples", "0",
        "--num-threads", "1", "--mixed-precision", "no", "--report-to", "none",
    ]  # fmt: skip
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"

    def launch(*extra: str) -> str:
        command = [*launcher, "-m", "training.train", *arguments, *extra]
        result = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        return result.stdout + result.stderr

    assert "on 2 process(es)" in launch("--output-dir", str(straight))
    shutil.copytree(straight, resumed)
    checkpoint = resumed / "checkpoints" / "step-00000005"
    log = launch("--output-dir", str(resumed), "--resume-from-checkpoint", str(checkpoint))
    assert "the training stream resumes in epoch 0 after the 80 rows it gave out" in log
    expected, weights = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(weights[name], expected[name], rtol=0, atol=0, msg=name)
    assert [e["eval_loss"] for e in history(resumed)] == [e["eval_loss"] for e in history(straight)]


def test_a_stream_resumed_at_the_end_of_an_epoch_or_in_the_next_ends_with_the_same_weights(tmp_path):
    """280 training rows make 18 batches of 16 an epoch (the last one of 8). The checkpoint of step 18
    ended epoch 0 (a resumed run starts epoch 1 afresh), step 24 is in epoch 1: resumed from either,
    the run ends with the uninterrupted run's weights."""
    pairs = write_pairs(tmp_path / "pairs.csv", [(f"q{i:04d}", f"a{i:04d}"[::-1]) for i in range(300)])
    arguments = [*STREAM_RUN, "--dataset", pairs, "--batch-size", "16", "--shuffle-buffer-size", "32",
                 "--max-steps", "30", "--checkpointing-steps", "6", "--keep-checkpoints", "10", "--dropout", "0.3"]  # fmt: skip
    straight = tmp_path / "straight"
    assert main([*arguments, "--output-dir", str(straight)]) == 0
    states = {step: checkpoint_state(straight, step) for step in (18, 24)}
    assert (states[18]["epoch"], states[18]["batches_done"]) == (1, 0)
    assert (states[24]["epoch"], states[24]["batches_done"]) == (1, 6)
    expected = load_file(straight / "model.safetensors")
    for step in states:
        resumed = tmp_path / f"from-{step}"
        shutil.copytree(straight, resumed)
        checkpoint = resumed / "checkpoints" / f"step-{step:08d}"
        assert main([*arguments, "--output-dir", str(resumed), "--resume-from-checkpoint", str(checkpoint)]) == 0
        weights = load_file(resumed / "model.safetensors")
        for name in expected:
            torch.testing.assert_close(weights[name], expected[name], rtol=0, atol=0, msg=f"step {step}: {name}")


def checkpoint_state(output_dir, step: int) -> dict:
    return json.loads((output_dir / "checkpoints" / f"step-{step:08d}" / "trainer_state.json").read_text())
