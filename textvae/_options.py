"""Command-line flags generated from the option dataclasses' fields, so they cannot drift.

A config field declares its flag where it declares its default, with :func:`option`: the help
text, the unit, the ``--help`` group, the flag names (the first is the one shown first; an old
name stays as a second), the choices. :func:`add_flags` turns every field of a config class,
nested ones flattened (:func:`nested`), into an ``argparse`` argument whose default is the
field's default and whose help ends ``(UNIT; default X)``. :func:`parse_given` tells the flags
given on the command line from the ones left at their default, so a preset or a saved config
file can sit between the two; :func:`build` makes the config from those values.

Hand-written rather than a library (tyro, jsonargparse, simple-parsing): about a hundred lines
that keep ``argparse``'s parser (one-line usage errors, old flag names, positional arguments)
and add no dependency to the core install.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from textvae.errors import InvalidArgumentError

__all__ = [
    "GROUPS",
    "Flag",
    "add_flags",
    "build",
    "flag",
    "flags_of",
    "flatten",
    "key_value",
    "nested",
    "option",
    "parse_given",
]

#: The ``--help`` sections, in the order shown.
GROUPS = {
    "data": "data: where the reviews come from and how they are shaped",
    "model": "model: the VAE's sizes and loss weights",
    "training": "training: the optimisation schedule",
    "checkpoints": "checkpoints: saving and resuming mid-run",
    "ingest": "ingest: how the store is written",
    "output": "output: where results go and what is printed",
}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_METAVARS = {int: "N", float: "X", str: "PATH"}
#: Stands in the namespace for "flag not given" (argparse leaves a preset attribute alone).
_NOT_GIVEN = object()


def flag(
    *,
    help: str,
    group: str,
    unit: str | None = None,
    flags: Sequence[str] = (),
    choices: Sequence[Any] | None = None,
    none: str | None = None,
    metavar: str | None = None,
    key_values: bool = False,
) -> dict[str, Any]:
    """The metadata of a field's flag (what :func:`option` stores on the field).

    ``help`` says what the value does; ``unit`` what it counts (ids, reviews, minutes, ...);
    ``group`` is its ``--help`` section (a key of :data:`GROUPS`, or ``"positional"`` for a
    required positional argument); ``flags`` its names (default ``--field-name``); ``none``
    what a ``None`` default means ("all", "all cores"); ``key_values`` makes it a repeatable
    ``KEY=VALUE`` flag collected into a dict.
    """
    if group != "positional" and group not in GROUPS:
        raise ValueError(f"unknown flag group {group!r}: one of {sorted(GROUPS)}")
    return {
        "help": help,
        "group": group,
        "unit": unit,
        "flags": tuple(flags),
        "choices": None if choices is None else tuple(choices),
        "none": none,
        "metavar": metavar,
        "key_values": key_values,
    }


def option(default: Any = dataclasses.MISSING, *, hash: bool = True, **meta: Any) -> Any:
    """A dataclass field with ``default`` and the flag that sets it (``meta``: see
    :func:`flag`). ``hash=False`` leaves the field out of the config's hash."""
    return dataclasses.field(default=default, hash=hash, metadata=flag(**meta))


