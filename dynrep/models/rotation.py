"""Rotation learner (Quessard et al. 2020): actions as products of Givens rotations on a sphere."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dynrep.checks import check_int
from dynrep.data.devices import reads_free, to_device
from dynrep.data.trajectory import Trajectory
from dynrep.metrics.dynamics import rotation_structure
from dynrep.models.base import (LossOutput, ModelConfig, Posterior, RepresentationModel, observations_to_float,
                                 require_discrete_actions)
from dynrep.models.losses import bernoulli_nll, full_precision
from dynrep.models.registry import register_model
from dynrep.schedules import linear_ramp


def plane_indices(n: int) -> list[tuple[int, int]]:
    """Coordinate planes ``(i, j)``, ``i < j``, in the order (0,1), (0,2), ..., (n-2, n-1)."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def step_rotations(angles: torch.Tensor, actions: torch.Tensor, magnitudes: torch.Tensor, n: int) -> torch.Tensor:
    """Rotation ``[B, T, n, n]`` of each step: action ``actions [B, T]`` (rows of ``angles [A, n(n-1)/2]``)
    turned ``magnitudes [B, T]`` (>= 1, not checked) times its angles, computed without reading the
    magnitudes on the host (what :meth:`RotationModel.rollout` does off the CPU)."""
    return givens_product(magnitudes[..., None].to(angles.dtype) * angles[actions], n)


