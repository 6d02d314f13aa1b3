"""A load of concurrent clients on a chatbot server, over plain async HTTP (httpx), in a process of its own.

    python -m benchmarks.load_client --url http://127.0.0.1:7860/ --endpoint json --clients 20 --requests 400 \
        --model demo-translation --texts texts.json [--auth user:password]

Each client sends its requests one after another; the clients run at once. `--endpoint page` uses
the page's own event protocol (Gradio's call API: `POST /gradio_api/call/translate`, then the
event stream of its reply, as the browser's events, in one page session per client as a browser
tab keeps; greedy, the page's other settings at their defaults), `json` the JSON endpoint (`POST /v1/translate`, one text per request). Prints one JSON
object: requests/s, latency to the full reply and to the first text (p50 and p95, ms), errors, and
this process's CPU seconds per request, so that a table can show what the client itself costs.
`--progress N` also prints, every N requests, the rate over the last N (for a soak).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid

import httpx


async def page_request(
    client: httpx.AsyncClient, session: str | None, model: str, text: str, max_new_tokens: int
) -> tuple[float, float]:
    """Seconds to the first text and to the full reply of one /translate event of page session `session`
    (None: a session of its own, as Gradio's call API opens for a call without one)."""
    started = time.perf_counter()
    body = {"data": [text, model, "greedy", 4, 1.0, 1.0, max_new_tokens]}
    if session is not None:
        body["session_hash"] = session
    response = await client.post("gradio_api/call/translate", json=body)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    first = None
    async with client.stream("GET", f"gradio_api/call/translate/{event_id}") as stream:
        event = None
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("generating", "complete"):
                data = json.loads(line[5:])
                if first is None and data and data[0]:
                    first = time.perf_counter() - started
                if event == "complete":
                    break
            elif line.startswith("data:") and event == "error":
                if session is not None and "404" in line:
                    raise SessionsUnsupported
                raise RuntimeError(f"the server answered with an error: {line[5:].strip()}")
    total = time.perf_counter() - started
    return (first if first is not None else total), total


class SessionsUnsupported(Exception):
    """Gradio before 6.31 keys a call's events by its event id, so a call in a named session finds none."""


async def json_request(
    client: httpx.AsyncClient, session: str | None, model: str, text: str, max_new_tokens: int
) -> tuple[float, float]:
    started = time.perf_counter()
    body = {"texts": [text], "model": model, "num_beams": 1, "max_new_tokens": max_new_tokens}
    response = await client.post("v1/translate", json=body)
    response.raise_for_status()
    total = time.perf_counter() - started
    return total, total


async def run(args: argparse.Namespace, texts: list[str]) -> dict:
    send = page_request if args.endpoint == "page" else json_request
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    limits = httpx.Limits(max_connections=args.clients * 2, max_keepalive_connections=args.clients * 2)
    timings: list[tuple[float, float]] = []
    errors: list[str] = []
    counter = iter(range(args.requests))
    marks: list[float] = []

    sessions = [True]  # whether the server's call API takes a page session (Gradio 6.31 on)

    async def client_loop(client: httpx.AsyncClient, index: int) -> None:
        session = uuid.uuid4().hex[:11]  # one page session per client, as one browser tab keeps one
        for number in counter:
            text = texts[number % len(texts)]
            try:
                try:
                    timing = await send(client, session if sessions[0] else None, args.model, text, args.max_new_tokens)
                except SessionsUnsupported:
                    sessions[0] = False
                    timing = await send(client, None, args.model, text, args.max_new_tokens)
                timings.append(timing)
            except Exception as error:  # counted and shown: a benchmark that hides failures measures nothing
                errors.append(f"{type(error).__name__}: {error}")
            if args.progress and len(timings) % args.progress == 0:
                marks.append(time.perf_counter())
                print(json.dumps({"progress": len(timings), "seconds": marks[-1] - started}), flush=True)

    async with httpx.AsyncClient(base_url=args.url, auth=auth, timeout=120, limits=limits) as client:
        cpu_before = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client, index) for index in range(args.clients)))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    firsts = sorted(first for first, _ in timings)
    fulls = sorted(full for _, full in timings)
    return {
        "requests": len(timings),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": wall,
        "rate": len(timings) / wall if wall else 0.0,
        "first_p50_ms": 1000 * _percentile(firsts, 50),
        "first_p95_ms": 1000 * _percentile(firsts, 95),
        "full_p50_ms": 1000 * _percentile(fulls, 50),
        "full_p95_ms": 1000 * _percentile(fulls, 95),
        "client_cpu_ms": 1000 * cpu / max(1, len(timings) + len(errors)),
        "page_sessions": sessions[0],
    }


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(percent) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--endpoint", choices=("page", "json"), required=True)
    parser.add_argument("--model", required=True, help="the served model's name, as the page lists it")
    parser.add_argument("--texts", required=True, help="a JSON file with a list of texts, sent in turn")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--auth", help="USER:PASSWORD of a server started with --auth")
    parser.add_argument("--progress", type=int, default=0, help="print the time every N requests")
    args = parser.parse_args()
    with open(args.texts, encoding="utf-8") as handle:
        texts = json.load(handle)
    print(json.dumps(asyncio.run(run(args, texts))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