def nested(flags: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The metadata of a field that holds a config (``field(default_factory=Cls,
    metadata=nested())``), whose fields become flags of their own; ``flags`` gives them their
    metadata (a field name -> :func:`flag`'s result) where the class declares none."""
    return {"nested": dict(flags or {})}


@dataclasses.dataclass(frozen=True)
class Flag:
    """One generated flag: the config field ``name``, its ``default`` and :func:`option` data."""

    name: str
    default: Any
    meta: Mapping[str, Any]
    type: type | None

    @property
    def names(self) -> tuple[str, ...]:
        """The flag's option strings: its ``flags``, or ``--field-name``."""
        return self.meta["flags"] or ("--" + self.name.replace("_", "-"),)

    def shown_default(self) -> str:
        """The default as ``--help`` shows it."""
        if self.default is None:
            return self.meta["none"] or "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return str(self.default)

    def help(self) -> str:
        """The ``--help`` text: the field's help, then ``(UNIT; default X)``."""
        unit = f"{self.meta['unit']}; " if self.meta["unit"] else ""
        text = f"{self.meta['help']} ({unit}default {self.shown_default()})"
        return text.replace("%", "%%")  # argparse %-formats help


def _field_type(field: dataclasses.Field) -> type | None:
    annotation = field.type if isinstance(field.type, str) else field.type.__name__
    return _TYPES.get(annotation.split("|")[0].strip())


def flags_of(cls: type, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[Flag]:
    """Every flag of config class ``cls``, the fields of nested configs flattened."""
    found = []
    for field in dataclasses.fields(cls):
        meta = (overrides or {}).get(field.name) or field.metadata
        if "nested" in meta:
            found += flags_of(field.default_factory, meta["nested"])
        elif "help" in meta:
            found.append(Flag(field.name, field.default, meta, _field_type(field)))
    return found


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value); VALUE is JSON-decoded when it parses (true, 3, {...})."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r}")
    try:
        decoded: Any = json.loads(value)
    except ValueError:
        decoded = value
    return key.strip(), decoded


def add_flag(container: Any, flag: Flag) -> argparse.Action:
    """Add ``flag`` to ``container`` (a parser or one of its argument groups)."""
    meta = flag.meta
    if meta["group"] == "positional":
        return container.add_argument(flag.name, help=meta["help"], metavar=meta["metavar"])
    kwargs: dict[str, Any] = {"dest": flag.name, "default": flag.default}
    if meta["key_values"]:
        kwargs.update(action="append", type=key_value, metavar=meta["metavar"] or "KEY=VALUE")
    elif flag.type is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        metavar = meta["metavar"] or _METAVARS.get(flag.type)
        kwargs.update(
            type=flag.type, choices=meta["choices"], metavar=None if meta["choices"] else metavar
        )
    action = container.add_argument(*flag.names, **kwargs)
    action.help = flag.help()  # after: BooleanOptionalAction appends its own "(default: ...)"
    return action


def add_flags(parser: argparse.ArgumentParser, cls: type, extra: Iterable[Flag] = ()) -> list[Flag]:
    """Add a flag for every field of ``cls`` to ``parser``, in :data:`GROUPS` sections.

    ``extra`` flags belong to the command, not to the config (``--show-backend-log``): they
    join their sections and keep argparse's own default handling. Returns ``cls``'s flags.
    """
    flags = flags_of(cls)
    extra = list(extra)
    used = {flag.meta["group"] for flag in [*flags, *extra]}
    groups = {
        name: parser.add_argument_group(title) for name, title in GROUPS.items() if name in used
    }
    for flag in [*flags, *extra]:
        add_flag(parser if flag.meta["group"] == "positional" else groups[flag.meta["group"]], flag)
    return flags


def parse_given(
    parser: argparse.ArgumentParser, flags: Iterable[Flag], argv: Sequence[str] | None
) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse ``argv``; also return the config values given on it (positional ones included),
    leaving out flags at their default. ``KEY=VALUE`` flags come back as a dict."""
    preset = argparse.Namespace()
    for flag in flags:
        if flag.meta["group"] != "positional":
            setattr(preset, flag.name, None if flag.meta["key_values"] else _NOT_GIVEN)
    args = parser.parse_args(argv, namespace=preset)
    given = {}
    for flag in flags:
        value = getattr(args, flag.name)
        if value is _NOT_GIVEN or (value is None and flag.meta["key_values"]):
            setattr(args, flag.name, flag.default)
        else:
            given[flag.name] = dict(value) if flag.meta["key_values"] else value
    return args, given


def flatten(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a config's fields as plain data, as ``dataclasses.asdict`` gives them) with the
    fields of its nested configs spread out under their own names, as :func:`build` takes them."""
    flat = dict(data)
    for field in dataclasses.fields(cls):
        if "nested" in field.metadata and field.name in flat:
            inner = flat.pop(field.name)
            if not isinstance(inner, Mapping):
                raise InvalidArgumentError(
                    f"`{field.name}` must be a mapping of its settings. "
                    f"Received: {field.name}={inner!r}"
                )
            flat.update(flatten(field.default_factory, inner))
    return flat


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """A ``cls`` built from ``values``: field names, the fields of its nested configs among
    them (a nested config is its default with those values replaced)."""
    values = dict(values)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if "nested" in field.metadata:
            names = {f.name for f in dataclasses.fields(field.default_factory)}
            inner = {name: values.pop(name) for name in list(values) if name in names}
            if inner:
                kwargs[field.name] = dataclasses.replace(field.default_factory(), **inner)
        elif field.name in values:
            kwargs[field.name] = values.pop(field.name)
    if values:
        raise InvalidArgumentError(
            f"{cls.__name__} has no setting {sorted(values)[0]!r}. Its settings: "
            + ", ".join(sorted(flag.name for flag in flags_of(cls)))
        )
    return cls(**kwargs)
