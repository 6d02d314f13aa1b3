"""A chatbot server in a subprocess on 127.0.0.1, for the benchmarks that measure it from outside.

from benchmarks.chatbot_server import memory_mib, start_server
server, url = start_server(["--model", "runs/demo-translation"], threads=1)
...  # gradio_client.Client(url)
memory_mib(server.pid, "VmHWM")  # peak resident memory; "VmRSS" for the current one
server.terminate()
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .common import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    arguments: list[str], threads: int, environment: dict[str, str] | None = None, timeout: float = 300.0
) -> tuple[subprocess.Popen, str]:
    """`python -m chatbot ARGUMENTS` on a free port, once it answers; returns the process and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "chatbot", *arguments, "--port", str(port), "--threads", str(threads),
               "--log-level", "WARNING"]  # fmt: skip
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(environment or {})}
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}: {' '.join(command)}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                return server, url
        except urllib.error.HTTPError:  # listening: the route answered, whatever it said
            return server, url
        except OSError:  # not listening yet
            time.sleep(0.5)
    server.terminate()
    raise TimeoutError(f"the server did not start within {timeout:.0f} s")


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of process `pid` from /proc, in MiB: "VmRSS" (resident now) or "VmHWM" (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")
