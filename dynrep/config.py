"""Dataclass <-> dict/JSON round trip with clear errors for unknown or mistyped keys."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
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
    converted = {}
    for name, value in values.items():
        default = fields[name].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        converted[name] = value
    return cls(**converted)


def write_json_atomic(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON to ``path`` through a temporary file and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    tmp.replace(path)
