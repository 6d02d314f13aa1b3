"""Hostile input ends in one line and a clear exit code, never a traceback or lost work.

The training command line is walked through a table of bad inputs (its `main`, in-process; each
row fails before or at the first step), checkpoints damaged as a crash or a kill leaves them are
skipped or refused, `python -m chatbot` names a missing local model path, and the model's own
`generate` refuses settings it can tell are wrong.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_RUN, free_port
from datasets import Dataset
from transformers import GenerationConfig

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from training.data import report_extra_fields
from training.train import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny run on the embedded demo: two checkpoints (step 2 and step 4), no evaluation in between,
# so that `best` stays at step 2 and both folders are kept.
TINY = TINY_RUN
STEP_2, STEP_4 = "step-00000002", "step-00000004"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> str:
    """A finished 4-step run with checkpoints at steps 2 and 4; tests copy it before damaging it."""
    output = tmp_path_factory.mktemp("trained") / "run"
    assert main([*TINY, "--max-steps", "4", "--output-dir", str(output)]) == 0
    assert sorted(os.listdir(output / "checkpoints")) == ["index.json", STEP_2, STEP_4]
    return str(output)


def copy_run(trained_run: str, destination) -> str:
    shutil.copytree(trained_run, destination)
    return str(destination)


def truncate(path: str, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


def killed_during_save(trained_run: str, destination) -> str:
    """The files a SIGKILL in the middle of saving step 6 leaves: a half-written `.tmp-step-00000006`
    and a half-written temporary index (`write_atomically`'s `.index.json.*.tmp`); `index.json` still names step 4."""
    output = copy_run(trained_run, destination)
    root = os.path.join(output, "checkpoints")
    partial = os.path.join(root, ".tmp-step-00000006")
    shutil.copytree(os.path.join(root, STEP_4), partial)
    os.remove(os.path.join(partial, "trainer_state.json"))  # written last, after accelerator.save_state
    truncate(os.path.join(partial, "optimizer.bin"), 1000)
    with open(os.path.join(root, "index.json"), encoding="utf-8") as handle:
        index = handle.read()
    with open(os.path.join(root, ".index.json.k1ll3d.tmp"), "w", encoding="utf-8") as handle:
        handle.write(index[: len(index) // 2])
    return output


def bad_input_cases(tmp_path, trained_run: str) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, a part of the one-line message). Every row must exit with code 2."""

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def write_bytes(name: str, content: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(content)
        return str(path)

    pairs = write("pairs.csv", "Q,A\n" + "hello,hi\nhow are you,fine\nbye,see you\n" * 4)
    header_only = write("header_only.csv", "Q,A\n")
    typo_config = write("typo.yaml", "hiden_size: 64\n")
    a_file = write("a_file.txt", "not a directory\n")
    broken_tokenizer = tmp_path / "broken_tokenizer"
    broken_tokenizer.mkdir()
    (broken_tokenizer / "tokenizer.json").write_text('{"version": "1.0", "model": {}}', encoding="utf-8")
    (broken_tokenizer / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    corrupt_weights = copy_run(trained_run, tmp_path / "corrupt_weights")
    truncate(os.path.join(corrupt_weights, "checkpoints", STEP_4, "model.safetensors"), 100)
    all_corrupt = copy_run(trained_run, tmp_path / "all_corrupt")
    for step in (STEP_2, STEP_4):
        truncate(os.path.join(all_corrupt, "checkpoints", step, "model.safetensors"), 100)
    killed = killed_during_save(trained_run, tmp_path / "killed")
    demo = ["--demo", "translation"]
    return {
        "missing file": (["--dataset", str(tmp_path / "nope.csv")], "data file not found"),
        "plain text, no targets": (["--dataset", __file__], "holds sources only, in 'source' (no targets); training needs pairs"),
        "binary file, odd extension": (["--dataset", write_bytes("corpus.bin", b"\x1f\x8b\x08\x00\xff\x00")], "unknown extension '.bin' and not UTF-8 text"),
        "headerless first row unclear": (["--dataset", write("pairs.tsv", "Hi\tSalut\nGo.\tVa !\nRun!\tCours !\n")], "pairs.tsv was read as a header (column names)"),
        "missing Hub dataset": (["--dataset", "no-such-user/no-such-dataset"], "no-such-user/no-such-dataset"),
        "wrong column": (["--dataset", pairs, "--source-column", "Question", "--target-column", "A"], "'Question' is not a column of the data; the columns are 'Q', 'A'"),
        "empty split": (["--dataset", header_only], "is empty"),
        "unknown key in YAML": (["--config", typo_config, "--dataset", pairs], "unknown config key 'hiden_size'"),
        "unknown flag": (["--dataset", pairs, "--hiden-size", "64"], "did you mean hidden_size"),
        "bad value": (["--dataset", pairs, "--cell-type", "transformer"], "argument --cell-type: 'transformer' is not supported; accepted values: lstm, gru, peephole_lstm"),
        "missing split": (["--dataset", pairs, "--validation-split", "dev"], "split 'dev' not found"),
        "learning rate nan": ([*demo, "--learning-rate", "nan"], "argument --learning-rate: 'nan': expected a number greater than 0"),
        "negative learning rate": ([*demo, "--learning-rate", "-1"], "argument --learning-rate: '-1': expected a number greater than 0"),
        "negative length cap": ([*demo, "--max-length-a", "-2"], "argument --max-length-a: '-2': expected a number of at least 0"),
        "output dir is a file": ([*demo, "--output-dir", a_file], f"--output-dir {a_file} is an existing file"),
        "output dir not writable": ([*demo, "--output-dir", os.path.join(a_file, "run")], "cannot be written"),
        "invalid tokenizer.json": ([*demo, "--tokenizer", str(broken_tokenizer)], f"cannot load the tokenizer {str(broken_tokenizer)!r}"),
        "vocabulary too small": ([*demo, "--vocab-size", "64"], "vocab_size=64 is too small"),
        "char vocabulary too small": (["--dataset", pairs, "--tokenizer-type", "char", "--vocab-size", "4"], "vocab_size=4 is too small for the char tokenizer"),
        "bad tokenizer type": (["--dataset", pairs, "--tokenizer-type", "wordpiece"], "argument --tokenizer-type: 'wordpiece' is not supported; accepted values: bpe, char"),
        "empty file": (["--dataset", write("empty.tsv", "")], "empty.tsv is empty (0 bytes)"),
        "whitespace-only .txt": (["--dataset", write("blank.txt", "  \n \t \n   \n\n  \n")], "were empty and 0 over-long; every row lacks a source or a target"),
        "malformed .jsonl line": (["--dataset", write("bad.jsonl", '{"source": "a", "target": "b"}\n{"source": oops}\n')], "line 2 is not valid JSON"),
        "corrupt checkpoint path": ([*TINY, "--output-dir", corrupt_weights, "--resume-from-checkpoint", os.path.join(corrupt_weights, "checkpoints", STEP_4)], "model.safetensors: SafetensorError"),
        "every checkpoint corrupt": ([*TINY, "--output-dir", all_corrupt, "--resume-from-checkpoint", "latest"], "can be read; remove them to start from scratch"),
        "resume from a save cut by a kill": ([*TINY, "--output-dir", killed, "--resume-from-checkpoint", os.path.join(killed, "checkpoints", ".tmp-step-00000006")], "no such file"),
        "no weight average to resume": ([*TINY, "--output-dir", copy_run(trained_run, tmp_path / "no_average"), "--resume-from-checkpoint", "latest", "--ema-decay", "0.9"], "holds no weight average (its run had no --ema-decay)"),
        "zero time budget": ([*demo, "--max-minutes", "0"], "argument --max-minutes: '0': expected a number greater than 0"),
    }  # fmt: skip


CASE_NAMES = [
    "missing file", "plain text, no targets", "binary file, odd extension", "headerless first row unclear",
    "missing Hub dataset", "wrong column", "empty split", "unknown key in YAML",
    "unknown flag", "bad value", "missing split", "learning rate nan", "negative learning rate", "negative length cap", "output dir is a file",
    "output dir not writable", "invalid tokenizer.json", "vocabulary too small", "char vocabulary too small",
    "bad tokenizer type", "empty file", "whitespace-only .txt",
    "malformed .jsonl line", "corrupt checkpoint path", "every checkpoint corrupt", "resume from a save cut by a kill",
    "no weight average to resume", "zero time budget",
]  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_training_input_exits_2_with_one_line(name, tmp_path, trained_run, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cases = bad_input_cases(tmp_path, trained_run)
    assert sorted(cases) == sorted(CASE_NAMES)
    arguments, message = cases[name]
    defaults = [
        "--output-dir",
        str(tmp_path / "out"),
        "--report-to",
        "none",
        "--max-steps",
        "1",
        "--mixed-precision",
        "no",
    ]
    code = main([*defaults, *arguments])  # later flags win: a case's own --output-dir overrides
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("error: ")]
    assert code == 2, (name, error[-2000:])
    assert len(lines) == 1 and message.lower() in lines[0].lower(), (name, error[-2000:])
    assert "Traceback" not in error, name


def test_a_corrupt_newest_checkpoint_resumes_from_the_previous_one(tmp_path, trained_run, caplog):
    output = copy_run(trained_run, tmp_path / "run")
    truncate(os.path.join(output, "checkpoints", STEP_4, "model.safetensors"), 100)
    caplog.set_level(logging.INFO)
    assert main([*TINY, "--max-steps", "6", "--output-dir", output, "--resume-from-checkpoint", "latest"]) == 0
    log = caplog.text
    assert f"skipping checkpoint {os.path.join(output, 'checkpoints', STEP_4)}: model.safetensors" in log
    assert f"resumed from {os.path.join(output, 'checkpoints', STEP_2)} at step 2" in log
    index = json.loads((tmp_path / "run" / "checkpoints" / "index.json").read_text())
    assert index["last"] == "step-00000006"
    # step 4 was saved again over the damaged folder; steps 2, 4 and 6 are the newest 3 (the default), 2 the best
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["index.json", STEP_2, STEP_4, "step-00000006"]
    assert index["kept"] == ["step-00000006", STEP_4, STEP_2] and index["best"] == STEP_2


def test_an_unreadable_best_checkpoint_falls_back_to_the_newest_readable_one(tmp_path, trained_run, caplog):
    output = copy_run(trained_run, tmp_path / "run")
    truncate(os.path.join(output, "checkpoints", STEP_2, "optimizer.bin"), 1000)  # step 2 is the best
    caplog.set_level(logging.INFO)
    assert main([*TINY, "--max-steps", "6", "--output-dir", output, "--resume-from-checkpoint", "best"]) == 0
    assert "the best checkpoint" in caplog.text and "cannot be read" in caplog.text
    assert f"resumed from {os.path.join(output, 'checkpoints', STEP_4)} at step 4" in caplog.text


def test_an_unreadable_index_is_advisory_and_a_cut_save_is_ignored(tmp_path, trained_run, caplog):
    output = killed_during_save(trained_run, tmp_path / "run")
    index = os.path.join(output, "checkpoints", "index.json")
    truncate(index, 20)
    caplog.set_level(logging.INFO)
    assert main([*TINY, "--max-steps", "6", "--output-dir", output, "--resume-from-checkpoint", "latest"]) == 0
    assert f"resumed from {os.path.join(output, 'checkpoints', STEP_4)} at step 4" in caplog.text
    with open(index, encoding="utf-8") as handle:
        assert json.load(handle)["last"] == "step-00000006"
    assert not any(entry.startswith((".tmp-", ".index.json.")) for entry in os.listdir(os.path.dirname(index)))


def test_txt_rows_with_extra_tab_fields_are_counted_and_reported(caplog):
    lines = ["one\tun", "two\tdeux\tCC-BY Tatoeba #2", "three\ttrois", "four\tquatre\textra\tmore"]
    with caplog.at_level(logging.WARNING, logger="training.data"):
        assert report_extra_fields(Dataset.from_dict({"text": lines}), "text", "pairs.txt") == 2
    assert "pairs.txt: 2 of 4 lines have more than two tab-separated fields" in caplog.text


def test_chatbot_names_a_missing_local_model_path():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", "--model", "some/missing/dir"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the local path some/missing/dir does not exist" in result.stderr
    assert "Repo id" not in result.stderr and "Traceback" not in result.stderr


def timed_training(
    command: list[str], arguments: list[str], environment: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """`command` (a Python or a launcher) running `-m training.train` on the tiny run with `arguments`
    to its end, offline, with `environment` added: its result and the seconds it took."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", **(environment or {})}
    started = time.monotonic()
    result = subprocess.run(
        [*command, "-m", "training.train", *TINY, *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, time.monotonic() - started


def test_a_machine_that_cannot_reach_the_main_process_stops_with_one_line_within_the_timeout(tmp_path):
    """Rank 1 of 2 with nobody at MASTER_ADDR:MASTER_PORT, as a launcher without an agent of its own
    starts it (Slurm, MPI: the torch environment variables, then the script). Without the check,
    Accelerator() waits 30 minutes in init_process_group and ends in a traceback."""
    port, timeout = free_port(), 3
    environment = dict(RANK="1", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    result, elapsed = timed_training(
        [sys.executable], ["--output-dir", str(tmp_path / "run"), "--connect-timeout", str(timeout)], environment
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach the main process at 127.0.0.1:{port} within {timeout} s"), last
    assert "Traceback" not in result.stderr
    assert timeout <= elapsed < timeout + 60  # it waited, and stopped (the start-up takes a few seconds)
    assert not (tmp_path / "run").exists(), "it stopped before touching --output-dir"


def test_accelerate_launch_of_a_machine_that_cannot_reach_the_main_one_stops_within_its_rendezvous_timeout(tmp_path):
    """`accelerate launch --num_machines 2 --machine_rank 1` waits for machine 0 in torchrun's agent,
    before the script starts: 600 s by default, bounded by `--rdzv_conf timeout=S` (README). It stops
    then with torch's traceback, whose last line names the address and port, within two or three
    times S (the TCP client tries again after a random delay)."""
    port, timeout = free_port(), 3
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
              "--num_processes", "2", "--machine_rank", "1", "--main_process_ip", "127.0.0.1",
              "--main_process_port", str(port), "--rdzv_conf", f"timeout={timeout}", "--mixed_precision", "no",
              "--dynamo_backend", "no"]  # fmt: skip
    result, elapsed = timed_training(launch, ["--output-dir", str(tmp_path / "run")])
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert f"(127.0.0.1, {port})" in last, last
    assert timeout <= elapsed < 3 * timeout + 60  # start-up included
    assert not (tmp_path / "run").exists(), "the training script never started"


@pytest.fixture(scope="module")
def tiny_model() -> Seq2SeqRNNForConditionalGeneration:
    model = Seq2SeqRNNForConditionalGeneration(
        Seq2SeqRNNConfig(vocab_size=300, embedding_size=8, hidden_size=8, num_layers=1)
    ).eval()
    model.generation_config = GenerationConfig(
        num_beams=4,
        max_new_tokens=5,
        decoder_start_token_id=model.config.decoder_start_token_id,
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
    )
    return model


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_beams": 0}, "num_beams=0: expected a whole number of at least 1"),
        ({"generation_config": GenerationConfig(num_beams=0)}, "num_beams=0: expected a whole number of at least 1"),
        ({"do_sample": True, "num_beams": 1, "top_p": 1.5}, "top_p=1.5: expected a number greater than 0 and at most 1"),
        ({"do_sample": True, "num_beams": 1, "top_p": 0.0}, "top_p=0.0: expected a number greater than 0 and at most 1"),
        ({"max_new_tokens": 10**9}, "max_new_tokens=1000000000 is more than this model generates at once (at most 1024)"),
    ],
)  # fmt: skip
def test_generate_refuses_settings_the_model_knows_are_wrong(tiny_model, settings, message):
    input_ids = torch.tensor([[5, 6, 7, tiny_model.config.eos_token_id]])
    with pytest.raises(ValueError) as raised:
        tiny_model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **settings)
    assert message in str(raised.value)


def test_the_new_token_limit_is_configurable_and_saved(tiny_model, tmp_path):
    input_ids = torch.tensor([[5, 6, 7, tiny_model.config.eos_token_id]])
    attention_mask = torch.ones_like(input_ids)
    with pytest.raises(ValueError, match="at most 1024"):
        tiny_model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=1100, num_beams=1)
    tiny_model.generation_config.max_new_tokens_limit = 1200
    tiny_model.save_pretrained(tmp_path)
    reloaded = Seq2SeqRNNForConditionalGeneration.from_pretrained(tmp_path).eval()
    del tiny_model.generation_config.max_new_tokens_limit
    output = reloaded.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=1100, min_new_tokens=1100, num_beams=1
    )
    assert output.shape[1] == 1 + 1100  # the decoder start token, then every new token
