"""The chatbot's command line and its demo models, without training anything for real.

A fake `training` package on a temporary path stands in for the project's training script: the
chatbot must run `python -m training.train --config ... --output-dir DIR` and use what it writes.

    pytest tests/test_chatbot_cli.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot import __main__ as cli
from chatbot import demo_models
from chatbot.demo_models import DEMO_MODELS, DemoModelError, ensure_demo_models, is_trained
from seq2seq_tools.options import InputError

try:  # the trained-model fixture lives beside the inference tests
    from test_chatbot_inference import tiny_model_dir  # noqa: F401
except ModuleNotFoundError:
    from tests.test_chatbot_inference import tiny_model_dir  # noqa: F401

REPO = Path(__file__).resolve().parent.parent

FAKE_TRAIN = """
import argparse, shutil, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--config")
parser.add_argument("--output-dir")
args = parser.parse_args()
if {fail}:
    sys.exit("training failed on purpose")
for percent in (0, 10, 50, 100):  # as tqdm draws its bar, each state over the last with \\r
    print(f"Training: {{percent:3d}}%|##   | {{percent}}/100", end="\\r", flush=True)
    time.sleep(0.05)
print()
shutil.copytree({model!r}, args.output_dir, dirs_exist_ok=True)
"""


def fake_training_package(root: Path, model: Path, fail: bool) -> None:
    package = root / "training"
    (package / "configs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(FAKE_TRAIN.format(fail=fail, model=str(model)))
    for config in DEMO_MODELS.values():
        (package / "configs" / config).write_text("# fake\n")


@pytest.fixture()
def fake_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path):
    def install(fail: bool) -> Path:
        root = tmp_path / "fake"
        fake_training_package(root, tiny_model_dir, fail)
        monkeypatch.setattr(demo_models, "training_config", lambda name: root / "training" / "configs" / name)
        return root

    return install


def test_help_explains_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    )
    for option in ("--model", "--host", "--port", "--share", "--auth", "--max-input-tokens"):
        assert option in result.stdout
    for option in ("--concurrency-limit", "--max-queue-size", "--num-threads", "--log-level"):
        assert option in result.stdout
    assert "--threads" not in result.stdout  # the old name works, unlisted
    assert "127.0.0.1" in result.stdout and "HF_SEQ2SEQ_RNN_HOME" in result.stdout


def test_safe_defaults() -> None:
    settings = cli.parse_arguments([])
    assert settings.host == "127.0.0.1" and not settings.share and settings.login() is None
    assert cli.parse_arguments(["--auth", "ann:secret:x"]).login() == ("ann", "secret:x")
    with pytest.raises(InputError, match="--auth takes USER:PASSWORD"):
        cli.parse_arguments(["--auth", "nopassword"])
    with pytest.raises(InputError, match="--concurrency-limit"):
        cli.parse_arguments(["--concurrency-limit", "0"])


def test_threads_is_the_old_name_of_num_threads_and_warns_once(capsys: pytest.CaptureFixture) -> None:
    assert cli.parse_arguments(["--num-threads", "3"]).num_threads == 3
    assert capsys.readouterr().err == ""
    assert cli.parse_arguments(["--threads", "2", "--threads", "1"]).num_threads == 1
    assert capsys.readouterr().err.splitlines() == [
        "warning: --threads is renamed --num-threads; the old name goes in the next release"
    ]
    with pytest.raises(InputError, match="argument --threads: '0': expected a whole number of at least 1"):
        cli.parse_arguments(["--threads", "0"])


def test_demo_home_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_SEQ2SEQ_RNN_HOME", str(tmp_path))
    assert demo_models.demo_home() == tmp_path
    monkeypatch.delenv("HF_SEQ2SEQ_RNN_HOME")
    assert demo_models.demo_home() == Path.home() / ".cache" / "hf-seq2seq-rnn"


def test_missing_demo_models_are_trained_by_the_training_script(fake_training, tmp_path: Path) -> None:
    fake_training(fail=False)
    home = tmp_path / "home"
    directories = ensure_demo_models(home)
    assert [directory.name for directory in directories] == list(DEMO_MODELS)
    assert all(is_trained(directory) for directory in directories)
    assert not list(home.glob("*.partial"))


def test_trained_demo_models_are_reused(fake_training, tmp_path: Path, tiny_model_dir: Path) -> None:
    home = tmp_path / "home"
    for name in DEMO_MODELS:
        shutil.copytree(tiny_model_dir, home / name)
    fake_training(fail=True)  # would fail if it ran
    assert ensure_demo_models(home) == [home / name for name in DEMO_MODELS]


def test_failed_training_raises_a_clear_message(fake_training, tmp_path: Path) -> None:
    fake_training(fail=True)
    home = tmp_path / "home"
    with pytest.raises(DemoModelError, match="Training the demo model demo-chat failed"):
        ensure_demo_models(home)
    assert not is_trained(home / "demo-chat")


def test_models_train_in_the_background_and_a_failed_one_is_reported(fake_training, tmp_path: Path) -> None:
    """The page's registry: each model joins when its training ends; a failure is marked, the others go on."""
    import functools

    from chatbot.background import FAILED, READY, ModelRegistry, train_in_background
    from chatbot.inference import load_served_model

    fake_training(fail=False)
    home = tmp_path / "home"
    registry = ModelRegistry(pending=["demo-chat", "demo-translation"])
    assert registry.models == {} and not registry.settled
    assert "demo-chat" in registry.status_text() and registry.label("demo-chat") == "demo-chat: waiting"

    def train(name: str, progress) -> Path:
        if name == "demo-chat":
            raise DemoModelError("Training the demo model demo-chat failed (exit status 1)")
        return demo_models.train_demo_model(name, home, progress=progress)

    train_in_background(registry, train, functools.partial(load_served_model)).join(timeout=120)
    assert registry.settled
    status = registry.status()
    assert status["demo-chat"].state == FAILED and "exit status 1" in status["demo-chat"].detail
    assert status["demo-translation"].state == READY and list(registry.models) == ["demo-translation"]
    assert "demo-chat**: training failed" in registry.status_text()
    assert "demo-translation" not in registry.status_text()


