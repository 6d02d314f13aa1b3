"""Checkpoints that are never half-written: the best and the last, found again by `latest`.

Layout under `<output_dir>/checkpoints/`:

    step-00000300/        accelerator.save_state (model, optimizer, scheduler, RNG of every
                          process) + trainer_state.json (step, epoch, batches into the epoch, metrics)
    index.json            {"last": "step-00000300", "best": "step-00000200", "best_metric": ...}

A checkpoint is written to `.tmp-step-...` and renamed into place once complete (a rename within a
file system is atomic); `index.json` is replaced atomically the same way, and only then are the
checkpoints it no longer names deleted. A crash or kill at any moment leaves the previous
`index.json` naming complete checkpoints; leftover temporary folders are ignored and cleaned later.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from typing import Any

from accelerate import Accelerator

from .errors import TrainingInputError

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
INDEX_FILE = "index.json"
LOWER_IS_BETTER = ("eval_loss", "perplexity")


def checkpoint_root(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def write_atomically(path: str, text: str) -> None:
    """Write `text` beside `path`, flush it to disk, and rename it into place: never half a file."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _write_json_atomically(path: str, content: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(content, indent=2))


def read_index(output_dir: str) -> dict[str, Any]:
    path = os.path.join(checkpoint_root(output_dir), INDEX_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def is_better(metric_name: str, value: float, best: float | None) -> bool:
    if best is None or not math.isfinite(best):
        return True
    return value < best if metric_name in LOWER_IS_BETTER else value > best


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str,
    trainer_state: dict[str, Any],
    metric_name: str,
    metric: float | None,
) -> str:
    """Save the full training state at `trainer_state["completed_steps"]`; keep only best and last.

    Every process takes part (each saves its own RNG state). Returns the checkpoint's path.
    """
    root = checkpoint_root(output_dir)
    name = f"step-{trainer_state['completed_steps']:08d}"
    final, temporary = os.path.join(root, name), os.path.join(root, f".tmp-{name}")
    if accelerator.is_main_process:
        os.makedirs(root, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        index = read_index(output_dir)
        best, best_metric = index.get("best"), index.get("best_metric")
        if metric is not None and is_better(metric_name, metric, best_metric):
            best, best_metric = name, metric
        _write_json_atomically(os.path.join(temporary, STATE_FILE), {**trainer_state, "metric": metric})
        shutil.rmtree(final, ignore_errors=True)  # the same step saved again after a resume
        os.replace(temporary, final)
        _write_json_atomically(
            os.path.join(root, INDEX_FILE),
            {"last": name, "best": best or name, "best_metric": best_metric, "metric_name": metric_name},
        )
        for entry in os.listdir(root):
            if entry not in (name, best, INDEX_FILE) and (entry.startswith("step-") or entry.startswith(".tmp-")):
                shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def resolve_checkpoint(output_dir: str, requested: str) -> str | None:
    """The checkpoint folder for `--resume-from-checkpoint` (`latest`, `best`, or a path).

    `latest` with no checkpoint yet returns `None` (a fresh start); a path without a complete
    checkpoint is an error.
    """
    if requested in ("latest", "best"):
        index = read_index(output_dir)
        name = index.get("last" if requested == "latest" else "best")
        if name is None:
            return None
        path = os.path.join(checkpoint_root(output_dir), name)
    else:
        path = requested
    if not os.path.isfile(os.path.join(path, STATE_FILE)):
        raise TrainingInputError(f"{path} is not a complete checkpoint (no {STATE_FILE})")
    return path


def read_trainer_state(checkpoint: str) -> dict[str, Any]:
    with open(os.path.join(checkpoint, STATE_FILE), encoding="utf-8") as handle:
        return json.load(handle)
