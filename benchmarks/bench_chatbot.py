"""Latency, throughput and memory of the chatbot server, measured through its API.

    python -m benchmarks.bench_chatbot [--model DIR_OR_HUB_ID ...] [--threads 1] [--concurrency-limit 2]

Starts `python -m chatbot` on 127.0.0.1 (the demo models when no --model is given, trained first
if missing) with torch fixed to --threads threads, and drives it with `gradio_client` as a program
would. It prints one table:

- time to the first streamed text and to the full reply, greedy and beam-5, per model (median
  over the model's example prompts, each asked --repeats times through /translate);
- requests per second with 1, 4 and 20 concurrent clients (greedy, one client object each);
- the server's peak resident memory (VmHWM from /proc, Linux only).

Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from gradio_client import Client

from chatbot.demo_models import ensure_demo_models
from chatbot.inference import load_model

from .chatbot_server import memory_mib, start_server
from .common import add_threads_argument, machine_line


def settings(mode: str, max_new_tokens: int) -> tuple:
    # (mode, num_beams, temperature, top_p, max_new_tokens), the order of the /translate inputs
    return (mode, 5, 1.0, 1.0, max_new_tokens)


def time_reply(client: Client, model: str, prompt: str, mode: str, max_new_tokens: int) -> tuple[float, float]:
    """Seconds to the first text and to the full reply of one request."""
    start = time.perf_counter()
    first = None
    job = client.submit(prompt, model, *settings(mode, max_new_tokens), api_name="/translate")
    for output in job:
        if first is None and output[0]:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return (first if first is not None else total), total


def throughput(url: str, model: str, prompts: list[str], clients: int, requests: int, max_new_tokens: int) -> float:
    """Requests per second with `clients` concurrent clients sending `requests` greedy requests in all."""
    per_client = max(1, requests // clients)
    connections = [Client(url, verbose=False) for _ in range(clients)]

    def run(index: int) -> None:
        for turn in range(per_client):
            prompt = prompts[(index + turn) % len(prompts)]
            connections[index].predict(prompt, model, *settings("greedy", max_new_tokens), api_name="/translate")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(run, range(clients)))
    return clients * per_client / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="a model directory or Hub id (default: the demo models)")
    add_threads_argument(parser, default=1)
    parser.add_argument("--concurrency-limit", type=int, default=2, help="the server's concurrency limit")
    parser.add_argument("--repeats", type=int, default=3, help="times each example prompt is timed")
    parser.add_argument("--requests", type=int, default=40, help="requests per throughput measurement")
    parser.add_argument("--max-new-tokens", type=int, default=40, help="longest reply")
    args = parser.parse_args()
    sources = args.model or [str(path) for path in ensure_demo_models()]
    loaded = {source: load_model(source) for source in sources}
    names = {source: model.info.name for source, model in loaded.items()}
    # A model saved without example prompts (the chatbot offers it none) is timed on two plain ones.
    examples = {source: list(model.info.examples) or ["Hello!", "Good morning."] for source, model in loaded.items()}
    del loaded

    arguments = ["--concurrency-limit", str(args.concurrency_limit), "--max-queue-size", "256"]
    for source in sources:
        arguments += ["--model", source]
    server = start_server(arguments, args.threads)
    url = server.url
    rows = []
    try:
        client = Client(url, verbose=False)
        for source in sources:
            prompts = examples[source]
            time_reply(client, names[source], prompts[0], "greedy", args.max_new_tokens)  # warm-up
            for mode in ("greedy", "beam"):
                timings = [
                    time_reply(client, names[source], prompt, mode, args.max_new_tokens)
                    for _ in range(args.repeats)
                    for prompt in prompts
                ]
                first = statistics.median(t for t, _ in timings) * 1000
                full = statistics.median(t for _, t in timings) * 1000
                label = "greedy" if mode == "greedy" else "beam-5"
                rows.append(
                    (names[source], f"{label}: first text / full reply (ms, median)", f"{first:.0f} / {full:.0f}")
                )
        first_source = sources[0]
        for clients in (1, 4, 20):
            rate = throughput(
                url, names[first_source], examples[first_source], clients, args.requests, args.max_new_tokens
            )
            rows.append((names[first_source], f"requests/s, {clients} concurrent client(s), greedy", f"{rate:.1f}"))
        rows.append(("server", "peak resident memory (MiB)", f"{memory_mib(server.pid, 'VmHWM'):.0f}"))
    finally:
        server.stop()

    print(
        f"\n{machine_line(args.threads)} (in the server); concurrency limit {args.concurrency_limit}; "
        f"max new tokens {args.max_new_tokens}; through gradio_client on 127.0.0.1\n"
    )
    width = max(len(name) for name, _, _ in rows)
    print(f"| {'model':<{width}} | {'measure':<52} | {'value':>11} |")
    print(f"| {'-' * width} | {'-' * 52} | {'-' * 11} |")
    for name, measure, value in rows:
        print(f"| {name:<{width}} | {measure:<52} | {value:>11} |")


if __name__ == "__main__":
    main()
