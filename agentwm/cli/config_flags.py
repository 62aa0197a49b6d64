"""Command-line flags generated from a pydantic config, so each default and help text is written once.

As CleanRL's ``Args`` docstrings become ``--help``, every field of a config with a flag-friendly
type becomes ``--field-name`` with the field's ``description`` and default as its help. Fields of
other types (dicts, nested models) are reachable through ``--set key=value`` (``key.sub=value``
for one level down). Flags default to "not given", so only what the user types overrides the
config's own defaults (or a resumed run's saved settings).
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

_SIMPLE: dict[type, Any] = {int: int, float: float, str: str}


class DeprecatedFlag(argparse.Action):
    """A hidden old flag name: stores into the new flag's field and says so on stderr, in one line."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None
    ) -> None:
        print(f"agentwm: DeprecationWarning: {option_string} is deprecated, use {self.new} "
              "(the old name goes in the next release)", file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def flag_kwargs(annotation: Any) -> dict[str, Any] | None:
    """argparse keywords (type, choices, nargs or action) for a field type; None where only ``--set`` fits."""
    annotation = _strip_optional(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal and args and len({type(a) for a in args}) == 1 and type(args[0]) in _SIMPLE:
        return {"type": _SIMPLE[type(args[0])], "choices": list(args)}
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis and args[0] in _SIMPLE:
            return {"type": _SIMPLE[args[0]], "nargs": "+"}
        if len(set(args)) == 1 and args[0] in _SIMPLE:
            return {"type": _SIMPLE[args[0]], "nargs": len(args)}
    return None


def field_help(config: type[BaseModel], name: str, prefix: str = "") -> str:
    """The field's description and default, escaped for argparse's %-formatting."""
    field = config.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, tuple):
        default = " ".join(map(str, default))
    text = f"{prefix}{field.description or name.replace('_', ' ')} (default: {default})"
    return text.replace("%", "%%")


def add_field_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config: type[BaseModel],
    name: str,
    flag: str | None = None,
    *,
    aliases: Sequence[str] = (),
    prefix: str = "",
) -> bool:
    """``--field-name`` (or ``flag``) for one field, ``dest`` = the field name, absent unless given; a
    ``flag`` other than the field's own name keeps the own name as a hidden deprecated alias.
    False where the field's type has no flag form (then only ``--set`` reaches it)."""
    kwargs = flag_kwargs(config.model_fields[name].annotation)
    if kwargs is None:
        return False
    own = "--" + name.replace("_", "-")
    flag = flag or own
    plain = "choices" not in kwargs and "action" not in kwargs
    metavar: dict[str, Any] = {"metavar": flag.lstrip("-").replace("-", "_").upper()} if plain else {}
    parser.add_argument(flag, *aliases, dest=name, default=argparse.SUPPRESS, help=field_help(config, name, prefix),
                        **kwargs, **metavar)  # fmt: skip
    if flag != own:
        add_deprecated(parser, own, flag, name, **kwargs)
    return True


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config: type[BaseModel],
    *,
    skip: Collection[str] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """One flag per flag-friendly field of ``config`` (see ``add_field_flag``), except those in ``skip``."""
    for name in config.model_fields:
        if name not in skip:
            add_field_flag(parser, config, name, aliases=(aliases or {}).get(name, ()))


def add_deprecated(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    old: str,
    new: str,
    dest: str,
    **kwargs: Any,
) -> None:
    """``old`` keeps working for one release, hidden from ``--help``, with a note on stderr."""
    parser.add_argument(old, dest=dest, action=DeprecatedFlag, new=new, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **{k: v for k, v in kwargs.items() if k != "action"})  # fmt: skip


def given_fields(args: argparse.Namespace, config: type[BaseModel]) -> dict[str, Any]:
    """The config fields given as flags (absent flags leave the config's defaults in place)."""
    return {k: getattr(args, k) for k in config.model_fields if hasattr(args, k)}


def apply_sets(config: type[BaseModel], values: dict[str, Any], sets: Sequence[str] | None) -> dict[str, Any]:
    """``values`` with each ``--set key=value`` applied (``key.sub=value`` sets one entry of a dict or
    nested config); raises ``ValueError`` naming an unknown key."""
    from agentwm.agents.overrides import parse_override

    values = dict(values)
    for text in sets or []:
        key, value = parse_override(text)
        key = key.replace("-", "_")
        head, _, sub = key.partition(".")
        if head not in config.model_fields:
            raise ValueError(f"--set {key}: {config.__name__} has no setting {head!r} (--help lists them)")
        if not sub:
            values[head] = value
            continue
        current = values.get(head, config.model_fields[head].get_default(call_default_factory=True))
        if isinstance(current, BaseModel):
            current = current.model_dump()
        if not isinstance(current, dict):
            raise TypeError(f"--set {key}: {head!r} is not a group of settings; use --set {head}=VALUE")
        values[head] = {**current, sub: value}
    return values


def one_line(err: ValidationError) -> str:
    """A pydantic error as one line: ``field: message (got value)`` per problem."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        got = repr(e.get("input"))
        got = f" (got {got})" if loc and len(got) <= 60 else ""
        parts.append(f"{loc + ': ' if loc else ''}{e['msg']}{got}")
    return "; ".join(parts)
