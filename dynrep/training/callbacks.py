"""Training callbacks: progress bar, periodic checkpoints, the non-finite loss error.

A callback may implement any of ``on_train_begin(trainer, steps)``,
``on_loss(trainer, logs)`` (after the loss, before the parameter update: raising
here leaves the parameters untouched), ``on_step_end(trainer, logs)`` (``logs``: the step's loss terms, a
read-only mapping whose values wait for the device when first read, ``dict(logs)`` for a plain dict: see
:attr:`Callback.lazy_logs`),
``on_evaluation(trainer, scores, seconds)`` (after a periodic evaluation, for every callback: see
:class:`~dynrep.training.evaluation.PeriodicEvaluation`) and
``on_train_end(trainer, reason)`` where ``reason`` is ``"steps"``, ``"time_limit"``, ``"interrupted"``
(SIGINT or SIGTERM) or ``"non_finite"`` (a NaN/inf loss; the parameters are the last finite step's).
"""
from __future__ import annotations

import math
import sys
from typing import Callable, Mapping

from tqdm.auto import tqdm

from dynrep.checks import check_int


class Callback:
    """Base class with no-op hooks."""

    #: True for callbacks that write files or print (progress, checkpoints, loggers): under torchrun they run
    #: on rank 0 alone (:func:`dynrep.training.distributed.callbacks_for_rank`); the others run on every rank.
    main_process_only: bool = False
    #: True for callbacks whose ``on_loss`` / ``on_step_end`` see what a step did only through ``logs``,
    #: :attr:`Trainer.history <dynrep.training.trainer.Trainer.history>`, ``trainer.state_dict()`` or after
    #: calling ``trainer.sync()`` (all of which wait for the device and raise
    #: :class:`NonFiniteLossError` for a non-finite step): the trainer then leaves the loss terms on the device
    #: between syncs (``fit(sync_every=...)``). A callback with either hook and False (the default) makes the
    #: trainer sync every step, so that ``trainer.step`` and the parameters it sees are always a finite step's.
    lazy_logs: bool = False

    def on_train_begin(self, trainer, steps: int) -> None:
        pass

    def on_loss(self, trainer, logs: Mapping[str, float]) -> None:
        pass

    def on_step_end(self, trainer, logs: Mapping[str, float]) -> None:
        pass

    def on_evaluation(self, trainer, scores: dict[str, float], seconds: float) -> None:
        """``scores`` of an evaluation at ``trainer.step`` that took ``seconds`` of wall-clock time (loggers
        leave that time out of their steps/s)."""

    def on_train_end(self, trainer, reason: str) -> None:
        pass


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the parameters are left as they were before that step."""


def non_finite_error(step: int, logs: dict[str, float]) -> NonFiniteLossError | None:
    """The error naming ``step`` and its first non-finite term (the trainer stops on it before that step's
    update), or None if every term of ``logs`` is finite."""
    # The components first: a NaN term also makes the total NaN, and the term is the news.
    for name, value in sorted(logs.items(), key=lambda item: item[0] == "loss"):
        if not math.isfinite(value):
            return NonFiniteLossError(
                f"loss term {name!r} is {value} at step {step}; training stopped before the update, so the model "
                f"keeps its step-{step} parameters (all terms: {logs})")
    return None


class ProgressBar(Callback):
    """tqdm bar over the steps of one ``train`` call, showing the loss terms every ``every`` steps."""

    main_process_only = True
    lazy_logs = True

    def __init__(self, every: int = 10):
        self.every = every
        self.bar = None
        self.first_step = 0

    def on_train_begin(self, trainer, steps: int) -> None:
        self.first_step = trainer.step
        # Redraw often on a terminal, rarely in a log file (CI, nohup), where every redraw is kept.
        interval = 0.1 if sys.stderr.isatty() else 10.0
        self.bar = tqdm(total=steps, desc=f"train {trainer.model.model_name}", unit="step", dynamic_ncols=True,
                        mininterval=interval)

    def on_step_end(self, trainer, logs: Mapping[str, float]) -> None:
        self.bar.update(1)
        if trainer.step % self.every == 0:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)

    def on_train_end(self, trainer, reason: str) -> None:
        messages = {"time_limit": "time limit reached", "interrupted": "interrupted",
                    "non_finite": "stopped by a non-finite loss"}
        self.bar.n = trainer.step - self.first_step  # steps after a non-finite one (before a sync) are undone
        if reason in messages:
            self.bar.write(f"{messages[reason]} at step {trainer.step}")
        self.bar.close()


class Checkpoint(Callback):
    """Calls ``save()`` every ``every`` steps (if given) and when training ends, whatever the reason (an
    interruption and a non-finite loss included: the state saved then is the last finite step's)."""

    main_process_only = True
    lazy_logs = True

    def __init__(self, save: Callable[[], None], every: int | None = None):
        self.save = save
        self.every = None if every is None else check_int("checkpoint_every", every, 1)
        self.saved_step: int | None = None

    def _save(self, trainer) -> None:
        trainer.sync()  # never the state of steps after a non-finite one
        self.save()
        self.saved_step = trainer.step

    def on_step_end(self, trainer, logs: Mapping[str, float]) -> None:
        if self.every and trainer.step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer, reason: str) -> None:
        if self.saved_step != trainer.step:
            self._save(trainer)
