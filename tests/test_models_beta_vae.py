"""β-VAE: LiLS β schedule, Burgess et al. capacity objective, config, training, persistence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import seeded_model
from dynrep import RepresentationLearner, build_model, make_env
from dynrep.envs.circles import Circles
from dynrep.models.beta_vae import BetaVAE, beta_schedule_weight, capacity_schedule

TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16}


def tiny_env() -> Circles:
    return Circles(grid=8, radius=3.0, image_size=16)


def tiny_model(env=None, **overrides) -> BetaVAE:
    return seeded_model("beta_vae", env or tiny_env(), **{**TINY, **overrides})


# -- schedules -------------------------------------------------------------------------------
@pytest.mark.parametrize("step,expected", [(0, 1.0), (250, 0.75), (900, 0.1), (1000, 0.1), (5000, 0.1)])
def test_anneal_schedule_hand_values(step, expected):
    assert beta_schedule_weight(step, "anneal", 1000, 0.1) == pytest.approx(expected)


@pytest.mark.parametrize("step,expected", [(0, 0.2), (300, 0.5), (800, 1.0), (2000, 1.0)])
def test_increase_schedule_hand_values(step, expected):
    assert beta_schedule_weight(step, "increase", 1000, 0.2) == pytest.approx(expected)


def test_constant_schedule_and_unknown_schedule():
    assert beta_schedule_weight(12345, "constant", 10, 0.5) == 1.0
    with pytest.raises(ValueError, match=r"schedule must be one of \('constant', 'anneal', 'increase'\), got 'cosine'"):
        beta_schedule_weight(0, "cosine", 10, 0.0)


@pytest.mark.parametrize("step,expected", [(0, 0.0), (2500, 5.0), (5000, 10.0), (10_000, 20.0), (30_000, 20.0)])
def test_capacity_schedule_lils_config_hand_values(step, expected):
    # LiLS cci config: C from 0 to 20 nats over 10,000 steps.
    assert capacity_schedule(step, 0.0, 20.0, 10_000) == pytest.approx(expected)


def test_capacity_schedule_nonzero_start():
    assert capacity_schedule(0, 2.0, 12.0, 100) == pytest.approx(2.0)
    assert capacity_schedule(30, 2.0, 12.0, 100) == pytest.approx(5.0)
    assert capacity_schedule(100, 2.0, 12.0, 100) == pytest.approx(12.0)


# -- config ----------------------------------------------------------------------------------
def test_published_defaults():
    c = BetaVAE.Config()
    assert (c.beta, c.lr, c.batch_size, c.latent_dim) == (4.0, 5e-4, 64, 10)
    assert (c.capacity, c.gamma, c.capacity_start, c.capacity_max, c.capacity_steps) == (False, 50.0, 0.0, 20.0,
                                                                                       10_000)
    assert (c.beta_schedule, c.beta_schedule_steps, c.beta_schedule_floor) == ("constant", 100_000, 0.0)
    assert c.reconstruction == "bernoulli"


@pytest.mark.parametrize("overrides,message", [
    ({"beta": -1.0}, r"beta must be >= 0, got -1.0"),
    ({"beta_schedule": "linear"}, r"beta_schedule must be one of \('constant', 'anneal', 'increase'\), got 'linear'"),
    ({"beta_schedule_steps": 0}, r"beta_schedule_steps must be >= 1, got 0"),
    ({"beta_schedule_steps": 10.0}, r"beta_schedule_steps must be an integer, got 10.0"),
    ({"beta_schedule_floor": 1.5}, r"beta_schedule_floor must be in \[0, 1\], got 1.5"),
    ({"beta_schedule_floor": -0.1}, r"beta_schedule_floor must be in \[0, 1\], got -0.1"),
    ({"capacity": 1}, r"capacity must be True or False, got 1"),
    ({"gamma": -2.0}, r"gamma must be >= 0, got -2.0"),
    ({"capacity_start": -1.0}, r"capacity_start must be >= 0 nats, got -1.0"),
    ({"capacity_start": 5.0, "capacity_max": 4.0}, r"capacity_max must be >= capacity_start = 5.0, got 4.0"),
    ({"capacity_steps": 0}, r"capacity_steps must be >= 1, got 0"),
    ({"capacity": True, "beta_schedule": "anneal"}, r"beta_schedule must be 'constant' when capacity=True"),
    ({"reconstruction": "l1"}, r"reconstruction must be one of \('bernoulli', 'gaussian', 'normal'\), got 'l1'"),
    ({"latent_dim": 0}, r"latent_dim must be >= 1, got 0"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        BetaVAE.Config(**overrides)


def test_unknown_option_through_build_model():
    with pytest.raises(ValueError, match=r"unknown 'beta_vae' model option\(s\) \['capacity_min'\]"):
        build_model("beta_vae", tiny_env(), capacity_min=1.0)


# -- loss ------------------------------------------------------------------------------------
def hand_terms(model: BetaVAE, batch, seed: int, reconstruction: str = "bernoulli"):
    """Reconstruction and analytic KL computed independently of the model's loss code."""
    obs = batch.obs.flatten(0, 1)
    target = obs.float() / 255
    post = model.encode(obs)
    noise = torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(seed))
    logits = model.decode_logits(post.mean + noise * torch.exp(0.5 * post.logvar))
    if reconstruction == "bernoulli":
        per_element = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_element = (torch.sigmoid(logits) - target) ** 2
    recon = per_element.sum(dim=(1, 2, 3)).mean()
    var = post.logvar.exp()
    kl = (-0.5 * (1 + post.logvar - post.mean ** 2 - var)).sum(1).mean()  # LiLS per-dim formula
    return recon, kl


