"""Validation-based model selection: the best-checkpoint rule of the mechanism-sparsity reference.

The reference (specs/causal.md 1.2, "Optimisation") evaluates the full loss, regulariser included,
on the validation subset every 5000 iterations, keeps the checkpoint with the lowest validation
loss and reduces the learning rate by 10x when that loss has not improved (relative threshold
1e-4) for 120 evaluations. :class:`BestValidation` does this as a trainer callback::

    valid = ToyNN("action_sparsity_non_trivial", subset="valid")
    learner.train(steps, callbacks=[BestValidation(valid, every=5000, lr_patience=120)])
"""
from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Mapping

import numpy as np
import torch

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.training.callbacks import Callback


def _rows(data: Trajectory, start: int, stop: int) -> Trajectory:
    """Episodes ``start:stop`` of ``data``."""
    return replace(data, **{f.name: getattr(data, f.name)[start:stop] for f in fields(data)
                            if getattr(data, f.name) is not None})


class BestValidation(Callback):
    """Every ``every`` steps, the mean validation loss; keeps (and by default restores) the best weights.

    The loss is ``model.loss`` in eval mode under ``torch.no_grad``, averaged over the validation
    episodes (chunks of ``batch_size``, weighted by their size), with a torch generator re-seeded
    with ``seed`` for each evaluation, so the same weights always get the same loss. The model is
    put back in its previous (training) mode afterwards.

    Args:
        data: a :class:`Trajectory` of validation episodes, or an environment with
            ``trajectories()`` (e.g. ``ToyNN(..., subset="valid")``) whose rows are used in order.
        every: evaluation period in optimiser steps (``trainer.step % every == 0``; reference 5000).
        batch_size: episodes per loss evaluation.
        num_samples: use only the first ``num_samples`` episodes (None: all).
        seed: seed of the evaluation generator.
        restore_best: load the best weights back into the model when training ends.
        lr_patience: ReduceLROnPlateau patience in evaluations (reference 120); None: no LR schedule.
        lr_factor: LR multiplier on a plateau.
        lr_threshold: relative improvement that counts for the schedule.

    Attributes:
        history: ``[(step, loss)]`` of every evaluation.
        best_loss, best_step: the lowest validation loss so far and its step (``inf`` / None before any).
        best_state: CPU copy of the model's ``state_dict`` at ``best_step``.
    """

    lazy_logs = True

    def __init__(self, data, *, every: int = 5000, batch_size: int = 1024, num_samples: int | None = None,
                 seed: int = 0, restore_best: bool = True, lr_patience: int | None = None,
                 lr_factor: float = 0.1, lr_threshold: float = 1e-4):
        self.every = check_int("every", every, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)
        if num_samples is not None:
            check_int("num_samples", num_samples, 1)
        if not isinstance(restore_best, (bool, np.bool_)):
            raise ValueError(f"restore_best must be True or False, got {restore_best!r}")
        if lr_patience is not None:
            check_int("lr_patience", lr_patience, 0)
        if not (isinstance(lr_factor, (int, float)) and 0 < lr_factor < 1):
            raise ValueError(f"lr_factor must be in (0, 1), got {lr_factor!r}")
        if not (isinstance(lr_threshold, (int, float)) and 0 <= lr_threshold < 1):
            raise ValueError(f"lr_threshold must be in [0, 1), got {lr_threshold!r}")
        if isinstance(data, Trajectory):
            episodes = data
        elif callable(getattr(data, "trajectories", None)):
            episodes = data.trajectories()
        else:
            raise ValueError(f"data must be a Trajectory or an environment with trajectories() (e.g. ToyNN), "
                             f"got {type(data).__name__}")
        if num_samples is not None:
            episodes = _rows(episodes, 0, num_samples)
        if episodes.batch_size == 0:
            raise ValueError("the validation data has no episodes")
        self.data = episodes
        self.restore_best = bool(restore_best)
        self.lr_patience, self.lr_factor, self.lr_threshold = lr_patience, float(lr_factor), float(lr_threshold)
        self.scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self.history: list[tuple[int, float]] = []
        self.best_loss, self.best_step = math.inf, None
        self.best_state: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def evaluate(self, trainer) -> float:
        """Mean validation loss of ``trainer.model``'s current weights (deterministic)."""
        model, was_training = trainer.model, trainer.model.training
        generator = torch.Generator(device=trainer.device).manual_seed(self.seed)
        model.eval()
        try:
            total, n = 0.0, self.data.batch_size
            for start in range(0, n, self.batch_size):
                chunk = _rows(self.data, start, start + self.batch_size).to(trainer.device)
                total += model.loss(chunk, trainer.step, generator).total.item() * chunk.batch_size
        finally:
            model.train(was_training)
        return total / n

    def on_train_begin(self, trainer, steps: int) -> None:
        # models without a config (duck-typed ones in tests) have no step decay
        decay_steps = getattr(getattr(trainer.model, "config", None), "lr_decay_steps", None)
        if self.lr_patience is not None and decay_steps is not None:
            raise ValueError(f"lr_patience={self.lr_patience} would fight the model's step decay of the learning "
                             f"rate (lr_decay_steps={decay_steps}): use one schedule, lr_patience=None or "
                             "lr_decay_steps=None")
        stale = self.scheduler is None or self.scheduler.optimizer is not trainer.optimizer
        if self.lr_patience is not None and stale:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                trainer.optimizer, mode="min", factor=self.lr_factor, patience=self.lr_patience,
                threshold=self.lr_threshold, threshold_mode="rel")

    def on_step_end(self, trainer, logs: Mapping[str, float]) -> None:
        if trainer.step % self.every:
            return
        trainer.sync()  # never the weights of steps after a non-finite one
        loss = self.evaluate(trainer)
        self.history.append((trainer.step, loss))
        if loss < self.best_loss:
            self.best_loss, self.best_step = loss, trainer.step
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
        if self.scheduler is not None:
            self.scheduler.step(loss)

    def on_train_end(self, trainer, reason: str) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
