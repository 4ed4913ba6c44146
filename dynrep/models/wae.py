"""Wasserstein auto-encoder with an MMD penalty (WAE-MMD; Tolstikhin et al. 2018).

Reference: I. Tolstikhin, O. Bousquet, S. Gelly, B. Schoelkopf, "Wasserstein Auto-Encoders",
ICLR 2018, Algorithm 2 (WAE-MMD), with the inverse-multiquadratic kernel of its experiments.
Defaults follow the "Lost in Latent Space" configuration (Montero et al.; specs/latent.md §1.5),
including the L1 penalty on the encoder log-variance of Rubenstein et al. 2018 ("On the latent
space of Wasserstein auto-encoders") that keeps a stochastic encoder from collapsing to a
deterministic one.

Deviations / interpretation choices (documented here and in :class:`WAE`):

* LiLS's kernel sums squared distances over the whole batch and divides by 2 instead of by
  the number of pairs; this module implements the per-pair unbiased estimator instead.
* LiLS's ``prior_var = 2`` is used as a standard-deviation multiplier (``z_p = 2·ε``);
  here it is the explicit ``prior_std`` option, so the prior is N(0, prior_std²·I).
* The kernel base constant is ``C = 2·latent_dim·prior_std²`` (Tolstikhin's ``C = 2dσ²``
  with σ² the prior variance) unless ``kernel_base`` is given. LiLS hard-codes base 10
  (= 2·5·1); with the defaults here (latent_dim 10, prior_std 2) the base is 80.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dynrep.data.devices import to_device
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, ModelConfig
from dynrep.models.registry import register_model
from dynrep.models.vae import RECONSTRUCTIONS, VAE

#: Multipliers ``s`` of the kernel base: the kernel sums ``C_s/(C_s + |x-y|²)`` over ``C_s = base·s``.
DEFAULT_KERNEL_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_kernel(x: torch.Tensor, y: torch.Tensor, scales) -> torch.Tensor:
    """Sum of inverse-multiquadratic kernels between every row of ``x [N, D]`` and ``y [M, D]``.

    ``k(x, y) = Σ_c c / (c + ‖x − y‖²)`` over the constants ``c`` in ``scales`` (already
    multiplied by the base). Returns the Gram matrix ``[N, M]``.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be [N, D] and [M, D] with the same D, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    scales = torch.as_tensor(scales, dtype=x.dtype).flatten()  # checked on the host (a sequence's values are there)
    if scales.numel() == 0 or not bool((scales > 0).all()):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales.tolist()}")
    scales = to_device(scales, x.device)
    sq_dist = (x[:, None, :] - y[None, :, :]).square().sum(-1)  # [N, M], exact (no cancellation)
    return (scales / (scales + sq_dist[..., None])).sum(-1)


def mmd_unbiased(z: torch.Tensor, p: torch.Tensor, scales) -> torch.Tensor:
    """Unbiased estimate of MMD² between samples ``z [N, D]`` and ``p [M, D]`` (IMQ kernel sum).

    ``mean_{i≠j} k(z_i, z_j) + mean_{i≠j} k(p_i, p_j) − 2·mean_{i,j} k(z_i, p_j)``
    (Gretton et al. 2012, eq. 3; Tolstikhin et al. 2018, Algorithm 2). Needs N, M >= 2.
    The estimate can be slightly negative when the distributions are equal.
    """
    n, m = z.shape[0], p.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side, got {n} and {m}")
    k_zz = imq_kernel(z, z, scales)
    k_pp = imq_kernel(p, p, scales)
    k_zp = imq_kernel(z, p, scales)
    # Off-diagonal means: remove the diagonal (each k(x, x) = len(scales)) from the sum.
    within_z = (k_zz.sum() - k_zz.diagonal().sum()) / (n * (n - 1))
    within_p = (k_pp.sum() - k_pp.diagonal().sum()) / (m * (m - 1))
    return within_z + within_p - 2.0 * k_zp.mean()


