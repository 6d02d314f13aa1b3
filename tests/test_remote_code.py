"""Loading a model folder runs none of its Python files unless `--trust-remote-code` says so.

A folder saved by `save_pretrained` carries copies of our `.py` files. Here those copies are
booby-trapped: importing any of them appends to a marker file. The chatbot's loader and the
trainer (fine-tuning from the folder, then resuming that run) load it with the installed classes,
the marker stays absent, and the model still answers. The same folder with another `model_type` is
refused with one line that names the flag (the CLI exits 2); with the flag its code runs. The
version that wrote a model is recorded, a skew is logged, and a model that needs a newer release
is refused with a message that says to upgrade.

Runs on the newest and the oldest transformers that CI installs: transformers 5.0 imports a
folder's code for any `trust_remote_code=True` load, even of a registered type.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import transformers
from conftest import TINY_RUN

import hf_seq2seq_rnn
from chatbot import __main__ as chatbot_cli
from chatbot.inference import DecodingSettings, generate_reply
from chatbot.inference import load_served_model as load_for_chat
from hf_seq2seq_rnn import Seq2SeqRNNForConditionalGeneration
from seq2seq_tools.loading import (
    IncompatibleModelError,
    UntrustedModelError,
    load_config,
    load_model,
    load_tokenizer,
)
from training.predict import main as predict
from training.train import main as train

REPO = Path(__file__).resolve().parent.parent

TINY = TINY_RUN
PROMPT = "Monday, March 5, 2018"
INSTALLED = hf_seq2seq_rnn.__version__


def trap(folder: Path, marker: Path) -> list[str]:
    """Make every `.py` file in `folder` append its module name to `marker` when imported."""
    names = sorted(path.name for path in folder.glob("*.py"))
    for name in names:
        with open(folder / name, "a", encoding="utf-8") as handle:
            handle.write(
                f"\nwith open({str(marker)!r}, 'a', encoding='utf-8') as _marker:\n    _marker.write(__name__ + '\\n')\n"
            )
    return names


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def trapped(tmp_path_factory) -> tuple[Path, Path]:
    """(a trained model folder whose `.py` files write the marker when imported, the marker)."""
    root = tmp_path_factory.mktemp("remote_code")
    run = root / "run"
    assert train([*TINY, "--max-steps", "2", "--output-dir", str(run)]) == 0
    folder = root / "trapped"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    marker = root / "marker.txt"
    assert "modeling_seq2seq_rnn.py" in trap(folder, marker)
    return folder, marker


@pytest.fixture
def marker(trapped) -> Path:
    """The marker file, absent at the start of the test."""
    path = trapped[1]
    path.unlink(missing_ok=True)
    return path


def variant(trapped, destination: Path, **changes: object) -> Path:
    """A copy of the trapped folder with config.json changed."""
    shutil.copytree(trapped[0], destination)
    edit_config(destination, **changes)
    return destination


def answers(folder: Path) -> list[int]:
    """Token ids of the chatbot's reply to PROMPT, loaded the chatbot's way."""
    reply = generate_reply(load_for_chat(folder), PROMPT, DecodingSettings(max_new_tokens=4))
    return reply.token_ids


def read(marker: Path) -> str:
    return marker.read_text(encoding="utf-8") if marker.exists() else ""


def fresh_env(tmp_path: Path) -> dict[str, str]:
    # Dynamic modules go to a folder of this test, not the user's cache.
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }


def test_the_trap_is_in_every_code_file(trapped):
    folder, marker = trapped
    for name in ("configuration_seq2seq_rnn.py", "modeling_seq2seq_rnn.py", "attention_seq2seq_rnn.py"):
        assert str(marker) in (folder / name).read_text(encoding="utf-8"), name


def test_the_chatbot_loads_our_model_with_the_installed_code(trapped, marker):
    loaded = load_for_chat(trapped[0])
    assert type(loaded.model) is Seq2SeqRNNForConditionalGeneration  # the installed class itself
    reply = generate_reply(loaded, PROMPT, DecodingSettings(mode="beam", num_beams=2, max_new_tokens=4))
    assert reply.token_ids and reply.attention is not None
    assert not marker.exists(), marker.read_text()


def test_trust_remote_code_does_not_swap_in_the_folders_code_for_ours(trapped, marker):
    # The flag only opens other types; ours still loads with the installed classes, also on 5.0.
    model = load_model(trapped[0], trust_remote_code=True)
    tokenizer = load_tokenizer(trapped[0], trust_remote_code=True)
    assert type(model) is Seq2SeqRNNForConditionalGeneration
    assert model.generate(**tokenizer([PROMPT], return_tensors="pt"), max_new_tokens=3).shape[1] >= 2
    assert not marker.exists(), marker.read_text()


def test_fine_tuning_and_resuming_from_the_folder_run_none_of_its_code(trapped, marker, tmp_path, caplog):
    folder = trapped[0]
    output = tmp_path / "finetuned"
    arguments = [*TINY, "--model-name-or-path", str(folder), "--output-dir", str(output)]
    assert train([*arguments, "--max-steps", "2"]) == 0
    assert not marker.exists(), marker.read_text()
    with caplog.at_level(logging.INFO):
        assert train([*arguments, "--max-steps", "4", "--resume-from-checkpoint", "latest"]) == 0
    assert "resumed from" in caplog.text and "at step 2" in caplog.text
    assert not marker.exists(), marker.read_text()
    # The fine-tuned model ships the installed code, not the code that came with its base.
    installed = Path(hf_seq2seq_rnn.__file__).parent / "modeling_seq2seq_rnn.py"
    assert (output / "modeling_seq2seq_rnn.py").read_text(encoding="utf-8") == installed.read_text(encoding="utf-8")
    assert answers(output)
    assert not marker.exists(), marker.read_text()


def test_a_tokenizer_from_the_folder_runs_none_of_its_code(trapped, marker, tmp_path):
    # --tokenizer: the folder's tokenizer for a new model trained from scratch.
    output = tmp_path / "own_tokenizer"
    assert train([*TINY, "--tokenizer", str(trapped[0]), "--max-steps", "2", "--output-dir", str(output)]) == 0
    assert json.loads((output / "config.json").read_text())["vocab_size"] == len(load_tokenizer(trapped[0]))
    assert not marker.exists(), marker.read_text()


def test_predict_decodes_with_the_installed_code_and_refuses_another_type(trapped, marker, tmp_path, capsys):
    """`python -m training.predict` (its main, in-process): our folder decodes without its code running;
    another type stops with one line naming the flag."""
    sources = tmp_path / "sources.txt"
    sources.write_text(f"{PROMPT}\n12 kilograms\n", encoding="utf-8")
    output = tmp_path / "hyp.txt"
    assert predict(["--model", str(trapped[0]), "--dataset", str(sources), "--output", str(output)]) == 0
    assert len(output.read_text(encoding="utf-8").splitlines()) == 2
    assert not marker.exists(), marker.read_text()
    other = variant(trapped, tmp_path / "other", model_type="evil_rnn")
    assert predict(["--model", str(other), "--dataset", str(sources), "--output", str(tmp_path / "other.txt")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'evil_rnn'" in errors[0] and "--trust-remote-code" in errors[0], errors
    assert not marker.exists(), marker.read_text()


def test_another_model_type_is_refused_with_one_line(trapped, marker, tmp_path):
    other = variant(trapped, tmp_path / "other", model_type="evil_rnn")
    for load in (load_for_chat, load_model, load_config):
        with pytest.raises(UntrustedModelError) as caught:
            load(other)
        message = str(caught.value)
        assert "\n" not in message
        assert "'evil_rnn'" in message and "--trust-remote-code" in message and "run Python code" in message
    assert not marker.exists(), marker.read_text()


def test_the_trainer_refuses_another_model_type(trapped, marker, tmp_path, capsys):
    other = variant(trapped, tmp_path / "other", model_type="evil_rnn")
    arguments = [*TINY, "--model-name-or-path", str(other), "--max-steps", "2", "--output-dir", str(tmp_path / "run")]
    assert train(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'evil_rnn' model; the trainer fine-tunes 'seq2seq_rnn' models only" in error
    assert not marker.exists(), marker.read_text()


def test_the_chatbot_cli_refuses_another_type_with_exit_2(trapped, marker, tmp_path, capsys):
    other = variant(trapped, tmp_path / "other", model_type="evil_rnn")
    assert chatbot_cli.main(["--model", str(other)]) == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'evil_rnn'" in errors[0] and "--trust-remote-code" in errors[0], stderr
    assert "Traceback" not in stderr
    assert not marker.exists(), marker.read_text()


def test_the_chatbot_cli_runs_another_types_code_with_the_flag(trapped, marker, tmp_path):
    other = variant(trapped, tmp_path / "other", model_type="evil_rnn")
    command = [sys.executable, "-m", "chatbot", "--model", str(other), "--num-threads", "1", "--trust-remote-code"]
    # With the flag the folder's code is imported while loading, before the server starts.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "server.log"
    with open(log, "w", encoding="utf-8") as stderr:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=REPO,
            env=fresh_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and server.poll() is None and "modeling_seq2seq_rnn" not in read(marker):
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert "modeling_seq2seq_rnn" in read(marker), log.read_text()[-2000:]


def test_trust_remote_code_runs_another_types_code_and_it_answers(trapped, marker, tmp_path):
    other = variant(trapped, tmp_path / "other", model_type="evil_rnn")
    code = textwrap.dedent(
        f"""
        from chatbot.inference import DecodingSettings, generate_reply, load_served_model
        loaded = load_served_model({str(other)!r}, trust_remote_code=True)
        print(type(loaded.model).__module__)
        print(len(generate_reply(loaded, {PROMPT!r}, DecodingSettings(max_new_tokens=4)).token_ids))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=fresh_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    module, count = result.stdout.strip().splitlines()[-2:]
    assert module.startswith("transformers_modules") and int(count) >= 1
    assert "modeling_seq2seq_rnn" in marker.read_text()


