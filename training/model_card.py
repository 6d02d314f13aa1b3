"""The model card (`README.md` with Hub metadata) and `training_info.json` of a saved model."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from .checkpoints import write_atomically


def training_info(
    description: str,
    config: dict[str, Any],
    scores: dict[str, float],
    data_counts: dict[str, Any],
    command: str,
) -> dict[str, Any]:
    """What a model was trained on and how, for programs (the chatbot shows `description`)."""
    return {
        "description": description,
        "task": config["task"],
        "dataset": config["dataset"] or f"embedded demo: {config['demo']}",
        "dataset_config": config["dataset_config"],
        "source_lang": config["source_lang"],
        "target_lang": config["target_lang"],
        "data": data_counts,
        "metrics": scores,
        "command": command,
        "config": config,
    }


def write_model_card(output_dir: str, info: dict[str, Any]) -> None:
    """Write `training_info.json` and `README.md` (YAML metadata, data, metrics, command) to `output_dir`."""
    write_atomically(os.path.join(output_dir, "training_info.json"), json.dumps(info, indent=2, ensure_ascii=False))
    config = info["config"]
    languages = [lang for lang in (info["source_lang"], info["target_lang"]) if lang]
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "translation" if info["task"] == "translation" else "text-generation",
        "tags": ["seq2seq-rnn", "rnn", "encoder-decoder", info["task"]],
        "description": info["description"],
    }
    if languages:
        metadata["language"] = sorted(set(languages))
    if config.get("sample_prompts"):
        # The Hub's inference widget and the chatbot's example prompts read these.
        metadata["widget"] = [{"text": prompt} for prompt in config["sample_prompts"]]
    if config["dataset"] and not os.path.exists(config["dataset"]):
        metadata["datasets"] = [config["dataset"]]
    if info["metrics"]:
        metadata["metrics"] = sorted(key for key in info["metrics"] if key not in ("eval_loss", "perplexity"))
    rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in info["metrics"].items())
    architecture = (
        f"{config['num_layers']}-layer {config['cell_type']} encoder-decoder, hidden size {config['hidden_size']}, "
        f"{config['attention_type']} attention"
        + (", bidirectional encoder" if config["bidirectional_encoder"] else "")
        + (", input feeding" if config["input_feeding"] else "")
    )
    card = f"""---
{yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False).strip()}
---

# Recurrent encoder-decoder ({info["task"]})

A {architecture}, from `hf_seq2seq_rnn`, trained with `training.train`.

## Training data

{info["description"]}

{json.dumps(info["data"], ensure_ascii=False)}

## Evaluation (held-out validation pairs)

| metric | value |
| --- | --- |
{rows}

## Use

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained(PATH, trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(PATH, trust_remote_code=True)
inputs = tokenizer(["..."], return_tensors="pt")
print(tokenizer.batch_decode(model.generate(**inputs), skip_special_tokens=True))
```

## Command

```bash
{info["command"]}
```

The full configuration is in `training_info.json`.
"""
    write_atomically(os.path.join(output_dir, "README.md"), card)
