"""Requests/s and latency of the chatbot server under concurrent clients, for each way of batching.

    python -m benchmarks.bench_chatbot --model DIR [--threads 2] [--clients 1 4 20 50 100] [--requests 200] \
        [--policies before none micro continuous gradio] [--before-tree DIR] [--endpoints page json] [--soak 10000]

Starts one server per batching policy on 127.0.0.1 with torch fixed to --threads threads (`python -m
chatbot --batching none|micro|continuous`; `gradio` is Gradio's own `batch=True` event,
`benchmarks/gradio_batch_server.py`; `before` is the server of an earlier commit, `--before-tree`),
one after another, and loads each with --clients concurrent
clients from `benchmarks.load_client`: plain async HTTP in a process of its own, on the page's
events (Gradio's call API for /translate, streamed, greedy) and on the JSON endpoint
(`POST /v1/translate`). `none` decodes each request on its own (at most 2 at once), as before
batching; the ratios are to the first policy's rate with one client on the same endpoint. Greedy, --max-new-tokens new tokens, English
sentences of the Tatoeba corpus (--texts, a tab-separated file) or the model's examples.

Prints, per policy, endpoint and client count: requests/s and its ratio to `none` with 1 client,
p50/p95 latency to the full reply and to the first text, and the CPU the server and the client
spent per request. Then where one request's time goes (decoding, the heatmap, the attention
files, the rest: Gradio's events), measured in this process, and with --soak N the server's memory,
the disk its attention files take, and the rate per 1,000 requests over N requests.

Not a test: numbers depend on the machine and on what else runs on it; both the server and the
client run on this machine, and the table says what each cost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .chatbot_server import ChatbotServer, memory_mib
from .common import REPO, machine_line, print_table

POLICIES = ("before", "none", "micro", "continuous", "gradio")


def read_texts(path: str | None, examples: list[str], count: int = 400) -> list[str]:
    """`count` source sentences of a `source<TAB>target` file, shuffled with a fixed seed, else the examples."""
    if path is None:
        return examples or ["Hello!", "Good morning."]
    with open(path, encoding="utf-8") as handle:
        sources = [line.split("\t")[0].strip() for line in handle if line.strip()]
    random.Random(5).shuffle(sources)
    return sources[:count]


def start(policy: str, args, folder: Path) -> ChatbotServer:
    model, threads = args.model, args.threads
    log = folder / f"server-{policy}.log"
    if policy == "gradio":
        server = ChatbotServer(["--model", model], threads, log, module="benchmarks.gradio_batch_server",
                               threads_flag="--threads")  # fmt: skip
        return server.wait_ready()
    if policy == "before":  # the flags of its time: at most 2 requests at once
        arguments = ["--model", model, "--concurrency-limit", "2", "--max-queue-size", "512", "--log-level", "WARNING"]
        tree = Path(args.before_tree).resolve()
        server = ChatbotServer(arguments, threads, log, {"PYTHONPATH": str(tree)}, threads_flag="--threads", tree=tree)
        return server.wait_ready()
    arguments = ["--model", model, "--batching", policy, "--max-queue-size", "512", "--log-level", "WARNING"]
    if policy == "none":
        arguments += ["--concurrency-limit", "2"]  # the server's setting before batching
    environment = {"GRADIO_TEMP_DIR": str(folder / f"gradio-{policy}"), "TMPDIR": str(folder / f"tmp-{policy}")}
    for path in environment.values():
        os.makedirs(path, exist_ok=True)
    return ChatbotServer(arguments, threads, log=log, environment=environment).wait_ready()


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(server: ChatbotServer, endpoint: str, clients: int, requests: int, args, texts_file: str, progress: int = 0):
    """One `benchmarks.load_client` run: its JSON result, with the server's CPU per request added."""
    command = [sys.executable, "-m", "benchmarks.load_client", "--url", server.url, "--endpoint", endpoint]
    command += ["--model", args.model_name, "--texts", texts_file, "--clients", str(clients)]
    command += ["--requests", str(requests), "--max-new-tokens", str(args.max_new_tokens), "--progress", str(progress)]
    before = cpu_seconds(server.pid)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        lines.append(json.loads(line))
        if progress and "progress" in lines[-1]:
            lines[-1]["rss_mib"] = memory_mib(server.pid)
    process.wait()
    result = lines[-1]
    result["server_cpu_ms"] = 1000 * (cpu_seconds(server.pid) - before) / max(1, result["requests"])
    result["marks"] = [line for line in lines if "progress" in line]
    return result