def test_save_pretrained_records_the_release(trapped, tmp_path):
    assert importlib.metadata.version("hf-seq2seq-rnn") == INSTALLED
    assert json.loads((trapped[0] / "config.json").read_text())["seq2seq_rnn_version"] == INSTALLED
    older = variant(trapped, tmp_path / "older", seq2seq_rnn_version="0.0.1")
    model = load_model(older)
    assert not hasattr(model.config, "seq2seq_rnn_version")  # not carried over to the next save
    model.save_pretrained(tmp_path / "resaved")
    assert json.loads((tmp_path / "resaved" / "config.json").read_text())["seq2seq_rnn_version"] == INSTALLED


def test_a_model_of_another_release_logs_one_line_with_both_versions(trapped, marker, tmp_path, caplog):
    older = variant(trapped, tmp_path / "older", seq2seq_rnn_version="0.0.1")
    with caplog.at_level(logging.INFO, logger="seq2seq_tools.loading"):
        assert answers(older)
    lines = [record.getMessage() for record in caplog.records if record.name == "seq2seq_tools.loading"]
    assert lines == [f"{older} was written by hf-seq2seq-rnn 0.0.1; the installed release is {INSTALLED}"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="seq2seq_tools.loading"):
        load_model(trapped[0])
    assert not [record for record in caplog.records if record.name == "seq2seq_tools.loading"]
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"seq2seq_rnn_version": "99.0.0", "attention_window": 8}, "attention_window"),
        ({"seq2seq_rnn_version": "99.0.0", "cell_type": "mamba"}, "cell_type='mamba'"),
        ({"attention_window": 8}, "attention_window"),  # the same release, edited by hand
    ],
    ids=["new field", "new value", "unknown field, same release"],
)
def test_a_model_that_needs_a_newer_release_is_refused_with_upgrade(trapped, marker, tmp_path, changes, named):
    newer = variant(trapped, tmp_path / "newer", **changes)
    with pytest.raises(IncompatibleModelError) as caught:
        load_for_chat(newer)
    message = str(caught.value)
    assert "\n" not in message and named in message
    assert "pip install -U hf-seq2seq-rnn" in message and f"hf-seq2seq-rnn {INSTALLED}" in message
    assert not marker.exists(), marker.read_text()


