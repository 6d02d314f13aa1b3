"""Command-line options, declared once as dataclass fields: the one builder of `python -m training.train`,
`training.predict`, `training.average` and `python -m chatbot`.

A command declares its options as the fields of a dataclass, as transformers' example scripts do
for `HfArgumentParser`:

    num_beams: int | None = option("beams of beam search (1: greedy or sampling)", minimum=1)

The type hint says what a value is (`int`, `float`, `str`, `bool`, `Literal[...]` for a closed set,
`list[...]` for a repeatable flag, `| None` where it may be left out), the field its default, its
help and, for a number, the least value accepted. `add_options` makes each field a flag
(`num_beams` -> `--num-beams`) whose `--help` line adds the type or accepted values and the default;
`convert` reads a value, from the command line or from a YAML file, for every command alike:
`null` leaves out an optional value, `true`/`false` (or the bare flag, or `--no-FLAG`) set a
switch, `[a, b]` gives a list. A value no command could use is an `OptionValueError` that names the
option, the value and what it accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from dataclasses import field
from typing import Any, Literal

import yaml

# The spellings of a switch's value on the command line (YAML 1.1's booleans).
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NULL_WORDS = ("null", "~", "none")


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
    required: bool = False,
    metavar: str | None = None,
) -> Any:
    """A command's option: its `--help` text, default and, for a number, the least value accepted."""
    metadata = {"help": help, "minimum": minimum, "required": required, "metavar": metavar}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _members(hint: Any) -> tuple[Any, ...]:
    """The members of a union type (`int | None` -> (int, NoneType)), or the type alone."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def choices(hint: Any) -> tuple[Any, ...] | None:
    """The values a `Literal[...]` type accepts (None included where it is optional), else None."""
    literals = [member for member in _members(hint) if typing.get_origin(member) is Literal]
    if not literals:
        return None
    optional = type(None) in _members(hint)
    return tuple(value for literal in literals for value in typing.get_args(literal)) + ((None,) if optional else ())


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
    return " or ".join("null" if kind is type(None) else kind.__name__ for kind in accepted_types(hint))


def convert(name: str, value: Any, hint: Any, minimum: float | None = None) -> Any:
    """`value` (a command-line string, or a value read from YAML) as option `name` of type `hint`,
    or `OptionValueError`."""
    accepted = accepted_types(hint)
    literal = choices(hint)
    if isinstance(value, str) and value.strip() in ("null", "~") and type(None) in accepted:
        value = None  # `--validation-split null`; a free-text option keeps every other word
    elif isinstance(value, str) and not (str in accepted and (literal is None or value in literal)):
        value = _read_text(value, accepted)
    if value is None:
        if type(None) in accepted:
            return None
        raise OptionValueError(name, None, f": expected {describe(hint)}")
    if isinstance(value, bool) and bool not in accepted and literal is not None:
        value = _spelled(value, literal)
    value = _as_type(name, value, hint, accepted)
    if literal is not None and value not in literal:
        names = ", ".join(str(choice) for choice in literal if choice is not None)
        raise OptionValueError(name, value, f" is not supported; accepted values: {names}")
    _check_minimum(name, value, minimum)
    return value


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
    if str in accepted and isinstance(value, (int, float)) and choices(hint) is None:
        return str(value)  # e.g. --dataset-config 2014
    if list in accepted and isinstance(value, str):
        return [value]
    if not isinstance(value, tuple(kind for kind in accepted if kind is not type(None))):
        raise wrong
    return value


def _check_minimum(name: str, value: Any, minimum: float | None) -> None:
    if minimum is None or isinstance(value, (bool, str, list)):
        return
    if isinstance(value, int):
        if value < minimum:
            raise OptionValueError(name, value, f" must be an integer >= {minimum:g}")
    elif not (math.isfinite(value) and value >= minimum):
        raise OptionValueError(name, value, f" must be a number of at least {minimum:g}")


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
    """A flag's `--help` line: its text, its type or accepted values, its least value, and its default."""
    default = default_of(item)
    shown = "null" if default is None else default
    least = "" if item.metadata.get("minimum") is None else f", at least {item.metadata['minimum']:g}"
    tail = "required" if item.metadata.get("required") else f"default: {shown}"
    return f"{item.metadata['help']} ({describe(hint)}{least}; {tail})".replace("%", "%%")


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
            "type": _reader(item.name, hint, item.metadata.get("minimum")),
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


def _reader(name: str, hint: Any, minimum: float | None) -> typing.Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return convert(name, text, hint, minimum)
        except OptionValueError as error:  # argparse names the flag: "argument --top-p: '1.5' must be ..."
            raise argparse.ArgumentTypeError(f"{text!r}{error.problem}") from error

    read.__name__ = describe(hint)  # what argparse names in its own messages
    return read


def from_namespace(settings: type, namespace: argparse.Namespace) -> Any:
    """The `settings` dataclass of a parsed namespace (fields the parser lacks keep their defaults)."""
    names = {item.name for item in dataclasses.fields(settings)}
    return settings(**{key: value for key, value in vars(namespace).items() if key in names})


__all__ = [
    "OptionValueError",
    "add_options",
    "choices",
    "convert",
    "describe",
    "from_namespace",
    "help_line",
    "option",
    "type_hints",
]
