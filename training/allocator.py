"""Run CPU training under tcmalloc when it is installed.

A training step allocates and frees thousands of small tensors, and glibc's malloc hands freed
pages back to the system and takes them again step after step. tcmalloc keeps them in per-thread
caches. `benchmarks/bench_opennmt.py --allocators system tcmalloc` measures the difference on the
machine at hand; the README gives the figures.

A library can only replace malloc when it is loaded before anything else, so `python -m
training.train` starts itself again with `LD_PRELOAD` set, first thing, before its own imports. That
happens only on Linux, when Debian's `libtcmalloc-minimal4` (or gperftools' tcmalloc) is installed,
and not when `SEQ2SEQ_RNN_ALLOCATOR=system` is set or the process already runs under tcmalloc.
"""

from __future__ import annotations

import ctypes.util
import os
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


def relaunch_under_tcmalloc() -> None:
    """Replace this process with the same command under tcmalloc when that is possible and wanted;
    return (and change nothing) otherwise."""
    choice = os.environ.get(ALLOCATOR_VARIABLE, "tcmalloc")
    if choice not in ALLOCATORS:
        raise SystemExit(f"error: {ALLOCATOR_VARIABLE}={choice!r} is not supported; accepted values: tcmalloc, system")
    if choice == "system" or not sys.platform.startswith("linux") or running_under_tcmalloc():
        return
    library = find_tcmalloc()
    if library is None:
        return
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), library]))
    # The variable also stops a second relaunch should the library fail to load.
    environment = {**os.environ, "LD_PRELOAD": preload, ALLOCATOR_VARIABLE: "system"}
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
