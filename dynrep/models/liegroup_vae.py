"""Commutative Lie Group VAE (Zhu, Xu & Tao, ICML 2021, "Commutative Lie Group VAE for Disentanglement
Learning"; original code zhuxinqimac/CommutativeLieGroupVAE-Pytorch, ``models/lie_vae.py``; specs/latent.md 1.7).

The encoder (the shared conv net) outputs *group features* ``g_e`` in R^{m²}, read as an ``m x m``
matrix (one subgroup). Two MLP heads ``m² -> 4m² -> ReLU -> latent_dim`` give the posterior mean and
log-variance; ``z = μ + σ ⊙ ε`` (``μ`` is the representation). The decoder side holds a Lie algebra
basis ``A_1..A_n`` (``n = latent_dim``, each ``m x m``, initialised N(0, 0.001²)) and maps a latent to
the group element ``g_d(z) = expm(Σ_i z_i A_i)`` (:func:`exponential_map`), flattened to m², which the
conv decoder (built for an m²-dimensional input) turns into an image. During training, with
probability ``forward_encoder_prob`` (one coin per batch, from the passed generator) the decoder gets
``g_e`` instead of ``g_d`` for the reconstruction term.

Loss (per batch, KL and group terms averaged over the batch)::

    reconstruction + β·|KL − C_t| + group_reconstruction_weight · mean_b ‖g_e − g_d‖²
      + hessian_weight · hessian_penalty(A) + commutator_weight · commutator_penalty(A)

``C_t`` is :func:`~dynrep.models.beta_vae.capacity_schedule` from 0 to ``capacity_max`` over
``capacity_steps`` (the original ``control_capacity``); with the default ``capacity_max = 0`` the term
is the plain ``β·KL`` as in all published runs. :func:`hessian_penalty` (the "one-parameter subgroup"
/ Hessian penalty, forcing ``A_i A_j = 0`` for ``i != j`` and hence commuting, decoupled subgroups) is
``Σ_{i≠j} ‖A_i A_j‖_F² / n²``: the original takes the mean over the full ``n x n`` grid of products with
the diagonal masked to zero, so the denominator is ``n²``, not the number of pairs.

Defaults (original ``main.py`` and README run scripts): latent_dim 10, m = 10 (subgroup size 100, the
dSprites setting; 3DShapes used m = 20), lie_alg_init_scale 0.001, forward_encoder_prob 0.2,
group_reconstruction_weight 0.1 (``hy_rec``), hessian_weight 40 (``hy_hes``: code default and dSprites
runs; the 3DShapes runs used 20), commutator_weight 0 (``hy_commute``), β = 1, no capacity, Adam lr 1e-4,
Gaussian reconstruction (``recons_loss_type=l2``, ``(sigmoid(x̂) − x)²`` summed over pixels / batch: the
code default, the 3DShapes runs and LiLS; the dSprites runs used ``bce``, selectable as
``reconstruction="bernoulli"``).

Deviations: batch size 64 by default instead of the paper's 256 (CPU training; set ``batch_size=256``
for the published setting); network weights keep PyTorch's default initialisation (the original uses
Xavier-uniform); one subgroup only (the original allows a list of subgroups, its published runs use
one); :func:`commutator_penalty` is the true commutator ``‖A_i A_j − A_j A_i‖_F²`` (averaged like the
Hessian penalty) whereas the original's ``calc_commute_loss`` subtracts the *transpose* of ``A_j A_i``
(``A_j A_i − (A_j A_i)ᵀ``); the term is off by default and unused in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, Posterior, observations_to_float
from dynrep.models.beta_vae import capacity_schedule
from dynrep.models.losses import full_precision
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, gaussian_kl


def _check_basis(basis: torch.Tensor) -> None:
    if basis.ndim != 3 or basis.shape[1] != basis.shape[2]:
        raise ValueError(f"basis must have shape [n, m, m], got {tuple(basis.shape)}")


def exponential_map(z: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Group elements ``expm(Σ_i z_i A_i)`` flattened to ``[B, m²]`` for latents ``z [B, n]`` and a Lie
    algebra basis ``basis [n, m, m]`` (``A_i = basis[i]``)."""
    _check_basis(basis)
    if z.ndim != 2 or z.shape[1] != basis.shape[0]:
        raise ValueError(f"z must have shape [B, {basis.shape[0]}] for a basis of {basis.shape[0]} matrices, "
                         f"got {tuple(z.shape)}")
    algebra = torch.einsum("bn,nij->bij", z, basis)
    return torch.linalg.matrix_exp(full_precision(algebra)).flatten(1)  # bfloat16 under autocast overflows


