"""ICM-VAE (Komanduri et al., IJCAI 2024): causal mechanisms as conditional affine flows, label-supervised.

Follows specs/causal.md section 2.2 (reference repo Akomand/ICM-VAE, ``models/icm_vae.py``,
``prior.py``, ``causal_masked_flow.py``) for an environment with ``n`` causal variables and a known
graph (``env.graph``, ``env.variables``, ``env.label_scale``: Pendulum, Flow):

1. An MLP encoder (flattened image ``-> 900 -> ELU -> 300 -> ELU -> n*k``) gives the exogenous
   noise ``ε``; only its mean is used, the posterior variance is fixed to 1 (``encode`` returns
   ``logvar = 0``). Nothing is sampled: the loss is deterministic and ignores ``generator``.
2. The mechanisms, a :class:`~dynrep.models.flows.CausalFlow` over the env's graph, map ``ε`` to
   ``z [B, n*k]`` (``n`` blocks of ``k``): ``z_i = exp(s(z ⊙ M_i)) ⊙ ε_i + t(z ⊙ M_i)``.
3. ``n`` separate MLP decoders (``k -> 300 -> ELU -> 300 -> ELU -> 1024 -> ELU -> C*H*W``), one per
   block, whose logits are averaged; Bernoulli likelihood on pixels in [0, 1].
4. Label prior: a second flow of the same form maps the standardised label ``ũ_i`` (broadcast to
   ``k`` dims) with the LEARNED parents: ``μ̃_i = exp(s'(z ⊙ M_i)) ⊙ ũ_i 1_k + t'(z ⊙ M_i)``,
   ``p(z_i | ·) = N(μ̃_i, I)``.
5. Loss (batch mean) ``REC + α·[KL(N(ε, I) || N(0, I)) - log|det ∂z/∂ε|] + β·Σ_i ½‖z_i - μ̃_i‖²``
   with α, β ramped linearly from 0 to ``alpha_max`` = 0.1, ``beta_max`` = 1.2 (pendulum / flow;
   the reference uses β = 0.05 for CausalCircuit). Adam lr 1e-3, batch 64.

The reference's REC is BCE-with-logits summed over the last image axis (a pixel row) and averaged
over batch x channel x row: ``reconstruction_reduction="row_mean"`` (default) keeps that scale
quirk (it is the per-image sum divided by ``C*H``, which weighs the KL and label terms ``C*H``
times more than a plain ELBO); ``"sum"`` is the usual sum over pixels, averaged over the batch.

Deviations from the reference:

* The warm-up is per optimiser step (``linear_ramp`` over ``warmup_steps``) instead of a
  staircase updated at the end of each epoch. The reference reaches the maxima at epoch 94; with
  Pendulum's 5482 training images at batch 64 (86 steps per epoch) that is
  ``94 * 86 = 8084`` steps, the default (Flow: 6480 images, 102 steps per epoch -> 9588).
* The encoder outputs ``n*k`` numbers, not ``2*n*k`` of which the reference discards half.
* Images are the env's RGB (3 channels), not the reference's RGBA PNGs (4).
* Batches are drawn at random by the trainer (the reference's loaders do not shuffle).
* CausalCircuit: the reference's conv encoder and deconv decoders are not built (the MLPs above
  are used for every environment); set ``block_dim=32, beta_max=0.05`` for its other settings.

Interventions (:meth:`ICMVAE.intervene`) take values in label units, standardise them with the
env's ``label_scale`` and map them to the latent block through the label prior
(``z_j = μ̃_j(ũ_j = v, parents)``, the parents being the (intervened) latents computed before
``j``); the mechanisms then recompute the descendants from each image's own ``ε`` and the decoder
draws the result.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import (LossOutput, ModelConfig, Posterior, RepresentationModel, check_widths,
                                 observations_to_float)
from dynrep.models.flows import CausalFlow
from dynrep.models.nets import mlp
from dynrep.models.registry import register_model
from dynrep.models.vae import gaussian_kl, reconstruction_loss
from dynrep.schedules import linear_ramp

REDUCTIONS = ("row_mean", "sum")
#: Standardised label range swept by :meth:`ICMVAE.traverse`.
TRAVERSE_RANGE = (-2.0, 2.0)


def row_mean_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference's REC: BCE with logits summed over the last axis, averaged over all others.
    ``[B, C, H, W]`` -> scalar."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1).mean()


class BlockDecoders(nn.Module):
    """``n`` MLP decoders, block ``i`` of ``z [B, n*k]`` -> logits ``[B, *obs_shape]``, averaged over blocks."""

    def __init__(self, num_blocks: int, block_dim: int, hidden: Sequence[int], obs_shape: Sequence[int]):
        super().__init__()
        self.block_dim, self.obs_shape = block_dim, tuple(obs_shape)
        self.nets = nn.ModuleList(mlp([block_dim, *hidden, math.prod(obs_shape)], "elu") for _ in range(num_blocks))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        blocks = z.split(self.block_dim, dim=-1)
        logits = torch.stack([net(block) for net, block in zip(self.nets, blocks)]).mean(0)
        return logits.view(len(z), *self.obs_shape)


@register_model("icm_vae")
class ICMVAE(RepresentationModel):
    """ICM-VAE for an environment with a causal graph (see the module docstring).

    ``representation(obs)`` is ``z [B, n*k]``; :meth:`block_means` gives one code per variable.
    Logged terms: ``reconstruction``, ``kl`` (``½‖ε‖²``), ``log_det``, ``label``
    (``Σ_i ½‖z_i − μ̃_i‖²``), ``alpha``, ``beta`` (batch means / current weights).

    Attributes:
        variables: the causal variable names, in the env's label order.
        mechanisms: the causal flow ``ε -> z``; ``mechanisms.masks`` holds the graph.
        prior: the label-prior flow ``(ũ, z) -> μ̃``.
        graph: ``[n, n]`` int64 buffer, ``graph[i, j] = 1`` iff ``j -> i``.
        label_scale: ``[n, 2]`` buffer of (centre, scale) standardising the labels.
    """

    @dataclass
    class Config(ModelConfig):
        """``latent_dim`` ``None`` = ``n * block_dim`` for the env's ``n`` variables (a given value must
        equal it). ``warmup_steps``: optimiser steps of the linear 0 -> max ramp of α and β (module
        docstring for the conversion from the reference's 94 epochs)."""

        latent_dim: int | None = None
        batch_size: int = 64
        episode_length: int = 0
        lr: float = 1e-3
        block_dim: int = 4
        alpha_max: float = 0.1
        beta_max: float = 1.2
        warmup_steps: int = 94 * 86
        encoder_hidden: tuple[int, ...] = (900, 300)
        decoder_hidden: tuple[int, ...] = (300, 300, 1024)
        flow_hidden: int = 100
        reconstruction_reduction: str = "row_mean"

        def __post_init__(self):
            latent_dim = self.latent_dim
            if latent_dim is None:  # validated against the environment by the model
                self.latent_dim = self.min_latent_dim
            super().__post_init__()
            self.latent_dim = latent_dim
            check_int("block_dim", self.block_dim, 1)
            check_int("warmup_steps", self.warmup_steps, 0)
            check_int("flow_hidden", self.flow_hidden, 1)
            for name in ("alpha_max", "beta_max"):
                value = getattr(self, name)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                    raise ValueError(f"{name} must be a float >= 0, got {value!r}")
            check_widths("encoder_hidden", self.encoder_hidden)
            check_widths("decoder_hidden", self.decoder_hidden)
            if self.reconstruction_reduction not in REDUCTIONS:
                raise ValueError(f"reconstruction_reduction must be one of {REDUCTIONS}, "
                                 f"got {self.reconstruction_reduction!r}")

    def __init__(self, env, config: Config):
        graph, variables = getattr(env, "graph", None), getattr(env, "variables", None)
        if graph is None or variables is None or getattr(env, "label_scale", None) is None:
            raise ValueError(f"icm_vae needs an environment with a causal graph (env.graph, env.variables and "
                             f"env.label_scale, e.g. Pendulum or Flow); {type(env).__name__} has none")
        n, k = len(variables), config.block_dim
        if config.latent_dim is not None and config.latent_dim != n * k:
            raise ValueError(f"latent_dim must be n_variables * block_dim = {n} * {k} = {n * k} for "
                             f"{type(env).__name__}, got {config.latent_dim} (or leave it None)")
        super().__init__(env, dataclasses.replace(config, latent_dim=n * k))
        c = self.config
        self.variables = tuple(variables)
        self.register_buffer("graph", torch.as_tensor(graph, dtype=torch.int64))
        self.register_buffer("label_scale", torch.as_tensor(env.label_scale, dtype=torch.float32))
        self.mechanisms = CausalFlow(graph, k, c.flow_hidden)
        self.prior = CausalFlow(graph, k, c.flow_hidden)

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """The ELU MLP encoder ``d_x -> encoder_hidden -> n*k`` and one MLP decoder per block."""
        c = self.config
        n = c.latent_dim // c.block_dim
        encoder = mlp([math.prod(self.observation_shape), *c.encoder_hidden, c.latent_dim], "elu")
        return encoder, BlockDecoders(n, c.block_dim, c.decoder_hidden, self.observation_shape)

    # -- encoding and decoding -------------------------------------------------------------
    def encode(self, obs: torch.Tensor) -> Posterior:
        """Posterior of the exogenous noise: mean ``ε [B, n*k]`` and ``logvar`` 0 (variance fixed to 1)."""
        eps = self.encoder(observations_to_float(obs).flatten(1))
        return Posterior(eps, torch.zeros_like(eps))

    def representation(self, obs: torch.Tensor) -> torch.Tensor:
        """The causal latents ``z = mechanisms(ε) [B, n*k]``."""
        return self.mechanisms(self.encode(obs).mean)[0]

    def block_means(self, obs: torch.Tensor) -> torch.Tensor:
        """One code per causal variable: the mean of each block of ``z``, ``[B, n]`` (for MCC against labels)."""
        z = self.representation(obs)
        return z.view(len(z), len(self.variables), self.config.block_dim).mean(-1)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C, H, W]`` of ``z [B, n*k]``: the average of the per-block decoders."""
        return self.decoder(z)

    def standardize(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels ``[..., n]`` in label units -> ``(labels - centre) / scale`` float32."""
        return (labels.to(self.label_scale) - self.label_scale[:, 0]) / self.label_scale[:, 1]

    def prior_means(self, labels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``μ̃ [B, n*k]`` of labels ``[B, n]`` (label units) given the learned latents ``z [B, n*k]``."""
        u = self.standardize(labels).repeat_interleave(self.config.block_dim, dim=-1)
        return self.prior(u, context=z)[0]

    # -- training ------------------------------------------------------------------------
    def weights(self, step: int) -> tuple[float, float]:
        """``(α, β)`` at optimiser step ``step``: linear from 0 to ``alpha_max`` / ``beta_max`` over
        ``warmup_steps``, constant afterwards."""
        c = self.config
        return (linear_ramp(step, 0.0, c.alpha_max, c.warmup_steps),
                linear_ramp(step, 0.0, c.beta_max, c.warmup_steps))

    def reconstruction_term(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """REC of logits ``[B, C, H, W]`` against pixels in [0, 1] with ``reconstruction_reduction``."""
        if self.config.reconstruction_reduction == "row_mean":
            return row_mean_bce(logits, target)
        return reconstruction_loss(logits, target, "bernoulli")

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        """The loss of the module docstring over the batch's frames; ``generator`` is unused (no sampling)."""
        obs = batch.obs.flatten(0, 1)
        labels = batch.factors.flatten(0, 1)
        eps = self.encode(obs).mean
        z, log_det = self.mechanisms(eps)
        reconstruction = self.reconstruction_term(self.decode_logits(z), observations_to_float(obs))
        kl = gaussian_kl(eps, torch.zeros_like(eps)).mean()
        log_det = log_det.mean()
        label = 0.5 * (z - self.prior_means(labels, z)).square().sum(-1).mean()
        alpha, beta = self.weights(step)
        total = reconstruction + alpha * (kl - log_det) + beta * label
        return LossOutput(total, {"reconstruction": reconstruction, "kl": kl, "log_det": log_det, "label": label,
                                  "alpha": total.new_full((), alpha), "beta": total.new_full((), beta)})

    # -- interventions -------------------------------------------------------------------
    def intervened_latents(self, obs: torch.Tensor, interventions: Mapping[str, float | torch.Tensor]
                           ) -> torch.Tensor:
        """Latents ``z [B, n*k]`` of ``obs [B, C, H, W]`` under ``do(variable = value)``.

        ``interventions``: ``{variable name: value}`` in label units, a scalar or a tensor ``[B]``.
        Each intervened block becomes the prior mean ``μ̃_j(ũ_j = v, z_pa(j))`` of the standardised
        value given its (already computed) parents; the mechanisms recompute its descendants from
        each image's own ``ε``; other blocks keep their values.
        """
        if not interventions:
            raise ValueError(f"interventions must name at least one variable; variables are {list(self.variables)}")
        unknown = [name for name in interventions if name not in self.variables]
        if unknown:
            raise ValueError(f"interventions: unknown variable {unknown[0]!r}; variables are {list(self.variables)}")
        eps = self.encode(obs).mean
        k, batch = self.config.block_dim, len(eps)
        blocks = {}
        for name, value in interventions.items():
            j = self.variables.index(name)
            value = torch.as_tensor(value, dtype=torch.float32, device=eps.device)
            if value.ndim > 1 or value.numel() not in (1, batch):
                raise ValueError(f"interventions: {name} must be a scalar or have shape [{batch}], "
                                 f"got {list(value.shape)}")
            u = ((value - self.label_scale[j, 0]) / self.label_scale[j, 1]).reshape(-1, 1).expand(batch, k)
            # evaluated when block j's turn comes, so it reads the final (possibly intervened) parents
            blocks[j] = lambda z, j=j, u=u: self.prior.block(j, u, z)[0]
        return self.mechanisms(eps, interventions=blocks)[0]

    def intervene(self, obs: torch.Tensor, interventions: Mapping[str, float | torch.Tensor]) -> torch.Tensor:
        """Images ``[B, C, H, W]`` in [0, 1] of ``obs`` under ``do(variable = value)`` (label units; see
        :meth:`intervened_latents`)."""
        return self.decode(self.intervened_latents(obs, interventions))

    def traverse(self, obs: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, list[str]]:
        """Frames ``[n, num_frames, C, H, W]`` in [0, 1] from one observation ``[1, C, H, W]``: row ``j``
        intervenes on variable ``j`` with its standardised label swept over [-2, 2]; labels = variable names."""
        check_int("num_frames", num_frames, 2)
        sweep = torch.linspace(*TRAVERSE_RANGE, num_frames, device=obs.device)
        frames = obs[:1].expand(num_frames, *obs.shape[1:])
        rows = [self.intervene(frames, {name: self.label_scale[j, 0] + self.label_scale[j, 1] * sweep})
                for j, name in enumerate(self.variables)]
        return torch.stack(rows), list(self.variables)
