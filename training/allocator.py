"""Run CPU training under tcmalloc when it is installed.

A training step allocates and frees thousands of small tensors, and glibc's malloc hands freed
pages back to the system and takes them again step after step. tcmalloc keeps them in per-thread
caches. `benchmarks/bench_opennmt.py --allocators system tcmalloc` measures the difference on the
machine at hand; the README gives the figures.

A library can only replace malloc when it is loaded before anything else, so `python -m
training.train` starts itself again with `LD_PRELOAD` set, first thing, before its own imports. That
happens only on Linux, when Debian's `libtcmalloc-minimal4` (or gperftools' tcmalloc) is installed,
and not when `SEQ2SEQ_RNN_ALLOCATOR=system` is set or the process already runs under tcmalloc.

Every other case keeps the system allocator, with one line on stderr that says why: `LD_PRELOAD`
already set by the user (another allocator or tool may be in it, and two mallocs do not mix), or a
tcmalloc library that is present but does not load (a broken install), which is checked in a
throwaway interpreter before this process is replaced.
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

ALLOCATOR_VARIABLE = "SEQ2SEQ_RNN_ALLOCATOR"
ALLOCATORS = ("tcmalloc", "system")


def find_tcmalloc() -> str | None:
    """The tcmalloc shared library's name for `LD_PRELOAD`, or None when it is not installed."""
    return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def running_under_tcmalloc() -> bool:
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            return "tcmalloc" in maps.read()
    except OSError:
        return False


def preload_failure(library: str) -> str | None:
    """Why an interpreter started with `LD_PRELOAD=library` does not run cleanly, or None when it does."""
    environment = {**os.environ, "LD_PRELOAD": library, ALLOCATOR_VARIABLE: "system"}
    try:
        result = subprocess.run(
            [sys.executable, "-c", "pass"], env=environment, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    # ld.so reports a library it cannot preload and goes on without it: that is a failure here too.
    if result.returncode != 0 or "cannot be preloaded" in result.stderr:
        return " ".join(result.stderr.split())[:200] or f"exit code {result.returncode}"
    return None


def keep_system_allocator(reason: str) -> None:
    # Logging is not set up this early (the relaunch precedes every import): one plain line on stderr.
    print(f"warning: training keeps the system allocator: {reason}", file=sys.stderr)


def relaunch_under_tcmalloc(library: str | None = None) -> None:
    """Replace this process with the same command under tcmalloc (`library`, else the installed one) when
    that is possible and wanted; otherwise return and change nothing, with one line where it was wanted
    but cannot be done safely."""
    choice = os.environ.get(ALLOCATOR_VARIABLE, "tcmalloc")
    if choice not in ALLOCATORS:
        raise SystemExit(f"error: {ALLOCATOR_VARIABLE}={choice!r} is not supported; accepted values: tcmalloc, system")
    if choice == "system" or not sys.platform.startswith("linux") or running_under_tcmalloc():
        return
    library = library or find_tcmalloc()
    if library is None:
        return
    if os.environ.get("LD_PRELOAD"):
        keep_system_allocator(
            f"LD_PRELOAD is already set ({os.environ['LD_PRELOAD']}); "
            f"set {ALLOCATOR_VARIABLE}=system to keep it without this line"
        )
        return
    failure = preload_failure(library)
    if failure is not None:
        keep_system_allocator(f"{library} does not load ({failure}); reinstall it or set {ALLOCATOR_VARIABLE}=system")
        return
    # The variable also stops a second relaunch should the library fail to load after all.
    environment = {**os.environ, "LD_PRELOAD": library, ALLOCATOR_VARIABLE: "system"}
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
    except OSError as error:
        keep_system_allocator(f"cannot start again under {library} ({error})")