def _pair_products(basis: torch.Tensor) -> torch.Tensor:
    """``products[i, j] = A_i A_j`` ``[n, n, m, m]``."""
    _check_basis(basis)
    return torch.einsum("iab,jbc->ijac", basis, basis)


def _off_diagonal_mean(squared_norms: torch.Tensor) -> torch.Tensor:
    """Mean over the ``n x n`` grid of ``squared_norms`` with the diagonal set to zero (denominator ``n²``)."""
    n = squared_norms.shape[0]
    mask = 1.0 - torch.eye(n, dtype=squared_norms.dtype, device=squared_norms.device)
    return (squared_norms * mask).mean()


def hessian_penalty(basis: torch.Tensor) -> torch.Tensor:
    """``Σ_{i≠j} ‖A_i A_j‖_F² / n²`` for ``basis [n, m, m]`` (the original ``calc_hessian_loss``: mean over
    all ``n²`` ordered pairs with the ``i = j`` terms masked to zero). Zero iff every ``A_i A_j = 0``."""
    return _off_diagonal_mean(_pair_products(basis).square().sum((-2, -1)))


def commutator_penalty(basis: torch.Tensor) -> torch.Tensor:
    """``Σ_{i≠j} ‖A_i A_j − A_j A_i‖_F² / n²`` for ``basis [n, m, m]``: zero iff the basis commutes."""
    products = _pair_products(basis)
    return _off_diagonal_mean((products - products.transpose(0, 1)).square().sum((-2, -1)))


