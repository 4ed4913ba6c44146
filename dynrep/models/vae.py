"""Gaussian VAE (Kingma & Welling 2014) with a β weight on the KL (Higgins et al. 2017)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, ModelConfig, Posterior, RepresentationModel, observations_to_float
from dynrep.models.losses import bernoulli_nll
from dynrep.models.registry import register_model

RECONSTRUCTIONS = ("bernoulli", "gaussian")


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over latent dims: ``[B, D] -> [B]``."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Reconstruction term summed over the elements of a frame and averaged over the batch: ``kind``
    ``"bernoulli"`` (BCE with logits) or ``"gaussian"`` (squared error of the sigmoid output). ``[B, ...]`` -> scalar."""
    if kind == "bernoulli":
        return bernoulli_nll(logits, target) * target[0].numel()
    return (torch.sigmoid(logits) - target).square().flatten(1).sum(-1).mean()


@register_model("vae")
class VAE(RepresentationModel):
    """Gaussian posterior, standard normal prior, loss = reconstruction + β·KL.

    Trains on the frames of its trajectories as independent samples (the default
    ``episode_length=0`` gives batches of single frames). The reconstruction term is
    summed over observation elements and averaged over the batch: Bernoulli (BCE with
    logits) or Gaussian (squared error of the sigmoid output).
    """

    @dataclass
    class Config(ModelConfig):
        latent_dim: int = 10
        batch_size: int = 64
        episode_length: int = 0
        lr: float = 1e-3
        beta: float = 1.0
        reconstruction: str = "bernoulli"

        def __post_init__(self):
            super().__post_init__()
            if not self.beta >= 0:
                raise ValueError(f"beta must be >= 0, got {self.beta}")
            if self.reconstruction not in RECONSTRUCTIONS:
                raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {self.reconstruction!r}")

    def encoder_outputs(self) -> int:
        return 2 * self.config.latent_dim

    def encode(self, obs: torch.Tensor) -> Posterior:
        mean, logvar = self.encoder(observations_to_float(obs)).chunk(2, dim=-1)
        return Posterior(mean, logvar)

    def sample_posterior(self, batch: Trajectory, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, Posterior, torch.Tensor]:
        """The batch's frames as targets ``[N, *obs_shape]`` in [0, 1], their posterior and one
        reparameterised sample ``z = mean + exp(logvar / 2) * eps`` ``[N, latent_dim]`` (``eps`` from
        ``generator``), ``N = B * (T + 1)``."""
        obs = batch.obs.flatten(0, 1)
        post = self.encode(obs)
        noise = torch.randn(post.mean.shape, generator=generator, device=post.mean.device)
        return observations_to_float(obs), post, post.mean + noise * (0.5 * post.logvar).exp()

    def elbo_terms(self, batch: Trajectory, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, Posterior, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(target, posterior, z, reconstruction, kl)`` of the batch's frames (see :meth:`sample_posterior`):
        the reconstruction term of ``z``'s decoding and the batch-mean KL to N(0, I)."""
        target, post, z = self.sample_posterior(batch, generator)
        reconstruction = reconstruction_loss(self.decode_logits(z), target, self.config.reconstruction)
        return target, post, z, reconstruction, gaussian_kl(post.mean, post.logvar).mean()

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        *_, reconstruction, kl = self.elbo_terms(batch, generator)
        return LossOutput(reconstruction + self.config.beta * kl, {"reconstruction": reconstruction, "kl": kl})
