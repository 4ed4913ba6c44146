"""Training callbacks: progress bar, NaN/inf guard, periodic checkpoints.

A callback may implement any of ``on_train_begin(trainer, steps)``,
``on_loss(trainer, logs)`` (after the loss, before the parameter update: raising
here leaves the parameters untouched), ``on_step_end(trainer, logs)``,
``on_evaluation(trainer, scores, seconds)`` (after a periodic evaluation, for every callback: see
:class:`~dynrep.training.evaluation.PeriodicEvaluation`) and
``on_train_end(trainer, reason)`` where ``reason`` is ``"steps"``, ``"time_limit"``, ``"interrupted"``
(SIGINT or SIGTERM) or ``"non_finite"`` (a NaN/inf loss; the parameters are the last finite step's).
"""
from __future__ import annotations

import math
import sys
from typing import Callable

from tqdm.auto import tqdm

from dynrep.checks import check_int


class Callback:
    """Base class with no-op hooks."""

    #: True for callbacks that write files or print (progress, checkpoints, loggers): under torchrun they run
    #: on rank 0 alone (:func:`dynrep.training.distributed.callbacks_for_rank`); the others run on every rank.
    main_process_only: bool = False

    def on_train_begin(self, trainer, steps: int) -> None:
        pass

    def on_loss(self, trainer, logs: dict[str, float]) -> None:
        pass

    def on_step_end(self, trainer, logs: dict[str, float]) -> None:
        pass

    def on_evaluation(self, trainer, scores: dict[str, float], seconds: float) -> None:
        """``scores`` of an evaluation at ``trainer.step`` that took ``seconds`` of wall-clock time (loggers
        leave that time out of their steps/s)."""

    def on_train_end(self, trainer, reason: str) -> None:
        pass


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the parameters are left as they were before that step."""


class NaNGuard(Callback):
    """Stops training with :class:`NonFiniteLossError` naming the step and the first non-finite term."""

    def on_loss(self, trainer, logs: dict[str, float]) -> None:
        # The components first: a NaN term also makes the total NaN, and the term is the news.
        for name, value in sorted(logs.items(), key=lambda item: item[0] == "loss"):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"loss term {name!r} is {value} at step {trainer.step}; training stopped before the "
                    f"update, so the model keeps its step-{trainer.step} parameters (all terms: {logs})")


class ProgressBar(Callback):
    """tqdm bar over the steps of one ``train`` call, showing the loss terms every ``every`` steps."""

    main_process_only = True

    def __init__(self, every: int = 10):
        self.every = every
        self.bar = None

    def on_train_begin(self, trainer, steps: int) -> None:
        # Redraw often on a terminal, rarely in a log file (CI, nohup), where every redraw is kept.
        interval = 0.1 if sys.stderr.isatty() else 10.0
        self.bar = tqdm(total=steps, desc=f"train {trainer.model.model_name}", unit="step", dynamic_ncols=True,
                        mininterval=interval)

    def on_step_end(self, trainer, logs: dict[str, float]) -> None:
        self.bar.update(1)
        if trainer.step % self.every == 0:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)

    def on_train_end(self, trainer, reason: str) -> None:
        messages = {"time_limit": "time limit reached", "interrupted": "interrupted",
                    "non_finite": "stopped by a non-finite loss"}
        if reason in messages:
            self.bar.write(f"{messages[reason]} at step {trainer.step}")
        self.bar.close()


class Checkpoint(Callback):
    """Calls ``save()`` every ``every`` steps (if given) and when training ends, whatever the reason (an
    interruption and a non-finite loss included: the state saved then is the last finite step's)."""

    main_process_only = True

    def __init__(self, save: Callable[[], None], every: int | None = None):
        self.save = save
        self.every = None if every is None else check_int("checkpoint_every", every, 1)
        self.saved_step: int | None = None

    def _save(self, trainer) -> None:
        self.save()
        self.saved_step = trainer.step

    def on_step_end(self, trainer, logs: dict[str, float]) -> None:
        if self.every and trainer.step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer, reason: str) -> None:
        if self.saved_step != trainer.step:
            self._save(trainer)
