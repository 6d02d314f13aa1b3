"""Checkpoints that are never half-written: the last few and the best, found again by `latest`.

Layout under `<output_dir>/checkpoints/`:

    step-00000300/        accelerator.save_state (model, optimizer, scheduler, RNG of every
                          process; a stream's position, dl_state_dict.bin) + trainer_state.json
                          (step, epoch, batches into the epoch, metrics; a stream's data settings)
                          + tokenizer/ (a stream's: a resumed run reads no pair to train it again)
    index.json            {"last": "step-00000300", "best": "step-00000200", "best_metric": ...,
                           "kept": ["step-00000300", "step-00000250", "step-00000200"]}

`--keep-checkpoints N` keeps the newest N checkpoints plus the best (N + 1 folders at most): more
than one, so that `latest` still finds a checkpoint when the newest cannot be read back, and a few
to average (`training.average`). Checkpoints of steps after the one just saved (left by an earlier
attempt that a resume went back from) are not among the newest: they belong to another history.

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
import re
import shutil
import tempfile
import zipfile
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from safetensors import safe_open

from seq2seq_tools.files import write_atomically

from .errors import TrainingInputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
TOKENIZER_DIR = "tokenizer"
INDEX_FILE = "index.json"
LOWER_IS_BETTER = ("eval_loss", "perplexity")


def checkpoint_root(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def _write_json_atomically(path: str, content: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(content, indent=2))


def read_index(output_dir: str) -> dict[str, Any]:
    """`index.json`, or `{}` when it is missing or unreadable: it is advisory, the folders are the truth."""
    path = os.path.join(checkpoint_root(output_dir), INDEX_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        logger.warning("%s is unreadable (%s); reading the checkpoint folders instead", path, error)
        return {}
    return index if isinstance(index, dict) else {}


def checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint folder at `path` cannot be resumed from (one line), or `None` when it reads back.

    Reads `trainer_state.json`, the header of every `.safetensors` file (a truncated one fails
    here) and every torch-saved file (zip archives, CRC-checked), without loading any tensor.
    """
    if not os.path.isdir(path):
        return "not a folder"
    state_path = os.path.join(path, STATE_FILE)
    try:
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
        if not isinstance(state.get("completed_steps"), int):
            return f"{STATE_FILE} has no completed_steps"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        return " ".join(f"{STATE_FILE}: {error}".split())
    for entry in sorted(os.listdir(path)):
        file = os.path.join(path, entry)
        if not os.path.isfile(file):
            continue
        try:
            if entry.endswith(".safetensors"):
                with safe_open(file, framework="pt") as handle:
                    handle.keys()
            elif entry.endswith((".bin", ".pkl", ".pt", ".pth")):
                with zipfile.ZipFile(file) as archive:
                    broken = archive.testzip()
                if broken is not None:
                    return f"{entry}: corrupt member {broken}"
        except Exception as error:  # safetensors and zipfile raise their own error types
            return " ".join(f"{entry}: {type(error).__name__}: {error}".split())
    return None


def checkpoint_folders(output_dir: str) -> list[str]:
    """The complete checkpoint folders (`step-NNNNNNNN`), newest first; temporary ones are left out."""
    root = checkpoint_root(output_dir)
    if not os.path.isdir(root):
        return []
    names = [entry for entry in os.listdir(root) if re.fullmatch(r"step-\d{8}", entry)]
    return [os.path.join(root, name) for name in sorted(names, reverse=True)]


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
    *,
    keep: int,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> str:
    """Save the full training state at `trainer_state["completed_steps"]` (and `tokenizer`, if given);
    keep the newest `keep` and the best.

    Every process takes part (each saves its own RNG state). Returns the checkpoint's path.
    """
    if keep < 1:
        raise ValueError(f"keep={keep}: at least the checkpoint just saved is kept")
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
        _keep_main_process_loader_states(accelerator, temporary)
        if tokenizer is not None:
            tokenizer.save_pretrained(os.path.join(temporary, TOKENIZER_DIR))
        index = read_index(output_dir)
        best, best_metric = index.get("best"), index.get("best_metric")
        if metric is not None and is_better(metric_name, metric, best_metric):
            best, best_metric = name, metric
        _write_json_atomically(os.path.join(temporary, STATE_FILE), {**trainer_state, "metric": metric})
        shutil.rmtree(final, ignore_errors=True)  # the same step saved again after a resume
        os.replace(temporary, final)
        best = best or name
        earlier = [os.path.basename(path) for path in checkpoint_folders(output_dir)]
        newest = [entry for entry in earlier if entry <= name][:keep]  # names sort by step (8 digits)
        kept = sorted({*newest, best}, reverse=True)
        _write_json_atomically(
            os.path.join(root, INDEX_FILE),
            {"last": name, "best": best, "best_metric": best_metric, "metric_name": metric_name, "kept": kept},
        )
        for entry in os.listdir(root):
            if entry not in kept and (entry.startswith("step-") or entry.startswith(".tmp-")):
                shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
            elif entry.startswith(f".{INDEX_FILE}."):  # an index write cut by a kill (write_atomically's temporary)
                os.remove(os.path.join(root, entry))
    accelerator.wait_for_everyone()
    return final


