"""Command-line options, declared once as dataclass fields: the one builder of `python -m training.train`,
`training.predict`, `training.average` and `python -m chatbot`, and their one parser (`OptionParser`).

A command declares its options as the fields of a dataclass, as transformers' example scripts do
for `HfArgumentParser`:

    num_beams: int | None = option("beams of beam search (1: greedy search or sampling)", minimum=1)

The type hint says what a value is (`int`, `float`, `str`, `bool`, `Literal[...]` for a closed set,
`list[...]` for a repeatable flag, `| None` where it may be left out, `float | Literal["none"]` for a
number that also takes a word), the field its default, its help and, for a number, its bounds:
`minimum` and `maximum` (included), `above` and `below` (excluded); a bounded float must also be
finite. `add_options` makes each field a flag (`num_beams` -> `--num-beams`) whose `--help` line
adds the type or accepted values, the bounds and the default; `convert` reads a value, from the
command line or from a YAML file, for every command alike: `null` leaves out an optional value,
`true`/`false` (or the bare flag, or `--no-FLAG`) set a switch, `[a, b]` gives a list, and a word the
type declares is that word, in any case (the `none` of `--max-length-a none` is the word, not null).
A value no command could use is an `OptionValueError` that names the option, the value and what it
accepts; on the command line, an `InputError` of one line (exit code 2).
A renamed option keeps its old name for a release (`option(..., deprecated_names=("threads",))`),
which works and warns once on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from dataclasses import field
from typing import Any, Literal, NoReturn

import yaml

# The spellings of a switch's value on the command line (YAML 1.1's booleans).
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NULL_WORDS = ("null", "~", "none")
# The bounds an option may declare: (metadata key, its words in messages and `--help`).
BOUNDS = (("minimum", "at least"), ("above", "greater than"), ("maximum", "at most"), ("below", "less than"))


class InputError(Exception):
    """What the user asked for cannot be done (a bad flag or value, a missing file, ...), not a bug. The
    message is complete on its own, one line naming what was wrong and what to pass instead; a
    command prints it on stderr and exits with code 2."""


class OptionParser(argparse.ArgumentParser):
    """argparse whose errors are an `InputError` that names the flag, what it accepts and where to read
    more (`--help`), rather than a usage block and `sys.exit`: the one parser of every command."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (see {self.prog} --help)")


class OptionValueError(ValueError):
    """A value an option does not accept: `name=value` and what is wrong (`problem`: what it accepts)."""

    def __init__(self, name: str, value: Any, problem: str) -> None:
        super().__init__(f"{name}={value!r}{problem}")
        self.problem = problem


