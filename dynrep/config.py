"""Dataclass <-> dict/JSON round trip with clear errors for unknown or mistyped keys."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict (tuples become lists) of a config dataclass, ready for JSON."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type[T], values: dict[str, Any], what: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys raise ValueError listing the allowed ones.

    Lists are turned back into tuples where the field's default is a tuple, so
    ``config_from_dict(C, config_to_dict(c)) == c``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {what} option(s) {unknown}; allowed: {sorted(fields)}")
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved here: the dataclass checks alone
        hints = {}
    converted = {}
    for name, value in values.items():
        if name in hints and not fits_type(value, hints[name]):
            raise ValueError(f"{what} option {name} must be of type {fields[name].type}, got {value!r}")
        default = fields[name].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        converted[name] = value
    return cls(**converted)


def fits_type(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from Python or JSON: lists for tuples, ints for floats) fits type ``hint``; types
    this does not know (Any, classes) match anything, leaving the finer checks to the dataclass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits_type(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint in (bool, int, float, str):
        if isinstance(value, bool):
            return hint is bool
        return isinstance(value, (int, float) if hint is float else hint)
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(fits_type, value, args))
        return not args or all(fits_type(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True
