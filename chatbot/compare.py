"""Two to four models on one input, decoded alike: what the Compare tab shows (no Gradio here).

    from chatbot.compare import compare_replies
    comparison = compare_replies(models, ["no-attention", "additive"], "Monday, June 3, 1985", settings)
    for compared in comparison.replies:
        compared.name, compared.reply.text, compared.reply.score, compared.length, compared.agreement

The first model named is the reference: every other model's alignment is compared with its
alignment (`seq2seq_tools.compare.alignment_agreement`, where the rule for outputs of different
lengths is written down).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seq2seq_tools.compare import AlignmentAgreement, alignment_agreement
from seq2seq_tools.tasks import UNKNOWN_TASK

from .inference import (
    EMPTY_INPUT_NOTICE,
    DecodingSettings,
    EmptyInputError,
    LoadedModel,
    Reply,
    encode,
    generate_reply,
    submit_reply,
)
from .scheduler import BatchScheduler

MIN_COMPARED = 2
MAX_COMPARED = 4
TOO_FEW_MODELS = "Choose at least two models to compare (in the list above)."
TOO_MANY_MODELS = "Choose at most four models to compare."


@dataclass
class ComparedReply:
    """One model's reply to the compared input.

    Args:
        name: the model's name on the page.
        reply: its reply, with its score and (for a model with attention) its attention map.
        length: the reply's length in tokens, special tokens (`</s>`) not counted.
        has_attention: False for a model with `attention_type="none"`: no heatmap, no alignment.
        task: the task the model was trained for (`seq2seq_tools.tasks`).
        agreement: its alignment's agreement with the first model's; None for the first model itself
            and where there is nothing to compare (a model without attention, another tokenizer).
    """

    name: str
    reply: Reply
    length: int
    has_attention: bool
    task: str
    agreement: AlignmentAgreement | None = None


@dataclass
class Comparison:
    """The replies of the compared models to one input, the first being the reference."""

    replies: list[ComparedReply]
    notices: list[str] = field(default_factory=list)

    @property
    def reference(self) -> ComparedReply:
        return self.replies[0]

    @property
    def shared_source(self) -> bool:
        """Whether every heatmap has the same source tokens (so one source axis serves them all)."""
        maps = [compared.reply.attention for compared in self.replies if compared.reply.attention is not None]
        return all(attention.source_labels == maps[0].source_labels for attention in maps)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for API clients: each model's output, score, length, agreement and attention."""
        return {
            "reference": self.reference.name,
            "models": [
                {
                    "name": compared.name,
                    "output": compared.reply.text,
                    "score": compared.reply.score,
                    "output_tokens": compared.length,
                    "task": compared.task,
                    "has_attention": compared.has_attention,
                    "agreement": None if compared.agreement is None else round(compared.agreement.share, 4),
                    "agreed": None if compared.agreement is None else compared.agreement.agreed,
                    "compared": None if compared.agreement is None else compared.agreement.compared,
                    "attention": None if compared.reply.attention is None else compared.reply.attention.to_dict(),
                }
                for compared in self.replies
            ],
            "notices": self.notices,
        }


def check_choice(names: Sequence[str]) -> str | None:
    """What to tell the user about the chosen models (too few, too many), or None when they will do."""
    if len(names) < MIN_COMPARED:
        return TOO_FEW_MODELS
    if len(names) > MAX_COMPARED:
        return TOO_MANY_MODELS
    return None


def output_length(loaded: LoadedModel, token_ids: Sequence[int]) -> int:
    """The number of generated tokens that are not special tokens (`</s>`, padding)."""
    special = set(getattr(loaded.tokenizer, "all_special_ids", ()) or ())
    return sum(1 for token in token_ids if token not in special)


def task_notices(replies: Sequence[ComparedReply]) -> list[str]:
    """A line for each model trained for another task than the first model with a known task."""
    known = [compared for compared in replies if compared.task != UNKNOWN_TASK]
    if not known:
        return []
    first = known[0]
    return [
        f"**{compared.name}** was trained for {compared.task}, **{first.name}** for {first.task}: "
        "their outputs answer different tasks."
        for compared in known[1:]
        if compared.task != first.task
    ]


def compare_replies(
    models: Mapping[str, LoadedModel],
    names: Sequence[str],
    text: str,
    settings: DecodingSettings,
    scheduler: BatchScheduler | None = None,
) -> Comparison:
    """Decode `text` with each model of `names` (2 to 4, keys of `models`), all with `settings`;
    with a `scheduler`, in the batches of those models, all models at once.

    Raises:
        ValueError: fewer than two or more than four names, or a name not in `models`.
        EmptyInputError: an empty or whitespace-only input.
    """
    problem = check_choice(names)
    if problem:
        raise ValueError(problem)
    unknown = [name for name in names if name not in models]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown))}; choose from {', '.join(models)}")
    if not isinstance(text, str) or not text.strip():
        raise EmptyInputError(EMPTY_INPUT_NOTICE)
    if scheduler is None:
        decoded = [generate_reply(models[name], text, settings, with_score=True) for name in names]
    else:  # every model's request first, so that the scheduler decodes them side by side
        pending = [
            submit_reply(models[name], scheduler, *encode(models[name], text), settings, with_score=True)
            for name in names
        ]
        decoded = [reply.reply() for reply in pending]
    replies = []
    for name, reply in zip(names, decoded, strict=True):
        loaded = models[name]
        replies.append(
            ComparedReply(
                name=name,
                reply=reply,
                length=output_length(loaded, reply.token_ids),
                has_attention=loaded.info.has_attention,
                task=loaded.info.task,
            )
        )
    reference = replies[0].reply.attention
    for compared in replies[1:]:
        compared.agreement = alignment_agreement(reference, compared.reply.attention)
    notices = [f"**{compared.name}**: {compared.reply.notice}" for compared in replies if compared.reply.notice]
    return Comparison(replies=replies, notices=[*task_notices(replies), *notices])


__all__ = [
    "MAX_COMPARED",
    "MIN_COMPARED",
    "TOO_FEW_MODELS",
    "TOO_MANY_MODELS",
    "Comparison",
    "ComparedReply",
    "check_choice",
    "compare_replies",
]