def test_training_reports_its_progress_and_the_time_left_measured(fake_training, tmp_path: Path) -> None:
    fake_training(fail=False)
    readings = []
    demo_models.train_demo_model("demo-chat", tmp_path, progress=lambda *reading: readings.append(reading))
    fractions = [fraction for fraction, _, _ in readings]
    assert fractions == [0.0, 0.1, 0.5, 1.0]
    left = [seconds_left for _, _, seconds_left in readings]
    # The first reading starts the measurement; then the pace so far gives the rest, 0 at the end.
    assert left[0] is None and left[1] > 0 and left[2] > 0 and left[3] == 0.0


def test_the_time_left_comes_from_the_pace_measured_since_the_first_reading() -> None:
    from chatbot.background import MEASURED_BEFORE_ESTIMATE, TimeLeft

    time_left = TimeLeft()
    assert time_left.update(None, now=5.0) is None  # no progress bar yet
    assert time_left.update(0.2, now=10.0) is None  # started at 20% (a resumed run): no pace yet
    assert time_left.update(0.2 + MEASURED_BEFORE_ESTIMATE / 2, now=12.0) is None  # too little measured
    # 10% in 30 s: the 70% left take 210 s, whatever came before the first reading.
    assert time_left.update(0.3, now=40.0) == pytest.approx(210.0)
    assert time_left.update(0.6, now=100.0) == pytest.approx(90.0)  # 40% in 90 s: the 40% left take 90 s
    assert time_left.update(1.0, now=150.0) == 0.0


def test_the_training_status_says_the_time_left_once_it_is_known() -> None:
    from chatbot.background import TRAINING, ModelRegistry, Training

    assert Training(TRAINING, 0.4, seconds_left=90).describe() == "training (40%, about 2 min left)"
    assert Training(TRAINING, 0.9, seconds_left=20).describe() == "training (90%, less than a minute left)"
    assert Training(TRAINING, 0.02).describe() == "training (2%)"
    assert Training(TRAINING).describe() == "training"
    registry = ModelRegistry(pending=["demo-chat"])
    registry.progress("demo-chat", 0.5, "Training:  50%|", 300)
    assert registry.label("demo-chat") == "demo-chat: training (50%, about 5 min left)"


