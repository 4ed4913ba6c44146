"""The shared Bernoulli reconstruction loss matches torch's reference implementation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynrep.models.losses import bernoulli_nll


@pytest.mark.parametrize("channels_last", [False, True])
def test_value_and_gradient_match_torch(channels_last):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, 8, 8, generator=g) * 6
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    target = torch.rand(5, 3, 8, 8, generator=g)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours, ref = bernoulli_nll(a, target), F.binary_cross_entropy_with_logits(b, target)
    (ours * 3).backward()
    (ref * 3).backward()
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_extreme_logits_stay_finite():
    logits = torch.tensor([-100.0, 100.0, 0.0, 30.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.5, 1.0])
    loss = bernoulli_nll(logits, target)
    loss.backward()
    ref = F.binary_cross_entropy_with_logits(logits.detach(), target)
    assert torch.isfinite(loss) and torch.allclose(loss, ref)
    assert torch.isfinite(logits.grad).all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"logits and target must have the same shape, got \(2, 3\) and \(3, 2\)"):
        bernoulli_nll(torch.zeros(2, 3), torch.zeros(3, 2))