def option(
    help: str,
    default: Any = None,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    required: bool = False,
    metavar: str | None = None,
    deprecated_names: tuple[str, ...] = (),
) -> Any:
    """A command's option: its `--help` text, default, bounds for a number (`minimum`, `maximum`
    included; `above`, `below` excluded) and old names still accepted for a release."""
    metadata = {
        "help": help,
        "minimum": minimum,
        "above": above,
        "maximum": maximum,
        "below": below,
        "required": required,
        "metavar": metavar,
        "deprecated_names": deprecated_names,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def bounds_of(item: dataclasses.Field) -> dict[str, float]:
    """The bounds a field declares (`minimum`, `above`, `maximum`, `below`), for `convert`."""
    return {key: item.metadata[key] for key, _ in BOUNDS if item.metadata.get(key) is not None}


def redeclared(
    item: dataclasses.Field, hint: Any, default: Any = dataclasses.MISSING, prefix: str = "", suffix: str = ""
) -> tuple:
    """A field declared elsewhere, as a `dataclasses.make_dataclass` entry of the same type, help, bounds and
    metavar: its own default unless `default` is given, its help between `prefix` and `suffix`."""
    metadata = {**item.metadata, "help": prefix + item.metadata["help"] + suffix}
    value = default_of(item) if default is dataclasses.MISSING else default
    if isinstance(value, list):
        return item.name, hint, field(default_factory=lambda: list(value), metadata=metadata)
    return item.name, hint, field(default=value, metadata=metadata)


def _members(hint: Any) -> tuple[Any, ...]:
    """The members of a union type (`int | None` -> (int, NoneType)), or the type alone."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def words(hint: Any) -> tuple[Any, ...]:
    """The values of the `Literal[...]` members of `hint`: a closed set's choices, or the words an
    open type declares beside its numbers (`float | Literal["none"] | None` -> ("none",))."""
    return tuple(
        value for member in _members(hint) if typing.get_origin(member) is Literal for value in typing.get_args(member)
    )


def choices(hint: Any) -> tuple[Any, ...] | None:
    """The values a `Literal[...]` type accepts (None included where it is optional), else None (also for
    a type that takes other values beside its words, such as `float | Literal["none"]`)."""
    others = [member for member in _members(hint) if typing.get_origin(member) is not Literal]
    if not words(hint) or any(member is not type(None) for member in others):
        return None
    return words(hint) + ((None,) if others else ())


def _free_text(hint: Any) -> bool:
    """Whether any string is a value (`str`, `str | None`), not only declared words."""
    return str in _members(hint)


def accepted_types(hint: Any) -> tuple[type, ...]:
    """The runtime types a value may have (`int | None` -> (int, NoneType), `list[str]` -> (list,))."""
    accepted: list[type] = []
    for member in _members(hint):
        if typing.get_origin(member) is Literal:
            accepted.extend(type(value) for value in typing.get_args(member))
        else:
            accepted.append(typing.get_origin(member) or member)
    return tuple(dict.fromkeys(accepted))


def describe(hint: Any) -> str:
    """What a value of `hint` is, for `--help` and messages: "one of bpe, char", "int or null"."""
    accepted = choices(hint)
    if accepted is not None:
        return "one of " + ", ".join("null" if value is None else str(value) for value in accepted)
    names: list[str] = []
    for member in _members(hint):
        if typing.get_origin(member) is Literal:
            names.extend(str(value) for value in typing.get_args(member))
        else:
            names.append("null" if member is type(None) else (typing.get_origin(member) or member).__name__)
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def convert(name: str, value: Any, hint: Any, **bounds: float) -> Any:
    """`value` (a command-line string, or a value read from YAML) as option `name` of type `hint`
    within `bounds` (`minimum`, `above`, `maximum`, `below`: `bounds_of(field)`), or `OptionValueError`."""
    accepted = accepted_types(hint)
    literal = choices(hint)
    declared = words(hint)
    word = _declared_word(value, declared)
    if isinstance(value, str) and value.strip() in ("null", "~") and type(None) in accepted:
        value = None  # `--validation-split null`; a free-text option keeps every other word
    elif word is not None:
        value = word  # a word the option declares wins over the null words (`--max-length-a none`)
    elif isinstance(value, str) and not _free_text(hint):
        value = _read_text(value, accepted)
    if value is None:
        if type(None) in accepted:
            return None
        raise OptionValueError(name, None, f": expected {describe(hint)}")
    if isinstance(value, bool) and bool not in accepted and declared:
        value = _spelled(value, declared)
    value = _as_type(name, value, hint, accepted)
    if literal is not None and value not in literal:
        names = ", ".join(str(choice) for choice in literal if choice is not None)
        raise OptionValueError(name, value, f" is not supported; accepted values: {names}")
    if isinstance(value, str) and not _free_text(hint) and value not in declared:
        raise OptionValueError(name, value, f": expected {describe(hint)}")  # a number's option: its words only
    _check_bounds(name, value, bounds)
    return value


def _declared_word(value: Any, declared: tuple[Any, ...]) -> Any:
    """The word of `declared` that the string `value` spells, in any case (`None` -> "none"), else None."""
    if not isinstance(value, str):
        return None
    spelled = value.strip().lower()
    return next((word for word in declared if isinstance(word, str) and word.lower() == spelled), None)


def _read_text(text: str, accepted: tuple[type, ...]) -> Any:
    """A command-line word as the value it spells, for an option that is not free text."""
    lowered = text.strip().lower()
    if lowered in NULL_WORDS and type(None) in accepted:
        return None
    if bool in accepted and lowered in TRUE_WORDS + FALSE_WORDS:
        return lowered in TRUE_WORDS
    if list in accepted:
        return yaml.safe_load(text) if text.lstrip().startswith("[") else [text]
    for kind in (int, float):
        if kind in accepted:
            try:
                return kind(text)
            except ValueError:
                continue
    return text


def _spelled(value: bool, literal: tuple[Any, ...]) -> Any:
    """The word of `literal` that YAML 1.1 read as the boolean `value` (`mixed_precision: no` -> "no")."""
    words = TRUE_WORDS if value else FALSE_WORDS
    return next((choice for choice in literal if isinstance(choice, str) and choice.lower() in words), value)


def _as_type(name: str, value: Any, hint: Any, accepted: tuple[type, ...]) -> Any:
    """`value` as one of the `accepted` types, where it reads as one without loss."""
    wrong = OptionValueError(name, value, f": expected {describe(hint)}")
    if isinstance(value, bool):
        if bool in accepted:
            return value
        raise wrong
    if float in accepted and isinstance(value, int):
        return float(value)
    if _free_text(hint) and isinstance(value, (int, float)):
        return str(value)  # e.g. --dataset-config 2014
    if list in accepted and isinstance(value, str):
        return [value]
    if not isinstance(value, tuple(kind for kind in accepted if kind is not type(None))):
        raise wrong
    return value


def bounds_text(bounds: dict[str, float]) -> str:
    """The declared bounds in words: "at least 1", "greater than 0 and at most 1"; "" for none."""
    return " and ".join(f"{words} {bounds[key]:g}" for key, words in BOUNDS if bounds.get(key) is not None)


def _within(value: float, bounds: dict[str, float]) -> bool:
    tests = {
        "minimum": lambda bound: value >= bound,
        "above": lambda bound: value > bound,
        "maximum": lambda bound: value <= bound,
        "below": lambda bound: value < bound,
    }
    return all(tests[key](bound) for key, bound in bounds.items() if bound is not None)


def _check_bounds(name: str, value: Any, bounds: dict[str, float]) -> None:
    """Refuse a number outside `bounds`, and a bounded float that is not finite (NaN passes no comparison)."""
    text = bounds_text(bounds)
    if not text or isinstance(value, (bool, str, list)) or value is None:
        return
    text = f"of {text}" if text.startswith("at ") else text  # "a number of at least 0", "a number greater than 0"
    if isinstance(value, int):
        if not _within(value, bounds):
            raise OptionValueError(name, value, f": expected a whole number {text}")
    elif not (math.isfinite(value) and _within(value, bounds)):
        raise OptionValueError(name, value, f": expected a number {text}")


def type_hints(settings: type) -> dict[str, Any]:
    """Each field's resolved type (the annotations of `settings` and of the classes it inherits)."""
    namespace: dict[str, Any] = {}
    for cls in reversed(settings.__mro__):
        namespace.update(vars(sys.modules[cls.__module__]))
    return typing.get_type_hints(settings, globalns=namespace)


def default_of(item: dataclasses.Field) -> Any:
    """A field's default (a fresh one where it has a factory)."""
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


def help_line(item: dataclasses.Field, hint: Any) -> str:
    """A flag's `--help` line: its text, its type or accepted values, its bounds, and its default."""
    default = default_of(item)
    shown = "null" if default is None else default
    bounds = bounds_text(bounds_of(item))
    tail = "required" if item.metadata.get("required") else f"default: {shown}"
    return f"{item.metadata['help']} ({describe(hint)}{', ' + bounds if bounds else ''}; {tail})".replace("%", "%%")


class _Switch(argparse.Action):
    """`--flag` (true), `--flag VALUE` (true/false, yes/no, ...) and `--no-flag` (false, left out of
    `--help`) for a bool option."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if option_string.startswith("--no-"):
            setattr(namespace, self.dest, False)
        else:
            setattr(namespace, self.dest, True if values is None else values)


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings: type,
    names: typing.Iterable[str] | None = None,
    *,
    keep_defaults: bool = True,
) -> None:
    """Add the fields of dataclass `settings` with help (those in `names`, in that order) as flags of `parser`.

    `keep_defaults=False` leaves a flag not given out of the parsed namespace, for a command that
    lays the flags over values from elsewhere (a YAML file)."""
    hints = type_hints(settings)
    fields = {item.name: item for item in dataclasses.fields(settings)}
    for item in (fields[name] for name in names) if names is not None else fields.values():
        if item.metadata.get("help") is None:
            continue
        hint = hints[item.name]
        flag = "--" + item.name.replace("_", "-")
        arguments: dict[str, Any] = {
            "dest": item.name,
            "help": help_line(item, hint),
            "type": _reader(item.name, hint, bounds_of(item)),
            "metavar": item.metadata.get("metavar") or "VALUE",
        }
        if item.metadata.get("required"):
            arguments["required"] = True
        else:
            arguments["default"] = default_of(item) if keep_defaults else argparse.SUPPRESS
        if bool in accepted_types(hint):
            parser.add_argument(flag, action=_Switch, nargs="?", **arguments)
            hidden = {"dest": item.name, "default": arguments.get("default"), "help": argparse.SUPPRESS}
            parser.add_argument("--no-" + flag[2:], action=_Switch, nargs=0, **hidden)
        elif list in accepted_types(hint):
            parser.add_argument(flag, action="extend", **arguments)  # repeatable; `[a, b]` gives several
        else:
            parser.add_argument(flag, **arguments)
        for old in item.metadata.get("deprecated_names") or ():
            hidden = {**arguments, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS}
            parser.add_argument("--" + old.replace("_", "-"), action=_Deprecated, new_flag=flag, **hidden)


class _Deprecated(argparse._StoreAction):
    """An option's old name: stores the value as the new name does, with one line on stderr (once per
    parse) saying that it is renamed, as argparse's own `deprecated=True` (Python 3.13) warns."""

    def __init__(self, *args: Any, new_flag: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new_flag = new_flag
        self.warned = False

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if not self.warned:
            self.warned = True
            sys.stderr.write(
                f"warning: {option_string} is renamed {self.new_flag}; the old name goes in the next release\n"
            )
        super().__call__(parser, namespace, values, option_string)


def _reader(name: str, hint: Any, bounds: dict[str, float]) -> typing.Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return convert(name, text, hint, **bounds)
        except OptionValueError as error:  # argparse names the flag: "argument --top-p: '1.5' must be ..."
            raise argparse.ArgumentTypeError(f"{text!r}{error.problem}") from error

    read.__name__ = describe(hint)  # what argparse names in its own messages
    return read


def from_namespace(settings: type, namespace: argparse.Namespace) -> Any:
    """The `settings` dataclass of a parsed namespace (fields the parser lacks keep their defaults)."""
    names = {item.name for item in dataclasses.fields(settings)}
    return settings(**{key: value for key, value in vars(namespace).items() if key in names})


__all__ = [
    "InputError",
    "OptionParser",
    "OptionValueError",
    "add_options",
    "bounds_of",
    "bounds_text",
    "choices",
    "convert",
    "describe",
    "from_namespace",
    "help_line",
    "option",
    "redeclared",
    "type_hints",
    "words",
]
