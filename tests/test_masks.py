"""Gumbel-sigmoid masks: sampling formula, hard-sample statistics, straight-through gradient, penalty, frozen."""
from __future__ import annotations

import math

import pytest
import torch

from dynrep.models.masks import GumbelSigmoidMask

ALPHAS = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])


def mask_with(alpha: torch.Tensor, **kwargs) -> GumbelSigmoidMask:
    mask = GumbelSigmoidMask(alpha.shape, **kwargs)
    with torch.no_grad():
        mask.alpha.copy_(alpha)
    return mask


def test_soft_sample_is_the_binary_concrete_formula():
    mask = mask_with(ALPHAS, temperature=0.7)
    sample = mask.sample(6, torch.Generator().manual_seed(3))
    u = torch.rand((6, 5), generator=torch.Generator().manual_seed(3))
    expected = torch.sigmoid((ALPHAS + torch.log(u) - torch.log(1 - u)) / 0.7)
    assert sample.shape == (6, 5)
    torch.testing.assert_close(sample, expected)
    assert ((sample > 0) & (sample < 1)).all()


@pytest.mark.parametrize("temperature", [0.3, 1.0, 3.0])
def test_hard_samples_are_one_with_probability_sigmoid_alpha(temperature):
    n = 20_000
    mask = mask_with(ALPHAS, temperature=temperature, hard=True)
    sample = mask.sample(n, torch.Generator().manual_seed(int(10 * temperature)))
    assert set(sample.unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(ALPHAS)
    frequency = sample.mean(0)
    tolerance = 5 * torch.sqrt(p * (1 - p) / n)  # five binomial standard deviations
    assert ((frequency - p).abs() < tolerance).all(), (frequency, p)


def test_soft_samples_depend_on_temperature_but_hard_ones_do_not():
    cold = mask_with(ALPHAS, temperature=0.3).sample(100, torch.Generator().manual_seed(0))
    warm = mask_with(ALPHAS, temperature=3.0).sample(100, torch.Generator().manual_seed(0))
    assert not torch.allclose(cold, warm)
    assert torch.equal(cold > 0.5, warm > 0.5)  # same noise: same side of 0.5 at any temperature


def test_straight_through_gradient_equals_the_soft_samples():
    weights = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    soft_mask, hard_mask = mask_with(ALPHAS), mask_with(ALPHAS, hard=True)
    soft = soft_mask.sample(4, torch.Generator().manual_seed(2))
    hard = hard_mask.sample(4, torch.Generator().manual_seed(2))
    torch.testing.assert_close(hard, (soft > 0.5).float())
    (weights * soft).sum().backward()
    (weights * hard).sum().backward()
    assert hard_mask.alpha.grad.abs().sum() > 0
    torch.testing.assert_close(hard_mask.alpha.grad, soft_mask.alpha.grad)


def test_probs_and_penalty_are_sigmoid_alpha():
    mask = mask_with(ALPHAS.view(1, 5))
    torch.testing.assert_close(mask.probs(), torch.sigmoid(ALPHAS).view(1, 5))
    penalty = mask.penalty()
    assert penalty.item() == pytest.approx(sum(1 / (1 + math.exp(-a)) for a in ALPHAS.tolist()), rel=1e-6)
    penalty.backward()
    s = torch.sigmoid(ALPHAS)
    torch.testing.assert_close(mask.alpha.grad.view(5), s * (1 - s))


def test_default_init_is_five():
    mask = GumbelSigmoidMask((2, 3))
    assert torch.equal(mask.alpha.detach(), torch.full((2, 3), 5.0))
    assert mask.penalty().item() == pytest.approx(6 / (1 + math.exp(-5.0)))


def test_frozen_mask_is_all_ones_without_gradient_or_penalty():
    mask = GumbelSigmoidMask((3, 2), init=-4.0, frozen=True, hard=True)
    sample = mask.sample(5, torch.Generator().manual_seed(0))
    assert sample.shape == (5, 3, 2) and torch.equal(sample, torch.ones(5, 3, 2))
    assert not sample.requires_grad and not mask.alpha.requires_grad
    assert mask.penalty().item() == 0.0 and not mask.penalty().requires_grad
    assert torch.equal(mask.probs(), torch.ones(3, 2))
    x = torch.randn(5, 3, 2, requires_grad=True)
    (sample * x).sum().backward()
    assert mask.alpha.grad is None


def test_samples_use_only_the_generator():
    mask = GumbelSigmoidMask((4,))
    a = mask.sample(3, torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    b = mask.sample(3, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert mask.sample(1).shape == (1, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"shape": (2, 0)}, "shape must be a sequence of positive ints"),
    ({"shape": (2,), "temperature": 0.0}, "temperature must be a positive float, got 0.0"),
    ({"shape": (2,), "init": float("nan")}, "init must be a finite float"),
])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GumbelSigmoidMask(**kwargs)
