"""Periodic evaluation during training: the model's scores every ``every`` steps, heard by every logger.

:class:`PeriodicEvaluation` is a callback around any function returning scores, usually the learner's
``evaluate`` (which samples its own seeded held-out stream and, for worlds with a train/test split, the
test subset: see :func:`dynrep.learner.held_out_env`)::

    from functools import partial
    evaluate = partial(learner.evaluate, metrics=["mig"], num_train=2000, num_test=1000)
    learner.train(3000, checkpoint_dir="runs/gw", callbacks=[PeriodicEvaluation(evaluate, every=500)])

The scores go to the ``on_evaluation`` hook of every callback of that ``train`` call: the jsonl gets
``{"step": 500, "evaluation": {...}}`` lines, tensorboard and wandb ``eval/<score>`` scalars. A run config's
``trainer.eval_every`` (``dynrep train RUN.yaml --eval-every N``) does the same with the run's
``evaluation`` section.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping

import torch

from dynrep.checks import check_int
from dynrep.training.callbacks import Callback

__all__ = ["PeriodicEvaluation"]


class PeriodicEvaluation(Callback):
    """Calls ``evaluate()`` after every step whose number is a multiple of ``every`` and, with ``at_end``,
    after the last step of a ``train`` call that runs all its steps (not when it stops early: time limit,
    interruption, non-finite loss), unless that step was just evaluated.

    Each evaluation runs with the model in eval mode (put back in training mode after), under
    ``torch.no_grad`` and ``torch.random.fork_rng``: it never draws from the trainer's data or noise
    generators nor changes the global torch generator, so training with and without it gives bitwise the
    same parameters. Its scores and wall-clock seconds go to ``on_evaluation(trainer, scores, seconds)`` of
    every callback of the ``train`` call (the loggers leave those seconds out of their steps/s; a
    ``train`` ``time_limit`` counts them). Steps are the trainer's global step: after a resume from step
    ``s``, the next evaluation is at the next multiple of ``every`` after ``s``.

    Args:
        evaluate: returns ``{score name: float}``; e.g. ``learner.evaluate`` or a ``functools.partial`` of it.
        every: evaluation period in optimiser steps (>= 1).
        at_end: also evaluate after the last step of each complete ``train`` call.

    Attributes:
        history: ``[(step, scores)]`` of every evaluation, in order.
    """

    lazy_logs = True

    def __init__(self, evaluate: Callable[[], dict[str, float]], every: int, *, at_end: bool = True):
        if not callable(evaluate):
            raise TypeError(f"evaluate must be a function returning scores, got {type(evaluate).__name__}")
        self.evaluate = evaluate
        self.every = check_int("eval_every", every, 1)
        self.at_end = at_end
        self.history: list[tuple[int, dict[str, float]]] = []
        self.final_step: int | None = None

    def on_train_begin(self, trainer, steps: int) -> None:
        self.final_step = trainer.step + steps

    def on_step_end(self, trainer, logs: Mapping[str, float]) -> None:
        if trainer.step % self.every == 0 or (self.at_end and trainer.step == self.final_step):
            trainer.sync()  # never the model of steps after a non-finite one
            self.run(trainer)

    def run(self, trainer) -> dict[str, float]:
        """Evaluate now (at ``trainer.step``), tell every callback of the running ``train``; returns the scores."""
        model = trainer.model
        training = model.training
        start = time.monotonic()
        model.eval()
        devices = [trainer.device] if trainer.device.type == "cuda" else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                scores = {name: float(value) for name, value in self.evaluate().items()}
        finally:
            model.train(training)
        seconds = time.monotonic() - start
        self.history.append((trainer.step, scores))
        for cb in trainer.callbacks:
            cb.on_evaluation(trainer, scores, seconds)
        return scores
