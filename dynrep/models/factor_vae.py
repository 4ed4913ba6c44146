"""FactorVAE (Kim & Mnih, ICML 2018): a VAE whose total correlation is penalised through a discriminator.

The batch is split in halves as in the Lost-in-Latent-Space study's ``FactorLoss`` (specs/latent.md 1.5,
``src/training/loss.py`` of mmrl/lost-in-latent-space): the VAE loss is ``reconstruction + KL + gamma * TC``
with the reconstruction over the whole batch and the KL and ``TC ~= mean(D(z)[:, 0] - D(z)[:, 1])`` over
the first half (each a batch mean); the discriminator ``D`` (MLP ``latent_dim -> 1000 x 6 (LeakyReLU 0.2)
-> 2``) learns to tell samples of ``q(z)`` (class 0: the first half's ``z``) from samples of the product
of its marginals (class 1: the second half's ``z`` with every dimension permuted across the batch
independently). With an odd number of frames the last one is reconstructed but left out of the halves.

The discriminator has its own Adam hyper-parameters (lr 1e-4, betas (0.5, 0.9)) as a separate
parameter group of the trainer's optimiser, and both losses are summed into one backward pass:
the VAE's TC term reads the discriminator through detached parameters and the discriminator's
loss reads detached latents, so each part gets exactly the gradient of its own loss, as with the
reference's two optimisers stepping on the same batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, gaussian_kl


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Every column of ``z [B, D]`` shuffled across the batch by its own random permutation: samples of
    the product of the marginals."""
    order = torch.argsort(torch.rand(z.shape, generator=generator, device=z.device), dim=0)
    return torch.gather(z, 0, order)


def discriminator(latent_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """MLP ``latent_dim -> hidden x layers (LeakyReLU 0.2) -> 2`` logits (class 0 = q(z), 1 = permuted)."""
    modules: list[nn.Module] = []
    for size_in in [latent_dim] + [hidden] * (layers - 1):
        modules += [nn.Linear(size_in, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*modules, nn.Linear(hidden, 2))


@register_model("factor_vae")
class FactorVAE(VAE):
    """VAE + ``gamma`` x total correlation estimated by a density-ratio discriminator."""

    @dataclass
    class Config(VAE.Config):
        batch_size: int = 128
        lr: float = 1e-4
        gamma: float = 20.0
        discriminator_hidden: int = 1000
        discriminator_layers: int = 6
        discriminator_lr: float = 1e-4

        def __post_init__(self):
            super().__post_init__()
            if not self.gamma >= 0:
                raise ValueError(f"gamma must be >= 0, got {self.gamma}")
            check_int("discriminator_hidden", self.discriminator_hidden, 1)
            check_int("discriminator_layers", self.discriminator_layers, 1)
            if not self.discriminator_lr > 0:
                raise ValueError(f"discriminator_lr must be > 0, got {self.discriminator_lr}")
            if self.batch_size * (self.episode_length + 1) < 4:
                raise ValueError(f"factor_vae splits each batch in halves of at least 2 frames: batch_size x "
                                 f"(episode_length + 1) must be >= 4, got {self.batch_size * (self.episode_length + 1)}")

    def __init__(self, env, config: "FactorVAE.Config"):
        super().__init__(env, config)
        self.discriminator = discriminator(config.latent_dim, config.discriminator_hidden,
                                           config.discriminator_layers)

    def parameter_groups(self) -> list[dict]:
        return self.parameter_groups_with(list(self.discriminator.parameters()), self.config.discriminator_lr,
                                          betas=(0.5, 0.9))

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        c = self.config
        target, post, z = self.sample_posterior(batch, generator)
        half = len(z) // 2
        first = slice(0, half)
        reconstruction = self.reconstruction_term(self.decode_logits(z), target)
        kl = gaussian_kl(post.mean[first], post.logvar[first]).mean()
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        logits = functional_call(self.discriminator, frozen, (z[first],))
        total_correlation = (logits[:, 0] - logits[:, 1]).mean()
        real = self.discriminator(z[first].detach())
        shuffled = self.discriminator(permute_dims(z[half:2 * half].detach(), generator))
        labels = torch.cat([torch.zeros(half, dtype=torch.long, device=z.device),
                            torch.ones(half, dtype=torch.long, device=z.device)])
        both = torch.cat([real, shuffled])
        discriminator_loss = F.cross_entropy(both, labels)
        accuracy = (both.argmax(1) == labels).float().mean()
        total = reconstruction + kl + c.gamma * total_correlation + discriminator_loss
        return LossOutput(total, {"reconstruction": reconstruction, "kl": kl, "total_correlation": total_correlation,
                                  "discriminator": discriminator_loss, "discriminator_accuracy": accuracy})