def measure_policies(args, texts_file: str, folder: Path) -> tuple[list[list], list[list], dict]:
    """The table's rows for every policy, the soak's (on the continuous server, after its rows), and
    each measurement's result by (policy, endpoint, clients)."""
    rows, baseline, soak_rows, results = [], {}, [], {}
    for policy in args.policies:
        server = start(policy, args, folder)
        try:
            for endpoint in args.endpoints:
                if endpoint == "json" and policy in ("gradio", "before"):
                    continue  # these serve the page's events only
                load(server, endpoint, 2, 20, args, texts_file)  # warm-up
                for clients in args.clients:
                    result = load(server, endpoint, clients, max(args.requests, 4 * clients), args, texts_file)
                    results[policy, endpoint, clients] = result
                    if clients == 1 and endpoint not in baseline:  # the first policy measured is the baseline
                        baseline[endpoint] = result["rate"]
                    base = baseline.get(endpoint)
                    rows.append([
                        policy, endpoint, clients, f"{result['rate']:.1f}",
                        f"{result['rate'] / base:.2f}x" if base else "",
                        f"{result['full_p50_ms']:.0f} / {result['full_p95_ms']:.0f}",
                        f"{result['first_p50_ms']:.0f} / {result['first_p95_ms']:.0f}",
                        f"{result['server_cpu_ms']:.1f}", f"{result['client_cpu_ms']:.1f}",
                        result["errors"] or "",
                    ])  # fmt: skip
                    print(" ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
            if policy == "continuous" and args.soak:
                soak_rows = soak(server, args, texts_file, folder)
        finally:
            server.stop()
    return rows, soak_rows, results


def time_parts(model: str, texts: list[str], max_new_tokens: int, threads: int) -> list[list]:
    """Median milliseconds per request of decoding, the heatmap figure and the attention files, in this process."""
    import torch

    from chatbot.attention_view import AttentionDownloads, attention_plot
    from chatbot.inference import DecodingSettings, generate_reply, load_served_model

    torch.set_num_threads(threads)
    loaded = load_served_model(model)
    settings = DecodingSettings(mode="greedy", max_new_tokens=max_new_tokens)
    generate_reply(loaded, texts[0], settings)  # warm-up
    downloads = AttentionDownloads(tempfile.mkdtemp())
    parts: dict[str, list[float]] = {
        "decoding (generate_reply, alone)": [],
        "heatmap figure (its JSON)": [],
        "attention files": [],
    }
    for text in texts[:40]:
        started = time.perf_counter()
        reply = generate_reply(loaded, text, settings)
        parts["decoding (generate_reply, alone)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        attention_plot(reply.attention, title="attention").to_json()
        parts["heatmap figure (its JSON)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        downloads.write(reply.attention)
        parts["attention files"].append(time.perf_counter() - started)
    return [[name, f"{1000 * statistics.median(values):.1f}"] for name, values in parts.items()]


def soak(server: ChatbotServer, args, texts_file: str, folder: Path) -> list[list]:
    """--soak requests on `server`'s page events, 20 clients: RSS and the rate every
    --soak-every requests, then the disk its attention files and Gradio's copies of them take."""
    disk = [folder / "gradio-continuous", folder / "tmp-continuous"]
    result = load(server, "page", 20, args.soak, args, texts_file, progress=args.soak_every)
    rows, previous = [], 0.0
    for mark in result["marks"]:
        rate = args.soak_every / (mark["seconds"] - previous)
        previous = mark["seconds"]
        rows.append([mark["progress"], f"{mark['rss_mib']:.0f}", f"{rate:.1f}"])
    size = sum(path.stat().st_size for root in disk for path in root.rglob("*") if path.is_file())
    rows.append(["end", f"{memory_mib(server.pid):.0f}", f"errors {result['errors']}; files {size / 2**20:.1f} MiB"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a translation model directory")
    parser.add_argument(
        "--texts", help="a source<TAB>target file whose sources are sent (default: the model's examples)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in the server (default: 2)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 20, 50, 100])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement (at least 4 per client)")
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES[1:]))
    parser.add_argument(
        "--before-tree",
        help="the checkout of an earlier commit whose server the 'before' policy runs (git worktree add DIR COMMIT)",
    )
    parser.add_argument("--endpoints", nargs="+", choices=("page", "json"), default=["page", "json"])
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--soak", type=int, default=0, help="also soak the continuous server with N page requests")
    parser.add_argument("--soak-every", type=int, default=1000, help="a soak row every N requests (default 1,000)")
    args = parser.parse_args()
    if "before" in args.policies and not args.before_tree:
        parser.error("the 'before' policy needs --before-tree DIR")
    if args.soak and "continuous" not in args.policies:
        parser.error("--soak runs on the continuous server: keep continuous among --policies")

    from chatbot.inference import load_served_model

    loaded = load_served_model(args.model)
    args.model_name = loaded.info.name
    texts = read_texts(args.texts, list(loaded.info.examples))
    del loaded
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        texts_file = str(folder / "texts.json")
        Path(texts_file).write_text(json.dumps(texts), encoding="utf-8")
        rows, soak_rows, results = measure_policies(args, texts_file, folder)
        parts = time_parts(args.model, texts, args.max_new_tokens, args.threads)
    measured = sum(float(ms) for _, ms in parts)
    for policy in args.policies:  # the rest of a page request with one client: Gradio's queue and events
        page = results.get((policy, "page", 1))
        if page is not None and policy != "gradio":
            rest = page["full_p50_ms"] - measured
            parts.append([f"the rest of a page request, {policy}: Gradio's queue and events (p50 full reply less the above)",
                          f"{rest:.1f}"])  # fmt: skip

    sessions = all(result.get("page_sessions", True) for result in results.values())
    print(f"\n{machine_line(args.threads)} (in the server); greedy, at most {args.max_new_tokens} new tokens; "
          f"model {args.model_name}; clients: benchmarks.load_client (async httpx), one process; page requests "
          f"{'in one session per client' if sessions else 'each in a session of its own (this Gradio takes no session in its call API)'}\n")  # fmt: skip
    print_table(
        ["batching", "endpoint", "clients", "requests/s", f"vs {args.policies[0]}, 1 client", "full reply p50 / p95 ms",
         "first text p50 / p95 ms", "server CPU ms/request", "client CPU ms/request", "errors"],
        rows,
    )  # fmt: skip
    print("\nWhere one request's time goes (median ms, this process, one request at a time):\n")
    print_table(["part", "ms"], parts)
    if soak_rows:
        print(f"\nSoak: {args.soak} page requests, 20 clients, continuous batching:\n")
        print_table(["requests", "server RSS MiB", f"requests/s over the last {args.soak_every:,}"], soak_rows)


if __name__ == "__main__":
    main()