def test_the_cheapest_demos_train_first(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Ordered by their configs (training/configs/*demo*.yaml): the translation demos (375 steps of one
    layer) before the Korean chat (800 steps), before the English chat (2500 steps of two layers)."""
    assert demo_models.missing_demo_models(tmp_path) == [
        "demo-translation",
        "demo-translation-ko",
        "demo-chat-ko",
        "demo-chat",
    ]
    shutil.copytree(tiny_model_dir, tmp_path / "demo-translation")
    assert demo_models.missing_demo_models(tmp_path)[0] == "demo-translation-ko"
    # The variants share a config; flags that change no cost setting keep their order.
    assert demo_models.missing_demo_models(tmp_path, demo_models.VARIANT_DEMOS) == list(demo_models.VARIANT_DEMOS)
    # A flag on top of the config counts: fewer steps train first.
    demos = {"long": "translation_demo.yaml", "short": ("translation_demo.yaml", ("--max-steps", "100"))}
    assert demo_models.missing_demo_models(tmp_path, demos) == ["short", "long"]


def test_demos_of_unknown_cost_keep_their_order(fake_training, tmp_path: Path) -> None:
    fake_training(fail=False)
    assert demo_models.training_cost("chat_demo.yaml") is None  # the fake's configs set nothing
    assert demo_models.missing_demo_models(tmp_path) == list(DEMO_MODELS)


def test_without_the_training_package_the_message_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DemoModelError, match="--model"):
        demo_models.training_config("chat_demo.yaml")


def test_an_unloadable_model_exits_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--model", str(tmp_path / "missing")]) == 2
    assert "could not load the model" in capsys.readouterr().err


def test_a_shortlist_asked_of_a_model_without_one_exits_2_before_serving(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["--model", str(tiny_model_dir), "--shortlist", "100,100"]) == 2
    error = capsys.readouterr().err
    assert "--shortlist 100,100: this model has no vocabulary shortlist" in error
    assert "python -m training.shortlist" in error


def test_the_malloc_arena_cap_is_set_on_glibc_and_skipped_with_one_line_elsewhere(monkeypatch):
    import platform

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert platform.libc_ver()[0] == "glibc", "this test runs where glibc is the C library"
    assert cli.limit_malloc_arenas() is None  # glibc's mallopt took the cap
    assert cli.limit_malloc_arenas(libc=("", "")) == (
        "memory arenas not capped: the C library is not glibc, and only glibc has them"
    )
    assert cli.limit_malloc_arenas(libc=("musl", "1.2")) == (
        "memory arenas not capped: the C library is musl, and only glibc has them"
    )
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's own setting wins, silently
    assert cli.limit_malloc_arenas(libc=("", "")) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        # the type and bounds declared with the option (seq2seq_tools.decoding_options, seq2seq_tools.options)
        (["--max-length-a", "-1"], "argument --max-length-a: '-1': expected a number of at least 0"),
        (["--coverage-penalty", "inf"], "argument --coverage-penalty: 'inf': expected a number of at least 0"),
        (["--max-length-b", "ten"], "argument --max-length-b: 'ten': expected float, none or null"),
        (["--port", "0"], "argument --port: '0': expected a whole number of at least 1"),
        (["--auth", "nopassword"], "--auth takes USER:PASSWORD, both non-empty"),
        (["--ensemble", "runs/one"], "--ensemble needs two models or more (give the flag once per model)"),
    ],
)
def test_a_bad_flag_exits_2_with_one_line(arguments: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "chatbot", *arguments], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {message} (see python -m chatbot --help)"]


def test_search_flags_are_read_as_numbers() -> None:
    settings = cli.parse_arguments(["--max-length-a", "1.5", "--max-length-b", "4", "--coverage-penalty", "0.2"])
    assert settings.search_settings() == {"max_length_a": 1.5, "max_length_b": 4.0, "coverage_penalty": 0.2}
    assert cli.parse_arguments([]).search_settings() == {}  # each model's own generation config