def group_reconstruction_loss(encoded: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
    """``mean_b ‖g_e − g_d‖²``: squared distance between encoder and exponential-map group features
    ``[B, m²]``, summed over features and averaged over the batch."""
    if encoded.shape != decoded.shape or encoded.ndim != 2:
        raise ValueError(f"group features must both have shape [B, m²], got {tuple(encoded.shape)} and "
                         f"{tuple(decoded.shape)}")
    return (encoded - decoded).square().sum(-1).mean()


@dataclass
class GroupPosterior(Posterior):
    """A :class:`Posterior` that also carries the encoder's group features ``g_e [B, m²]``."""

    group_features: torch.Tensor | None = None


def _mlp_head(size: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(size, 4 * size), nn.ReLU(), nn.Linear(4 * size, out))


@register_model("liegroup_vae")
class LieGroupVAE(VAE):
    """Commutative Lie Group VAE: latents act through ``expm(Σ z_i A_i)`` on an ``m x m`` group feature
    that the decoder reads. ``decode(z)`` takes latents ``[B, latent_dim]`` and applies the exponential
    map itself. Logged terms: ``reconstruction``, ``kl``, ``group_reconstruction``, ``hessian``,
    ``commutator``, ``encoder_features`` (1 when the decoder got ``g_e`` this step) and, with
    ``capacity_max > 0``, ``capacity``. See the module docstring for sources and deviations."""

    @dataclass
    class Config(VAE.Config):
        latent_dim: int = 10
        batch_size: int = 64
        episode_length: int = 0
        lr: float = 1e-4
        beta: float = 1.0
        reconstruction: str = "gaussian"
        matrix_size: int = 10
        lie_alg_init_scale: float = 0.001
        forward_encoder_prob: float = 0.2
        group_reconstruction_weight: float = 0.1
        hessian_weight: float = 40.0
        commutator_weight: float = 0.0
        capacity_max: float = 0.0
        capacity_steps: int = 100_000

        def __post_init__(self):
            super().__post_init__()
            check_int("matrix_size", self.matrix_size, 1)
            check_int("capacity_steps", self.capacity_steps, 1)
            if not (isinstance(self.lie_alg_init_scale, (int, float)) and self.lie_alg_init_scale > 0):
                raise ValueError(f"lie_alg_init_scale must be a positive number, got {self.lie_alg_init_scale!r}")
            if not (isinstance(self.forward_encoder_prob, (int, float)) and 0 <= self.forward_encoder_prob <= 1):
                raise ValueError(f"forward_encoder_prob must be a probability in [0, 1], "
                                 f"got {self.forward_encoder_prob!r}")
            for name in ("group_reconstruction_weight", "hessian_weight", "commutator_weight", "capacity_max"):
                value = getattr(self, name)
                if not (isinstance(value, (int, float)) and value >= 0):
                    raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    def __init__(self, env, config: "LieGroupVAE.Config"):
        super().__init__(env, config)
        c = config
        size = c.matrix_size ** 2
        self.mean_head = _mlp_head(size, c.latent_dim)
        self.logvar_head = _mlp_head(size, c.latent_dim)
        self.lie_algebra_basis = nn.Parameter(
            torch.randn(c.latent_dim, c.matrix_size, c.matrix_size) * c.lie_alg_init_scale)

    def encoder_outputs(self) -> int:
        return self.config.matrix_size ** 2

    def decoder_inputs(self) -> int:
        """The flattened group element: ``matrix_size ** 2``."""
        return self.config.matrix_size ** 2

    def encode(self, obs: torch.Tensor) -> GroupPosterior:
        features = self.encoder(observations_to_float(obs))
        return GroupPosterior(self.mean_head(features), self.logvar_head(features), features)

    def group_features(self, z: torch.Tensor) -> torch.Tensor:
        """``g_d(z) = expm(Σ_i z_i A_i)`` flattened, ``[B, m²]``, of latents ``[B, latent_dim]``."""
        return exponential_map(z, self.lie_algebra_basis)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.group_features(z))

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        c = self.config
        target, post, z = self.sample_posterior(batch, generator)
        decoded = self.group_features(z)
        # One coin per batch, as in the original; only in training mode. Chosen on the device (torch.where):
        # reading the coin on the host would wait for the device every step.
        use_encoder = torch.zeros((), dtype=torch.bool, device=z.device)
        if self.training:
            use_encoder = torch.rand((), generator=generator, device=z.device) < c.forward_encoder_prob
        logits = self.decoder(torch.where(use_encoder, post.group_features, decoded))
        reconstruction = self.reconstruction_term(logits, target)
        kl = gaussian_kl(post.mean, post.logvar).mean()
        capacity = capacity_schedule(step, 0.0, c.capacity_max, c.capacity_steps)
        group_rec = group_reconstruction_loss(post.group_features, decoded)
        hessian = hessian_penalty(self.lie_algebra_basis)
        commutator = commutator_penalty(self.lie_algebra_basis)
        total = (reconstruction + c.beta * (kl - capacity).abs() + c.group_reconstruction_weight * group_rec
                 + c.hessian_weight * hessian + c.commutator_weight * commutator)
        terms = {"reconstruction": reconstruction, "kl": kl, "group_reconstruction": group_rec,
                 "hessian": hessian, "commutator": commutator,
                 "encoder_features": use_encoder.to(kl.dtype)}
        if c.capacity_max > 0:
            terms["capacity"] = kl.new_full((), capacity)
        return LossOutput(total, terms)
