"""CascadeVAE (Jeong & Song, ICML 2019): an information cascade on continuous latents plus one
balanced categorical latent (specs/latent.md 1.6; reference: ``Dsprites_exp/CascadeVAE/model.py``,
``tfops/nets.py`` and ``tfops/lr_op.py`` of snu-mllab/DisentanglementICML19).

Continuous part: per-dimension KL weights, the first ``released`` dimensions at ``beta_low`` and the
rest at ``beta_high``, with stage ``s = step // cascade_period`` and (:func:`released_dims`)

* ``cascade_schedule="jeong_song"`` (default, the reference's ``run_batch``): ``min(s + 1, latent_dim)``
  before ``discrete_start`` and ``min(s, latent_dim)`` from then on, so the cascade holds one stage when
  the discrete stage starts (``discrete_start`` must be a multiple of ``cascade_period``: the reference
  starts it at stage ``ntime = 4``);
* ``cascade_schedule="lils"`` (the Lost-in-Latent-Space study's ``InfoCascadeLoss``, ``src/training/loss.py``
  of mmrl/lost-in-latent-space): ``min(s, latent_dim)``, every dimension starts at ``beta_high`` and
  dimension ``i`` is released at step ``(i + 1) * cascade_period``. The study's ``cascade`` training
  config (``scripts/configs/training.py``) has beta_low 2.0, lr 3e-4, no L2 and no LR decay: set
  ``beta_low=2.0, lr=3e-4, weight_decay=0.0, lr_decay_steps=None`` with it.

Optimisation (the reference's defaults): Adam lr 1e-4, L2 weight decay 4e-5 on the conv and linear weights
(``slim.l2_regularizer(0.00004)``, not the biases) and the learning rate x0.3 every 50,000 steps
(``stair_decay``, ``a3``). The reference builds that decay but never runs the op that advances its step
counter (``update_step_op``), so the released code trains at lr 1e-4 throughout: ``lr_decay_steps=None``
reproduces that.

Discrete part: from ``discrete_start`` on, each batch picks one category ``d_i`` per sample by
minimising ``sum_i u[i, d_i] + balance * sum_j n_j (n_j - 1) / 2`` where ``u[i, j]`` is the
reconstruction NLL of sample ``i`` decoded with category ``j`` and ``n_j`` the number of samples
in category ``j``; the decoder sees ``[z; one_hot(d)]``. The original solves this with an OR-tools
min-cost flow; :func:`balanced_assignment` solves it exactly as a linear assignment with one column
per (category, slot) pair, slot ``k`` costing ``k * balance`` extra (scipy, no OR-tools). On a GPU this
is the one host round trip of the zoo's training steps, and it is inherent: from ``discrete_start`` on, each
step copies the costs ``u [B, S]`` to the host and waits for them (an exact LP solver runs on the CPU);
before it the step reads nothing from the device.

The representation is ``[mean; one_hot(argmin_j u[i, j])]`` (the LiLS inference rule), so it has
``latent_dim + num_categories`` entries. Deviation: the posterior scale is ``exp(logvar / 2)``
as in the other dynrep VAEs (the original uses ``softplus``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from dynrep.checks import check_int
from dynrep.data.devices import to_device
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, observations_to_float
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, elementwise_nll


CASCADE_SCHEDULES = ("jeong_song", "lils")


def released_dims(step: int, latent_dim: int, period: int, discrete_start: int,
                  schedule: str = "jeong_song") -> int:
    """Number of continuous dimensions at ``beta_low`` at optimiser ``step`` (module docstring): with
    ``s = step // period``, ``"jeong_song"``: ``min(s + 1, latent_dim)`` before ``discrete_start``, then
    ``min(s, latent_dim)``; ``"lils"``: ``min(s, latent_dim)``."""
    if schedule not in CASCADE_SCHEDULES:
        raise ValueError(f"cascade_schedule must be one of {CASCADE_SCHEDULES}, got {schedule!r}")
    stage = step // period
    if schedule == "jeong_song" and step < discrete_start:
        stage += 1
    return min(stage, latent_dim)


def cascade_weights(step: int, latent_dim: int, period: int, beta_low: float, beta_high: float,
                    discrete_start: int, schedule: str = "jeong_song") -> np.ndarray:
    """KL weight of each continuous dimension at optimiser ``step``: ``[latent_dim]``, ``beta_low`` for the
    first :func:`released_dims` dimensions and ``beta_high`` for the others."""
    released = released_dims(step, latent_dim, period, discrete_start, schedule)
    return np.where(np.arange(latent_dim) < released, beta_low, beta_high)


def balanced_assignment(costs: np.ndarray, balance: float) -> np.ndarray:
    """Exact minimiser of ``sum_i costs[i, d_i] + balance * sum_j n_j (n_j - 1) / 2`` over assignments
    ``d [B]`` of the rows of ``costs [B, S]`` to categories (``n_j`` = rows assigned to ``j``).

    The convex per-category penalty is a sum of slot prices ``0, balance, 2 * balance, ...``, so the problem
    is a linear assignment of rows to ``B * S`` (category, slot) columns.
    """
    costs = np.asarray(costs, dtype=np.float64)
    if costs.ndim != 2 or costs.shape[0] < 1 or costs.shape[1] < 1:
        raise ValueError(f"costs must have shape [B, S] with B, S >= 1, got {costs.shape}")
    if not balance >= 0:
        raise ValueError(f"balance must be >= 0, got {balance}")
    rows, categories = costs.shape
    slots = balance * np.arange(rows)  # price of the k-th sample put in the same category
    matrix = (costs[:, :, None] + slots[None, None, :]).reshape(rows, categories * rows)
    assigned_rows, columns = linear_sum_assignment(matrix)
    out = np.empty(rows, dtype=np.int64)
    out[assigned_rows] = columns // rows
    return out


@register_model("cascade_vae")
class CascadeVAE(VAE):
    """Continuous latents with an information-cascade KL schedule and one balanced categorical latent."""

    ddp_unsupported = ("its balanced category assignment is solved over the whole batch, which no rank holds "
                       "under DDP")

    @dataclass
    class Config(VAE.Config):
        latent_dim: int = 6
        num_categories: int = 3
        batch_size: int = 64
        lr: float = 1e-4
        weight_decay: float = 4e-5
        lr_decay_rate: float = 0.3
        lr_decay_steps: int | None = 50_000
        beta_low: float = 0.1
        beta_high: float = 10.0
        cascade_period: int = 20_000
        cascade_schedule: str = "jeong_song"
        discrete_start: int = 80_000
        balance: float = 1e-3

        def __post_init__(self):
            super().__post_init__()
            check_int("num_categories", self.num_categories, 2)
            check_int("cascade_period", self.cascade_period, 1)
            check_int("discrete_start", self.discrete_start, 0)
            if self.cascade_schedule not in CASCADE_SCHEDULES:
                raise ValueError(f"cascade_schedule must be one of {CASCADE_SCHEDULES}, "
                                 f"got {self.cascade_schedule!r}")
            if self.cascade_schedule == "jeong_song" and self.discrete_start % self.cascade_period:
                raise ValueError(f"discrete_start must be a multiple of cascade_period with cascade_schedule="
                                 f"'jeong_song' (the cascade holds its stage when the discrete stage starts), got "
                                 f"discrete_start={self.discrete_start}, cascade_period={self.cascade_period}")
            for name in ("beta_low", "beta_high", "balance"):
                if not getattr(self, name) >= 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def decoder_inputs(self) -> int:
        """The continuous code and the one-hot category: ``latent_dim + num_categories``."""
        return self.config.latent_dim + self.config.num_categories

    def code_size(self) -> int:
        """``[mean; one-hot category]``: ``latent_dim + num_categories``, what the decoder takes."""
        return self.decoder_inputs()

    def _category_costs(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Reconstruction NLL ``[B, S]`` of every sample decoded with every category (no gradient)."""
        batch, categories = len(z), self.config.num_categories
        codes = torch.eye(categories, device=z.device).repeat(batch, 1)
        with torch.no_grad():
            logits = self.decode_logits(torch.cat([z.repeat_interleave(categories, 0), codes], dim=1))
            repeated = target.repeat_interleave(categories, 0)
            nll = elementwise_nll(logits, repeated, self.config.reconstruction, self.decoder_logvar)
        return nll.flatten(1).sum(-1).view(batch, categories)

    def representation(self, obs: torch.Tensor) -> torch.Tensor:
        """``[mean; one_hot(best category)]`` ``[B, latent_dim + num_categories]``."""
        mean = self.encode(obs).mean
        best = self._category_costs(mean, observations_to_float(obs)).argmin(1)
        return torch.cat([mean, F.one_hot(best, self.config.num_categories).to(mean.dtype)], dim=1)

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        c = self.config
        target, post, z = self.sample_posterior(batch, generator)
        if step >= c.discrete_start:
            chosen = balanced_assignment(self._category_costs(z, target).cpu().numpy(), c.balance)
            discrete = F.one_hot(torch.as_tensor(chosen, device=z.device), c.num_categories).to(z.dtype)
        else:
            discrete = z.new_zeros(len(z), c.num_categories)
        reconstruction = self.reconstruction_term(self.decode_logits(torch.cat([z, discrete], 1)), target)
        kl_per_dim = 0.5 * (post.mean.square() + post.logvar.exp() - 1.0 - post.logvar).mean(0)
        released = released_dims(step, c.latent_dim, c.cascade_period, c.discrete_start, c.cascade_schedule)
        weights = to_device(torch.tensor(cascade_weights(step, c.latent_dim, c.cascade_period, c.beta_low, c.beta_high,
                                                         c.discrete_start, c.cascade_schedule), dtype=kl_per_dim.dtype),
                            kl_per_dim.device)
        kl = kl_per_dim.sum()
        total = reconstruction + (weights * kl_per_dim).sum()
        return LossOutput(total, {"reconstruction": reconstruction, "kl": kl,
                                  "released_dims": kl.new_full((), released)})

    def traverse(self, obs: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, list[str]]:
        """One row per continuous dimension (swept over [-3, 3], category fixed at the inferred one), then a
        row cycling through the categories with the continuous code fixed."""
        frames, labels = super().traverse(obs, num_frames)
        latent = self.config.latent_dim
        code = self.representation(obs)[:1]
        categories = torch.arange(num_frames, device=code.device) % self.config.num_categories
        cycle = code.repeat(num_frames, 1)
        cycle[:, latent:] = F.one_hot(categories, self.config.num_categories).to(code.dtype)
        rows = frames[:latent]  # the base swept the one-hot entries too; keep the continuous rows
        category_row = self.decode(cycle).unsqueeze(0)
        return torch.cat([rows, category_row]), [*labels[:latent], "category"]
