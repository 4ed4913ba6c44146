"""iVAE: the Monte-Carlo ELBO terms against torch.distributions, the auxiliary variable, config, training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

import dynrep.models.ivae  # noqa: F401  (registers "ivae")
from conftest import seeded_model
from dynrep import GridWorld, RepresentationLearner, build_model
from dynrep.data.trajectory import Trajectory
from dynrep.envs.toy_nn import ToyNN
from dynrep.models.ivae import IVAE, floored_logvar

TINY = {"mlp_hidden": (32, 32), "prior_hidden": (32,), "batch_size": 64}


@pytest.fixture(scope="module")
def action_env() -> ToyNN:
    return ToyNN("action_sparsity_non_trivial", num_samples=2000)


def tiny_model(env, **overrides) -> IVAE:
    return seeded_model("ivae", env, **{**TINY, **overrides})


def hand_terms(model: IVAE, batch: Trajectory, seed: int):
    """(-log p(x|z), log p(z|u), log q(z|x)) batch means, from torch.distributions and the reference's
    variances exp(.) + 1e-6, with the sample drawn from a generator seeded ``seed``."""
    x = batch.obs[:, 1]
    mean, raw = model.encoder(x).chunk(2, dim=-1)
    std = (raw.exp() + 1e-6).sqrt()
    z = mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed))
    prior_mean, prior_raw = model.prior_net(batch.actions[:, 0]).chunk(2, dim=-1)
    log_prior = Normal(prior_mean, (prior_raw.exp() + 1e-6).sqrt()).log_prob(z).sum(-1).mean()
    log_post = Normal(mean, std).log_prob(z).sum(-1).mean()
    dec_std = math.sqrt(model.decoder_logvar.exp().item() + 1e-6)
    rec = -Normal(model.decoder(z), dec_std).log_prob(x).sum(-1).mean()
    return rec, log_prior, log_post


def test_published_defaults():
    c = IVAE.Config()
    assert (c.latent_dim, c.batch_size, c.episode_length, c.lr) == (10, 1024, 1, 1e-4)
    assert c.mlp_hidden == (512,) * 6 and c.mlp_activation == "leaky_relu" and c.prior_hidden == (512,) * 5
    assert (c.reconstruction, c.decoder_logvar_init, c.learn_decoder_var, c.beta) == ("normal", -10.0, False, 1.0)


@pytest.mark.parametrize("overrides,message", [
    ({"episode_length": 0}, r"episode_length must be >= 1: .* got 0"),
    ({"prior_hidden": (32, 0)}, r"prior_hidden must be a sequence of positive ints, got \(32, 0\)"),
    ({"beta": -1.0}, r"beta must be >= 0, got -1.0"),
    ({"reconstruction": "l1"}, r"reconstruction must be one of"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        IVAE.Config(**overrides)


def test_error_without_actions():
    env = ToyNN("temporal_sparsity_trivial", num_samples=100)
    with pytest.raises(ValueError, match=r"ivae needs an environment with actions .*"
                                         r"ToyNN\(dataset='temporal_sparsity_trivial'.* has none"):
        build_model("ivae", env)


def test_floored_logvar():
    logvar = torch.tensor([-30.0, -10.0, 0.0, 3.0], dtype=torch.float64)
    expected = torch.log(logvar.exp() + 1e-6)
    assert torch.allclose(floored_logvar(logvar), expected, rtol=1e-12)


def test_terms_against_torch_distributions(action_env):
    model = tiny_model(action_env)
    batch = action_env.sample_trajectories(6, 1, rng=0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(3))
    rec, log_prior, log_post = hand_terms(model, batch, 3)
    t = out.terms
    assert set(t) == {"reconstruction", "log_prior", "log_posterior", "kl"}
    assert t["reconstruction"].item() == pytest.approx(rec.item(), rel=1e-5)
    assert t["log_prior"].item() == pytest.approx(log_prior.item(), rel=1e-5, abs=1e-4)
    assert t["log_posterior"].item() == pytest.approx(log_post.item(), rel=1e-5, abs=1e-4)
    assert out.total.item() == pytest.approx((rec - log_prior + log_post).item(), rel=1e-5)
    assert t["kl"].item() == pytest.approx((log_post - log_prior).item(), rel=1e-4, abs=1e-4)
    # beta weighs only the KL-side terms.
    out2 = tiny_model(action_env, beta=0.5).loss(batch, 0, torch.Generator().manual_seed(3))
    assert out2.total.item() == pytest.approx((rec + 0.5 * (log_post - log_prior)).item(), rel=1e-5)


def test_representation_is_the_encoder_mean(action_env):
    model = tiny_model(action_env)
    x = action_env.sample_trajectories(4, 1, rng=1).obs[:, 1]
    assert torch.equal(model.representation(x), model.encoder(x)[:, :10])
    assert model.representation(x).shape == (4, 10)


def test_frame_zero_is_ignored(action_env):
    model = tiny_model(action_env)
    batch = action_env.sample_trajectories(5, 1, rng=2)
    changed = Trajectory(obs=torch.cat([torch.randn(5, 1, 20) * 10, batch.obs[:, 1:]], dim=1),
                         actions=batch.actions, factors=batch.factors)
    a = model.loss(batch, 0, torch.Generator().manual_seed(1)).total
    b = model.loss(changed, 0, torch.Generator().manual_seed(1)).total
    assert torch.equal(a, b)


def test_prior_depends_on_u(action_env):
    model = tiny_model(action_env)
    u = torch.randn(2, 10, generator=torch.Generator().manual_seed(0))
    prior = model.prior(u)
    assert prior.mean.shape == prior.logvar.shape == (2, 10)
    assert not torch.allclose(prior.mean[0], prior.mean[1])
    batch = action_env.sample_trajectories(5, 1, rng=2)
    other = Trajectory(obs=batch.obs, actions=batch.actions.flip(0), factors=batch.factors)
    a = model.loss(batch, 0, torch.Generator().manual_seed(1)).terms
    b = model.loss(other, 0, torch.Generator().manual_seed(1)).terms
    assert a["reconstruction"] == b["reconstruction"] and a["log_prior"] != b["log_prior"]


def test_discrete_actions_are_one_hot():
    env = GridWorld(size=3, observation="onehot")
    model = build_model("ivae", env, **TINY, max_action_magnitude=2)
    assert model.aux_dim == env.actions.n == 4
    batch = env.sample_trajectories(3, 2, rng=0, max_magnitude=2)
    u = model.auxiliary(batch)
    assert u.shape == (6, 4)
    expected = torch.zeros(6, 4)
    expected[torch.arange(6), batch.actions.flatten()] = batch.magnitudes.flatten().float()
    assert torch.equal(u, expected)
    assert torch.isfinite(model.loss(batch, 0, torch.Generator().manual_seed(0)).total)


def test_decoder_variance_fixed_or_learned(action_env):
    fixed = tiny_model(action_env)
    assert "decoder_logvar" not in dict(fixed.named_parameters()) and fixed.decoder_logvar.item() == -10.0
    learned = tiny_model(action_env, learn_decoder_var=True)
    assert isinstance(learned.decoder_logvar, torch.nn.Parameter)


def test_loss_decreases(action_env):
    learner = RepresentationLearner(action_env, "ivae", seed=0, device="cpu", lr=1e-3, **TINY)
    loss = np.asarray(learner.train(steps=200, progress=False)["loss"])
    assert np.isfinite(loss).all()
    assert loss[-20:].mean() < 0.5 * loss[:20].mean()


def test_save_load_round_trip(action_env, tmp_path):
    learner = RepresentationLearner(action_env, "ivae", seed=0, device="cpu", **TINY)
    learner.train(steps=3, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config
    obs = action_env.sample_trajectories(8, 1, rng=5).obs[:, 1]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    assert learner.train(steps=2, progress=False)["loss"][-2:] == loaded.train(steps=2, progress=False)["loss"][-2:]
