"""Gaussian VAE (Kingma & Welling 2014) with a β weight on the KL (Higgins et al. 2017)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, ModelConfig, Posterior, RepresentationModel, observations_to_float
from dynrep.models.losses import bernoulli_nll, gaussian_nll
from dynrep.models.registry import register_model

#: ``bernoulli``: BCE with logits; ``gaussian``: squared error of the sigmoid output (both for pixels in
#: [0, 1]); ``normal``: Gaussian likelihood of the raw decoder output with a decoder log-variance (for
#: real-valued vectors such as toy-nn observations).
RECONSTRUCTIONS = ("bernoulli", "gaussian", "normal")


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over latent dims: ``[B, D] -> [B]``."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def elementwise_nll(logits: torch.Tensor, target: torch.Tensor, kind: str,
                    logvar: torch.Tensor | None = None) -> torch.Tensor:
    """Per-element reconstruction NLL of decoder ``logits`` (same shape as ``target``) for ``kind`` in
    :data:`RECONSTRUCTIONS`; ``"normal"`` needs the decoder ``logvar`` (broadcasting)."""
    if kind == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if kind == "gaussian":
        return (torch.sigmoid(logits) - target).square()
    if kind == "normal":
        if logvar is None:
            raise ValueError("the 'normal' reconstruction needs the decoder log-variance (logvar)")
        return gaussian_nll(logits, target, logvar)
    raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {kind!r}")


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str,
                        logvar: torch.Tensor | None = None) -> torch.Tensor:
    """Reconstruction term summed over the elements of a frame and averaged over the batch (see
    :func:`elementwise_nll` for ``kind``). ``[B, ...]`` -> scalar."""
    if kind == "bernoulli":
        return bernoulli_nll(logits, target) * target[0].numel()
    return elementwise_nll(logits, target, kind, logvar).flatten(1).sum(-1).mean()


@register_model("vae")
class VAE(RepresentationModel):
    """Gaussian posterior, standard normal prior, loss = reconstruction + β·KL.

    Trains on the frames of its trajectories as independent samples (the default
    ``episode_length=0`` gives batches of single frames). The reconstruction term is
    summed over observation elements and averaged over the batch: Bernoulli (BCE with
    logits), Gaussian (squared error of the sigmoid output) or, for real-valued vectors,
    ``"normal"``: ``-log N(x; g(z), exp(decoder_logvar))`` with one decoder log-variance,
    learned (``learn_decoder_var``) from ``decoder_logvar_init`` or fixed at it; ``decode``
    then returns ``g(z)`` itself.
    """

    @dataclass
    class Config(ModelConfig):
        latent_dim: int = 10
        batch_size: int = 64
        episode_length: int = 0
        lr: float = 1e-3
        beta: float = 1.0
        reconstruction: str = "bernoulli"
        decoder_logvar_init: float = -10.0
        learn_decoder_var: bool = True

        def __post_init__(self):
            super().__post_init__()
            if not self.beta >= 0:
                raise ValueError(f"beta must be >= 0, got {self.beta}")
            if self.reconstruction not in RECONSTRUCTIONS:
                raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {self.reconstruction!r}")

    def __init__(self, env, config: ModelConfig):
        super().__init__(env, config)
        logvar = torch.tensor(float(config.decoder_logvar_init)) if config.reconstruction == "normal" else None
        if logvar is not None and config.learn_decoder_var:
            self.decoder_logvar = nn.Parameter(logvar)
        else:
            self.register_buffer("decoder_logvar", logvar)  # None (not "normal") is not saved

    def encoder_outputs(self) -> int:
        return 2 * self.config.latent_dim

    def reconstruction_term(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """:func:`reconstruction_loss` of decoder ``logits`` ``[B, *obs_shape]`` with this model's kind."""
        return reconstruction_loss(logits, target, self.config.reconstruction, self.decoder_logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Observations ``[B, *obs_shape]`` of latents ``[B, latent_dim]``: in [0, 1] (sigmoid of the
        logits), or the decoder mean itself for the ``"normal"`` reconstruction."""
        logits = self.decode_logits(z)
        return logits if self.config.reconstruction == "normal" else torch.sigmoid(logits)

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
        reconstruction = self.reconstruction_term(self.decode_logits(z), target)
        return target, post, z, reconstruction, gaussian_kl(post.mean, post.logvar).mean()

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        *_, reconstruction, kl = self.elbo_terms(batch, generator)
        return LossOutput(reconstruction + self.config.beta * kl, {"reconstruction": reconstruction, "kl": kl})
