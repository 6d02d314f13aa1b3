"""The embedded demo corpora, built at run time from packages on the index (no network, no data files).

Translation: the Unicode CLDR's own renderings of dates, times, relative times and measures, as
Babel ships them: `"Monday, November 23, 1987"` -> `"lundi 23 novembre 1987"`. Each pair is the
same value formatted for two locales, so every target is what a human translator wrote into CLDR
for that pattern. Languages: English, French, German, Korean (any two of them).

Dates: the textbook's date normalisation (Saito, "Deep Learning from Scratch 2", chapter 8): one day
between 1950 and 2049 written by Babel in one of 4 formats and 5 locales -> its ISO form
(`"Wednesday, September 7, 1994"` -> `"1994-09-07"`), as `benchmarks.bench_variants` trains it.
The variants demo of the chatbot trains its contrast set of models on it.

Chat: the conversations of chatterbot-corpus (greetings, small talk, trivia, ...) in English or
Korean; each conversation is a list of turns, read through the `conversation` schema of
`training.data` like any other conversational data set. The language is the run's `source_lang`
(`--source-lang ko`), as for the translation demo: a chat's replies are in the language of its prompts.
"""

from __future__ import annotations

import datetime
import os
import random

import yaml
from datasets import Dataset, DatasetDict

from .errors import TrainingInputError

DEMO_LANGUAGES = ("en", "fr", "de", "ko")
DEMOS = ("translation", "chat", "dates")
# The dates demo's locales and CLDR formats (Spanish short dates, `7/9/94`, read like American ones
# with day and month swapped, so they are left out).
DATE_LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES")
DATE_STYLES = ("short", "medium", "long", "full")
# chatterbot-corpus folders of the chat demo's languages, by the codes the translation demo uses.
# (Its French and German sets hold about a hundred exchanges each: too few to learn from.)
CHAT_LANGUAGES = {"en": "english", "ko": "korean"}
# CLDR measure units rendered in every demo language (Babel falls back to the unit id otherwise).
UNITS = (
    "length-kilometer",
    "length-meter",
    "length-centimeter",
    "mass-kilogram",
    "mass-gram",
    "volume-liter",
    "duration-day",
    "duration-week",
    "duration-month",
    "duration-year",
    "duration-minute",
)
DATE_FORMATS = ("full", "long", "medium")
RELATIVE_UNITS = ("day", "week", "month", "year", "hour", "minute")


def _render(kind: str, value: object, locale: str, detail: str) -> str:
    """One value in one locale's CLDR format."""
    from babel import dates, units  # imported here: only the translation demo needs Babel

    if kind == "date":
        return dates.format_date(value, format=detail, locale=locale)
    if kind == "time":
        return dates.format_time(value, format="short", locale=locale)
    if kind == "relative":
        return dates.format_timedelta(value, granularity=detail, threshold=2, add_direction=True, locale=locale)
    return units.format_unit(value, detail, length="long", locale=locale)


def _random_value(rng: random.Random) -> tuple[str, object, str]:
    """A (kind, value, detail) triple: the thing to render and how."""
    kind = rng.choices(("date", "time", "relative", "unit"), weights=(5, 1, 2, 2))[0]
    if kind == "date":
        day = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 100))
        return kind, day, rng.choice(DATE_FORMATS)
    if kind == "time":
        return kind, datetime.time(rng.randrange(24), rng.choice((0, 15, 30, 45))), "short"
    if kind == "relative":
        unit = rng.choice(RELATIVE_UNITS)
        seconds = {"day": 86400, "week": 604800, "month": 2629800, "year": 31557600, "hour": 3600, "minute": 60}[unit]
        amount = rng.randint(1, 12) * rng.choice((-1, 1))
        return kind, datetime.timedelta(seconds=amount * seconds), unit
    return kind, rng.choice((1, 2, 3, 5, 7, 10, 12, 20, 25, 50, 100, 250, 500, 1000)), rng.choice(UNITS)


def translation_demo(size: int = 6000, source_lang: str = "en", target_lang: str = "fr", seed: int = 0) -> Dataset:
    """`size` distinct (source, target) pairs of CLDR formats, as a dataset with those two columns."""
    check_languages("translation", source_lang, target_lang)
    rng = random.Random(seed)
    pairs: dict[str, str] = {}
    attempts = 0
    while len(pairs) < size and attempts < size * 20:
        attempts += 1
        kind, value, detail = _random_value(rng)
        source, target = (_render(kind, value, locale, detail) for locale in (source_lang, target_lang))
        if detail in source or detail in target:  # a unit this locale has no name for
            continue
        pairs.setdefault(source, target)
    return Dataset.from_dict({"source": list(pairs), "target": list(pairs.values())})


