"""Argument checks shared by every layer (environments, models, training, data, metrics)."""
from __future__ import annotations

from typing import Any

import numpy as np


#: The trainer's ``autocast`` settings: None (float32 throughout) or ``"bf16"`` (``torch.autocast`` to bfloat16).
AUTOCAST = (None, "bf16")


def check_autocast(name: str, value: Any) -> str | None:
    """Validate a trainer ``autocast`` setting (one of :data:`AUTOCAST`); raise ValueError naming it otherwise."""
    if not (value is None or isinstance(value, str)) or value not in AUTOCAST:
        raise ValueError(f"{name} must be one of {AUTOCAST}, got {value!r}")
    return value


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return ``rng`` if it is a Generator, else a new PCG64 Generator seeded with it."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """Validate an integer argument; raise ValueError naming it and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    upper = "" if maximum is None else f" and <= {maximum}"
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be >= {minimum}{upper}, got {value}")
    return int(value)


def check_seconds(name: str, value: Any) -> float | None:
    """Validate a duration: None, or a positive finite real number of seconds (not a string or a bool)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive finite number of seconds or None, got {value!r}")
    return float(value)
