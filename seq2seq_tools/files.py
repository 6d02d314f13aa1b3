"""Files written whole or not at all, shared by training, predict and the chatbot."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to a temporary file beside `path`, flush it to disk and rename it into place (a
    rename within a folder is atomic): a crash leaves the old file, or none, never half a file."""
    folder, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding=encoding) as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
