"""How rows of a dataset become source/target pairs: the schemas, told from the column names
(`detect_schema`), and the rows of each turned into pairs (`pairs_from_batch`).

Schemas, each reduced to the two string columns `source` and `target`:

    translation    {"translation": {"en": ..., "fr": ...}}          (opus_books, wmt, tatoeba_mt)
    columns        two named columns, e.g. Q and A, or source and target
    squad          question, answers.text (first answer), optional context  (SQuAD)
    conversation   a list of turns; consecutive turns become pairs   (chatterbot, ShareGPT-like)
    text_pairs     a single `text` column of `source<TAB>target` lines
    sources        a single `source` (or `src`, `question`, ...) column: sources without targets

`detect_schema` picks one from the column names where that is unambiguous; otherwise it raises
`TrainingInputError` naming the columns found and the flags to pass. Nothing here imports `datasets`
(`training.data` loads the rows through it), so that `training.predict` can read a plain-text test
set without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .data_spec import DataSpec
from .errors import TrainingInputError

if TYPE_CHECKING:
    import datasets

# Column-name pairs recognised without flags, in order of preference (compared case-insensitively).
KNOWN_COLUMN_PAIRS = [
    ("source", "target"),
    ("src", "tgt"),
    ("question", "answer"),
    ("q", "a"),
    ("input", "output"),
    ("prompt", "response"),
    ("query", "response"),
    ("instruction", "output"),
]
CONVERSATION_COLUMNS = ("conversation", "conversations", "messages", "dialog", "dialogue", "turns", "utterances")
TURN_TEXT_KEYS = ("content", "value", "text")
TURN_ROLE_KEYS = ("role", "from", "speaker")
ANSWER_ROLES = ("assistant", "gpt", "bot", "model")
# A lone column of one of these names holds sources without targets (a test set to decode).
SOURCE_COLUMNS = tuple(dict.fromkeys(source for source, _ in KNOWN_COLUMN_PAIRS))


@dataclass(frozen=True)
class Schema:
    """How rows of a dataset become pairs.

    Args:
        kind: one of "translation", "columns", "squad", "conversation", "text_pairs", "sources".
        source: the source column (columns, squad, sources) or language (translation).
        target: the target column (columns, squad) or language (translation).
        column: the column holding the nested data (translation, conversation, text_pairs).
        context: the optional context column of the squad schema.
    """

    kind: str
    source: str | None = None
    target: str | None = None
    column: str | None = None
    context: str | None = None

    def describe(self) -> str:
        if self.kind == "translation":
            return f"translation column {self.column!r}: {self.source} -> {self.target}"
        if self.kind == "columns":
            return f"columns {self.source!r} -> {self.target!r}"
        if self.kind == "squad":
            with_context = f" with context {self.context!r}" if self.context else ""
            return f"SQuAD-style {self.source!r}{with_context} -> {self.target!r}.text"
        if self.kind == "conversation":
            return f"conversation turns in {self.column!r}"
        if self.kind == "sources":
            return f"sources only, in {self.source!r} (no targets)"
        return f"tab-separated pairs in {self.column!r}"


def _lower_map(columns: list[str]) -> dict[str, str]:
    return {column.lower(): column for column in columns}


def detect_schema(columns: list[str], spec: DataSpec, features: datasets.Features | None = None) -> Schema:
    """The schema of a dataset with these columns, from the flags in `spec` or else the names.

    Raises:
        TrainingInputError: a named column is missing, or no schema fits unambiguously.
    """
    found = ", ".join(map(repr, columns)) or "none"
    if spec.source_column or spec.target_column:
        if not (spec.source_column and spec.target_column):
            raise TrainingInputError("pass both --source-column and --target-column")
        for flag, column in (("--source-column", spec.source_column), ("--target-column", spec.target_column)):
            if column not in columns:
                raise TrainingInputError(f"{flag} {column!r} is not a column of the data; the columns are {found}")
        if spec.context_column and spec.context_column not in columns:
            raise TrainingInputError(
                f"--context-column {spec.context_column!r} is not a column; the columns are {found}"
            )
        return Schema("columns", source=spec.source_column, target=spec.target_column, context=spec.context_column)
    lower = _lower_map(columns)
    if "translation" in lower:
        column = lower["translation"]
        languages = _translation_languages(features, column)
        pair = languages if len(languages) == 2 else [None, None]
        source = spec.source_lang or (pair[1] if spec.target_lang == pair[0] else pair[0])
        target = spec.target_lang or (pair[0] if source == pair[1] else pair[1])
        if not (source and target):
            raise TrainingInputError(
                f"the {column!r} column holds languages {languages or 'unknown'}; pass --source-lang and --target-lang"
            )
        for flag, language in (("--source-lang", source), ("--target-lang", target)):
            if languages and language not in languages:
                raise TrainingInputError(f"{flag} {language!r} is not in the data; its languages are {languages}")
        return Schema("translation", source=source, target=target, column=column)
    if "question" in lower and "answers" in lower:
        context = spec.context_column
        if context and context not in columns:
            raise TrainingInputError(f"--context-column {context!r} is not a column; the columns are {found}")
        return Schema("squad", source=lower["question"], target=lower["answers"], context=context)
    for name in CONVERSATION_COLUMNS:
        if name in lower:
            return Schema("conversation", column=lower[name])
    if spec.source_lang and spec.target_lang and spec.source_lang in columns and spec.target_lang in columns:
        return Schema("columns", source=spec.source_lang, target=spec.target_lang)
    for source, target in KNOWN_COLUMN_PAIRS:
        if source in lower and target in lower:
            return Schema("columns", source=lower[source], target=lower[target])
    if columns == ["text"]:
        return Schema("text_pairs", column="text")
    if len(columns) == 1 and columns[0].lower() in SOURCE_COLUMNS:
        return Schema("sources", source=columns[0])
    raise TrainingInputError(
        f"cannot tell which columns hold the pairs; the columns are {found}. Pass --source-column and "
        "--target-column (two text columns), or --source-lang and --target-lang (a 'translation' column), "
        "or use a 'question'/'answers' (SQuAD) or 'conversations' (list of turns) column."
    )


def _translation_languages(features: datasets.Features | None, column: str) -> list[str]:
    feature = features.get(column) if features else None
    # `datasets` is imported by whoever loaded the data that these features describe.
    import datasets

    if isinstance(feature, datasets.Translation):
        return list(feature.languages)
    if isinstance(feature, dict):
        return list(feature)
    return []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _turn_text_and_role(turn: Any) -> tuple[str, str | None]:
    if isinstance(turn, dict):
        text = next((turn[key] for key in TURN_TEXT_KEYS if key in turn), "")
        role = next((turn[key] for key in TURN_ROLE_KEYS if key in turn), None)
        return _text(text), role
    return _text(turn), None


def conversation_pairs(turns: list[Any] | None) -> list[tuple[str, str]]:
    """Consecutive turns as (prompt, reply) pairs. With roles, only turns answered by an assistant
    role (`assistant`, `gpt`, `bot`, `model`) pair up; without roles, every turn answers the previous."""
    parsed = [_turn_text_and_role(turn) for turn in turns or []]
    pairs = []
    for (prompt, prompt_role), (reply, reply_role) in zip(parsed, parsed[1:], strict=False):
        if reply_role is not None and (str(reply_role).lower() not in ANSWER_ROLES or prompt_role == reply_role):
            continue
        pairs.append((prompt, reply))
    return pairs


def pairs_from_batch(batch: dict[str, list[Any]], schema: Schema) -> dict[str, list[str]]:
    """Batched `datasets.map` function: rows of any schema to `source` and `target` lists."""
    sources: list[str] = []
    targets: list[str] = []
    if schema.kind == "translation":
        for row in batch[schema.column]:
            row = row or {}
            sources.append(_text(row.get(schema.source)))
            targets.append(_text(row.get(schema.target)))
    elif schema.kind == "columns" or schema.kind == "squad":
        contexts = batch[schema.context] if schema.context else [None] * len(batch[schema.source])
        for source, target, context in zip(batch[schema.source], batch[schema.target], contexts, strict=True):
            if schema.kind == "squad":
                answers = (target or {}).get("text") or []
                target = answers[0] if answers else ""  # unanswerable questions become empty rows
            source = _text(source)
            if context:
                source = f"question: {source} context: {_text(context)}"
            sources.append(source)
            targets.append(_text(target))
    elif schema.kind == "conversation":
        for turns in batch[schema.column]:
            for prompt, reply in conversation_pairs(turns):
                sources.append(prompt)
                targets.append(reply)
    elif schema.kind == "sources":
        sources = [_text(source) for source in batch[schema.source]]
        targets = [""] * len(sources)
    else:  # text_pairs
        for line in batch[schema.column]:
            fields = (line or "").split("\t")
            sources.append(_text(fields[0]))
            targets.append(_text(fields[1]) if len(fields) > 1 else "")
    return {"source": sources, "target": targets}


__all__ = ["KNOWN_COLUMN_PAIRS", "SOURCE_COLUMNS", "Schema", "conversation_pairs", "detect_schema", "pairs_from_batch"]