def test_the_trainer_and_the_cli_refuse_a_newer_model_with_upgrade(trapped, tmp_path, capsys):
    newer = variant(trapped, tmp_path / "newer", seq2seq_rnn_version="99.0.0", attention_window=8)
    arguments = [*TINY, "--model-name-or-path", str(newer), "--max-steps", "2", "--output-dir", str(tmp_path / "run")]
    assert train(arguments) == 2
    assert "upgrade with `pip install -U hf-seq2seq-rnn`" in capsys.readouterr().err.strip().splitlines()[-1]
    assert chatbot_cli.main(["--model", str(newer)]) == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "written by hf-seq2seq-rnn 99.0.0" in errors[0], stderr
    assert "Traceback" not in stderr


def test_keys_of_a_newer_transformers_are_ignored_with_a_warning(trapped, tmp_path, caplog):
    newer = variant(trapped, tmp_path / "newer", transformers_version="99.0.0", some_new_library_field=1)
    with caplog.at_level(logging.WARNING, logger="seq2seq_tools.loading"):
        model = load_model(newer)
    assert type(model) is Seq2SeqRNNForConditionalGeneration
    assert (
        f"ignoring config.json keys some_new_library_field, written by transformers 99.0.0 (installed: {transformers.__version__})"
        in caplog.text
    )
