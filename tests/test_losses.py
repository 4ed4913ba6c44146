"""The shared Bernoulli reconstruction loss matches torch's reference implementation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynrep.models.losses import LOGIT_FLOOR, bernoulli_nll


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


def test_logits_far_below_the_floor_make_no_subnormal_gradient():
    """A well-fit decoder's background logits (here down to -300, target 0) contribute their true share of the
    value to float32 resolution, and the gradient holds no subnormal float (which would slow every later
    multiply-add of the backward pass): they are taken as LOGIT_FLOOR. Above it the gradient is exact."""
    g = torch.Generator().manual_seed(0)
    logits = torch.cat([torch.empty(4000).uniform_(-300, LOGIT_FLOOR, generator=g),
                        torch.empty(1000).uniform_(-40, 10, generator=g)]).requires_grad_()
    target = (torch.rand(5000, generator=g) < 0.2).float() * (logits.detach() > -40)
    loss = bernoulli_nll(logits, target)
    loss.backward()
    exact = F.binary_cross_entropy_with_logits(logits.detach().double(), target.double())
    assert abs(loss.item() - exact.item()) <= 1e-6 * exact.item()
    tiny = (logits.grad != 0) & (logits.grad.abs() < torch.finfo(torch.float32).tiny)
    assert not tiny.any()
    above = logits.detach() > LOGIT_FLOOR
    assert torch.equal(logits.grad[above], ((torch.sigmoid(logits.detach()) - target) * (torch.ones(()) / 5000))[above])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"logits and target must have the same shape, got \(2, 3\) and \(3, 2\)"):
        bernoulli_nll(torch.zeros(2, 3), torch.zeros(3, 2))


def test_gaussian_nll_matches_torch_distributions_and_checks_shapes():
    from dynrep.models.losses import gaussian_nll
    g = torch.Generator().manual_seed(0)
    mean, target, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.randn(4, generator=g)
    expected = -torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(target)
    assert torch.allclose(gaussian_nll(mean, target, logvar), expected, atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        gaussian_nll(mean, target[:, :3], logvar)


def test_mlp_activation_option():
    from torch import nn
    from dynrep.models.nets import mlp
    layers = mlp([3, 5, 5, 2], "leaky_relu")
    assert [type(m) for m in layers] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU, nn.Linear]
    assert layers[1].negative_slope == 0.2
    with pytest.raises(ValueError, match="mlp_activation must be one of"):
        mlp([3, 2], "tanh")
    from dynrep import ToyNN
    from dynrep.models import build_model
    model = build_model("vae", ToyNN("action_sparsity_trivial", num_samples=100), mlp_activation="leaky_relu",
                        mlp_hidden=(8, 8))
    assert sum(isinstance(m, nn.LeakyReLU) for m in model.encoder) == 2
    with pytest.raises(ValueError, match="mlp_activation must be one of"):
        build_model("vae", ToyNN("action_sparsity_trivial", num_samples=100), mlp_activation="gelu")


def test_parallel_mlp_equals_independent_mlps():
    from torch import nn
    from dynrep.models.nets import ParallelLinear, parallel_mlp
    torch.manual_seed(0)
    net = parallel_mlp(3, [4, 6, 2], "leaky_relu")
    x = torch.randn(5, 3, 4)
    out = net(x)
    assert out.shape == (5, 3, 2)
    for i in range(3):
        ref = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 2))
        with torch.no_grad():
            ref[0].weight.copy_(net[0].weight[i]), ref[0].bias.copy_(net[0].bias[i])
            ref[2].weight.copy_(net[2].weight[i]), ref[2].bias.copy_(net[2].bias[i])
        assert torch.allclose(out[:, i], ref(x[:, i]), atol=1e-6)
    layer = ParallelLinear(2, 4, 3, bias=False)
    assert layer.bias is None and layer(torch.ones(1, 2, 4)).shape == (1, 2, 3)
    assert not torch.equal(layer.weight[0], layer.weight[1])  # each map initialised on its own
    bound = 1 / 4 ** 0.5
    assert layer.weight.abs().max() <= bound  # kaiming_uniform(a=sqrt 5) gives U(-1/sqrt(in), 1/sqrt(in))