def test_shapes():
    env = tiny_env()
    model = tiny_model(env)
    batch = env.sample_trajectories(5, 0, rng=0)
    post = model.encode(batch.obs[:, 0])
    assert post.mean.shape == post.logvar.shape == (5, 3)
    out = model.loss(batch, 0, torch.Generator().manual_seed(0))
    assert out.total.shape == ()
    assert set(out.terms) == {"reconstruction", "kl", "kl_weight"}
    assert all(t.shape == () for t in out.terms.values())
    assert model.reconstruct(batch.obs[:, 0]).shape == (5, 1, 16, 16)


@pytest.mark.parametrize("reconstruction", ["bernoulli", "gaussian"])
def test_beta_loss_matches_hand_computation(reconstruction):
    env = tiny_env()
    model = tiny_model(env, reconstruction=reconstruction)
    batch = env.sample_trajectories(6, 0, rng=1)
    out = model.loss(batch, 7, torch.Generator().manual_seed(3))
    recon, kl = hand_terms(model, batch, 3, reconstruction)
    assert torch.allclose(out.terms["reconstruction"], recon, rtol=1e-5)
    assert torch.allclose(out.terms["kl"], kl, rtol=1e-5)
    assert out.terms["kl_weight"].item() == 4.0
    assert torch.allclose(out.total, recon + 4.0 * kl, rtol=1e-5)


@pytest.mark.parametrize("schedule,step,factor", [("anneal", 300, 0.7), ("anneal", 5000, 0.25),
                                                 ("increase", 300, 0.55), ("increase", 900, 1.0)])
def test_scheduled_beta_loss(schedule, step, factor):
    env = tiny_env()
    model = tiny_model(env, beta=2.0, beta_schedule=schedule, beta_schedule_steps=1000, beta_schedule_floor=0.25)
    batch = env.sample_trajectories(6, 0, rng=1)
    out = model.loss(batch, step, torch.Generator().manual_seed(3))
    recon, kl = hand_terms(model, batch, 3)
    assert out.terms["kl_weight"].item() == pytest.approx(2.0 * factor)
    assert torch.allclose(out.total, recon + 2.0 * factor * kl, rtol=1e-5)


@pytest.mark.parametrize("step,capacity", [(0, 0.0), (100, 5.0), (400, 20.0), (10_000, 20.0)])
def test_capacity_loss_matches_hand_computation(step, capacity):
    env = tiny_env()
    model = tiny_model(env, capacity=True, capacity_steps=400)
    batch = env.sample_trajectories(6, 0, rng=2)
    out = model.loss(batch, step, torch.Generator().manual_seed(4))
    recon, kl = hand_terms(model, batch, 4)
    assert set(out.terms) == {"reconstruction", "kl", "capacity"}
    assert out.terms["capacity"].item() == pytest.approx(capacity)
    assert torch.allclose(out.total, recon + 50.0 * (kl - capacity).abs(), rtol=1e-5)
    # Untrained posteriors are near the prior, so the KL is below every positive target.
    if capacity > 0:
        assert kl < capacity
        assert torch.allclose(out.total, recon + 50.0 * (capacity - kl), rtol=1e-5)


def test_capacity_gradient_pushes_kl_towards_target():
    env = tiny_env()
    batch = env.sample_trajectories(6, 0, rng=2)
    model = tiny_model(env, capacity=True, capacity_steps=400)
    out = model.loss(batch, 200, torch.Generator().manual_seed(4))  # target 10 nats, KL near 0
    g_kl, g_recon = torch.autograd.grad(out.total, [out.terms["kl"], out.terms["reconstruction"]])
    assert g_kl.item() == pytest.approx(-50.0)  # below the target, more KL lowers the loss
    assert g_recon.item() == pytest.approx(1.0)


def test_loss_reproducible_with_generator():
    env = tiny_env()
    model = tiny_model(env)
    batch = env.sample_trajectories(4, 0, rng=0)
    a = model.loss(batch, 0, torch.Generator().manual_seed(5)).total
    b = model.loss(batch, 0, torch.Generator().manual_seed(5)).total
    c = model.loss(batch, 0, torch.Generator().manual_seed(6)).total
    assert torch.equal(a, b) and not torch.equal(a, c)


# -- training and persistence ----------------------------------------------------------------
@pytest.mark.parametrize("extra", [{}, {"capacity": True, "capacity_steps": 100, "capacity_max": 5.0}])
def test_loss_decreases(extra):
    learner = RepresentationLearner(tiny_env(), "beta_vae", seed=0, device="cpu", lr=3e-3, **TINY, **extra)
    history = learner.train(steps=200, progress=False)
    loss = np.asarray(history["loss"])
    assert np.isfinite(loss).all()
    assert loss[-20:].mean() < 0.7 * loss[:20].mean()
    if extra:  # the KL follows the capacity target upwards (0 -> 5 nats)
        assert np.mean(history["kl"][-20:]) > 2.0
        assert history["capacity"][0] == 0.0 and history["capacity"][-1] == 5.0


def test_save_load_round_trip(tmp_path):
    env = tiny_env()
    learner = RepresentationLearner(env, "beta_vae", seed=0, device="cpu", capacity=True, **TINY)
    learner.train(steps=5, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config and loaded.model.config.capacity is True
    obs = env.sample_trajectories(6, 0, rng=3).obs[:, 0]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(learner.decode(z), loaded.decode(z))
    a = learner.train(steps=3, progress=False)["loss"][-3:]
    b = loaded.train(steps=3, progress=False)["loss"][-3:]
    assert a == b


def test_build_model_takes_the_published_defaults():
    model = build_model("beta_vae", make_env("circles"))
    assert model.config == BetaVAE.Config()
