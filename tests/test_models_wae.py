"""WAE-MMD: the IMQ kernel and unbiased MMD estimator, the loss terms, config, training, persistence."""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import seeded_model
from dynrep import RepresentationLearner, build_model
from dynrep.envs.circles import Circles
from dynrep.models.wae import DEFAULT_KERNEL_SCALES, WAE, imq_kernel, mmd_unbiased

TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16}


def tiny_env() -> Circles:
    return Circles(grid=8, radius=3.0, image_size=16)


def wae(env, **overrides) -> WAE:
    return seeded_model("wae", env, **{**TINY, **overrides})


# -- kernel and MMD against brute force ----------------------------------------------------------
def brute_kernel(a, b, constants) -> float:
    d2 = sum((float(u) - float(v)) ** 2 for u, v in zip(a, b))
    return sum(c / (c + d2) for c in constants)


def brute_mmd(z, p, constants) -> float:
    n, m = len(z), len(p)
    zz = sum(brute_kernel(z[i], z[j], constants) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    pp = sum(brute_kernel(p[i], p[j], constants) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    zp = sum(brute_kernel(z[i], p[j], constants) for i in range(n) for j in range(m)) / (n * m)
    return zz + pp - 2 * zp


def test_imq_kernel_matches_double_loop():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    constants = (0.5, 3.0, 12.0)
    k = imq_kernel(x, y, constants)
    assert k.shape == (4, 5)
    expected = [[brute_kernel(x[i], y[j], constants) for j in range(5)] for i in range(4)]
    assert np.allclose(k.numpy(), expected, rtol=1e-12)
    # A hand value: |x - y|² = 25 with constants 5 and 25 -> 5/30 + 25/50.
    k = imq_kernel(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]), [5.0, 25.0])
    assert torch.allclose(k, torch.tensor([[5 / 30 + 0.5]]))
    # k(x, x) is the number of constants.
    assert torch.allclose(imq_kernel(x, x, constants).diagonal(), torch.full((4,), 3.0, dtype=torch.float64))


@pytest.mark.parametrize("n,m", [(2, 2), (5, 5), (4, 7)])
def test_mmd_unbiased_matches_double_loop(n, m):
    g = torch.Generator().manual_seed(n * 10 + m)
    z = torch.randn(n, 3, generator=g, dtype=torch.float64)
    p = 2.0 * torch.randn(m, 3, generator=g, dtype=torch.float64) + 0.5
    constants = tuple(6.0 * s for s in DEFAULT_KERNEL_SCALES)
    assert mmd_unbiased(z, p, constants).item() == pytest.approx(brute_mmd(z, p, constants), rel=1e-10, abs=1e-12)


def test_mmd_of_same_distribution_is_zero_in_expectation():
    # The per-pair unbiased estimator averages to ~0 for equal distributions; including the
    # diagonal (the biased V-statistic) or LiLS's batch-summed distances would not.
    constants = tuple(2 * 4 * 4.0 * s for s in DEFAULT_KERNEL_SCALES)
    unbiased, biased = [], []
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        z = 2.0 * torch.randn(10, 4, generator=g, dtype=torch.float64)
        p = 2.0 * torch.randn(10, 4, generator=g, dtype=torch.float64)
        unbiased.append(mmd_unbiased(z, p, constants).item())
        biased.append((imq_kernel(z, z, constants).mean() + imq_kernel(p, p, constants).mean()
                       - 2 * imq_kernel(z, p, constants).mean()).item())
    unbiased, biased = np.array(unbiased), np.array(biased)
    stderr = unbiased.std() / np.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 3 * stderr
    assert (unbiased < 0).any()  # an unbiased estimate of 0 must sometimes be negative
    assert biased.mean() > 20 * stderr  # the diagonal adds a clearly positive bias


def test_mmd_grows_as_the_distributions_separate():
    constants = tuple(2 * 3 * 1.0 * s for s in DEFAULT_KERNEL_SCALES)
    means = []
    for shift in (0.0, 0.5, 1.0, 2.0, 4.0):
        values = []
        for seed in range(20):
            g = torch.Generator().manual_seed(seed)
            z = torch.randn(32, 3, generator=g, dtype=torch.float64)
            p = torch.randn(32, 3, generator=g, dtype=torch.float64) + shift
            values.append(mmd_unbiased(z, p, constants).item())
        means.append(np.mean(values))
    assert abs(means[0]) < 0.1 * means[1]
    assert all(a < b for a, b in zip(means, means[1:])), means