def dates_demo(size: int = 6000, seed: int = 0) -> Dataset:
    """`size` distinct (written date, ISO date) pairs, days uniform in 1950-2049."""
    from babel.dates import format_date

    rng = random.Random(seed)
    first = datetime.date(1950, 1, 1)
    days = (datetime.date(2049, 12, 31) - first).days
    pairs: dict[str, str] = {}
    while len(pairs) < size:
        day = first + datetime.timedelta(days=rng.randint(0, days))
        locale, style = rng.choice(DATE_LOCALES), rng.choice(DATE_STYLES)
        if locale == "es_ES" and style == "short":
            continue
        pairs.setdefault(format_date(day, style, locale=locale), day.isoformat())
    return Dataset.from_dict({"source": list(pairs), "target": list(pairs.values())})


def chat_demo(language: str = "en") -> Dataset:
    """chatterbot-corpus conversations of one language (`en` or `ko`), one row per conversation."""
    check_languages("chat", language, None)
    try:
        import chatterbot_corpus
    except ImportError as error:
        raise TrainingInputError("the chat demo needs chatterbot-corpus: pip install chatterbot-corpus") from error
    folder = os.path.join(os.path.dirname(chatterbot_corpus.__file__), "data", CHAT_LANGUAGES[language])
    if not os.path.isdir(folder):
        raise TrainingInputError(f"this chatterbot-corpus has no {CHAT_LANGUAGES[language]!r} conversations")
    conversations: list[list[str]] = []
    categories: list[str] = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".yml"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            content = yaml.safe_load(handle) or {}
        for conversation in content.get("conversations") or []:
            conversations.append([str(turn) for turn in conversation])
            categories.append(os.path.splitext(name)[0])
    return Dataset.from_dict({"conversation": conversations, "category": categories})


def check_languages(demo: str, source_lang: str | None, target_lang: str | None) -> None:
    """`TrainingInputError` unless the demo speaks these languages (`None`: the demo's default).

    Called when the config is read, so that a wrong language stops the run before anything is loaded.
    """
    if demo == "translation":
        for flag, language in (("source_lang", source_lang or "en"), ("target_lang", target_lang or "fr")):
            if language not in DEMO_LANGUAGES:
                raise TrainingInputError(
                    f"{flag}={language!r}: the translation demo speaks {', '.join(DEMO_LANGUAGES)}"
                )
        if (source_lang or "en") == (target_lang or "fr"):
            raise TrainingInputError("the translation demo needs two different languages")
    elif demo == "chat":
        language = source_lang or "en"
        if language not in CHAT_LANGUAGES:
            raise TrainingInputError(f"source_lang={language!r}: the chat demo speaks {', '.join(CHAT_LANGUAGES)}")
        if target_lang not in (None, language):
            raise TrainingInputError(
                f"target_lang={target_lang!r}: the chat demo replies in its source_lang ({language!r}); "
                "leave --target-lang out or set it to the same language"
            )


def demo_splits(demo: str, source_lang: str | None, target_lang: str | None, size: int, seed: int) -> DatasetDict:
    """The embedded corpus `demo` as a one-split (`train`) `DatasetDict`."""
    if demo == "translation":
        dataset = translation_demo(size, source_lang or "en", target_lang or "fr", seed)
    elif demo == "chat":
        check_languages(demo, source_lang, target_lang)
        dataset = chat_demo(source_lang or "en")
    elif demo == "dates":
        dataset = dates_demo(size, seed)
    else:
        raise TrainingInputError(f"demo={demo!r} is not an embedded corpus; choose one of {', '.join(DEMOS)}")
    return DatasetDict({"train": dataset})


def describe_demo(demo: str, source_lang: str | None, target_lang: str | None) -> str:
    """A sentence for the model card saying what the embedded corpus is."""
    if demo == "translation":
        return (
            f"Unicode CLDR date, time, relative-time and measure formats rendered by Babel, "
            f"{source_lang or 'en'} -> {target_lang or 'fr'} (generated at training time)"
        )
    if demo == "dates":
        return (
            "dates written by Unicode CLDR (Babel) in 4 formats and 5 locales -> ISO 8601 (generated at training time)"
        )
    language = {"en": "English", "ko": "Korean"}.get(source_lang or "en", source_lang)
    return f"{language} conversations of chatterbot-corpus (consecutive turns as prompt/reply pairs)"
