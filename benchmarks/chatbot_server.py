"""A chatbot server in a subprocess on 127.0.0.1, for the benchmarks and tests that drive it from outside.

from benchmarks.chatbot_server import memory_mib, start_server
server = start_server(["--model", "runs/demo-translation"], threads=1)
...  # gradio_client.Client(server.url)
memory_mib(server.pid, "VmHWM")  # peak resident memory; "VmRSS" for the current one
server.stop()

The tests start their servers with the same class (`ChatbotServer`).
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


class ChatbotServer:
    """`python -m chatbot ARGUMENTS` in a subprocess on a free port of 127.0.0.1, with `threads` torch
    threads, its output in `log` (or discarded); `wait_ready()` returns it once its API answers.
    Started and waited for separately, so that several servers start side by side. `module`,
    `threads_flag` and `tree` run another server the same way: a stand-in such as
    `benchmarks.gradio_batch_server`, or the chatbot of an earlier checkout (its flag was `--threads`)."""

    def __init__(
        self,
        arguments: list[str],
        threads: int = 1,
        log: Path | None = None,
        environment: dict[str, str] | None = None,
        *,
        module: str = "chatbot",
        threads_flag: str = "--num-threads",
        tree: Path = REPO,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        command = [sys.executable, "-m", module, *arguments, "--port", str(self.port), threads_flag, str(threads)]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(environment or {})}
        output = log.open("w") if log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(command, cwd=tree, env=env, stdout=output, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log is not None else ""

    def wait_ready(self, timeout: float = 300.0) -> ChatbotServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self._log_text()}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2):
                    return self
            except urllib.error.HTTPError:  # listening: the route answered (a 401 behind a login), whatever it said
                return self
            except OSError:  # not listening yet
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the server did not answer within {timeout:.0f} s:\n{self._log_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    arguments: list[str], threads: int, environment: dict[str, str] | None = None, timeout: float = 300.0
) -> ChatbotServer:
    """A `ChatbotServer` logging warnings only, once it answers."""
    return ChatbotServer([*arguments, "--log-level", "WARNING"], threads, environment=environment).wait_ready(timeout)


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of process `pid` from /proc, in MiB: "VmRSS" (resident now) or "VmHWM" (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")
