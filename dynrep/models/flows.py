"""Conditional affine causal flow: the causal mechanisms of ICM-VAE (specs/causal.md 2.2, item 2).

``n`` causal variables, each a ``k``-dimensional block of a flat vector ``[B, n*k]``. Block ``i`` is

    z_i = exp(s(c ⊙ M_i)) ⊙ x_i + t(c ⊙ M_i)

where ``x`` is the input (exogenous noise ε, or a broadcast label for the label prior), ``M_i``
masks the flat vector to the blocks of ``i``'s parents (all zero for roots) and ``s``, ``t`` are
each ONE MLP shared by all variables (``n*k -> hidden -> ReLU -> hidden -> ReLU -> k -> Sigmoid``).
The context ``c`` is either the flow's own output, filled block by block over a topological order
(zeros for blocks not computed yet: the mechanisms), or a given vector (the conditional label prior
of item 4, ``c`` = the learned latents). Roots see an all-zero input, so their map is affine in
``x_i`` with learned constant scale and shift.

Graph convention: ``graph[i, j] = 1`` iff ``j -> i`` (rows = children), as ``env.graph`` of the
causal worlds; the reference's adjacency ``C[j, i]`` is its transpose.
"""
from __future__ import annotations

from typing import Callable, Mapping, Union

import numpy as np
import torch
from torch import nn


from dynrep.checks import check_int
from dynrep.models.nets import mlp

#: An intervention on a block: a value ``[B, k]`` or ``[k]``, or a function of the partially built
#: latents ``[B, n*k]`` returning ``[B, k]`` (evaluated when the block's turn comes, so it can read the
#: block's parents, intervened ones included).
Intervention = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def topological_order(graph: np.ndarray | torch.Tensor) -> tuple[int, ...]:
    """Indices of a DAG ``graph [n, n]`` (``graph[i, j] = 1`` iff ``j -> i``) with every parent before its
    children; among ready variables the smallest index comes first. ValueError on a cycle or a bad matrix."""
    adj = np.asarray(graph.cpu() if isinstance(graph, torch.Tensor) else graph)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or adj.shape[0] == 0:
        raise ValueError(f"graph must be a non-empty square [n, n] matrix, got shape {adj.shape}")
    if not np.isin(adj, (0, 1)).all():
        raise ValueError("graph entries must be 0 or 1 (graph[i, j] = 1 iff j -> i)")
    remaining = adj.astype(bool).copy()
    order: list[int] = []
    left = set(range(len(adj)))
    while left:
        ready = [i for i in sorted(left) if not remaining[i].any()]
        if not ready:
            raise ValueError(f"graph has a cycle among variables {sorted(left)} (graph[i, j] = 1 iff j -> i)")
        order.append(ready[0])
        left.remove(ready[0])
        remaining[:, ready[0]] = False
    return tuple(order)


def _sigmoid_mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """``[.., inputs] -> [.., outputs]`` in (0, 1): Linear-ReLU-Linear-ReLU-Linear-Sigmoid."""
    return nn.Sequential(*mlp([inputs, hidden, hidden, outputs], "relu"), nn.Sigmoid())


