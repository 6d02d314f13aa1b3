"""Evaluation during and after training: loss and perplexity, generation, metrics, samples, heatmap.

Metrics come from the `evaluate` modules shipped in `training/metrics/` (loaded by path, so they
work offline): BLEU and chrF (sacrebleu) for translation, exact match and token F1 for QA.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from seq2seq_tools.attention import attention_figure
from seq2seq_tools.generation import generate_ids, generate_texts, has_attention

if TYPE_CHECKING:
    import evaluate
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from .config import TrainingConfig

logger = logging.getLogger(__name__)

METRICS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics")
# metric module -> (the key of its result that is reported, the name it is reported under)
TASK_METRICS = {
    "translation": {"bleu": ("score", "bleu"), "chrf": ("score", "chrf")},
    "qa": {"exact_match": ("exact_match", "exact_match"), "token_f1": ("f1", "f1")},
}


def load_metrics(task: str) -> dict[str, evaluate.EvaluationModule]:
    # Imported here, not at the top: `evaluate` takes a few tenths of a second to import, and
    # `training.predict` imports this module but scores (and so loads metrics) only with references.
    import evaluate

    return {name: evaluate.load(os.path.join(METRICS_DIR, name)) for name in TASK_METRICS[task]}


def compute_metrics(
    metrics: dict[str, evaluate.EvaluationModule], task: str, predictions: list[str], references: list[str]
) -> dict[str, float]:
    """The task's metrics of decoded predictions against references: `{"bleu", "chrf"}` or
    `{"exact_match", "f1"}`. Training's evaluation and `training.predict` both score through here."""
    return {
        reported: float(metrics[name].compute(predictions=predictions, references=references)[key])
        for name, (key, reported) in TASK_METRICS[task].items()
    }


@dataclass
class EvaluationResult:
    """Scores of one evaluation, with a few (source, reference, prediction) samples."""

    scores: dict[str, float]
    samples: list[tuple[str, str, str]]


def evaluate_model(
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    dataloader: DataLoader,
    metrics: dict[str, evaluate.EvaluationModule],
    config: TrainingConfig,
    with_generation: bool = True,
) -> EvaluationResult:
    """The validation loss and perplexity (per target token) of `model` (as `accelerator` prepared it) on
    `dataloader`, every process its share; then, `with_generation`, its outputs with the settings of
    `config` (`num_beams`, `max_new_tokens`) scored by `metrics` for `config.task`, and
    `config.num_samples` samples."""
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    loss_sum, token_count = 0.0, 0
    predictions: list[str] = []
    references: list[str] = []
    sources: list[str] = []
    pad = tokenizer.pad_token_id
    for batch in dataloader:
        with torch.no_grad(), accelerator.autocast():
            loss = model(**batch).loss
        tokens = (batch["labels"] != -100).sum()
        # (1, 2): loss summed over this batch's target tokens, and their count
        totals = torch.stack([loss.float() * tokens, tokens.float()]).unsqueeze(0)
        totals = accelerator.gather_for_metrics(totals)
        loss_sum += totals[:, 0].sum().item()
        token_count += int(totals[:, 1].sum().item())
        if not with_generation:
            continue
        sources_batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        generated = generate_ids(
            unwrapped, sources_batch, num_beams=config.num_beams, max_new_tokens=config.max_new_tokens
        )
        labels = batch["labels"].masked_fill(batch["labels"] == -100, pad)
        generated = accelerator.pad_across_processes(generated, dim=1, pad_index=pad)
        labels = accelerator.pad_across_processes(labels, dim=1, pad_index=pad)
        inputs = accelerator.pad_across_processes(batch["input_ids"], dim=1, pad_index=pad)
        generated, labels, inputs = accelerator.gather_for_metrics((generated, labels, inputs))
        predictions += tokenizer.batch_decode(generated, skip_special_tokens=True)
        references += tokenizer.batch_decode(labels, skip_special_tokens=True)
        sources += tokenizer.batch_decode(inputs, skip_special_tokens=True)
    mean_loss = loss_sum / max(token_count, 1)
    scores = {"eval_loss": mean_loss, "perplexity": math.exp(min(mean_loss, 50.0))}
    if with_generation and predictions:
        scores.update(compute_metrics(metrics, config.task, predictions, references))
    model.train()
    samples = list(zip(sources, references, predictions, strict=True))[: config.num_samples]
    return EvaluationResult(scores=scores, samples=samples)


def attention_heatmap(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, text: str, max_new_tokens: int):
    """A matplotlib figure of the cross-attention of a greedy translation of `text`, or `None`
    when the model has no attention. Labels in Korean and other scripts use a font with their glyphs."""
    if not has_attention(model):
        return None
    model.eval()
    [result] = generate_texts(
        model, tokenizer, [text], with_attention=True, num_beams=1, do_sample=False, max_new_tokens=max_new_tokens
    )
    model.train()
    return None if result.attention is None else attention_figure(result.attention)
