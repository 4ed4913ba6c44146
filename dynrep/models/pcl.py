"""PCL, permutation-contrastive learning (Hyvärinen & Morioka 2017, "Nonlinear ICA of Temporally
Dependent Stationary Sources").

An encoder-only model: a deterministic MLP ``h = f(x) in R^{d_z}`` is trained so that a logistic
regression tells real consecutive pairs ``(h^t, h^{t-1})`` from pairs whose ``h^{t-1}`` is taken from
another window. Follows the mechanism-sparsity repo's version (specs/causal.md §1.4; read in
``baseline_models/slowvae_pcl/scripts/solver.py`` of slachapelle/disentanglement_via_mechanism_sparsity,
commit ce29394):

* regression function ``r(h^t, h^{t-1}) = sum_i psi_i(h_i^t, h_i^{t-1})``:
  ``r_func="mlp"`` (the runs' ``--r_func mlp``, default here): each ``psi_i`` its own MLP
  ``2 -> [512]x5 -> 1`` (``psi_hidden``) on the input ``(h_i^t, h_i^{t-1})`` with bias-free hidden layers
  and a biased output layer (the reference's ``ParallelMLP(2, 1, 512, 5, d_z, bn=False)``, ``model/nn.py``),
  all ``d_z`` run as one batched :func:`~dynrep.models.nets.parallel_mlp`;
  ``r_func="abs"`` (the reference's ``"default"``):
  ``-sum_i |w1_i h_i^t + w2_i h_i^{t-1} + b_i| + sum_i (h_i^t)^2 + c`` with learnable ``w1``
  (init 1), ``w2`` (init -1), ``b`` (init 0), ``c`` (init 0);
* logits of the ``M`` real pairs (label 1) and of the ``M`` pairs with ``h^{t-1}`` permuted across the
  batch (label 0), BCE-with-logits averaged over the ``2M``; the permutation comes from the
  training generator (the reference calls ``torch.randperm`` on the global RNG). A permutation
  may map a pair to itself, giving a "negative" that is a real pair, as in the reference;
* the 6x512 LeakyReLU(0.2) MLP encoder, batch 1024, Adam lr 1e-4 (betas 0.9, 0.999);
  representation = ``h``.

No decoder (``has_decoder = False``): decoding, reconstructions and traversals are unavailable.
Deviations: the ``psi`` MLPs use ``mlp_activation`` and the ``nn.Linear``-style initialisation of
:class:`~dynrep.models.nets.ParallelLinear`; windows longer than one step (other environments) give
``T`` pairs per episode, all used (with ``T = 1``, the toy-nn windows, exactly the reference).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dynrep.data.trajectory import Trajectory
from dynrep.models.base import (LossOutput, Posterior, RepresentationModel, SequenceConfig, check_widths,
                                 observations_to_float)
from dynrep.models.nets import parallel_mlp
from dynrep.models.registry import register_model

R_FUNCS = ("mlp", "abs")


@register_model("pcl")
class PCL(RepresentationModel):
    """Deterministic encoder trained by permutation-contrastive logistic regression (module docstring).

    Logged terms: ``bce`` (the loss) and ``accuracy`` (fraction of the ``2M`` pairs classified
    correctly by the sign of the logit).
    """

    has_decoder = False

    @dataclass
    class Config(SequenceConfig):
        lr: float = 1e-4
        r_func: str = "mlp"
        psi_hidden: tuple[int, ...] = (512,) * 5

        def __post_init__(self):
            super().__post_init__()
            if self.r_func not in R_FUNCS:
                raise ValueError(f"r_func must be one of {R_FUNCS}, got {self.r_func!r}")
            check_widths("psi_hidden", self.psi_hidden, allow_empty=True)

    def __init__(self, env, config: Config):
        super().__init__(env, config)
        d = config.latent_dim
        if config.r_func == "mlp":
            self.psi = parallel_mlp(d, [2, *config.psi_hidden, 1], config.mlp_activation, hidden_bias=False)
        else:
            self.w1 = nn.Parameter(torch.ones(d))
            self.w2 = nn.Parameter(-torch.ones(d))
            self.b = nn.Parameter(torch.zeros(d))
            self.c = nn.Parameter(torch.zeros(()))

    def encode(self, obs: torch.Tensor) -> Posterior:
        return Posterior(self.encoder(observations_to_float(obs)))

    def regression(self, h_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        """Logits ``r(h^t, h^{t-1})`` ``[N]`` of pairs ``h_t``, ``h_prev`` ``[N, latent_dim]``."""
        if self.config.r_func == "mlp":
            return self.psi(torch.stack([h_t, h_prev], dim=-1)).sum(dim=(1, 2))
        q = (self.w1 * h_t + self.w2 * h_prev + self.b).abs().sum(-1)
        return -q + h_t.square().sum(-1) + self.c

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        if batch.length < 1:
            raise ValueError("pcl needs windows of at least two frames (episode_length >= 1), got static frames")
        h = self.encode(batch.obs.flatten(0, 1)).mean.view(*batch.obs.shape[:2], -1)   # [B, T+1, D]
        h_t, h_prev = h[:, 1:].flatten(0, 1), h[:, :-1].flatten(0, 1)
        perm = torch.randperm(h_prev.shape[0], generator=generator, device=h.device)
        logits = torch.cat([self.regression(h_t, h_prev), self.regression(h_t, h_prev[perm])])
        labels = torch.cat([torch.ones_like(logits[:len(h_t)]), torch.zeros_like(logits[len(h_t):])])
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()
        return LossOutput(bce, {"bce": bce, "accuracy": accuracy})
