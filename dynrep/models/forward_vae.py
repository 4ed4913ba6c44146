"""ForwardVAE (Caselles-Dupré, Garcia Ortiz & Filliat 2019, "Symmetry-based disentangled representation
learning requires interaction with environments"): a VAE whose latent planes are rotated by learned
per-action representations.

Facts from the reimplementation in Painter et al. 2020 ("Linear disentangled representations and
unsupervised action estimation", MattPainter01/UnsupervisedActionEstimation commit 1c951bf,
``models/forward_vae.py`` and the cyclic representations of ``models/group_reps.py``):

* latent size 4; each of the 4 Flatland actions owns a 4x4 matrix that is the identity except for
  one 2x2 block on the latent pair of its factor (actions of one factor share a pair, the two
  factors use the disjoint pairs (0, 1) and (2, 3));
* the next latent is ``A_a z_1`` with ``z_1`` the reparameterised sample of frame 1; the forward
  ("latent") loss is the squared distance to the posterior mean ``mu_2`` of the next frame (the
  reference's ``pred_z_loss_type`` also offers ``"recon"``: decode ``A_a z_1`` and score it against
  frame 2, and ``"both"``); total = VAE loss + forward loss;
* Adam lr 1e-3, batch 128, β = 1, reconstruction = squared error of the sigmoid output, 4 stride-2
  conv layers of 32 channels (64x64 -> 4x4, 512 features) and a 256-wide fully connected layer.

Deviations (documented):

* The action blocks are rotations ``[[cos, sin], [-sin, cos]]`` (the sign convention of
  :func:`dynrep.models.rotation.givens_product`) of one free, learned angle per action and latent
  plane (Painter's ``CyclicRep``: the angle is learned, not fixed to 2π/period; init
  ``U(0, angle_init)`` times the action's sign, as ``CyclicRep``'s ``c+``/``c-``). ForwardVAE itself
  learns unconstrained 2x2 blocks and only logs their determinants.
* ``planes="factor"`` (default, the reference's layout) lets action ``a`` rotate only plane
  ``k mod P`` where ``k`` is the rank of its factor among the actions' factors and
  ``P = latent_dim // 2`` (its other angles are held at 0 by a mask); ``planes="all"`` learns an
  angle in every plane (the structure is then learned, and :meth:`structure_scores` measures it).
  Planes are the pairs ``(0, 1), (2, 3), ...``; with an odd ``latent_dim`` the last coordinate is
  left unchanged by every action.
* The ELBO is the library's (reconstruction summed over pixels, analytic KL summed over latent
  dimensions, both averaged over the batch, ``std = exp(logvar / 2)``) on every frame of the episode;
  the reference applies it to the first frame of each pair only, averages the squared error over pixels,
  samples with ``std = exp(logvar)`` and multiplies the KL by itself and by an annealing factor
  (0.995 per step). The forward term is summed over latent dimensions (the reference averages it) and
  weighted by ``gamma`` (1 in the reference).
* Training uses the environment's episodes with ``episode_length >= 1`` (``((x_t, a_t), x_{t+1})`` for
  every ``t``); action magnitudes ``m`` rotate by ``m`` times the angle (= the m-th matrix power).
* The encoder/decoder are the library's conv stacks (ReLU) rather than the reference's SELU ones
  with two 256-wide layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from dynrep.data.trajectory import Trajectory
from dynrep.metrics.dynamics import rotation_structure
from dynrep.models.base import LossOutput, require_discrete_actions
from dynrep.models.registry import register_model
from dynrep.models.rotation import RotationModel, plane_indices
from dynrep.models.vae import VAE

PREDICTIONS = ("latent", "recon", "both")
PLANES = ("factor", "all")


def block_rotations(angles: torch.Tensor, n: int) -> torch.Tensor:
    """Block-diagonal rotations ``[..., n, n]`` of angles ``[..., n // 2]``: block ``k`` acts on the
    coordinates ``(2k, 2k+1)`` as ``[[cos, sin], [-sin, cos]]``; with odd ``n`` the last coordinate is fixed."""
    if angles.shape[-1] != n // 2:
        raise ValueError(f"angles must have {n // 2} entries per matrix for n={n}, got {angles.shape[-1]}")
    out = torch.eye(n, dtype=angles.dtype, device=angles.device).expand(*angles.shape[:-1], n, n).clone()
    even = torch.arange(0, 2 * (n // 2), 2, device=angles.device)
    cos, sin = angles.cos(), angles.sin()
    out[..., even, even] = cos
    out[..., even + 1, even + 1] = cos
    out[..., even, even + 1] = sin
    out[..., even + 1, even] = -sin
    return out


@register_model("forward_vae")
class ForwardVAE(VAE):
    """VAE + one learned block-diagonal rotation per action, trained on ``((x_t, a_t), x_{t+1})``.

    Loss = reconstruction(x_t) + β·KL on every frame + γ·forward term, where the forward term
    (``prediction``) is ``"latent"``: ``||ρ(a_t) z_t − μ_{t+1}||²`` (summed over latent dimensions,
    averaged over transitions; ``z_t`` a posterior sample, ``μ_{t+1}`` the posterior mean of the next
    frame, not detached), ``"recon"``: the reconstruction loss of ``decode(ρ(a_t) z_t)`` against
    ``x_{t+1}``, or ``"both"``. See the module docstring for the reference and the deviations.
    """

    @dataclass
    class Config(VAE.Config):
        """Defaults of Painter et al.'s ForwardVAE on FlatLand (latent 4, batch 128, Adam 1e-3, β 1,
        squared-error reconstruction, pairs of consecutive frames, forward loss ``"latent"`` with weight 1,
        4x32-channel conv stack with a 256-wide layer); ``angle_init`` 1 is ``CyclicRep``'s U(0, 1)."""

        latent_dim: int = 4
        batch_size: int = 128
        episode_length: int = 1
        lr: float = 1e-3
        beta: float = 1.0
        reconstruction: str = "gaussian"
        channels: tuple[int, ...] = (32, 32, 32, 32)
        hidden: int = 256
        gamma: float = 1.0
        prediction: str = "latent"
        planes: str = "factor"
        lr_actions: float | None = None
        angle_init: float = 1.0

        min_latent_dim: ClassVar[int] = 2

        def __post_init__(self):
            super().__post_init__()
            if self.episode_length < 1:
                raise ValueError(f"episode_length must be >= 1 (forward_vae trains on transitions), "
                                 f"got {self.episode_length}")
            if not self.gamma >= 0:
                raise ValueError(f"gamma must be >= 0, got {self.gamma}")
            if self.prediction not in PREDICTIONS:
                raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
            if self.planes not in PLANES:
                raise ValueError(f"planes must be one of {PLANES}, got {self.planes!r}")
            if self.lr_actions is not None and not self.lr_actions > 0:
                raise ValueError(f"lr_actions must be a positive float or None, got {self.lr_actions}")
            if not self.angle_init >= 0:
                raise ValueError(f"angle_init must be >= 0, got {self.angle_init}")

    has_dynamics = True

    def __init__(self, env, config: Config):
        require_discrete_actions(env, "forward_vae")
        super().__init__(env, config)
        num_actions, num_planes = env.actions.n, config.latent_dim // 2
        sign = torch.tensor(env.actions.sign or (1,) * num_actions, dtype=torch.float32)
        self.angles = nn.Parameter(torch.rand(num_actions, num_planes) * config.angle_init * sign[:, None])
        if config.planes == "factor":
            factors = sorted(set(self.action_factors)) if self.action_factors else []
            plane = [factors.index(f) % num_planes if factors else a % num_planes
                     for a, f in enumerate(self.action_factors or range(num_actions))]
            mask = torch.zeros(num_actions, num_planes)
            mask[torch.arange(num_actions), torch.tensor(plane)] = 1.0
        else:
            mask = torch.ones(num_actions, num_planes)
        self.register_buffer("plane_mask", mask)

    def action_angles(self) -> torch.Tensor:
        """Each action's angle in each latent plane ``(2k, 2k+1)``: ``[A, latent_dim // 2]``."""
        return self.angles * self.plane_mask

    def action_matrices(self, magnitudes: int = 1) -> torch.Tensor:
        """Rotation of every action for magnitudes ``1..magnitudes``: ``[magnitudes, A, n, n]``."""
        angles = self.action_angles()
        scale = torch.arange(1, magnitudes + 1, device=angles.device, dtype=angles.dtype)
        return block_rotations(scale[:, None, None] * angles, self.config.latent_dim)

    # The open-loop machinery is the rotation model's: it only needs ``action_matrices`` and ``encode``.
    rollout = RotationModel.rollout
    transition = RotationModel.transition
    _rollout_logits = RotationModel._rollout_logits
    predict = RotationModel.predict
    traverse = RotationModel.traverse

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        total, terms, target, z_now, mean_next = self.elbo_and_pairs(batch, generator)
        if z_now is not None:
            magnitudes = None if batch.magnitudes is None else batch.magnitudes.flatten()
            z_next = self.transition(z_now, batch.actions.flatten(), magnitudes)
            total = total + self.config.gamma * self.forward_terms(z_next, mean_next, target, len(batch.obs), terms)
        return LossOutput(total, terms)

    def elbo_and_pairs(self, batch: Trajectory, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The ELBO on every frame and the consecutive-frame pairs the forward loss compares:
        ``(reconstruction + β·KL, terms, target [B*T, *obs], z_now, mean_next)`` where ``z_now`` are the
        posterior samples of frames ``0..T-2`` and ``mean_next`` the posterior means of frames ``1..T-1``
        (``[B*(T-1), n]`` each; both None for single frames)."""
        target, post, z, reconstruction, kl = self.elbo_terms(batch, generator)
        terms = {"reconstruction": reconstruction, "kl": kl}
        total = reconstruction + self.config.beta * kl
        b, frames = batch.obs.shape[:2]
        if frames < 2:
            return total, terms, target, None, None
        return (total, terms, target, z.view(b, frames, -1)[:, :-1].flatten(0, 1),
                post.mean.view(b, frames, -1)[:, 1:].flatten(0, 1))

    def forward_terms(self, z_next: torch.Tensor, mean_next: torch.Tensor, target: torch.Tensor,
                      batch_size: int, terms: dict) -> torch.Tensor:
        """Forward-prediction loss of predicted next latents ``z_next`` ``[B*(T-1), n]`` against the next
        frames' posterior means ``mean_next`` (``forward_latent``) and/or their targets (``forward_recon``;
        ``target`` holds all ``B*T`` frames), per ``config.prediction``; the terms are logged in ``terms``."""
        c = self.config
        forward = z_next.new_zeros(())
        if c.prediction in ("latent", "both"):
            terms["forward_latent"] = (z_next - mean_next).square().sum(-1).mean()
            forward = forward + terms["forward_latent"]
        if c.prediction in ("recon", "both"):
            target_next = target.view(batch_size, -1, *target.shape[1:])[:, 1:].flatten(0, 1)
            terms["forward_recon"] = self.reconstruction_term(self.decode_logits(z_next), target_next)
            forward = forward + terms["forward_recon"]
        return forward

    def parameter_groups(self) -> list[dict]:
        return self.parameter_groups_with([self.angles], self.config.lr_actions)

    def structure_scores(self) -> dict[str, float]:
        """Per action the share of its rotation in its dominant plane (``rotation_purity/<action>``, from
        the angles, and ``rotation_eigen_purity/<action>``, from the matrix), their minima, and whether
        actions of one factor share a plane / different factors use disjoint planes (see
        :func:`dynrep.metrics.dynamics.rotation_structure`). The block angles are written as Givens
        angles on all ``n(n-1)/2`` coordinate planes (0 off the ``(2k, 2k+1)`` planes), which gives the
        same matrices since the blocks commute."""
        n = self.config.latent_dim
        with torch.no_grad():
            angles = self.action_angles().cpu()
            index = {plane: p for p, plane in enumerate(plane_indices(n))}
            givens = torch.zeros(len(angles), n * (n - 1) // 2, dtype=angles.dtype)
            givens[:, [index[(2 * k, 2 * k + 1)] for k in range(n // 2)]] = angles
            matrices = self.action_matrices()[0].cpu()
            return rotation_structure(givens.numpy(), matrices.numpy(), self.action_names, self.action_factors)
