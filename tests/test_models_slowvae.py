"""SlowVAE: the Laplace cross-entropy against Monte Carlo, the loss by hand, symmetry, config, training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch.distributions import Laplace, Normal

import dynrep.models.slowvae  # noqa: F401  (registers "slowvae")
from conftest import seeded_model
from dynrep import RepresentationLearner
from dynrep.data.trajectory import Trajectory
from dynrep.envs.toy_nn import ToyNN
from dynrep.models.slowvae import DECODER_LOGVAR_INIT, SlowVAE, laplace_cross_entropy

TINY = {"mlp_hidden": (32, 32), "batch_size": 64}


@pytest.fixture(scope="module")
def temporal_env() -> ToyNN:
    return ToyNN("temporal_sparsity_non_trivial", num_samples=2000)


def tiny_model(env, **overrides) -> SlowVAE:
    return seeded_model("slowvae", env, **{**TINY, **overrides})


# -- the closed form ----------------------------------------------------------------------------
@pytest.mark.parametrize("mu_q,mu_p,s,rate", [(0.0, 0.0, 1.0, 6.0), (0.7, -0.2, 0.3, 6.0), (-1.5, 0.5, 0.8, 1.0),
                                              (2.0, 2.1, 0.05, 10.0), (0.1, 0.9, 2.0, 3.0)])
def test_laplace_cross_entropy_against_monte_carlo(mu_q, mu_p, s, rate):
    """E_{x ~ N(mu_q, s^2)}[-log Laplace(x; mu_p, 1/rate)] with m = mu_q - mu_p."""
    g = torch.Generator().manual_seed(0)
    x = mu_q + s * torch.randn(1_000_000, generator=g, dtype=torch.float64)
    mc = -Laplace(torch.tensor(mu_p, dtype=torch.float64), torch.tensor(1.0 / rate, dtype=torch.float64)
                  ).log_prob(x).mean().item()
    closed = laplace_cross_entropy(torch.tensor(mu_q - mu_p, dtype=torch.float64),
                                   torch.tensor(s, dtype=torch.float64), rate).item()
    assert closed == pytest.approx(mc, abs=1e-2, rel=1e-2)
    # The folded-normal mean is even in m: the sign convention of the difference does not matter.
    flipped = laplace_cross_entropy(torch.tensor(mu_p - mu_q, dtype=torch.float64),
                                    torch.tensor(s, dtype=torch.float64), rate).item()
    assert flipped == pytest.approx(closed, rel=1e-12)


def test_laplace_cross_entropy_at_zero_difference_and_broadcasting():
    s = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    for rate in (1.0, 6.0):
        expected = -math.log(rate / 2) + rate * s * math.sqrt(2 / math.pi)
        assert torch.allclose(laplace_cross_entropy(torch.zeros(3, dtype=torch.float64), s, rate), expected,
                              rtol=1e-12)
    out = laplace_cross_entropy(torch.zeros(4, 1), torch.ones(1, 5), torch.tensor(2.0))
    assert out.shape == (4, 5)
    # far from the location: -log(rate/2) + rate*|m|
    far = laplace_cross_entropy(torch.tensor([-20.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
                                6.0)
    assert far.item() == pytest.approx(-math.log(3.0) + 6.0 * 20.0, rel=1e-10)


# -- config ---------------------------------------------------------------------------------------
def test_published_defaults():
    c = SlowVAE.Config()
    assert (c.beta, c.gamma, c.rate_prior, c.lr, c.batch_size, c.episode_length) == (1.0, 10.0, 6.0, 1e-4, 1024, 1)
    assert c.mlp_hidden == (512,) * 6 and c.mlp_activation == "leaky_relu"
    assert c.reconstruction == "normal" and c.learn_decoder_var
    # Same initial decoder variance as the reference's std softplus(-5) + 1e-6.
    assert math.exp(0.5 * c.decoder_logvar_init) == pytest.approx(math.log1p(math.exp(-5.0)) + 1e-6, rel=1e-12)
    assert c.decoder_logvar_init == DECODER_LOGVAR_INIT


@pytest.mark.parametrize("overrides,message", [
    ({"episode_length": 0}, r"episode_length must be >= 1: .* got 0"),
    ({"gamma": -1.0}, r"gamma must be >= 0, got -1.0"),
    ({"rate_prior": 0.0}, r"rate_prior must be > 0, got 0.0"),
    ({"beta": -2.0}, r"beta must be >= 0, got -2.0"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        SlowVAE.Config(**overrides)


def test_static_frames_are_refused(temporal_env):
    model = tiny_model(temporal_env)
    with pytest.raises(ValueError, match="slowvae needs windows of at least two frames"):
        model.loss(temporal_env.sample_trajectories(4, 0, rng=0), 0)


# -- the loss -------------------------------------------------------------------------------------
def hand_loss(model: SlowVAE, batch: Trajectory, seed: int, beta: float, gamma: float, rate: float):
    """The reference's loss written out with numpy/scipy for windows of two frames."""
    b = batch.obs.shape[0]
    x = batch.obs.flatten(0, 1)                                  # rows: (b, frame 0), (b, frame 1), ...
    mean, logvar = model.encoder(x).chunk(2, dim=-1)
    z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed))
    dec_std = (0.5 * model.decoder_logvar).exp()
    rec = -Normal(model.decoder(z), dec_std).log_prob(x).sum(-1).mean().item()
    mu, lv = mean.detach().double().numpy(), logvar.detach().double().numpy()
    kl = (0.5 * (mu ** 2 + np.exp(lv) - 1 - lv)).sum(1).mean()
    entropy = (0.5 * (lv + np.log(2 * np.pi * np.e))).sum(1).mean()
    s = np.sqrt(np.exp(lv) + 1e-6)
    mu0, mu1, s0, s1 = mu[0::2], mu[1::2], s[0::2], s[1::2]

    def ce(m, sd):  # E|Y|, Y ~ N(m, sd^2), written as the folded-normal mean
        folded = sd * np.sqrt(2 / np.pi) * np.exp(-m ** 2 / (2 * sd ** 2)) + m * (1 - 2 * norm.cdf(-m / sd))
        return -np.log(rate / 2) + rate * folded

    assert mu0.shape[0] == b
    ce_l = (ce(mu1 - mu0, s1) + ce(mu0 - mu1, s0)).sum(1).mean()
    total = 2 * rec + beta * kl + gamma * (ce_l - entropy)
    return total, {"reconstruction": rec, "kl": kl, "laplace_cross_entropy": ce_l, "entropy": entropy}


