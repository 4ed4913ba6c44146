"""Step-based schedules (pure functions of the optimiser step, so resuming needs no state)."""
from __future__ import annotations


def linear_ramp(step: int, start: float, end: float, steps: int) -> float:
    """``start`` at step 0, linearly to ``end`` at ``steps``, constant afterwards (``steps <= 0``: ``end``)."""
    if steps <= 0 or step >= steps:
        return end
    return start + (end - start) * step / steps


def staircase_decay(step: int, rate: float, every: int | None) -> float:
    """Learning-rate factor ``rate ** (step // every)`` at optimiser ``step`` (TensorFlow's staircase
    ``exponential_decay``); ``every`` None: 1.0 (no decay)."""
    return 1.0 if every is None else rate ** (step // every)