#: ``(n, device, dtype) -> (eye, diag, skew)`` of :func:`_givens_basis`.
_BASES: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _givens_basis(n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The constants of :func:`givens_product`: the identity ``[n, n]``, and per plane ``(i, j)`` its diagonal
    ``diag [P, n, n]`` (1 at ``[i, i]`` and ``[j, j]``) and skew ``skew [P, n, n]`` (1 at ``[i, j]``, -1 at
    ``[j, i]``). Built once per ``(n, device, dtype)`` (outside inference mode, so that a step recording
    gradients can save them) and shared: nothing writes to them."""
    key = (n, torch.device(device), dtype)
    if key not in _BASES:
        with torch.inference_mode(False):
            i, j = to_device(torch.tensor(plane_indices(n)), device).T
            p = torch.arange(len(i), device=device)
            diag = torch.zeros(len(i), n, n, device=device, dtype=dtype)
            skew = torch.zeros_like(diag)
            diag[p, i, i] = 1.0
            diag[p, j, j] = 1.0
            skew[p, i, j] = 1.0
            skew[p, j, i] = -1.0
            _BASES[key] = torch.eye(n, device=device, dtype=dtype), diag, skew
    return _BASES[key]


def givens_product(angles: torch.Tensor, n: int) -> torch.Tensor:
    """Rotation matrices ``[..., n, n]`` from angles ``[..., n(n-1)/2]``.

    The matrix is ``R_01(a_0) @ R_02(a_1) @ ... @ R_{n-2,n-1}(a_last)`` where ``R_ij``
    is the identity except ``[i,i] = [j,j] = cos``, ``[i,j] = sin``, ``[j,i] = -sin``.
    All planes are built at once and multiplied in a balanced tree (log2 of the
    number of planes batched matmuls), keeping the left-to-right order.
    """
    planes = n * (n - 1) // 2
    if angles.shape[-1] != planes:
        raise ValueError(f"angles must have {planes} entries per matrix for n={n}, got {angles.shape[-1]}")
    eye, diag, skew = _givens_basis(n, angles.device, angles.dtype)
    cos, sin = angles.cos()[..., None, None], angles.sin()[..., None, None]
    mats = eye + (cos - 1.0) * diag + sin * skew  # [..., P, n, n]
    while mats.shape[-3] > 1:
        if mats.shape[-3] % 2:
            mats = torch.cat([mats, eye.expand(*mats.shape[:-3], 1, n, n)], dim=-3)
        mats = mats[..., 0::2, :, :] @ mats[..., 1::2, :, :]
    return mats[..., 0, :, :]


def entanglement(angles: torch.Tensor) -> torch.Tensor:
    """Regulariser of each action's angles ``[A, P]``: mean over actions of sum(θ²) - max(θ²)."""
    squared = angles.square()
    return (squared.sum(-1) - squared.max(-1).values).mean()


@register_model("rotation")
class RotationModel(RepresentationModel):
    """Deterministic autoencoder on the unit sphere with one rotation per action.

    The encoder's output is L2-normalised; each action ``a`` owns one angle per
    coordinate plane and acts as ``z -> R(θ_a · m) z`` (``m`` the magnitude). Training
    encodes the first frame of each episode, rolls the latent out open-loop through
    the actions, and scores every decoded frame with binary cross-entropy, plus the
    entanglement regulariser ``λ_t · |L_ent - target|`` with ``λ_t`` ramped linearly
    from 0 to ``reg_weight`` over ``reg_warmup_steps``.
    """

    @dataclass
    class Config(ModelConfig):
        """Defaults are the paper's GridWorld/Flatland settings (latent 4, 5 steps, 16 episodes,
        Adam 1e-2, regulariser 1e-2 towards 0). The conv stack is narrower than the VAE's
        (8-16-32-32 channels): it reconstructs 64x64 GridWorld as well and trains ~3x
        faster on CPU (``benchmarks/gridworld_training.py``)."""

        latent_dim: int = 4
        batch_size: int = 16
        episode_length: int = 5
        lr: float = 1e-2
        channels: tuple[int, ...] = (8, 16, 32, 32)
        lr_angles: float | None = None
        reg_weight: float = 1e-2
        reg_target: float = 0.0
        reg_warmup_steps: int = 0
        angle_init: float | None = None

        min_latent_dim: ClassVar[int] = 2

        def __post_init__(self):
            super().__post_init__()
            if self.reg_weight < 0:
                raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")
            if self.reg_warmup_steps < 0:
                raise ValueError(f"reg_warmup_steps must be >= 0, got {self.reg_warmup_steps}")
            if self.lr_angles is not None and not self.lr_angles > 0:
                raise ValueError(f"lr_angles must be a positive float or None, got {self.lr_angles}")
            if self.angle_init is not None and not self.angle_init >= 0:
                raise ValueError(f"angle_init must be >= 0 or None, got {self.angle_init}")

    has_dynamics = True

    def __init__(self, env, config: Config):
        require_discrete_actions(env, "the rotation model")
        super().__init__(env, config)
        n = config.latent_dim
        bound = math.pi / n if config.angle_init is None else config.angle_init
        self.angles = nn.Parameter(torch.empty(env.actions.n, n * (n - 1) // 2).uniform_(-bound, bound))

    def encode(self, obs: torch.Tensor) -> Posterior:
        return Posterior(F.normalize(self.encoder(observations_to_float(obs)), dim=-1))

    def action_matrices(self, magnitudes: int = 1) -> torch.Tensor:
        """Rotation of every action for magnitudes ``1..magnitudes``: ``[magnitudes, A, n, n]``."""
        scale = torch.arange(1, magnitudes + 1, device=self.angles.device, dtype=self.angles.dtype)
        return givens_product(scale[:, None, None] * self.angles, self.config.latent_dim)

    def transition(self, z: torch.Tensor, actions: torch.Tensor,
                   magnitudes: torch.Tensor | None = None) -> torch.Tensor:
        return self.rollout(z, actions[:, None], None if magnitudes is None else magnitudes[:, None])[:, 1]

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor,
                magnitudes: torch.Tensor | None = None) -> torch.Tensor:
        """Open-loop latents ``[B, T+1, n]`` from ``z0 [B, n]`` through ``actions [B, T]``."""
        if magnitudes is not None and not magnitudes.numel():
            magnitudes = None
        on_host = magnitudes is None or reads_free(magnitudes)
        if magnitudes is not None and on_host and int(magnitudes.min()) < 1:
            raise ValueError(f"magnitudes must be >= 1, got {int(magnitudes.min())}")
        # The rotations in float32 under bfloat16 autocast too: with them in bfloat16 (8-bit mantissas) seed 3 of
        # benchmarks/gridworld_convergence.py --config autocast=bf16 never disentangled (purity 0.59 at 2000 steps).
        with torch.autocast(z0.device.type, enabled=False):
            if on_host:  # each action's rotations for magnitudes 1..max, gathered per step
                mats = self.action_matrices(1 if magnitudes is None else int(magnitudes.max()))
                m = torch.zeros_like(actions) if magnitudes is None else magnitudes - 1
                step_mats = mats[m, actions]  # [B, T, n, n]
            else:  # reading the largest magnitude would wait for the device: one rotation per step instead
                step_mats = step_rotations(self.angles, actions, magnitudes, self.config.latent_dim)
            z = full_precision(z0).unsqueeze(-1)  # a column [B, n, 1]: one bmm per step
            latents = [z]
            for t in range(actions.shape[1]):
                z = torch.bmm(step_mats[:, t], z)
                latents.append(z)
            return torch.stack(latents, dim=1).squeeze(-1)

    def _rollout_logits(self, batch: Trajectory) -> torch.Tensor:
        z = self.rollout(self.encode(batch.obs[:, 0]).mean, batch.actions, batch.magnitudes)
        return self.decode_logits(z.flatten(0, 1))

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        c = self.config
        target = observations_to_float(batch.obs.flatten(0, 1))
        reconstruction = bernoulli_nll(self._rollout_logits(batch), target)
        ent = entanglement(self.angles)
        weight = linear_ramp(step, 0.0, c.reg_weight, c.reg_warmup_steps)
        total = reconstruction + weight * (ent - c.reg_target).abs()
        return LossOutput(total, {"reconstruction": reconstruction, "entanglement": ent})

    def predict(self, batch: Trajectory) -> torch.Tensor:
        frames = torch.sigmoid(self._rollout_logits(batch))
        return frames.view(*batch.obs.shape[:2], *self.observation_shape)

    def traverse(self, obs: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, list[str]]:
        """One row per action: the start frame's latent rotated by that action 0..num_frames-1 times."""
        check_int("num_frames", num_frames, 2)
        z = self.representation(obs)[:1].expand(len(self.action_names), -1)
        actions = torch.arange(len(self.action_names), device=z.device)[:, None].expand(-1, num_frames - 1)
        frames = self.decode(self.rollout(z, actions).flatten(0, 1))
        return frames.view(len(self.action_names), num_frames, *self.observation_shape), list(self.action_names)

    def parameter_groups(self) -> list[dict]:
        return self.parameter_groups_with([self.angles], self.config.lr_angles)

    def structure_scores(self) -> dict[str, float]:
        """Rotation purity (angle- and eigen-based) per action and plane sharing (see
        :func:`dynrep.metrics.dynamics.rotation_structure`), plus the ``entanglement`` regulariser."""
        with torch.no_grad():
            matrices = self.action_matrices()[0]
            scores = rotation_structure(self.angles.cpu().numpy(), matrices.cpu().numpy(),
                                        self.action_names, self.action_factors)
            scores["entanglement"] = float(entanglement(self.angles))
        return scores