@register_model("wae")
class WAE(VAE):
    """WAE-MMD: Gaussian encoder, decoder, loss = reconstruction + λ1·MMD(q(z), p(z)) + λ2·Σ|logvar|/B.

    Reuses the VAE's encoder head (mean and log-variance) and trains on frames as independent
    samples. Per batch of B frames:

    * ``z = mean + exp(logvar/2)·ε`` (one sample of q(z|x) per frame), decoded;
    * reconstruction summed over observation elements and averaged over the batch:
      Gaussian (squared error of the sigmoid output; the default, LiLS's "MSE-sum") or
      Bernoulli (BCE with logits);
    * ``mmd`` = :func:`mmd_unbiased` between the B encoded samples and B prior samples
      ``prior_std·ε`` (drawn with the ``generator`` given to :meth:`loss`), with kernel
      constants ``C_s = base·s``, ``base = kernel_base`` or ``2·latent_dim·prior_std²``;
    * ``logvar_l1`` = ``Σ|logvar| / B`` (Rubenstein et al. 2018).

    See the module docstring for the deviations from the LiLS code. ``representation`` is
    the posterior mean, as for the VAE; traversals sweep [-3, 3] regardless of ``prior_std``.
    """

    @dataclass
    class Config(ModelConfig):
        """Defaults: LiLS WAE config (specs/latent.md §1.5) except ``latent_dim`` (library default 10).

        Attributes:
            mmd_weight: λ1 (LiLS config 10; runs 10/20/30).
            logvar_weight: λ2 of the L1 penalty on the encoder log-variance (LiLS 1e-3).
            prior_std: prior N(0, prior_std²·I) (LiLS ``prior_var`` = 2, used as a std).
            kernel_base: base constant of the IMQ kernel; None = ``2·latent_dim·prior_std²``.
            kernel_scales: multipliers of the base (LiLS/Tolstikhin {0.1, ..., 10}).
            reconstruction: "gaussian" (LiLS MSE-sum, default), "bernoulli" or "normal" (see
                :class:`~dynrep.models.vae.VAE`, with ``decoder_logvar_init`` / ``learn_decoder_var``).
        """

        latent_dim: int = 10
        batch_size: int = 64
        episode_length: int = 0
        lr: float = 1e-3
        mmd_weight: float = 10.0
        logvar_weight: float = 1e-3
        prior_std: float = 2.0
        kernel_base: float | None = None
        kernel_scales: tuple[float, ...] = DEFAULT_KERNEL_SCALES
        reconstruction: str = "gaussian"
        decoder_logvar_init: float = -10.0
        learn_decoder_var: bool = True

        def __post_init__(self):
            super().__post_init__()
            for name in ("mmd_weight", "logvar_weight"):
                value = getattr(self, name)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                    raise ValueError(f"{name} must be a number >= 0, got {value!r}")
            if isinstance(self.prior_std, bool) or not isinstance(self.prior_std, (int, float)) \
                    or not self.prior_std > 0:
                raise ValueError(f"prior_std must be a positive number, got {self.prior_std!r}")
            if self.kernel_base is not None and (isinstance(self.kernel_base, bool)
                                                 or not isinstance(self.kernel_base, (int, float))
                                                 or not self.kernel_base > 0):
                raise ValueError(f"kernel_base must be a positive number or None, got {self.kernel_base!r}")
            if not isinstance(self.kernel_scales, tuple) or not self.kernel_scales or any(
                    isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0
                    for s in self.kernel_scales):
                raise ValueError(f"kernel_scales must be a non-empty tuple of positive numbers, "
                                 f"got {self.kernel_scales!r}")
            if self.reconstruction not in RECONSTRUCTIONS:
                raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {self.reconstruction!r}")
            frames = self.batch_size * (self.episode_length + 1)
            if frames < 2:
                raise ValueError(f"the MMD needs at least 2 frames per batch: batch_size * (episode_length + 1) "
                                 f"must be >= 2, got batch_size={self.batch_size}, "
                                 f"episode_length={self.episode_length}")

        @property
        def kernel_constants(self) -> tuple[float, ...]:
            """The IMQ constants ``C_s = base·s`` actually used."""
            base = (2.0 * self.latent_dim * self.prior_std ** 2 if self.kernel_base is None
                    else float(self.kernel_base))
            return tuple(base * s for s in self.kernel_scales)

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        c = self.config
        target, post, z = self.sample_posterior(batch, generator)
        prior = c.prior_std * torch.randn(post.mean.shape, generator=generator, device=post.mean.device)
        reconstruction = self.reconstruction_term(self.decode_logits(z), target)
        mmd = mmd_unbiased(z, prior, c.kernel_constants)
        logvar_l1 = post.logvar.abs().sum(-1).mean()
        total = reconstruction + c.mmd_weight * mmd + c.logvar_weight * logvar_l1
        return LossOutput(total, {"reconstruction": reconstruction, "mmd": mmd, "logvar_l1": logvar_l1})
