"""Does the chatbot server's memory level off? A bounded soak through its API.

    python -m benchmarks.bench_soak [--model DIR] [--requests 2000] [--clients 30 --concurrent] [--large-messages 2]

Starts `python -m chatbot` on 127.0.0.1 (with --model, else a small model trained first into a
temporary folder by `python -m training.train`), sends --large-messages messages of 1 MB, then
--requests requests through `gradio_client` (alternating /chat and /translate, greedy, each final
reply with its attention heatmap, from --clients clients in turn, or all at once in rounds with
--concurrent), and stops. It prints the
server's resident memory (VmRSS from /proc, Linux only) at every checkpoint and the growth between
a quarter of the way (request 500 of 2,000) and the end: the server levels off when that stays
under 10%.

Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from gradio_client import Client

from .chatbot_server import memory_mib, start_server
from .common import REPO, add_threads_argument, machine_line

PROMPTS = ["Hello", "How are you?", "What is your name?", "Monday, March 5, 2018", "12 kilograms", "in 3 months"]


def train_small_model(directory: str) -> str:
    """A small translation model (seconds on one core): the soak needs a real model, not a good one."""
    output = os.path.join(directory, "model")
    command = [sys.executable, "-m", "training.train", "--config", "training/configs/translation_demo.yaml",
               "--max-steps", "150", "--embedding-size", "64", "--hidden-size", "64", "--eval-steps", "150",
               "--checkpointing-steps", "150", "--report-to", "none", "--num-threads", "1", "--output-dir", output]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return output


def model_name(client: Client) -> str:
    """The model's name as the page's dropdown shows it (the first choice of the /chat endpoint)."""
    info = client.view_api(print_info=False, return_format="dict")
    parameter = next(p for p in info["named_endpoints"]["/chat"]["parameters"] if p["parameter_name"] == "model_name")
    return parameter["parameter_default"]


def soak(
    url: str, server: subprocess.Popen, requests: int, clients: int, concurrent: bool, large: int, every: int
) -> list[tuple]:
    """Send the requests; return (request number, RSS MiB, seconds since the start) rows.

    With `concurrent`, the clients send at the same time, in rounds of one request each.
    """
    connections = [Client(url, verbose=False) for _ in range(clients)]
    name = model_name(connections[0])
    greedy = ("greedy", 1, 1.0, 1.0, 24)  # mode, num_beams, temperature, top_p, max_new_tokens
    rows = [(0, memory_mib(server.pid), 0.0)]
    start = time.perf_counter()
    for _ in range(large):
        # a refusal is an answer too; the memory afterwards is what is measured
        with contextlib.suppress(Exception):
            connections[0].predict("x " * 500_000, name, *greedy, api_name="/translate")  # 1 MB
    if large:
        rows.append(("1 MB x" + str(large), memory_mib(server.pid), time.perf_counter() - start))

    def send(number: int) -> None:
        client = connections[number % clients]
        prompt = PROMPTS[number % len(PROMPTS)]
        if number % 2:
            client.predict(prompt, [], name, *greedy, api_name="/chat")
        else:
            client.predict(prompt, name, *greedy, api_name="/translate")

    batch = clients if concurrent else 1
    with ThreadPoolExecutor(max_workers=batch) as pool:
        for first in range(1, requests + 1, batch):
            numbers = range(first, min(first + batch, requests + 1))
            list(pool.map(send, numbers))
            last = numbers[-1]
            if last // every > (first - 1) // every or last == requests:
                rows.append((last, memory_mib(server.pid), time.perf_counter() - start))
                print(f"request {last}: {rows[-1][1]:.0f} MiB after {rows[-1][2]:.0f} s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a model directory or Hub id (default: a small model trained first)")
    parser.add_argument("--requests", type=int, default=2000, help="requests to send, then stop")
    parser.add_argument("--clients", type=int, default=4, help="gradio_client connections used in turn")
    parser.add_argument(
        "--concurrent", action="store_true", help="the clients send at the same time, in rounds (default: in turn)"
    )
    parser.add_argument("--large-messages", type=int, default=2, help="1 MB messages sent first")
    parser.add_argument("--every", type=int, default=100, help="read the memory every this many requests")
    add_threads_argument(parser, default=1)
    parser.add_argument(
        "--malloc-arena-max", type=int, default=None, help="MALLOC_ARENA_MAX for the server (default: glibc's)"
    )
    args = parser.parse_args()
    if args.requests < 4:
        parser.error(f"--requests {args.requests}: pass at least 4")
    environment = {"HF_HUB_OFFLINE": "1"}  # the model is a local directory
    if args.malloc_arena_max is not None:
        environment["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)

    with tempfile.TemporaryDirectory() as directory:
        model = args.model or train_small_model(directory)
        server = start_server(["--model", model, "--max-queue-size", "256"], args.threads, environment)
        url = server.url
        try:
            rows = soak(url, server, args.requests, args.clients, args.concurrent, args.large_messages, args.every)
        finally:
            server.stop()

    print(
        f"\n{machine_line(args.threads)} (in the server); "
        f"{args.clients} clients {'at once, in rounds' if args.concurrent else 'in turn'}; greedy, 24 new tokens; "
        f"server environment {environment}\n"
    )
    print("| requests | server RSS (MiB) | seconds |")
    print("| -------- | ---------------- | ------- |")
    for number, rss, seconds in rows:
        print(f"| {number!s:>8} | {rss:16.0f} | {seconds:7.0f} |")
    quarter = next(rss for number, rss, _ in rows if isinstance(number, int) and number >= args.requests // 4)
    quarter_at = next(number for number, _, _ in rows if isinstance(number, int) and number >= args.requests // 4)
    final = rows[-1][1]
    print(
        f"\ngrowth from request {quarter_at} to request {rows[-1][0]}: {final - quarter:+.0f} MiB "
        f"({100 * (final - quarter) / quarter:+.1f}%; levels off when under +10%)"
    )


if __name__ == "__main__":
    main()