def test_mmd_is_differentiable_and_pulls_samples_to_the_prior():
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(16, 2, generator=g) + 3.0).requires_grad_()
    p = torch.randn(16, 2, generator=g)
    mmd_unbiased(z, p, (2.0, 4.0)).backward()
    # Gradient descent moves the shifted samples towards the origin (negative mean gradient step).
    assert (z.grad.mean(0) > 0).all()


def test_kernel_and_mmd_input_errors():
    with pytest.raises(ValueError, match=r"at least 2 samples on each side, got 1 and 3"):
        mmd_unbiased(torch.zeros(1, 2), torch.zeros(3, 2), (1.0,))
    with pytest.raises(ValueError, match=r"same D, got \(2, 2\) and \(2, 3\)"):
        imq_kernel(torch.zeros(2, 2), torch.zeros(2, 3), (1.0,))
    with pytest.raises(ValueError, match=r"scales must be a non-empty sequence of positive numbers"):
        imq_kernel(torch.zeros(2, 2), torch.zeros(2, 2), (1.0, 0.0))
    with pytest.raises(ValueError, match=r"scales must be a non-empty sequence of positive numbers"):
        imq_kernel(torch.zeros(2, 2), torch.zeros(2, 2), ())


# -- config ----------------------------------------------------------------------------------------
def test_config_defaults_and_kernel_constants():
    c = WAE.Config()
    assert (c.latent_dim, c.batch_size, c.lr) == (10, 64, 1e-3)
    assert (c.mmd_weight, c.logvar_weight, c.prior_std, c.kernel_base) == (10.0, 1e-3, 2.0, None)
    assert c.kernel_scales == (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
    assert c.reconstruction == "gaussian"
    # base = 2 * latent_dim * prior_std**2 = 2 * 10 * 4.
    assert np.allclose(c.kernel_constants, [8.0, 16.0, 40.0, 80.0, 160.0, 400.0, 800.0])
    # LiLS's setting: L = 5, prior variance 1 -> base 10.
    assert np.allclose(WAE.Config(latent_dim=5, prior_std=1.0).kernel_constants, [1, 2, 5, 10, 20, 50, 100])
    assert WAE.Config(kernel_base=3.0, kernel_scales=(1.0, 2.0)).kernel_constants == (3.0, 6.0)


@pytest.mark.parametrize("key,value,message", [
    ("mmd_weight", -1.0, r"mmd_weight must be a number >= 0, got -1.0"),
    ("logvar_weight", float("nan"), r"logvar_weight must be a number >= 0, got nan"),
    ("prior_std", 0.0, r"prior_std must be a positive number, got 0.0"),
    ("prior_std", "2", r"prior_std must be a positive number, got '2'"),
    ("kernel_base", -10.0, r"kernel_base must be a positive number or None, got -10.0"),
    ("kernel_scales", (), r"kernel_scales must be a non-empty tuple of positive numbers, got \(\)"),
    ("kernel_scales", (1.0, -2.0), r"kernel_scales must be a non-empty tuple of positive numbers"),
    ("reconstruction", "l1", r"reconstruction must be one of \('bernoulli', 'gaussian', 'normal'\), got 'l1'"),
    ("batch_size", 1, r"the MMD needs at least 2 frames per batch.*batch_size=1, episode_length=0"),
    ("latent_dim", 0, r"latent_dim must be >= 1, got 0"),
])
def test_config_validation(key, value, message):
    with pytest.raises(ValueError, match=message):
        WAE.Config(**{key: value})


def test_batch_of_one_episode_with_two_frames_is_allowed():
    assert WAE.Config(batch_size=1, episode_length=1).batch_size == 1


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match=r"unknown 'wae' model option\(s\) \['beta'\]; allowed: \[.*'mmd_weight'"):
        build_model("wae", tiny_env(), beta=1.0)