@pytest.mark.parametrize("beta,gamma,rate", [(1.0, 10.0, 6.0), (0.5, 2.0, 1.0)])
def test_loss_by_hand(temporal_env, beta, gamma, rate):
    model = tiny_model(temporal_env, beta=beta, gamma=gamma, rate_prior=rate)
    batch = temporal_env.sample_trajectories(5, 1, rng=1)
    out = model.loss(batch, 0, torch.Generator().manual_seed(4))
    total, terms = hand_loss(model, batch, 4, beta, gamma, rate)
    for name, value in terms.items():
        assert out.terms[name].item() == pytest.approx(value, rel=1e-4, abs=1e-4), name
    assert out.terms["kl_laplace"].item() == pytest.approx(terms["laplace_cross_entropy"] - terms["entropy"],
                                                           rel=1e-4, abs=1e-4)
    assert out.total.item() == pytest.approx(total, rel=1e-4)


def test_symmetric_in_the_two_frames(temporal_env):
    """Swapping x^{t-1} and x^t leaves the KL, entropy and Laplace terms unchanged (they do not use the
    reparameterised sample); the reconstruction of the swapped frames uses the same samples swapped."""
    model = tiny_model(temporal_env)
    batch = temporal_env.sample_trajectories(6, 1, rng=2)
    swapped = Trajectory(obs=batch.obs.flip(1), actions=batch.actions, factors=batch.factors.flip(1))
    a = model.loss(batch, 0, torch.Generator().manual_seed(0)).terms
    b = model.loss(swapped, 0, torch.Generator().manual_seed(0)).terms
    for name in ("kl", "entropy", "laplace_cross_entropy", "kl_laplace"):
        assert a[name].item() == pytest.approx(b[name].item(), rel=1e-6), name
    # Identical frames: the Laplace term is two cross-entropies at m = 0.
    same = Trajectory(obs=batch.obs[:, :1].expand(-1, 2, -1), actions=batch.actions, factors=batch.factors)
    post = model.encode(batch.obs[:, 0])
    s = (post.logvar.exp() + 1e-6).sqrt()
    expected = 2 * laplace_cross_entropy(torch.zeros_like(s), s, 6.0).sum(-1).mean()
    got = model.loss(same, 0, torch.Generator().manual_seed(0)).terms["laplace_cross_entropy"]
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_laplace_term_pulls_the_means_together(temporal_env):
    model = tiny_model(temporal_env, beta=0.0)
    batch = temporal_env.sample_trajectories(4, 1, rng=3)
    mean = model.encode(batch.obs.flatten(0, 1)).mean.detach().requires_grad_(True)
    diff = mean.view(4, 2, -1)[:, 1] - mean.view(4, 2, -1)[:, 0]
    ce = (laplace_cross_entropy(diff, torch.ones_like(diff), 6.0)
          + laplace_cross_entropy(-diff, torch.ones_like(diff), 6.0)).sum()
    ce.backward()
    grad = mean.grad.view(4, 2, -1)
    # The gradient moves each frame's mean towards the other one (and both get a gradient).
    assert (grad[:, 1] * diff.detach() > 0).all() and (grad[:, 0] * diff.detach() < 0).all()


# -- training and persistence -----------------------------------------------------------------------
def test_loss_decreases_and_decoder_variance_is_learned(temporal_env):
    learner = RepresentationLearner(temporal_env, "slowvae", seed=0, device="cpu", lr=1e-3, **TINY)
    loss = np.asarray(learner.train(steps=200, progress=False)["loss"])
    assert np.isfinite(loss).all()
    assert loss[-20:].mean() < 0.5 * loss[:20].mean()
    assert learner.model.decoder_logvar.item() != pytest.approx(DECODER_LOGVAR_INIT)


def test_save_load_round_trip(temporal_env, tmp_path):
    learner = RepresentationLearner(temporal_env, "slowvae", seed=1, device="cpu", **TINY)
    learner.train(steps=3, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config
    obs = temporal_env.sample_trajectories(8, 1, rng=5).obs[:, 1]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    assert learner.train(steps=2, progress=False)["loss"][-2:] == loaded.train(steps=2, progress=False)["loss"][-2:]
