"""Learned binary masks: Gumbel-sigmoid (binary concrete) samples with straight-through hard samples.

The mechanism-sparsity model (specs/causal.md 1.2, "Masks") learns its causal graphs as
independent Bernoulli edges with logits ``alpha``; training uses the reparameterised
binary-concrete relaxation (Maddison et al. 2017; Jang et al. 2017), not REINFORCE:

    M = sigmoid((alpha + L) / tau),   L = log U - log(1 - U),   U ~ Uniform(0, 1).

With ``hard=True`` the forward value is ``1[M > 0.5]`` (= ``1[alpha + L > 0]``, which is 1 with
probability ``sigmoid(alpha)`` whatever the temperature) and the gradient is the soft ``M``'s
(straight-through). The sparsity penalty is the expected number of edges ``sum sigmoid(alpha)``.
A frozen mask is the fully connected graph of the "no regularisation" baseline
(``--freeze_g`` / ``--freeze_gc``): all-ones samples, no gradient to ``alpha``, no penalty.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class GumbelSigmoidMask(nn.Module):
    """A learned mask of independent edges with logits ``alpha`` of shape ``shape``.

    Args:
        shape: mask shape, e.g. ``(d_z, d_z)`` (rows = children, columns = parents).
        init: initial logit of every entry (5: ``P(edge) = sigmoid(5) ~ 0.993``, as the reference).
        temperature: Gumbel-sigmoid temperature ``tau > 0``.
        hard: straight-through hard samples (forward 0/1, gradient of the soft sample).
        frozen: samples are all ones, ``alpha`` gets no gradient and :meth:`penalty` is 0.
    """

    def __init__(self, shape: Sequence[int], init: float = 5.0, temperature: float = 1.0, hard: bool = False,
                 frozen: bool = False):
        super().__init__()
        shape = tuple(shape)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"shape must be a sequence of positive ints, got {shape!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature must be a positive float, got {temperature!r}")
        if not (isinstance(init, (int, float)) and abs(init) < float("inf")):
            raise ValueError(f"init must be a finite float, got {init!r}")
        self.shape = shape
        self.temperature = float(temperature)
        self.hard = bool(hard)
        self.frozen = bool(frozen)
        self.alpha = nn.Parameter(torch.full(shape, float(init)), requires_grad=not frozen)

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num_samples`` independent masks ``[num_samples, *shape]`` (uniform noise from ``generator``)."""
        if self.frozen:
            return self.alpha.new_ones(num_samples, *self.shape)
        u = torch.rand((num_samples, *self.shape), generator=generator, device=self.alpha.device)
        u = u.clamp_(min=torch.finfo(u.dtype).tiny)  # U = 0 would give L = -inf
        soft = torch.sigmoid((self.alpha + (u.log() - (-u).log1p())) / self.temperature)
        if not self.hard:
            return soft
        return (soft > 0.5).to(soft.dtype) + (soft - soft.detach())  # exact 0/1 values, soft gradient

    def probs(self) -> torch.Tensor:
        """Edge probabilities ``sigmoid(alpha)`` ``[*shape]`` (all ones when frozen)."""
        return self.alpha.new_ones(self.shape) if self.frozen else torch.sigmoid(self.alpha)

    def penalty(self) -> torch.Tensor:
        """Expected number of edges ``sum sigmoid(alpha)`` (a scalar; 0 when frozen: no regularisation)."""
        return self.alpha.new_zeros(()) if self.frozen else torch.sigmoid(self.alpha).sum()

    def extra_repr(self) -> str:
        return f"shape={self.shape}, temperature={self.temperature}, hard={self.hard}, frozen={self.frozen}"
