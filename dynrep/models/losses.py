"""Reconstruction losses shared by the models."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _flat_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` (same shape) flattened in ``a``'s memory order: views when both are dense in that order
    (contiguous or channels-last alike), copies otherwise; element ``k`` of one pairs with element ``k`` of the
    other."""
    order = sorted(range(a.dim()), key=lambda d: -a.stride(d))
    return a.permute(order).reshape(-1), b.permute(order).reshape(-1)


#: Logits below this are taken as it by the Bernoulli NLL's softplus and sigmoid (:func:`bernoulli_nll`): a
#: well-fit decoder drives its background logits far lower (-300 to -900 after 600 GridWorld steps), where the
#: sigmoid and the softplus's exponential are subnormal floats and every later multiply-add of the backward pass
#: takes the CPU's slow path: steps 2.5-3.5x slower from then on (benchmarks/RESULTS.md, Speed V). At the floor
#: the sigmoid is 1.1e-20: such a logit's share of the loss and gradient is below float32's resolution of any
#: other term's.
LOGIT_FLOOR = -46.0


class _BinaryCrossEntropyWithLogits(torch.autograd.Function):
    """Mean of ``softplus(c) - t*x`` with the closed-form gradient ``(sigmoid(c) - t) / N``, ``c`` the logits
    ``x`` clamped from below at :data:`LOGIT_FLOOR`.

    Equal to ``F.binary_cross_entropy_with_logits(x, t)`` for logits above the floor (same value up to
    rounding, same gradient) but without its contiguous copy of channels-last logits and its extra buffer: a
    clamp, one elementwise pass and a dot product forward, one pass backward, ~1.5-3 ms less per GridWorld step
    on CPU (benchmarks/gridworld_training.py).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        clamped = logits.clamp_min(LOGIT_FLOOR)
        ctx.save_for_backward(clamped, target)
        return (F.softplus(clamped).sum() - torch.dot(*_flat_pair(logits, target))) / logits.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        clamped, target = ctx.saved_tensors
        grad_logits = torch.sigmoid(clamped).sub_(target).mul_(grad / clamped.numel())
        return grad_logits, None


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is of a lower floating precision (bfloat16 or float16 under autocast), else ``x``."""
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per element between decoder ``logits`` and ``target`` in [0, 1].

    Both tensors have the same shape (any layout); returns a scalar, computed in float32 at least (bfloat16
    logits under autocast too).
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits and target must have the same shape, got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    logits = full_precision(logits)
    return _BinaryCrossEntropyWithLogits.apply(logits, target.to(logits.dtype))


def gaussian_nll(mean: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``-log N(target; mean, exp(logvar))`` (``logvar`` broadcasts, e.g. one per coordinate).

    ``mean`` and ``target`` have the same shape ``[B, ...]``; the result has that shape (reduce it as the
    model's reference does: summed over coordinates, or averaged); computed in float32 at least.
    """
    if mean.shape != target.shape:
        raise ValueError(f"mean and target must have the same shape, got {tuple(mean.shape)} "
                         f"and {tuple(target.shape)}")
    mean, target, logvar = (full_precision(t) for t in (mean, target, logvar))
    return 0.5 * ((target - mean).square() * torch.exp(-logvar) + logvar + math.log(2 * math.pi))
