"""The chatbot launched as a real server (`python -m chatbot`) and driven through `gradio_client`.

Servers bind to 127.0.0.1 on a free port and are stopped at the end of the module.

    pytest tests/test_chatbot_app.py
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks.chatbot_server import ChatbotServer as Server

gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed (the [chat] extra)")

from chatbot.app import BEAM_NOTICE, EMPTY_INPUT_NOTICE, NO_ATTENTION_NOTICE, NO_MODEL_FOR_TAB  # noqa: E402

try:  # the trained-model fixtures live beside the inference tests
    from test_chatbot_inference import tiny_model_dir, tiny_model_without_attention_dir  # noqa: F401
except ModuleNotFoundError:
    from tests.test_chatbot_inference import tiny_model_dir, tiny_model_without_attention_dir  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
DECODING = {"greedy": ("greedy", 4, 1.0, 1.0, 20), "beam": ("beam", 5, 1.0, 1.0, 20)}


@pytest.fixture(scope="module")
def servers(
    tiny_model_dir: Path, tiny_model_without_attention_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """The main server (two models, a queue of 32, every token streamed) and a small one with a login and a queue of 2,
    started together so that their start-up times overlap."""
    logs = tmp_path_factory.mktemp("chatbot-server-logs")
    main = Server(
        ["--model", str(tiny_model_dir), "--model", str(tiny_model_without_attention_dir), "--max-input-tokens", "8"]
        + ["--concurrency-limit", "2", "--max-queue-size", "32", "--stream-interval-ms", "0"],
        log=logs / "main.log",
    )
    small = Server(
        ["--model", str(tiny_model_dir), "--auth", "alice:wonderland", "--concurrency-limit", "1"]
        + ["--max-queue-size", "2"],
        log=logs / "small.log",
    )
    try:
        yield {"main": main.wait_ready(), "small": small.wait_ready()}
    finally:
        main.stop()
        small.stop()


@pytest.fixture()
def client(servers: dict[str, Server]) -> gradio_client.Client:
    return gradio_client.Client(servers["main"].url, verbose=False)


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(part["text"] for part in content)


def test_the_api_lists_the_chat_and_translate_endpoints(client: gradio_client.Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/chat", "/translate", "/compare"} <= set(endpoints)


def test_compare_returns_each_models_output_score_and_the_heatmaps(client: gradio_client.Client) -> None:
    names = ["tiny-reverser", "tiny-no-attention"]
    table, plot, lines, notice, data = client.predict("red cat dog tree", names, *DECODING["beam"], api_name="/compare")
    assert [model["name"] for model in data["models"]] == names
    reverser, plain = data["models"]
    assert reverser["output"] == "tree dog cat red" and reverser["output_tokens"] == 4
    assert reverser["score"] < 0 and plain["score"] < 0
    assert reverser["attention"]["source_tokens"] == [" red", " cat", " dog", " tree", "</s>"]
    assert plain["attention"] is None and plain["agreement"] is None
    assert plot["type"] == "plotly"  # one panel: the model without attention has none
    assert "tree dog cat red" in table and "no heatmap: this model has no attention" in table
    assert "no attention, so no heatmap" in lines


def test_compare_needs_two_models_and_an_input(client: gradio_client.Client) -> None:
    from chatbot.compare import TOO_FEW_MODELS

    table, plot, lines, notice, data = client.predict(
        "red cat", ["tiny-reverser"], *DECODING["greedy"], api_name="/compare"
    )
    assert (table, plot, lines, notice, data) == ("", None, "", TOO_FEW_MODELS, None)
    _, plot, _, notice, data = client.predict(
        "   ", ["tiny-reverser", "tiny-no-attention"], *DECODING["greedy"], api_name="/compare"
    )
    assert notice == EMPTY_INPUT_NOTICE and plot is None and data is None


@pytest.mark.parametrize("mode", ["greedy", "beam"])
def test_chat_replies_and_returns_the_heatmap(client: gradio_client.Client, mode: str) -> None:
    history, cleared, plot, notice, attention, files = client.predict(
        "red cat dog tree", [], "tiny-reverser", *DECODING[mode], api_name="/chat"
    )
    assert [message["role"] for message in history] == ["user", "assistant"]
    assert text_of(history[1]) == "tree dog cat red"
    assert cleared == ""
    assert attention["source_tokens"] == [" red", " cat", " dog", " tree", "</s>"]
    assert attention["output_tokens"] == [" tree", " dog", " cat", " red", "</s>"]
    assert len(attention["weights"]) == 5 and all(len(row) == 5 for row in attention["weights"])
    assert (BEAM_NOTICE in notice) == (mode == "beam")
    # The heatmap is a Plotly figure: the browser draws it, with the weights on hover.
    assert plot["type"] == "plotly"
    heatmap = json.loads(plot["plot"])["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["z"] == attention["weights"]
    assert "%{z" in heatmap["hovertemplate"]
    # Token text is escaped: Plotly reads labels as HTML, where `</s>` would vanish as a tag.
    assert [[cell[0] for cell in row] for row in heatmap["customdata"]] == [
        ["red", "cat", "dog", "tree", "&lt;/s&gt;"]
    ] * 5
    assert [row[0][1] for row in heatmap["customdata"]] == ["tree", "dog", "cat", "red", "&lt;/s&gt;"]
    assert len(files) == 2


def read_attention_files(files: list[str]) -> tuple[dict, list[list[str]]]:
    by_name = {Path(path).name: Path(path) for path in files}
    assert set(by_name) == {"attention.json", "attention.csv"}
    assert by_name["attention.csv"].read_bytes().startswith("\ufeff".encode())  # for spreadsheet programs
    with by_name["attention.csv"].open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    return json.loads(by_name["attention.json"].read_text(encoding="utf-8")), rows


@pytest.mark.parametrize("api_name", ["/chat", "/translate"])
def test_the_last_replys_attention_downloads_as_json_and_csv(client: gradio_client.Client, api_name: str) -> None:
    arguments = ("sun moon road", [], "tiny-reverser") if api_name == "/chat" else ("sun moon road", "tiny-reverser")
    *_, attention, files = client.predict(*arguments, *DECODING["beam"], api_name=api_name)
    exported, rows = read_attention_files(files)
    assert exported["source_tokens"] == attention["source_tokens"] == [" sun", " moon", " road", "</s>"]
    assert exported["output_tokens"] == attention["output_tokens"] == [" road", " moon", " sun", "</s>"]
    # The file has the full-precision matrix; the page's JSON rounds it to 4 places.
    for exported_row, shown_row in zip(exported["weights"], attention["weights"], strict=True):
        assert exported_row == pytest.approx(shown_row, abs=5e-5)
        assert sum(exported_row) == pytest.approx(1.0, abs=1e-5)
    assert rows[0][1:] == exported["source_tokens"]
    assert [row[0] for row in rows[1:]] == exported["output_tokens"]
    assert [[float(value) for value in row[1:]] for row in rows[1:]] == exported["weights"]


def test_chat_keeps_a_multi_turn_history_and_answers_the_last_message(client: gradio_client.Client) -> None:
    history, *_ = client.predict("sun moon", [], "tiny-reverser", *DECODING["greedy"], api_name="/chat")
    history, *_ = client.predict("book door road", history, "tiny-reverser", *DECODING["greedy"], api_name="/chat")
    assert [text_of(message) for message in history] == ["sun moon", "moon sun", "book door road", "road door book"]


@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_replies_stream_token_by_token(client: gradio_client.Client, mode: str) -> None:
    settings = ("sample", 4, 0.05, 0.9, 20) if mode == "sample" else DECODING["greedy"]
    job = client.submit("green bird house sun moon", "tiny-reverser", *settings, api_name="/translate")
    outputs = [output[0] for output in job]
    texts = list(dict.fromkeys(outputs))
    assert len(texts) >= 2, f"expected the reply to grow over several updates, got {outputs}"
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))
    assert texts[-1] == "moon sun house bird green"
    assert job.outputs()[-1][3]["output_tokens"][-1] == "</s>"


def test_beam_search_returns_the_finished_reply_only(client: gradio_client.Client) -> None:
    job = client.submit("water fire book", "tiny-reverser", *DECODING["beam"], api_name="/translate")
    outputs = list(job)
    assert [output[0] for output in outputs] == ["book fire water"]


def test_each_decoding_mode_through_translate(client: gradio_client.Client) -> None:
    for settings in (DECODING["greedy"], DECODING["beam"], ("sample", 1, 0.7, 0.9, 20), ("beam", 1, 1.0, 1.0, 20)):
        translation, plot, notice, attention, files = client.predict(
            "road car", "tiny-reverser", *settings, api_name="/translate"
        )
        assert translation == "car road", settings
        assert plot is not None and attention["output_tokens"][-1] == "</s>" and len(files) == 2


def test_a_tab_that_no_served_model_fits_says_so(client: gradio_client.Client) -> None:
    """Both served models are qa models: the Chat tab offers the selected one's own prompts, the
    Translate tab none, and says why (the page as built, read from its config)."""
    components = client.config["components"]
    datasets = [component["props"] for component in components if component["type"] == "dataset"]
    # Chat, Translate, then Compare (whose examples are its first chosen model's own).
    own = [["red cat dog"], ["sun moon water fire"]]
    assert [dataset["samples"] for dataset in datasets] == [own, [], own]
    assert [dataset["visible"] for dataset in datasets] == [True, False, True]
    notes = [component["props"].get("value") for component in components if component["type"] == "markdown"]
    assert NO_MODEL_FOR_TAB.format(task="translation") in notes


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_input_gets_a_friendly_message(client: gradio_client.Client, text: str) -> None:
    history, _, _, notice, _, _ = client.predict(text, [], "tiny-reverser", *DECODING["greedy"], api_name="/chat")
    assert history == [] and notice == EMPTY_INPUT_NOTICE
    translation, _, notice, _, _ = client.predict(text, "tiny-reverser", *DECODING["greedy"], api_name="/translate")
    assert translation == "" and notice == EMPTY_INPUT_NOTICE


def test_long_input_is_truncated_with_a_visible_notice(client: gradio_client.Client) -> None:
    translation, _, notice, attention, _ = client.predict(
        "red blue green cat dog bird tree house sun moon water",
        "tiny-reverser",
        *DECODING["greedy"],
        api_name="/translate",
    )
    assert "only the first 8 tokens were used" in notice
    assert len(attention["source_tokens"]) == 8


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # The sliders' own range checks answer first, ours (DecodingSettings) for what passes them.
        (("sample", 4, 0.0, 1.0, 20), "less than minimum"),
        (("sample", 4, 1.0, 1.5, 20), "greater than maximum"),
        (("beam", 2.5, 1.0, 1.0, 20), "num_beams=2.5 must be a whole number"),
        (("greedy", 4, 1.0, 1.0, 0), "less than minimum"),
    ],
)
def test_bad_settings_fail_that_request_only(client: gradio_client.Client, settings: tuple, message: str) -> None:
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        client.predict("red cat", "tiny-reverser", *settings, api_name="/translate")
    assert client.predict("red cat", "tiny-reverser", *DECODING["greedy"], api_name="/translate")[0] == "cat red"


def test_an_unknown_model_is_refused_and_the_server_keeps_serving(client: gradio_client.Client) -> None:
    with pytest.raises(
        gradio_client.exceptions.AppError,
        match=r"Value: no-such-model is not in the list of choices: \['tiny-reverser'",
    ):
        client.predict("red cat", "no-such-model", *DECODING["greedy"], api_name="/translate")
    assert client.predict("red cat", "tiny-reverser", *DECODING["greedy"], api_name="/translate")[0] == "cat red"


def test_a_model_without_attention_says_there_is_no_heatmap(client: gradio_client.Client) -> None:
    _, plot, notice, attention, files = client.predict(
        "red cat", "tiny-no-attention", *DECODING["greedy"], api_name="/translate"
    )
    assert plot is None and attention is None and files is None
    assert NO_ATTENTION_NOTICE in notice


def test_twenty_concurrent_clients_are_all_answered(servers: dict[str, Server]) -> None:
    url = servers["main"].url
    phrases = [
        f"{first} {second} {third}"
        for first, second, third in zip(
            ["red", "sun", "dog", "car"] * 5,
            ["cat", "moon", "tree", "road"] * 5,
            ["book", "fire", "door", "house", "water"] * 4,
            strict=True,
        )
    ]

    def converse(phrase: str) -> str:
        # One client per conversation: gradio_client keeps per-client state.
        history, *_ = gradio_client.Client(url, verbose=False).predict(
            phrase, [], "tiny-reverser", *DECODING["greedy"], api_name="/chat"
        )
        return text_of(history[-1])

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(converse, phrases))
    assert replies == [" ".join(reversed(phrase.split())) for phrase in phrases]


def test_login_is_required_when_auth_is_set(servers: dict[str, Server]) -> None:
    url = servers["small"].url
    with pytest.raises(gradio_client.exceptions.AuthenticationError, match="credentials were not provided"):
        gradio_client.Client(url, verbose=False)
    with pytest.raises(ValueError, match=f"Could not login to {url}"):
        gradio_client.Client(url, auth=("alice", "not-the-password"), verbose=False)
    client = gradio_client.Client(url, auth=("alice", "wonderland"), verbose=False)
    assert client.predict("red cat", "tiny-reverser", *DECODING["greedy"], api_name="/translate")[0] == "cat red"


def test_a_full_queue_is_reported_clearly(servers: dict[str, Server]) -> None:
    client = gradio_client.Client(servers["small"].url, auth=("alice", "wonderland"), verbose=False)
    # Long random replies keep the single worker busy while the queue (2 places) fills up.
    jobs = [
        client.submit("red cat", "tiny-reverser", "sample", 1, 2.0, 1.0, 512, api_name="/translate") for _ in range(12)
    ]
    errors = []
    for job in jobs:
        try:
            job.result(timeout=120)
        except Exception as error:
            errors.append(str(error))
    assert errors, "expected some requests to be refused by a queue of 2"
    assert all("queue is full" in error.lower() for error in errors), errors
    assert len(errors) < len(jobs)


def test_every_text_on_the_page_has_a_korean_version(tiny_model_dir: Path) -> None:
    from gradio.i18n import I18nData

    from chatbot.app import build_app
    from chatbot.inference import load_served_model
    from chatbot.page_text import KOREAN, PAGE_I18N

    def key(value: object) -> str | None:
        """The translation key of a component property (values hold it serialised)."""
        if isinstance(value, I18nData):
            return value.key
        if isinstance(value, str) and value.startswith("__i18n__"):
            return json.loads(value.removeprefix("__i18n__"))["key"]
        return None

    app = build_app([load_served_model(tiny_model_dir)])
    properties = [
        getattr(block, name, None)
        for block in app.blocks.values()
        for name in ("label", "info", "placeholder", "value")
    ]
    shown = {key(value) for value in properties} - {None}
    assert shown == set(KOREAN), "the page's texts and the translated texts must be the same"
    assert all(korean.strip() for korean in KOREAN.values())
    # English is the key itself, so a page that ignores the translations still reads in English.
    assert PAGE_I18N.translations_dict["en"] == {english: english for english in KOREAN}


def test_a_model_still_training_is_listed_and_joins_when_ready(
    tiny_model_dir: Path, tiny_model_without_attention_dir: Path
) -> None:
    """The page of `python -m chatbot` on a first run: served at once, a model joining when trained."""
    from benchmarks.chatbot_server import free_port
    from chatbot.app import build_app
    from chatbot.background import ModelRegistry
    from chatbot.inference import load_served_model
    from chatbot.page_text import PAGE_I18N

    registry = ModelRegistry({"tiny-reverser": load_served_model(tiny_model_dir)}, pending=["tiny-no-attention"])
    registry.progress("tiny-no-attention", 0.4, "Training:  40%|")
    app = build_app(registry).queue()
    port = free_port()
    app.launch(server_port=port, prevent_thread_lock=True, i18n=PAGE_I18N, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        names = ["tiny-reverser", "tiny-no-attention"]
        *_, notice, data = client.predict("red cat", names, *DECODING["greedy"], api_name="/compare")
        assert data is None and "tiny-no-attention** is not ready: training (40%)" in notice
        translation, _, notice, *_ = client.predict("red cat", names[1], *DECODING["greedy"], api_name="/translate")
        assert translation == "" and "is not ready" in notice
        assert "tiny-no-attention**: training (40%)" in registry.status_text()
        registry.add("tiny-no-attention", load_served_model(tiny_model_without_attention_dir))
        assert registry.settled and registry.status_text() == ""
        *_, notice, data = client.predict("red cat", names, *DECODING["greedy"], api_name="/compare")
        assert [model["name"] for model in data["models"]] == names
        assert client.predict("red cat", names[0], *DECODING["greedy"], api_name="/translate")[0] == "cat red"
    finally:
        app.close()


def dependency(app, target: object, event: str) -> dict:
    """The one event listener of the built `app` on `target`'s `event` (from the page's config)."""
    [found] = [dep for dep in app.config["dependencies"] if [target._id, event] in map(list, dep["targets"])]
    return found


def component(app, kind: type, **props: object):
    """The one component of the built `app` of type `kind` whose properties have these values."""
    [found] = [
        block
        for block in app.blocks.values()
        if isinstance(block, kind) and all(getattr(block, key, None) == value for key, value in props.items())
    ]
    return found


def test_the_selected_models_notices_follow_its_training_and_the_timer_stops_after_the_last(
    tiny_model_dir: Path,
) -> None:
    """A model selected while it trains: its description follows its progress, and the tick that sees
    it ready shows its description, decoding defaults and examples, as selecting it would, then stops."""
    from dataclasses import replace

    import gradio as gr

    from chatbot.app import OTHER_TASK, STILL_TRAINING, Handlers, build_app, describe
    from chatbot.background import ModelRegistry
    from chatbot.inference import DecodingSettings, load_served_model

    tiny = load_served_model(tiny_model_dir)
    info = replace(tiny.info, name="tiny-translator", task="translation", examples=("blue bird tree",))
    translator = replace(tiny, info=info, defaults=DecodingSettings(mode="greedy", max_new_tokens=7))
    registry = ModelRegistry({"tiny-reverser": tiny}, pending=["tiny-translator"])
    registry.progress("tiny-translator", 0.4, "Training:  40%|", 90.0)
    handlers = Handlers(registry)

    description, *decoding, chat_examples, chat_note, translate_examples, translate_note = handlers.on_model_change(
        "tiny-translator"
    )
    assert "**tiny-translator** is not ready: training (40%, about 2 min left)" in description
    assert decoding == [gr.skip()] * 5  # the controls stay as they are until the model's defaults are known
    assert chat_note == translate_note == STILL_TRAINING.format(name="tiny-translator")
    assert chat_examples.raw_samples == translate_examples.raw_samples == [] and not translate_examples.visible

    def tick(seen: list[str]) -> tuple[list, list[str], gr.Timer]:
        status, model, compared, *shown, seen, timer = handlers.on_status_tick("tiny-translator", seen)
        assert [name for _, name in model.choices] == [name for _, name in compared.choices] == registry.names
        return shown, seen, timer

    registry.progress("tiny-translator", 0.8, "Training:  80%|", 20.0)
    shown, seen, timer = tick(["tiny-reverser"])
    assert "training (80%, less than a minute left)" in shown[0]
    assert shown[1:] == [gr.skip()] * 9 and seen == ["tiny-reverser"] and timer.active

    registry.add("tiny-translator", translator)
    shown, seen, timer = tick(seen)
    description, *decoding, chat_examples, chat_note, translate_examples, translate_note = shown
    assert description == describe("tiny-translator", translator)
    assert decoding == ["greedy", 4, 1.0, 1.0, 7]
    assert chat_examples.raw_samples == [] and chat_note == OTHER_TASK.format(
        name="tiny-translator", other="translation", task="qa"
    )
    assert (
        translate_examples.raw_samples == [["blue bird tree"]] and translate_examples.visible and translate_note == ""
    )
    assert seen == ["tiny-reverser", "tiny-translator"] and not timer.active  # stopped on the refreshing tick
    shown, seen, timer = tick(seen)  # a tick that still comes changes nothing on the page
    assert shown == [gr.skip()] * 10 and not timer.active

    # The page's timer sends exactly what selecting a model refreshes, for the model selected.
    app = build_app(ModelRegistry({"tiny-reverser": tiny}, pending=["tiny-translator"]))
    model = component(app, gr.Dropdown, elem_id="model")
    [timer] = [block for block in app.blocks.values() if isinstance(block, gr.Timer)]
    ticks, changes = dependency(app, timer, "tick"), dependency(app, model, "change")
    assert ticks["inputs"][0] == model._id and timer.active
    assert ticks["outputs"][3:-2] == changes["outputs"]


def test_a_failed_model_says_so_in_its_description_and_its_tabs(tiny_model_dir: Path) -> None:
    from chatbot.app import NOT_TRAINED_EXAMPLES, Handlers
    from chatbot.background import ModelRegistry
    from chatbot.inference import load_served_model

    registry = ModelRegistry({"tiny-reverser": load_served_model(tiny_model_dir)}, pending=["broken"])
    registry.progress("broken", 0.5, "Training:  50%|", 30.0)
    handlers = Handlers(registry)
    registry.fail("broken", "DemoModelError: exit status 1")
    _, _, _, description, *_, chat_note, _, translate_note, seen, timer = handlers.on_status_tick(
        "broken", ["tiny-reverser"]
    )
    assert (
        description == "**broken** is not served: training failed: DemoModelError: exit status 1. Choose another model."
    )
    assert chat_note == translate_note == NOT_TRAINED_EXAMPLES.format(name="broken")
    assert seen == ["tiny-reverser", "broken"] and not timer.active


def saved_with_training_info(tiny_model_dir: Path, directory: Path, **info: str) -> Path:
    """The tiny reverser saved again with a `training_info.json` of `info` and no model card, as a
    training run saves a model (the card would name it tiny-reverser)."""
    shutil.copytree(tiny_model_dir, directory)
    (directory / "README.md").unlink()
    (directory / "training_info.json").write_text(json.dumps(info), encoding="utf-8")
    return directory


def test_compare_starts_with_the_ready_models_that_read_the_same_input(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The same task and the same source language as the first ready model (training_info.json's);
    models still training are not known yet; `compare=` is taken as given."""
    import gradio as gr

    from chatbot.app import _compared_names, build_app
    from chatbot.background import ModelRegistry
    from chatbot.inference import load_served_model

    served = {
        "en-fr": ("translation", "en"),
        "ko-en": ("translation", "ko"),
        "chat-en": ("qa", "en"),
        "en-de": ("translation", "en"),
        "dates": ("translation", None),
    }
    models = {}
    for name, (task, language) in served.items():
        info = {"model_name": name, "task": task} | ({"source_lang": language} if language else {})
        models[name] = load_served_model(saved_with_training_info(tiny_model_dir, tmp_path / name, **info))
    assert [loaded.info.source_lang for loaded in models.values()] == ["en", "ko", "en", "en", None]

    registry = ModelRegistry(models, pending=["en-es"])
    assert _compared_names(registry, None, "chat") == (["en-fr", "en-de"], "chat")
    assert _compared_names(registry, None, "compare") == (["en-fr", "en-de"], "compare")
    assert _compared_names(registry, ["ko-en", "chat-en"], "compare") == (["ko-en", "chat-en"], "compare")
    assert _compared_names(registry, ["ko-en"], "compare") == (["ko-en"], "compare")  # as given, as before
    # The first ready model decides; one still training (first in the list here) has no info yet.
    registry = ModelRegistry({name: models[name] for name in ("ko-en", "en-fr", "dates")}, pending=["en-es"])
    registry.names.sort()
    assert registry.names[0] == "dates" and _compared_names(registry, None, "chat")[0] == ["dates"]
    registry.names.remove("dates")
    registry.names.insert(0, "en-es")
    assert _compared_names(registry, None, "chat")[0] == ["en-fr"]

    # Alone, it is chosen alone, and the page does not open on a Compare tab it cannot use.
    app = build_app(ModelRegistry({name: models[name] for name in ("ko-en", "en-fr")}), start_tab="compare")
    assert component(app, gr.Dropdown, elem_id="compare-models").value == ["ko-en"]
    [tabs] = [block for block in app.blocks.values() if isinstance(block, gr.Tabs)]
    assert tabs.selected == "chat"
    app = build_app(ModelRegistry({name: models[name] for name in ("en-fr", "en-de")}), start_tab="compare")
    assert component(app, gr.Dropdown, elem_id="compare-models").value == ["en-fr", "en-de"]
    [tabs] = [block for block in app.blocks.values() if isinstance(block, gr.Tabs)]
    assert tabs.selected == "compare"


