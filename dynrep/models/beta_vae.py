"""β-VAE (Higgins et al. 2017) with the capacity objective of Burgess et al. 2018 and LiLS's β schedule.

Two objectives, both on top of :class:`~dynrep.models.vae.VAE` (same encoder, sampling
and reconstruction term; only the weight on the analytic KL changes):

* ``capacity=False`` (default): ``reconstruction + w_t·β·KL`` where ``w_t`` is the
  LiLS schedule multiplier of :func:`beta_schedule_weight` (1 with ``beta_schedule="constant"``).
* ``capacity=True`` ("CCI-VAE", Burgess et al. 2018, "Understanding disentangling in
  β-VAE"): ``reconstruction + γ·|KL − C_t|`` with the capacity ``C_t`` of
  :func:`capacity_schedule` growing linearly in the optimiser step.

Defaults are those of the "Lost in Latent Space" code (Montero et al., mmrl/lost-in-latent-space
commit 1dbaf35, ``scripts/configs/training.py`` and ``src/training/loss.py``): β = 4 (its ``beta``
config, after Higgins et al.), Adam lr 5e-4, batch 64; capacity γ = 50 with C: 0 → 20 nats over
10,000 steps (its ``cci`` config; the loss class default there is γ = 100, and Burgess et al.
used γ = 1000 with C: 0 → 25 nats over 100,000 iterations on dSprites); β-schedule length
100,000 steps with floor 0 (its ``bsched`` config).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE

BETA_SCHEDULES = ("constant", "anneal", "increase")


def beta_schedule_weight(step: int, schedule: str, steps: int, floor: float) -> float:
    """Multiplier of β·KL at optimiser step ``step`` (LiLS ``GaussianVAELoss.update_parameters``).

    ``"constant"``: 1. ``"anneal"``: ``max(1 − step/steps, floor)`` (1 falling to ``floor``).
    ``"increase"``: ``min(floor + step/steps, 1)`` (``floor`` rising to 1).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "anneal":
        return max(1.0 - step / steps, floor)
    if schedule == "increase":
        return min(floor + step / steps, 1.0)
    raise ValueError(f"schedule must be one of {BETA_SCHEDULES}, got {schedule!r}")


def capacity_schedule(step: int, start: float, maximum: float, steps: int) -> float:
    """Target KL ``C_t = min(start + (maximum − start)·step/steps, maximum)`` in nats (Burgess et al. 2018)."""
    return min(start + (maximum - start) * step / steps, maximum)


@register_model("beta_vae")
class BetaVAE(VAE):
    """β-VAE: ``reconstruction + w_t·β·KL``, or with ``capacity=True`` ``reconstruction + γ·|KL − C_t|``.

    ``KL`` is the analytic KL of the Gaussian posterior to N(0, I), summed over latent
    dimensions and averaged over the batch; ``t`` is the optimiser step passed to
    :meth:`loss` (β and its schedule are unused with ``capacity=True``). Logged terms:
    ``reconstruction``, ``kl`` and ``kl_weight`` (``w_t·β``) or ``capacity`` (``C_t``). See the
    module docstring for the sources of the defaults.
    """

    @dataclass
    class Config(VAE.Config):
        lr: float = 5e-4
        beta: float = 4.0
        beta_schedule: str = "constant"
        beta_schedule_steps: int = 100_000
        beta_schedule_floor: float = 0.0
        capacity: bool = False
        gamma: float = 50.0
        capacity_start: float = 0.0
        capacity_max: float = 20.0
        capacity_steps: int = 10_000

        def __post_init__(self):
            super().__post_init__()
            if self.beta_schedule not in BETA_SCHEDULES:
                raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
            check_int("beta_schedule_steps", self.beta_schedule_steps, 1)
            if not 0.0 <= self.beta_schedule_floor <= 1.0:
                raise ValueError(f"beta_schedule_floor must be in [0, 1], got {self.beta_schedule_floor!r}")
            if not isinstance(self.capacity, bool):
                raise ValueError(f"capacity must be True or False, got {self.capacity!r}")
            if not self.gamma >= 0:
                raise ValueError(f"gamma must be >= 0, got {self.gamma!r}")
            if not self.capacity_start >= 0:
                raise ValueError(f"capacity_start must be >= 0 nats, got {self.capacity_start!r}")
            if not self.capacity_max >= self.capacity_start:
                raise ValueError(f"capacity_max must be >= capacity_start = {self.capacity_start}, "
                                 f"got {self.capacity_max!r}")
            check_int("capacity_steps", self.capacity_steps, 1)
            if self.capacity and self.beta_schedule != "constant":
                raise ValueError(f"beta_schedule must be 'constant' when capacity=True (the capacity objective "
                                 f"weighs the KL by gamma, not beta), got {self.beta_schedule!r}")

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        out = super().loss(batch, step, generator)
        reconstruction, kl = out.terms["reconstruction"], out.terms["kl"]
        c = self.config
        if c.capacity:
            target = capacity_schedule(step, c.capacity_start, c.capacity_max, c.capacity_steps)
            total = reconstruction + c.gamma * (kl - target).abs()
            extra = {"capacity": kl.new_full((), target)}
        else:
            weight = c.beta * beta_schedule_weight(step, c.beta_schedule, c.beta_schedule_steps,
                                                   c.beta_schedule_floor)
            total = reconstruction + weight * kl
            extra = {"kl_weight": kl.new_full((), weight)}
        return LossOutput(total, {"reconstruction": reconstruction, "kl": kl, **extra})