# -- the loss --------------------------------------------------------------------------------------
def test_shapes():
    env = tiny_env()
    model = wae(env)
    obs = env.sample_trajectories(5, 0, rng=0).obs[:, 0]
    post = model.encode(obs)
    assert post.mean.shape == post.logvar.shape == (5, 3)
    assert model.representation(obs).shape == (5, 3)
    assert model.reconstruct(obs).shape == (5, 1, 16, 16)
    out = model.loss(env.sample_trajectories(6, 0, rng=1), step=0, generator=torch.Generator().manual_seed(0))
    assert set(out.terms) == {"reconstruction", "mmd", "logvar_l1"}
    assert out.total.shape == () and all(t.shape == () for t in out.terms.values())
    assert torch.isfinite(out.total)


@pytest.mark.parametrize("reconstruction", ["gaussian", "bernoulli"])
def test_loss_terms_match_hand_computation(reconstruction):
    env = tiny_env()
    model = wae(env, reconstruction=reconstruction, mmd_weight=7.0, logvar_weight=0.25, prior_std=1.5)
    batch = env.sample_trajectories(3, 1, rng=0)  # 6 frames
    out = model.loss(batch, step=0, generator=torch.Generator().manual_seed(5))

    obs = batch.obs.flatten(0, 1)
    target = obs.float() / 255
    post = model.encode(obs)
    g = torch.Generator().manual_seed(5)
    eps = torch.randn(6, 3, generator=g)
    prior = 1.5 * torch.randn(6, 3, generator=g)  # drawn from the same generator, after the posterior noise
    z = post.mean + eps * torch.exp(0.5 * post.logvar)
    logits = model.decode_logits(z)
    if reconstruction == "bernoulli":
        per_element = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_element = (torch.sigmoid(logits) - target) ** 2
    recon = per_element.sum(dim=(1, 2, 3)).mean()
    base = 2 * 3 * 1.5 ** 2
    mmd = brute_mmd(z.detach().double(), prior.double(), [base * s for s in DEFAULT_KERNEL_SCALES])
    l1 = post.logvar.abs().sum() / 6

    assert torch.allclose(out.terms["reconstruction"], recon, rtol=1e-5)
    assert out.terms["mmd"].item() == pytest.approx(mmd, rel=1e-4, abs=1e-6)
    assert torch.allclose(out.terms["logvar_l1"], l1, rtol=1e-5)
    assert out.total.item() == pytest.approx(recon.item() + 7.0 * mmd + 0.25 * l1.item(), rel=1e-5)


def test_prior_std_changes_only_the_mmd():
    env = tiny_env()
    batch = env.sample_trajectories(8, 0, rng=0)
    a = wae(env, prior_std=1.0, kernel_base=6.0).loss(batch, 0, torch.Generator().manual_seed(3))
    b = wae(env, prior_std=3.0, kernel_base=6.0).loss(batch, 0, torch.Generator().manual_seed(3))
    assert torch.equal(a.terms["reconstruction"], b.terms["reconstruction"])
    assert torch.equal(a.terms["logvar_l1"], b.terms["logvar_l1"])
    assert not torch.allclose(a.terms["mmd"], b.terms["mmd"])


# -- training and the learner ----------------------------------------------------------------------
def test_loss_decreases_on_tiny_circles():
    learner = RepresentationLearner(tiny_env(), "wae", seed=0, device="cpu", **{**TINY, "batch_size": 16})
    learner.train(steps=200, progress=False)
    history = {k: np.array(v) for k, v in learner.history.items()}
    assert {"loss", "reconstruction", "mmd", "logvar_l1"} <= set(history)
    assert all(np.isfinite(v).all() for v in history.values())
    assert history["loss"][-20:].mean() < 0.7 * history["loss"][:20].mean()
    assert history["reconstruction"][-20:].mean() < history["reconstruction"][:20].mean()
    assert history["mmd"][-20:].mean() < history["mmd"][:20].mean()


def test_save_load_round_trip(tmp_path):
    learner = RepresentationLearner(tiny_env(), "wae", seed=3, device="cpu", **TINY, kernel_scales=(1.0, 4.0))
    learner.train(steps=5, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config
    obs = learner.env.sample_trajectories(6, 0, rng=9).obs[:, 0]
    with torch.no_grad():
        assert torch.equal(loaded.model.representation(obs), learner.model.representation(obs))
        assert torch.equal(loaded.model.reconstruct(obs), learner.model.reconstruct(obs))
    # Training continues identically.
    learner.train(steps=2, progress=False)
    loaded.train(steps=2, progress=False)
    assert learner.history["loss"] == loaded.history["loss"]