def _keep_main_process_loader_states(accelerator: Accelerator, folder: str) -> None:
    """Write the main process's state of each stateful data loader over the one `save_state` left.

    Every process writes its loaders' states to the same `dl_state_dict*.bin` files (accelerate
    1.10 to 1.16; huggingface/accelerate#4165), so the file holds whichever came last. A stream is
    read by the main process alone (Accelerate dispatches its batches), so its state is the one to
    keep; the other processes load it too, and never read from it.
    """
    if accelerator.num_processes == 1:
        return
    for index, loader in enumerate(accelerator._dataloaders):
        if getattr(loader, "use_stateful_dataloader", False):
            name = "dl_state_dict.bin" if index == 0 else f"dl_state_dict_{index}.bin"
            torch.save(loader.state_dict(), os.path.join(folder, name))


def check_output_dir(output_dir: str, needed_bytes: int = 0) -> None:
    """Fail before the first step, not at the first save: `output_dir` can be created and written,
    and its disk has `needed_bytes` free. Every process checks, each with a probe file of a name of its
    own (created exclusively: machines sharing the folder may run processes of the same pid)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise TrainingInputError(f"--output-dir {output_dir} is an existing file; pass a directory (new or existing)")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=output_dir, prefix=".write-probe-", encoding="utf-8") as handle:
            handle.write("probe")
    except OSError as error:
        raise TrainingInputError(
            f"--output-dir {output_dir} cannot be written ({error.strerror or error}); pass a writable directory"
        ) from error
    free = shutil.disk_usage(output_dir).free
    if free < needed_bytes:
        raise TrainingInputError(
            f"--output-dir {output_dir} has {free / 2**20:.0f} MiB free but the checkpoints kept need about "
            f"{needed_bytes / 2**20:.0f} MiB; free some space or pass another --output-dir"
        )


def checkpoint_bytes(model: torch.nn.Module, kept: int = 1, averaged: bool = False) -> int:
    """About the disk a run needs: `kept` checkpoints (the newest kept plus the best) of fp32 weights,
    AdamW's two moments and, `averaged`, the weight average; plus the final model."""
    parameters = sum(parameter.numel() for parameter in model.parameters())
    return 4 * parameters * (kept * (3 + averaged) + 1) + 2**20


def resolve_checkpoint(output_dir: str, requested: str) -> str | None:
    """The checkpoint folder for `--resume-from-checkpoint` (`latest`, `best`, or a path).

    `latest` is the newest folder that reads back: an unreadable one is reported in one line and
    skipped. `best` is the one `index.json` names, or the newest readable one when that cannot be
    read. With no checkpoint yet, both return `None` (a fresh start). A path that is not a readable
    checkpoint is an error.
    """
    if requested not in ("latest", "best"):
        problem = checkpoint_problem(requested)
        if problem is not None:
            raise TrainingInputError(
                f"--resume-from-checkpoint {requested} cannot be read ({problem}); pass another checkpoint "
                "folder, 'latest' or 'best'"
            )
        return requested
    folders = checkpoint_folders(output_dir)
    if requested == "best":
        best = read_index(output_dir).get("best")
        path = os.path.join(checkpoint_root(output_dir), best) if isinstance(best, str) else None
        if path is not None and checkpoint_problem(path) is None:
            return path
        logger.warning("the best checkpoint %s cannot be read; resuming from the newest readable one", path)
    for index, path in enumerate(folders):
        problem = checkpoint_problem(path)
        if problem is None:
            if index > 0:
                logger.warning("resuming from %s, the newest checkpoint that reads back", path)
            return path
        logger.warning("skipping checkpoint %s: %s", path, problem)
    if folders:
        raise TrainingInputError(
            f"no checkpoint in {checkpoint_root(output_dir)} can be read; remove them to start from scratch"
        )
    return None


def read_trainer_state(checkpoint: str) -> dict[str, Any]:
    with open(os.path.join(checkpoint, STATE_FILE), encoding="utf-8") as handle:
        return json.load(handle)