class CausalFlow(nn.Module):
    """Conditional affine flow over ``n`` blocks of ``k`` dims following a causal DAG (module docstring).

    Args:
        graph: ``[n, n]`` 0/1 adjacency, ``graph[i, j] = 1`` iff ``j -> i`` (must be acyclic).
        block_dim: ``k``, the size of each variable's block.
        hidden: width of the two hidden layers of ``s`` and ``t`` (reference: 100).

    Attributes:
        order: a topological order of the variables (:func:`topological_order`).
        masks: ``[n, n*k]`` buffer, row ``i`` = 1 on the blocks of ``i``'s parents.
    """

    def __init__(self, graph: np.ndarray | torch.Tensor, block_dim: int, hidden: int = 100):
        super().__init__()
        self.order = topological_order(graph)
        self.num_variables = n = len(self.order)
        self.block_dim = k = check_int("block_dim", block_dim, 1)
        adj = torch.as_tensor(np.asarray(graph.cpu() if isinstance(graph, torch.Tensor) else graph),
                              dtype=torch.float32)
        self.register_buffer("masks", adj.repeat_interleave(k, dim=1))
        self.s = _sigmoid_mlp(n * k, check_int("hidden", hidden, 1), k)
        self.t = _sigmoid_mlp(n * k, hidden, k)

    def _put_block(self, z: torch.Tensor, i: int, block: torch.Tensor) -> torch.Tensor:
        """``z [B, n*k]`` with block ``i`` replaced by ``block [B, k]`` (out of place, for autograd)."""
        k = self.block_dim
        positions = torch.zeros(self.num_variables * k, dtype=torch.bool, device=z.device)
        positions[i * k:(i + 1) * k] = True
        return torch.where(positions, block.repeat(1, self.num_variables), z)

    def affine_params(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s, t)``, each ``[B, n, k]``, of every block given the full ``context [B, n*k]`` (parallel over
        blocks: block ``i`` reads ``context ⊙ M_i``)."""
        masked = context[:, None, :] * self.masks
        return self.s(masked), self.t(masked)

    def block(self, i: int, x_i: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_i, s)``, each ``[B, k]``: block ``i`` of input ``x_i [B, k]``, conditioned on the parent blocks
        of ``context [B, n*k]``: ``z_i = exp(s) ⊙ x_i + t``."""
        masked = context * self.masks[i]
        s = self.s(masked)
        return s.exp() * x_i + self.t(masked), s

    def _check(self, x: torch.Tensor, name: str) -> None:
        width = self.num_variables * self.block_dim
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"{name} must have shape [B, {width}] (n*k = {self.num_variables}*{self.block_dim}), "
                             f"got {list(x.shape)}")

    def _intervened_value(self, value: Intervention, current: torch.Tensor) -> torch.Tensor:
        out = value(current) if callable(value) else torch.as_tensor(value, dtype=current.dtype,
                                                                      device=current.device)
        return out.to(current.dtype).expand(len(current), self.block_dim)

    def forward(self, x: torch.Tensor, interventions: Mapping[int, Intervention] | None = None,
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x [B, n*k]`` to ``(z [B, n*k], log_det [B])``.

        Without ``context`` the blocks are computed in :attr:`order`, each conditioned on the blocks
        already computed (the mechanisms). With ``context [B, n*k]`` every block is conditioned on it
        instead (the label prior: parents are the given latents). ``interventions``
        ``{index: value}`` overwrite block ``index`` after it is computed (see :data:`Intervention`),
        so later children see the value. ``log_det = Σ s`` over the blocks that were not intervened
        on (= ``log|det ∂z/∂x|`` without interventions).
        """
        self._check(x, "x")
        interventions = dict(interventions or {})
        unknown = [i for i in interventions if not (isinstance(i, int) and 0 <= i < self.num_variables)]
        if unknown:
            raise ValueError(f"interventions: block index {unknown[0]!r} is not in 0..{self.num_variables - 1}")
        blocks = x.view(len(x), self.num_variables, self.block_dim)
        if context is not None:
            self._check(context, "context")
            s, t = self.affine_params(context)
            z = (s.exp() * blocks + t).flatten(1)
            for i, value in interventions.items():
                z = self._put_block(z, i, self._intervened_value(value, context))
            free = [i for i in range(self.num_variables) if i not in interventions]
            return z, s[:, free].flatten(1).sum(-1)
        z, log_det = torch.zeros_like(x), x.new_zeros(len(x))
        for i in self.order:
            if i in interventions:
                block = self._intervened_value(interventions[i], z)
            else:
                block, s = self.block(i, blocks[:, i], z)
                log_det = log_det + s.sum(-1)
            z = self._put_block(z, i, block)
        return z, log_det

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The input ``x [B, n*k]`` that :meth:`forward` (without interventions) maps to ``z [B, n*k]``:
        ``x_i = (z_i - t) exp(-s)`` with ``s, t`` read from ``z``'s own parent blocks (or from ``context``)."""
        self._check(z, "z")
        s, t = self.affine_params(z if context is None else context)
        return ((z.view_as(s) - t) * (-s).exp()).flatten(1)
