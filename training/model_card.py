"""The model card (`README.md` with Hub metadata) and `training_info.json` of a saved model."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from hf_seq2seq_rnn.configuration_seq2seq_rnn import SETTINGS
from seq2seq_tools.files import write_atomically
from seq2seq_tools.tasks import PIPELINE_TAGS

from .config import MODEL_KEYS

# Config keys that hold a local path: the card and training_info.json keep only the file's name.
PATH_KEYS = (
    "dataset",
    "validation_file",
    "target_file",
    "tokenizer",
    "model_name_or_path",
    "output_dir",
    "resume_from_checkpoint",
)


def public_name(dataset: str | None) -> str | None:
    """A dataset as a reader of the card should see it: a Hub id as given, a local file or folder by
    its name alone (the directories above it are this machine's business)."""
    if dataset and os.path.exists(dataset):
        return os.path.basename(os.path.normpath(dataset))
    return dataset


def training_info(
    description: str,
    config: dict[str, Any],
    scores: dict[str, float],
    data_counts: dict[str, Any],
    command: str,
    examples: list[str] | None = None,
) -> dict[str, Any]:
    """What a model was trained on and how, for programs (the chatbot shows `description`, and
    `examples`, a few validation sources, as its example prompts). Local paths appear by name only."""
    dataset = config["dataset"]
    hub_dataset = dataset if dataset and not os.path.exists(dataset) else None
    config = {key: public_name(value) if key in PATH_KEYS else value for key, value in config.items()}
    return {
        "description": description,
        "task": config["task"],
        "dataset": config["dataset"] or f"embedded demo: {config['demo']}",
        "hub_dataset": hub_dataset,
        "dataset_config": config["dataset_config"],
        "source_lang": config["source_lang"],
        "target_lang": config["target_lang"],
        "data": data_counts,
        "metrics": scores,
        "command": command,
        "examples": list(examples or []),
        "config": config,
    }


def write_model_card(output_dir: str, info: dict[str, Any]) -> None:
    """Write `training_info.json` and `README.md` (`model_card(info)`) to `output_dir`."""
    write_atomically(os.path.join(output_dir, "training_info.json"), json.dumps(info, indent=2, ensure_ascii=False))
    write_atomically(os.path.join(output_dir, "README.md"), model_card(info))


def card_metadata(info: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML front matter: what the Hub indexes, and the widget's prompts."""
    config = info["config"]
    languages = [lang for lang in (info["source_lang"], info["target_lang"]) if lang]
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": PIPELINE_TAGS[info["task"]],
        "tags": ["seq2seq-rnn", "rnn", "encoder-decoder", info["task"]],
        "description": info["description"],
    }
    if languages:
        metadata["language"] = sorted(set(languages))
    if config.get("sample_prompts"):
        # The Hub's inference widget and the chatbot's example prompts read these.
        metadata["widget"] = [{"text": prompt} for prompt in config["sample_prompts"]]
    if info.get("hub_dataset"):
        metadata["datasets"] = [info["hub_dataset"]]
    if info["metrics"]:
        metadata["metrics"] = sorted(key for key in info["metrics"] if key not in ("eval_loss", "perplexity"))
    return metadata


def _architecture_rows(config: dict[str, Any]) -> str:
    """The rows of the architecture table: each model key, its value and its `--help` line."""
    return "\n".join(
        f"| `{key}` | {config[key]} | {SETTINGS[key].metadata['help']} |" for key in MODEL_KEYS if key in config
    )


def _evaluation_rows(info: dict[str, Any]) -> str:
    """The rows of the evaluation table (a placeholder for averaged weights, which were not measured)."""
    rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in info["metrics"].items())
    if info.get("averaged") and not rows:
        return "| not measured on these weights | |"
    return rows


def _averaging_section(info: dict[str, Any]) -> str:
    """For weights written by training.average, a section that says so: the metrics belong to other weights."""
    averaged = info.get("averaged")
    if not averaged:
        return ""
    return (
        f"\n## Checkpoint averaging\n\nThe weights are the mean of checkpoints {', '.join(averaged['checkpoints'])} "
        f"of the run (made by `{averaged['command']}`). The run's final weights scored "
        f"{json.dumps(averaged['run_metrics'])}.\n"
    )


def model_card(info: dict[str, Any]) -> str:
    """The `README.md`: YAML metadata, then architecture, data, metrics, use and command, in the
    order a reader sees them (the card's template)."""
    metadata = yaml.safe_dump(card_metadata(info), allow_unicode=True, sort_keys=False).strip()
    return f"""---
{metadata}
---

# Recurrent encoder-decoder ({info["task"]})

A recurrent encoder-decoder from `hf_seq2seq_rnn`, trained with `training.train`.

## Architecture (`Seq2SeqRNNConfig`)

| setting | value | meaning |
| --- | --- | --- |
{_architecture_rows(info["config"])}

## Training data

{info["description"]}

{json.dumps(info["data"], ensure_ascii=False)}

## Evaluation (held-out validation pairs)

| metric | value |
| --- | --- |
{_evaluation_rows(info)}
{_averaging_section(info)}
## Use

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained(PATH, trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(PATH, trust_remote_code=True)
inputs = tokenizer(["..."], return_tensors="pt")
print(tokenizer.batch_decode(model.generate(**inputs), skip_special_tokens=True))
```

`trust_remote_code=True` runs the `.py` files of this folder. With `hf-seq2seq-rnn` installed,
`seq2seq_tools.loading.load_model(PATH)` and `load_tokenizer(PATH)` load it with the installed code instead.

## Command

```bash
{info["command"]}
```

The full configuration is in `training_info.json`.
"""