@pytest.mark.parametrize("start_tab", ["chat", "compare"])
def test_the_attention_panel_shows_on_the_chat_and_translate_tabs_only(tiny_model_dir: Path, start_tab: str) -> None:
    """The panel of the last reply (notice, heatmap, downloads, data) is hidden on the Compare tab,
    which has its own heatmaps: from the start when the page opens there, and on selecting a tab."""
    import gradio as gr

    from chatbot.app import build_app
    from chatbot.inference import load_served_model

    tiny = load_served_model(tiny_model_dir)
    app = build_app([tiny, tiny], compare=["tiny-reverser", "tiny-reverser (2)"], start_tab=start_tab)
    panel = component(app, gr.Column, elem_id="attention-panel")
    assert panel.visible == (start_tab != "compare")
    for elem_id in ("heatmap", "attention-downloads"):
        block = next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == elem_id)
        while block is not None and block is not panel:
            block = block.parent
        assert block is panel, f"#{elem_id} is outside the panel"
    [tabs] = [block for block in app.blocks.values() if isinstance(block, gr.Tabs)]
    listener = dependency(app, tabs, "select")
    assert listener["outputs"] == [panel._id] and listener["trigger_mode"] == "always_last"
    on_select = app.fns[listener["id"]].fn
    for index, (tab, visible) in enumerate((("Chat", True), ("Translate", True), ("Compare", False))):
        assert on_select(gr.SelectData(tabs, {"index": index, "value": tab})).visible == visible, tab
