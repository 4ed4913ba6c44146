"""SlowVAE (Klindt et al. 2021, "Towards Nonlinear Disentanglement in Natural Data with Temporal
Sparse Coding").

A VAE trained on pairs of consecutive frames whose latents are pulled towards sparse (Laplace)
transitions. Follows the mechanism-sparsity repo's version of the bethgelab code
(specs/causal.md §1.4; read in ``baseline_models/slowvae_pcl/scripts/solver.py`` and ``model.py``
of slachapelle/disentanglement_via_mechanism_sparsity, commit ce29394). With the pair
``(x^{t-1}, x^t)`` = frames 0 and 1 of a window, posteriors ``q(z|x) = N(mu, diag sigma^2)`` and
``M`` the number of pairs (``2M`` frames), the loss is

    2 * rec + beta * KL + gamma * (CE_L - H)

* ``rec`` = ``-log N(x; g(z), sigma_x^2)`` of one reparameterised sample, summed over coordinates
  and averaged over the ``2M`` frames (the reference divides by the interleaved batch size
  ``2M``), so ``2 * rec`` is, per pair, the reconstruction of BOTH frames;
* ``KL`` = analytic ``KL(q(z|x) || N(0, I))`` summed over latents, averaged over the ``2M``
  frames (the reference's ``cross_ent_normal - normal_entropy``, each ``.sum(1).mean(0)``);
* ``CE_L`` = per pair, ``CE(q(z^t|x^t), Laplace(mu^{t-1}, rate)) + CE(q(z^{t-1}|x^{t-1}),
  Laplace(mu^t, rate))`` summed over latents, averaged over the ``M`` pairs. The Laplace locations
  are the other frame's posterior MEANS (not samples); each cross-entropy is the closed form of
  :func:`laplace_cross_entropy` with ``m`` = own mean minus the other frame's mean and ``s`` = own
  posterior std ``sqrt(sigma^2 + 1e-6)`` (the reference's floor). Gradients reach both means;
* ``H`` = Gaussian entropy ``sum_d 0.5 * (log sigma_d^2 + log(2 pi e))`` averaged over the ``2M``
  frames: ONE frame's entropy on average, although ``CE_L`` holds two cross-entropies per pair
  (so ``CE_L - H`` is not the sum of two KLs; this is the reference's arithmetic, kept).

Defaults (published): beta = 1, gamma = 10, rate_prior = 6, Adam lr 1e-4 (betas 0.9, 0.999),
batch 1024 pairs, the 6x512 LeakyReLU(0.2) MLP encoder and decoder, representation = encoder
mean. Decoder likelihood ``N(g(z), sigma_x^2)``: the reference learns ``sigma_x =
softplus(l) + 1e-6`` from ``l = -5``; here the VAE's ``"normal"`` reconstruction learns
``log sigma_x^2`` from :data:`DECODER_LOGVAR_INIT` ``= 2 log(softplus(-5) + 1e-6)`` (same initial
variance, exp- instead of softplus-parameterised).

Deviations: the reparameterised sample uses std ``exp(logvar / 2)`` (the reference adds 1e-6 to
it) and the KL omits the reference's constant ``+ 0.5e-6`` per latent (no effect on gradients).
Windows longer than one step (other environments) give ``T`` pairs per episode; rec, KL and H
are then means over all ``T + 1`` frames and ``CE_L`` over all pairs (with ``T = 1`` exactly the
reference). No iteration budget: the trainer's ``steps`` sets it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, SequenceConfig
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, gaussian_kl

#: The reference's initial decoder std ``softplus(-5) + 1e-6`` as a log-variance.
DECODER_LOGVAR_INIT = 2.0 * math.log(math.log1p(math.exp(-5.0)) + 1e-6)
#: Added to the posterior variance in the Laplace cross-entropies (reference).
VARIANCE_FLOOR = 1e-6
_LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def laplace_cross_entropy(mean_diff: torch.Tensor, std: torch.Tensor, rate: float | torch.Tensor) -> torch.Tensor:
    """``E_{x ~ N(mu_q, s^2)}[-log Laplace(x; mu_p, rate)]`` elementwise (broadcasting), with
    ``mean_diff = m = mu_q - mu_p`` and ``std = s > 0``:

        -log(rate / 2) + rate * s * sqrt(2 / pi) * exp(-m^2 / (2 s^2)) - rate * m * (1 - 2 Phi(m / s))

    (``E|Y|`` of ``Y ~ N(m, s^2)`` is the folded-normal mean, even in ``m``, so the sign
    convention of ``m`` does not matter.)
    """
    rate = torch.as_tensor(rate, dtype=std.dtype, device=std.device) if isinstance(rate, torch.Tensor) else \
        std.new_full((), rate)
    folded_mean = (std * math.sqrt(2.0 / math.pi) * torch.exp(-0.5 * (mean_diff / std).square())
                   - mean_diff * (1.0 - 2.0 * torch.special.ndtr(mean_diff / std)))
    return -torch.log(rate / 2.0) + rate * folded_mean


@register_model("slowvae")
class SlowVAE(VAE):
    """SlowVAE on consecutive frames: ``2 rec + beta KL + gamma (CE_L - H)`` (module docstring).

    Logged terms: ``reconstruction`` (frame mean), ``kl`` (frame mean), ``laplace_cross_entropy``
    (pair mean of both directions), ``entropy`` (frame mean) and ``kl_laplace`` = ``CE_L - H``.
    """

    @dataclass
    class Config(SequenceConfig, VAE.Config):
        lr: float = 1e-4
        beta: float = 1.0
        gamma: float = 10.0
        rate_prior: float = 6.0
        reconstruction: str = "normal"
        decoder_logvar_init: float = DECODER_LOGVAR_INIT
        learn_decoder_var: bool = True

        def __post_init__(self):
            super().__post_init__()
            if not self.gamma >= 0:
                raise ValueError(f"gamma must be >= 0, got {self.gamma!r}")
            if not self.rate_prior > 0:
                raise ValueError(f"rate_prior must be > 0, got {self.rate_prior!r}")

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        if batch.length < 1:
            raise ValueError("slowvae needs windows of at least two frames (episode_length >= 1), "
                             "got static frames")
        c = self.config
        target, post, z = self.sample_posterior(batch, generator)
        reconstruction = self.reconstruction_term(self.decode_logits(z), target)
        kl = gaussian_kl(post.mean, post.logvar).mean()
        entropy = (0.5 * (post.logvar + _LOG_2PI_E)).sum(-1).mean()
        mean = post.mean.view(*batch.obs.shape[:2], -1)                                  # [B, T+1, D]
        std = (post.logvar.exp() + VARIANCE_FLOOR).sqrt().view_as(mean)
        diff = mean[:, 1:] - mean[:, :-1]                                                 # mu^t - mu^{t-1}
        cross_entropy = (laplace_cross_entropy(diff, std[:, 1:], c.rate_prior)
                         + laplace_cross_entropy(-diff, std[:, :-1], c.rate_prior)).sum(-1).mean()
        kl_laplace = cross_entropy - entropy
        total = 2.0 * reconstruction + c.beta * kl + c.gamma * kl_laplace
        return LossOutput(total, {"reconstruction": reconstruction, "kl": kl, "laplace_cross_entropy": cross_entropy,
                                  "entropy": entropy, "kl_laplace": kl_laplace})
