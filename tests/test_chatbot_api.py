"""The chatbot's JSON endpoint (`chatbot.api`, `POST /v1/translate`) and its batching, through a real
server (`python -m chatbot` behind a login) driven by plain HTTP and by `gradio_client`.

    pytest tests/test_chatbot_api.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from benchmarks.chatbot_server import ChatbotServer as Server
from chatbot.inference import DecodingSettings, generate_reply, load_served_model
from seq2seq_tools.generation import generate_texts

gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed (the [chat] extra)")

try:  # the trained-model fixtures live beside the inference tests
    from test_chatbot_inference import WORDS, phrase_pair, tiny_model_dir  # noqa: F401
except ModuleNotFoundError:
    from tests.test_chatbot_inference import WORDS, phrase_pair, tiny_model_dir  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
LOGIN = ("alice", "wonderland")


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("chatbot-api-logs") / "server.log"
    arguments = ["--model", str(tiny_model_dir), "--auth", ":".join(LOGIN), "--max-input-tokens", "8"]
    started = Server(arguments, log=log)
    try:
        yield started.wait_ready()
    finally:
        started.stop()


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_served_model(tiny_model_dir, max_input_tokens=8)


def post(server: Server, body, auth=LOGIN) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = {"Content-Type": "application/json"}
    return httpx.post(server.url + "v1/translate", content=content, headers=headers, auth=auth, timeout=60)


def phrases(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [phrase_pair(rng, WORDS)[0] for _ in range(count)]


def test_concurrent_requests_through_the_server_equal_generate_alone(server: Server, tiny) -> None:
    """30 JSON requests (one to three texts each, greedy and beam search) and 6 page events at once:
    every output is the one that generate() gives the same text alone."""
    jobs = [(phrases(1 + index % 3, index), {"num_beams": 1 + 2 * (index % 2)}) for index in range(30)]
    page_jobs = phrases(6, 99)
    client = gradio_client.Client(server.url, auth=LOGIN, verbose=False)

    def json_job(job):
        texts, settings = job
        response = post(server, {"texts": texts, **settings})
        assert response.status_code == 200, response.text
        return response.json()

    def page_job(text):
        return client.predict(text, "tiny-reverser", "greedy", 4, 1.0, 1.0, 12, api_name="/translate")[0]

    with ThreadPoolExecutor(max_workers=36) as pool:
        page = pool.map(page_job, page_jobs)
        answers = list(pool.map(json_job, jobs))
        page = list(page)
    for (texts, settings), answer in zip(jobs, answers, strict=True):
        expected = generate_texts(tiny.model, tiny.tokenizer, texts, with_scores=True, **settings)
        assert answer["model"] == "tiny-reverser"
        assert [output["text"] for output in answer["outputs"]] == [result.text for result in expected]
        for output, result in zip(answer["outputs"], expected, strict=True):
            assert output["score"] == pytest.approx(result.score, abs=1e-5)
            assert output["tokens"] == len(result.token_ids) and output["notice"] is None
    greedy = DecodingSettings(mode="greedy", max_new_tokens=12)
    assert page == [generate_reply(tiny, text, greedy).text for text in page_jobs]


def test_the_endpoint_and_predict_give_the_same_outputs(server: Server, tiny_model_dir: Path, tmp_path: Path) -> None:
    texts = phrases(12, 7)
    source = tmp_path / "sources.txt"
    source.write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    output = tmp_path / "hypotheses.txt"
    settings = {"num_beams": 4, "length_penalty": 0.8, "max_length_a": 1.5, "max_length_b": 2}
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
    command = [sys.executable, "-m", "training.predict", "--model", str(tiny_model_dir), "--dataset", str(source)]
    command += ["--output", str(output), "--max-input-tokens", "8", "--num-threads", "1", *flags]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300, env={**os.environ})
    answer = post(server, {"texts": texts, **settings}).json()
    assert [item["text"] for item in answer["outputs"]] == output.read_text(encoding="utf-8").splitlines()


def test_alignments_on_request(server: Server) -> None:
    answer = post(server, {"texts": ["red cat dog"], "alignments": True}).json()
    [output] = answer["outputs"]
    assert output["text"] == "dog cat red"
    alignment = output["alignment"]
    assert alignment["source_tokens"] == [" red", " cat", " dog", "</s>"]
    assert len(alignment["weights"]) == len(alignment["output_tokens"]) == output["tokens"]
    assert all(abs(sum(row) - 1) < 1e-3 for row in alignment["weights"])
    assert "alignment" not in post(server, {"texts": ["red cat dog"]}).json()["outputs"][0]


def test_an_over_long_text_gets_the_pages_truncation_notice(server: Server, tiny) -> None:
    text = "red cat dog tree sun moon water fire book door road car"
    [output] = post(server, {"texts": [text]}).json()["outputs"]
    expected = generate_reply(tiny, text)
    assert output["notice"] == expected.notice and "reads at most 8" in output["notice"]


@pytest.mark.parametrize(
    "body, status, names",
    [
        ('{"texts": ["red cat"', 400, "not valid JSON"),
        ('["red cat"]', 400, "must be a JSON object"),
        ({"texts": ["red cat"], "temprature": 0.5}, 400, "unknown field(s) 'temprature'; the fields are texts"),
        ({"texts": "red cat"}, 400, "'texts' must be a non-empty list of strings"),
        ({"texts": ["red cat", "  "]}, 400, "'texts'[1] must be a non-empty string"),
        ({"texts": ["red cat"], "num_beams": 0}, 400, "bad decoding setting: num_beams=0"),
        ({"texts": ["red cat"], "max_length_a": "long"}, 400, "max_length_a='long'"),
        ({"texts": ["red cat"], "alignments": "yes"}, 400, "'alignments' must be true or false"),
        ({"texts": ["red cat"], "model": "gpt"}, 400, "'model' 'gpt' is not served; the models are tiny-reverser"),
        ({"texts": ["x"] * 65}, 400, "send at most 64 per request"),
        ({"texts": ["red cat"], "shortlist": "100,100"}, 400, "this model has no vocabulary shortlist"),
        ({"texts": ["red cat"], "shortlist": "100"}, 400, "expected two whole numbers FIRST,BEST"),
    ],
    ids=[
        "truncated",
        "array",
        "unknown-field",
        "texts-string",
        "empty-text",
        "beams",
        "cap",
        "flag",
        "model",
        "many",
        "no-shortlist",
        "shortlist-setting",
    ],  # fmt: skip
)
def test_bad_requests_get_400_naming_the_field(server: Server, body, status, names) -> None:
    response = post(server, body)
    assert response.status_code == status
    assert names in response.json()["error"]


def test_a_bad_request_among_good_ones_fails_alone(server: Server) -> None:
    bodies = [{"texts": ["red cat dog"]}, {"texts": ["red cat"], "top_k": -1}, {"texts": ["sun moon"]}]
    with ThreadPoolExecutor(max_workers=3) as pool:
        responses = list(pool.map(lambda body: post(server, body), bodies))
    assert [response.status_code for response in responses] == [200, 400, 200]
    assert responses[2].json()["outputs"][0]["text"] == "moon sun"


@pytest.mark.parametrize("auth", [None, ("alice", "rabbit")], ids=["no-login", "wrong-password"])
def test_the_endpoint_needs_the_pages_login(server: Server, auth) -> None:
    response = post(server, {"texts": ["red cat"]}, auth=auth)
    assert response.status_code == 401
    assert "needs a login" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(server.url + "v1/models", auth=auth).status_code == 401


def test_models_are_listed_with_their_task_and_state(server: Server) -> None:
    listed = httpx.get(server.url + "v1/models", auth=LOGIN).json()["models"]
    assert listed == [{"name": "tiny-reverser", "state": "ready", "task": "qa"}]


@pytest.mark.slow
def test_a_page_client_that_disconnects_mid_stream_frees_its_row(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A reply that would run to 512 tokens, given up by its client after the first streamed text:
    the server's scheduler stops its row (its DEBUG line) instead of decoding on."""
    from chatbot.inference import load_served_model as load

    loaded = load(tiny_model_dir)
    wide = loaded.model.config.to_dict() | {"hidden_size": 1024, "num_layers": 2}  # about 2 ms a step
    config = type(loaded.model.config).from_dict(wide)
    model = type(loaded.model)(config).eval()
    with torch.no_grad():
        model.lm_head.bias[loaded.tokenizer.eos_token_id] = -1e4  # it never ends by itself
    model.generation_config.max_new_tokens = 512
    folder = tmp_path / "babbler"
    model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    log = tmp_path / "server.log"
    started = Server(["--model", str(folder), "--log-level", "DEBUG"], log=log).wait_ready()
    try:
        with httpx.Client(base_url=started.url, timeout=60) as client:
            body = {"data": ["red cat dog", "babbler", "greedy", 4, 1.0, 1.0, 512]}
            event_id = client.post("gradio_api/call/translate", json=body).json()["event_id"]
            with client.stream("GET", f"gradio_api/call/translate/{event_id}") as stream:
                next(line for line in stream.iter_lines() if line.startswith("data:"))  # the first text
        deadline = time.monotonic() + 30
        while "given up" not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "a request was given up: its rows leave the batch" in log.read_text(encoding="utf-8")
    finally:
        started.stop()
