"""The plain JSON endpoint for programs, beside the page (no Gradio here: FastAPI routes the app mounts).

    curl -s http://127.0.0.1:7860/v1/translate -H 'Content-Type: application/json' \
        -d '{"texts": ["Good morning.", "Thank you."], "num_beams": 5}'

`POST /v1/translate` takes a JSON object:
- `texts`: a list of 1 to `MAX_TEXTS` strings (required);
- `model`: the name of a served model, as the page lists it (default: the first ready translation
  model, else the first ready model);
- the decoding settings of `training.predict`, under its names (`seq2seq_tools.decoding.DECODING_KEYS`:
  `num_beams`, `max_new_tokens`, `length_penalty`, `max_length_a`, ...); those not given come from the
  model's generation config, as in predict, so both give the same outputs;
- `alignments`: true to return each output's attention (source tokens, output tokens, weights).

It answers `{"model": name, "outputs": [{"text", "score", "tokens", "notice", "alignment"?}, ...]}`
in the order of `texts`; `score` is the output's log-probability per token (to the power
`length_penalty`), `notice` the truncation notice of an over-long text (else null). The texts are
decoded in the scheduler's batch with every other request. Errors are JSON too, `{"error": "..."}`:
400 for a malformed body or a bad field (the message names it), 401 without the server's login
(HTTP Basic, the same USER:PASSWORD as the page), 503 when the queue is full or no model is ready.
`GET /v1/models` lists the models with their task and state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute

from seq2seq_tools.decoding import DECODING_KEYS, generate_arguments
from seq2seq_tools.generation import Generated, generate_encoded

from .background import ModelRegistry
from .inference import LoadedModel, encode_messages
from .scheduler import BatchScheduler, QueueFullError

logger = logging.getLogger(__name__)

MAX_TEXTS = 64
REQUEST_KEYS = ("texts", "model", "alignments", *DECODING_KEYS)
# How often a waiting request checks that its client is still there.
DISCONNECT_POLL_S = 0.5


class _BadRequest(Exception):
    """A request that names its own problem; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def api_routes(
    registry: ModelRegistry, scheduler: BatchScheduler | None, login: tuple[str, str] | None = None
) -> list[BaseRoute]:
    """The routes of the JSON endpoint over the models of `registry`, decoded by `scheduler` (or each
    request on its own without one), behind `login` when given."""
    router = APIRouter()
    authorized = _login_check(login)

    @router.post("/v1/translate")
    async def translate(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error("this server needs a login: send HTTP Basic auth with its USER:PASSWORD", 401, login=True)
        try:
            body = await _json_object(request)
            loaded, name = _model(registry, body.get("model"))
            arguments = _decoding(loaded, body)
            texts = _texts(body.get("texts"))
            with_alignments = _flag(body, "alignments")
            results, notices = await _decode(request, loaded, texts, arguments, with_alignments, scheduler)
        except _BadRequest as error:
            return _error(str(error), error.status)
        except QueueFullError as error:
            return _error(str(error), 503)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a model failure answers this request only
            logger.exception("the JSON endpoint failed on a request")
            return _error(f"the model failed on this request ({type(error).__name__}: {error})", 500)
        outputs = [_output(result, notice, with_alignments) for result, notice in zip(results, notices, strict=True)]
        return JSONResponse({"model": name, "outputs": outputs})

    @router.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error("this server needs a login: send HTTP Basic auth with its USER:PASSWORD", 401, login=True)
        ready, status = registry.models, registry.status()
        listed = [
            {"name": name, "state": status[name].describe(), "task": ready[name].info.task if name in ready else None}
            for name in registry.names
        ]
        return JSONResponse({"models": listed})

    return list(router.routes)


def _login_check(login: tuple[str, str] | None) -> Callable[[Request], bool]:
    """Whether a request carries `login` as HTTP Basic auth (always, without a login)."""
    if login is None:
        return lambda request: True
    expected = f"{login[0]}:{login[1]}".encode()

    def check(request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(given, expected)

    return check


def _error(message: str, status: int, login: bool = False) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="seq2seq-rnn"'} if login else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object with known keys only."""
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _BadRequest(
            f'the body is not valid JSON ({error}); send an object such as {{"texts": ["..."]}}'
        ) from error
    if not isinstance(body, dict):
        raise _BadRequest(f"the body must be a JSON object with a 'texts' list; got {type(body).__name__}")
    unknown = sorted(set(body) - set(REQUEST_KEYS))
    if unknown:
        raise _BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; the fields are {', '.join(REQUEST_KEYS)}")
    return body


def _model(registry: ModelRegistry, name: Any) -> tuple[LoadedModel, str]:
    ready = registry.models
    if name is None:
        fitting = [n for n, loaded in ready.items() if loaded.info.task == "translation"]
        name = next(iter(fitting or ready), None)
        if name is None:
            raise _BadRequest("no model is ready yet (see GET /v1/models); try again when one is", 503)
    if not isinstance(name, str):
        raise _BadRequest(f"'model' must be a string, the name of a served model; got {name!r}")
    if name not in ready:
        state = registry.status().get(name)
        if state is not None:
            raise _BadRequest(f"'model' {name!r} is not ready: {state.describe()}", 503)
        raise _BadRequest(f"'model' {name!r} is not served; the models are {', '.join(registry.names)}")
    return ready[name], name


def _decoding(loaded: LoadedModel, body: dict[str, Any]) -> dict[str, Any]:
    try:
        given = {key: body[key] for key in DECODING_KEYS if key in body}
        return generate_arguments(loaded.model, given, tokenizer=loaded.tokenizer)
    except ValueError as error:
        raise _BadRequest(f"bad decoding setting: {error}") from error


def _texts(texts: Any) -> list[str]:
    if not isinstance(texts, list) or not texts:
        raise _BadRequest(f"'texts' must be a non-empty list of strings; got {texts!r:.80}")
    if len(texts) > MAX_TEXTS:
        raise _BadRequest(f"'texts' holds {len(texts)} texts; send at most {MAX_TEXTS} per request")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise _BadRequest(f"'texts'[{index}] must be a non-empty string; got {text!r:.80}")
    return texts


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise _BadRequest(f"'{key}' must be true or false; got {value!r}")
    return value


async def _decode(
    request: Request,
    loaded: LoadedModel,
    texts: list[str],
    arguments: dict[str, Any],
    with_alignments: bool,
    scheduler: BatchScheduler | None,
) -> tuple[list[Generated], list[str | None]]:
    """Each text's output and truncation notice, decoded in the scheduler's batch (or alone)."""
    inputs, notices = encode_messages(loaded, texts)  # `_texts` refused the empty ones already
    if scheduler is None:
        results = await asyncio.to_thread(
            generate_encoded,
            loaded.model,
            loaded.tokenizer,
            inputs,
            with_attention=with_alignments,
            with_scores=True,
            **arguments,
        )
        return results, notices
    tickets = scheduler.submit(
        loaded.model, loaded.tokenizer, inputs, arguments, with_attention=with_alignments, with_scores=True
    )
    futures = [asyncio.wrap_future(ticket.future()) for ticket in tickets]
    try:
        while True:
            done, pending = await asyncio.wait(futures, timeout=DISCONNECT_POLL_S)
            if not pending:
                break
            if await request.is_disconnected():
                raise asyncio.CancelledError
        return [future.result() for future in futures], notices
    finally:
        for ticket in tickets:
            ticket.cancel()  # nothing for a finished output


def _output(result: Generated, notice: str | None, with_alignments: bool) -> dict[str, Any]:
    output: dict[str, Any] = {
        "text": result.text,
        "score": result.score,
        "tokens": len(result.token_ids),
        "notice": notice,
    }
    if with_alignments:
        output["alignment"] = result.attention.to_dict() if result.attention is not None else None
    return output


__all__ = ["MAX_TEXTS", "api_routes"]
