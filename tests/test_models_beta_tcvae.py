"""β-TCVAE: MWS/MSS estimators against brute force, MSS weights, the decomposition, training, persistence."""
from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import norm

from conftest import seeded_model
from dynrep import RepresentationLearner, build_model, make_env
from dynrep.envs.circles import Circles
from dynrep.models import beta_tcvae
from dynrep.models.beta_tcvae import (
    CONTINUOUS_DATASET_SIZE, BetaTCVAE, aggregate_log_densities, environment_dataset_size, gaussian_log_density,
    kl_decomposition, log_importance_weight_matrix,
)

TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16}


def tiny_env() -> Circles:
    return Circles(grid=8, radius=3.0, image_size=16)  # 64 states


def tiny_model(env=None, **overrides) -> BetaTCVAE:
    return seeded_model("beta_tcvae", env or tiny_env(), **{**TINY, **overrides})


def random_posteriors(batch: int, dims: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, dims, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(batch, dims, generator=g, dtype=torch.float64)
    z = mean + torch.randn(batch, dims, generator=g, dtype=torch.float64) * (0.5 * logvar).exp()
    return z, mean, logvar


def density(x: float, mean: float, logvar: float) -> float:
    return float(norm.pdf(x, loc=mean, scale=math.exp(0.5 * logvar)))


def brute_force(z, mean, logvar, weights):
    """log q(z_i) and log q(z_i,d) with explicit loops: ``q(z_i) ~ sum_j weights[i][j] prod_d q(z_i,d | x_j)``."""
    b, d = z.shape
    log_qz, log_qz_dims = np.zeros(b), np.zeros((b, d))
    for i in range(b):
        joint = 0.0
        for j in range(b):
            joint += weights[i][j] * math.prod(density(z[i, k], mean[j, k], logvar[j, k]) for k in range(d))
        log_qz[i] = math.log(joint)
        for k in range(d):
            log_qz_dims[i, k] = math.log(sum(weights[i][j] * density(z[i, k], mean[j, k], logvar[j, k])
                                             for j in range(b)))
    return log_qz, log_qz_dims


def hand_mss_weights(b: int, n: int):
    m = b - 1
    return [[1 / n if j == i else (n - m) / (n * m) if j == (i + 1) % b else 1 / m for j in range(b)]
            for i in range(b)]


# -- densities and weights -------------------------------------------------------------------
def test_gaussian_log_density_against_scipy():
    z, mean, logvar = random_posteriors(4, 2)
    expected = norm.logpdf(z.numpy(), loc=mean.numpy(), scale=np.exp(0.5 * logvar.numpy()))
    np.testing.assert_allclose(gaussian_log_density(z, mean, logvar).numpy(), expected, rtol=1e-12)


def test_mss_weight_matrix_hand_values():
    # B = 4, N = 10: M = 3; own posterior 1/10, the next sample (10 - 3) / 30 = 7/30, the others 1/3.
    w = log_importance_weight_matrix(4, 10, dtype=torch.float64).exp()
    a, s, o = 0.1, 7 / 30, 1 / 3
    expected = torch.tensor([[a, s, o, o],
                             [o, a, s, o],
                             [o, o, a, s],
                             [s, o, o, a]], dtype=torch.float64)
    assert torch.allclose(w, expected, rtol=1e-12)
    assert torch.allclose(w.sum(1), torch.ones(4, dtype=torch.float64))
    # B = 2: no 1/M entries; own 1/N, the other (N - 1)/N.
    w2 = log_importance_weight_matrix(2, 5, dtype=torch.float64).exp()
    assert torch.allclose(w2, torch.tensor([[0.2, 0.8], [0.8, 0.2]], dtype=torch.float64))
    # N = B: every stratum weight (N - M)/(NM) = 1/(NM).
    w3 = log_importance_weight_matrix(3, 3, dtype=torch.float64).exp()
    assert torch.allclose(w3.sum(1), torch.ones(3, dtype=torch.float64))
    assert w3[0, 1].item() == pytest.approx(1 / 6)
    assert log_importance_weight_matrix(4, 10).dtype == torch.float32


def test_mss_weight_matrix_errors():
    with pytest.raises(ValueError, match="batch_size must be >= 2, got 1"):
        log_importance_weight_matrix(1, 10)
    with pytest.raises(ValueError, match="dataset_size must be >= 8, got 5"):
        log_importance_weight_matrix(8, 5)


# -- estimators against brute force ----------------------------------------------------------
def test_mws_against_brute_force():
    z, mean, logvar = random_posteriors(4, 2, seed=1)
    n = 50
    log_qz, log_qz_dims = aggregate_log_densities(z, mean, logvar, n, "mws")
    weights = [[1 / (n * 4)] * 4 for _ in range(4)]
    exp_qz, exp_dims = brute_force(z.numpy(), mean.numpy(), logvar.numpy(), weights)
    np.testing.assert_allclose(log_qz.numpy(), exp_qz, rtol=1e-10)
    np.testing.assert_allclose(log_qz_dims.numpy(), exp_dims, rtol=1e-10)


def test_mss_against_brute_force():
    z, mean, logvar = random_posteriors(4, 2, seed=2)
    log_qz, log_qz_dims = aggregate_log_densities(z, mean, logvar, 10, "mss")
    exp_qz, exp_dims = brute_force(z.numpy(), mean.numpy(), logvar.numpy(), hand_mss_weights(4, 10))
    np.testing.assert_allclose(log_qz.numpy(), exp_qz, rtol=1e-10)
    np.testing.assert_allclose(log_qz_dims.numpy(), exp_dims, rtol=1e-10)


def plain_autograd_estimate(z, mean, logvar, log_w):
    """The ``[B, B, D]`` autograd form of the estimators (log weights ``log_w [B, B]``)."""
    pairs = gaussian_log_density(z[:, None, :], mean[None], logvar[None])
    return (torch.logsumexp(log_w + pairs.sum(-1), 1), torch.logsumexp(log_w[:, :, None] + pairs, 1))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
@pytest.mark.parametrize("block_elements", [4, 1 << 18])  # 4: one row per block (5 blocks); default: one block
def test_estimator_values_and_gradients_match_plain_autograd(monkeypatch, estimator, block_elements):
    monkeypatch.setattr(beta_tcvae, "_BLOCK_ELEMENTS", block_elements)
    z, mean, logvar = (t.requires_grad_() for t in random_posteriors(5, 3, seed=5))
    log_w = (log_importance_weight_matrix(5, 40, torch.float64) if estimator == "mss"
             else torch.full((5, 5), -math.log(40 * 5), dtype=torch.float64))
    g = torch.Generator().manual_seed(6)
    weights = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    ours = aggregate_log_densities(z, mean, logvar, 40, estimator)
    plain = plain_autograd_estimate(z, mean, logvar, log_w)
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    def weighted(outputs):
        return sum((w * o).sum() for w, o in zip(weights, outputs))
    grads = torch.autograd.grad(weighted(ours), (z, mean, logvar))
    expected = torch.autograd.grad(weighted(plain), (z, mean, logvar))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *x: aggregate_log_densities(*x, 40, estimator), (z, mean, logvar))


def test_estimator_with_far_apart_tight_posteriors_matches_plain_logsumexp():
    # Posteriors 30 apart with variance e^-6: the cross terms are about e^-180000 and get clamped before exp;
    # the result must still equal the exact one and the gradients stay finite (each row is its own term).
    mean = torch.tensor([[0.0], [30.0], [60.0]])
    logvar = torch.full((3, 1), -6.0, requires_grad=True)
    z = (mean + 0.01).requires_grad_()
    log_qz, log_qz_dims = aggregate_log_densities(z, mean, logvar, 3, "mws")
    exact = plain_autograd_estimate(z, mean, logvar, torch.full((3, 3), -math.log(9.0)))[0]
    torch.testing.assert_close(log_qz, exact)
    torch.testing.assert_close(log_qz_dims[:, 0], exact)  # one dimension: the marginal is the joint
    (log_qz.sum() + log_qz_dims.sum()).backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(logvar.grad).all()
    # d/dz_i log q(z_i) = -(z_i - mu_i) / sigma^2 of the own term, -0.01 * e^6, once from each of the two outputs
    # (rtol 1e-3: z - mu loses digits in float32 at 60.01)
    torch.testing.assert_close(z.grad, torch.full((3, 1), -2 * 0.01 * math.exp(6.0)), rtol=1e-3, atol=0)


def test_estimators_differ_and_unknown_estimator():
    z, mean, logvar = random_posteriors(4, 2, seed=2)
    mws = aggregate_log_densities(z, mean, logvar, 10, "mws")[0]
    mss = aggregate_log_densities(z, mean, logvar, 10, "mss")[0]
    assert not torch.allclose(mws, mss)
    with pytest.raises(ValueError, match=r"estimator must be one of \('mws', 'mss'\), got 'iw'"):
        aggregate_log_densities(z, mean, logvar, 10, "iw")


@pytest.mark.parametrize("position", [0, 1, 2])
def test_mss_is_unbiased_over_all_batches(position):
    """Stratified sampling: averaged over every ordered choice of the other batch members, the estimate
    of q(z) (and of each q(z_d)) equals the exact aggregate posterior (1/N) sum_n q(z|x_n)."""
    n, b = 5, 3
    _, mean_all, logvar_all = random_posteriors(n, 2, seed=3)
    own = 1
    z = mean_all[own] + 0.3  # the sample drawn from x_own's posterior
    exact = np.mean([math.prod(density(z[k], mean_all[j, k], logvar_all[j, k]) for k in range(2))
                     for j in range(n)])
    exact_dims = [np.mean([density(z[k], mean_all[j, k], logvar_all[j, k]) for j in range(n)]) for k in range(2)]
    others = [j for j in range(n) if j != own]
    estimates, estimates_dims = [], []
    for chosen in itertools.permutations(others, b - 1):
        members = list(chosen)
        members.insert(position, own)
        zs = torch.stack([z if j == own else mean_all[j] for j in members])  # other rows' samples are irrelevant
        log_qz, log_qz_dims = aggregate_log_densities(zs, mean_all[members], logvar_all[members], n, "mss")
        estimates.append(log_qz[position].exp().item())
        estimates_dims.append(log_qz_dims[position].exp().numpy())
    assert len(estimates) == 12
    assert np.mean(estimates) == pytest.approx(exact, rel=1e-10)
    np.testing.assert_allclose(np.mean(estimates_dims, axis=0), exact_dims, rtol=1e-10)


def test_decomposition_sums_to_single_sample_kl():
    z, mean, logvar = random_posteriors(6, 3, seed=4)
    log_qzx = norm.logpdf(z.numpy(), mean.numpy(), np.exp(0.5 * logvar.numpy())).sum(1)
    log_pz = norm.logpdf(z.numpy()).sum(1)
    for estimator in ("mws", "mss"):
        mi, tc, dim_kl = kl_decomposition(z, mean, logvar, 100, estimator)
        assert mi.shape == tc.shape == dim_kl.shape == (6,)
        np.testing.assert_allclose((mi + tc + dim_kl).numpy(), log_qzx - log_pz, rtol=1e-10)
        log_qz, log_qz_dims = aggregate_log_densities(z, mean, logvar, 100, estimator)
        np.testing.assert_allclose(mi.numpy(), log_qzx - log_qz.numpy(), rtol=1e-10)
        np.testing.assert_allclose(tc.numpy(), (log_qz - log_qz_dims.sum(1)).numpy(), rtol=1e-10)


def test_identical_posteriors_give_mws_offsets():
    # All posteriors equal: log q(z) = log q(z|x) - log N and each marginal is off by -log N too,
    # so MI = log N and TC = (D - 1) log N exactly (the MWS bias on overlapping posteriors).
    z = torch.randn(5, 3, dtype=torch.float64)
    mean, logvar = torch.zeros(5, 3, dtype=torch.float64), torch.zeros(5, 3, dtype=torch.float64)
    mi, tc, _ = kl_decomposition(z, mean, logvar, 100, "mws")
    assert torch.allclose(mi, torch.full((5,), math.log(100), dtype=torch.float64))
    assert torch.allclose(tc, torch.full((5,), 2 * math.log(100), dtype=torch.float64))


# -- config and dataset size -----------------------------------------------------------------
def test_published_defaults():
    c = BetaTCVAE.Config()
    assert (c.alpha, c.beta, c.gamma, c.estimator, c.dataset_size) == (1.0, 6.0, 1.0, "mws", None)
    assert (c.lr, c.batch_size, c.latent_dim, c.reconstruction) == (1e-3, 64, 10, "bernoulli")


@pytest.mark.parametrize("overrides,message", [
    ({"alpha": -1.0}, r"alpha must be >= 0, got -1.0"),
    ({"beta": -0.5}, r"beta must be >= 0, got -0.5"),
    ({"gamma": -2.0}, r"gamma must be >= 0, got -2.0"),
    ({"estimator": "iw"}, r"estimator must be one of \('mws', 'mss'\), got 'iw'"),
    ({"dataset_size": 0}, r"dataset_size must be >= 1, got 0"),
    ({"dataset_size": 10.5}, r"dataset_size must be an integer, got 10.5"),
    ({"estimator": "mss", "batch_size": 1}, r"estimator 'mss' needs at least 2 frames per batch"),
    ({"reconstruction": "l1"}, r"reconstruction must be one of \('bernoulli', 'gaussian', 'normal'\), got 'l1'"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        BetaTCVAE.Config(**overrides)


def test_dataset_size_from_environment():
    env = tiny_env()
    assert environment_dataset_size(env) == 64
    assert tiny_model(env).dataset_size == 64
    assert tiny_model(env, dataset_size=1000).dataset_size == 1000
    train, test = env.split("circles/recomb2range/midpos")
    assert environment_dataset_size(train) == int(train.allowed.sum()) == 60
    assert tiny_model(test, estimator="mws").dataset_size == 4
    assert environment_dataset_size(make_env("pendulum")) == 5482  # the published training images
    assert environment_dataset_size(make_env("toy_nn", "action_sparsity_trivial", num_samples=1000)) == 800
    assert environment_dataset_size(make_env("flow", subset="test")) == 1620
    unrecorded = SimpleNamespace(factors=make_env("pendulum").factors)  # continuous factors, no finite rows
    assert environment_dataset_size(unrecorded) == CONTINUOUS_DATASET_SIZE


def test_mss_needs_a_dataset_at_least_as_large_as_the_batch():
    env = Circles(grid=2, radius=3.0, image_size=16)  # 4 states
    with pytest.raises(ValueError, match=r"estimator 'mss' needs dataset_size >= frames per batch = 8; "
                                         r"dataset_size derived from the environment is 4"):
        tiny_model(env, estimator="mss")
    with pytest.raises(ValueError, match=r"frames per batch = 16; dataset_size given is 10"):
        tiny_model(tiny_env(), estimator="mss", episode_length=1, dataset_size=10)
    assert tiny_model(env, estimator="mss", dataset_size=8).dataset_size == 8
    assert tiny_model(env, estimator="mws").dataset_size == 4


# -- the model's loss ------------------------------------------------------------------------
def independent_loss_parts(model: BetaTCVAE, batch, seed: int):
    """Reconstruction, sample and posterior computed without the model's loss code."""
    obs = batch.obs.flatten(0, 1)
    target = obs.float() / 255
    post = model.encode(obs)
    noise = torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(seed))
    z = post.mean + noise * torch.exp(0.5 * post.logvar)
    logits = model.decode_logits(z)
    recon = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=(1, 2, 3)).mean()
    return recon, z.double(), post.mean.double(), post.logvar.double()


def test_shapes_and_terms():
    env = tiny_env()
    model = tiny_model(env)
    batch = env.sample_trajectories(5, 1, rng=0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(0))
    assert out.total.shape == ()
    assert set(out.terms) == {"reconstruction", "kl", "mutual_info", "total_correlation", "dimwise_kl"}
    assert all(t.shape == () for t in out.terms.values())
    post = model.encode(batch.obs[:, 0])
    assert post.mean.shape == post.logvar.shape == (5, 3)
    assert model.reconstruct(batch.obs[:, 0]).shape == (5, 1, 16, 16)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_beta_one_loss_is_the_negative_elbo(estimator):
    """α = β = γ = 1: the decomposition is computed and telescopes to recon + log q(z|x) - log p(z)."""
    env = tiny_env()
    model = tiny_model(env, beta=1.0, estimator=estimator)
    batch = env.sample_trajectories(8, 0, rng=5)
    out = model.loss(batch, 0, torch.Generator().manual_seed(9))
    recon, z, mean, logvar = independent_loss_parts(model, batch, 9)
    log_qzx = norm.logpdf(z.detach().numpy(), mean.detach().numpy(), np.exp(0.5 * logvar.detach().numpy())).sum(1)
    log_pz = norm.logpdf(z.detach().numpy()).sum(1)
    neg_elbo = recon.item() + np.mean(log_qzx - log_pz)
    assert out.total.item() == pytest.approx(neg_elbo, rel=1e-4)
    terms = out.terms
    parts = (terms["reconstruction"] + terms["mutual_info"] + terms["total_correlation"] + terms["dimwise_kl"])
    assert out.total.item() == pytest.approx(parts.item(), rel=1e-6)
    assert terms["total_correlation"].item() != 0.0  # the decomposition was computed, not skipped


@pytest.mark.parametrize("estimator,alpha,beta,gamma", [("mws", 1.0, 6.0, 1.0), ("mss", 0.5, 3.0, 2.0)])
def test_weighted_loss_against_brute_force(estimator, alpha, beta, gamma):
    env = tiny_env()
    model = tiny_model(env, alpha=alpha, beta=beta, gamma=gamma, estimator=estimator)
    batch = env.sample_trajectories(4, 0, rng=6)
    out = model.loss(batch, 0, torch.Generator().manual_seed(2))
    recon, z, mean, logvar = independent_loss_parts(model, batch, 2)
    z, mean, logvar = z.detach().numpy(), mean.detach().numpy(), logvar.detach().numpy()
    n, b = 64, 4
    weights = [[1 / (n * b)] * b for _ in range(b)] if estimator == "mws" else hand_mss_weights(b, n)
    log_qz, log_qz_dims = brute_force(z, mean, logvar, weights)
    log_qzx = norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum(1)
    log_pz = norm.logpdf(z).sum(1)
    mi = np.mean(log_qzx - log_qz)
    tc = np.mean(log_qz - log_qz_dims.sum(1))
    dim_kl = np.mean(log_qz_dims.sum(1) - log_pz)
    assert out.terms["mutual_info"].item() == pytest.approx(mi, rel=1e-4, abs=1e-4)
    assert out.terms["total_correlation"].item() == pytest.approx(tc, rel=1e-4, abs=1e-4)
    assert out.terms["dimwise_kl"].item() == pytest.approx(dim_kl, rel=1e-4, abs=1e-4)
    assert out.terms["reconstruction"].item() == pytest.approx(recon.item(), rel=1e-5)
    expected = recon.item() + alpha * mi + beta * tc + gamma * dim_kl
    assert out.total.item() == pytest.approx(expected, rel=1e-4)
    analytic = 0.5 * (mean ** 2 + np.exp(logvar) - 1 - logvar).sum(1).mean()
    assert out.terms["kl"].item() == pytest.approx(analytic, rel=1e-4)


def test_gradients_reach_every_parameter_and_are_reproducible():
    env = tiny_env()
    model = tiny_model(env, estimator="mss")
    batch = env.sample_trajectories(4, 0, rng=0)
    a = model.loss(batch, 0, torch.Generator().manual_seed(5))
    a.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    b = model.loss(batch, 0, torch.Generator().manual_seed(5))
    c = model.loss(batch, 0, torch.Generator().manual_seed(6))
    assert torch.equal(a.total, b.total) and not torch.equal(a.total, c.total)


# -- training and persistence ----------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_loss_decreases(estimator):
    learner = RepresentationLearner(tiny_env(), "beta_tcvae", seed=0, device="cpu", lr=3e-3, estimator=estimator,
                                    **TINY)
    history = learner.train(steps=200, progress=False)
    loss = np.asarray(history["loss"])
    assert np.isfinite(loss).all()
    assert loss[-20:].mean() < 0.7 * loss[:20].mean()


def test_save_load_round_trip(tmp_path):
    env = tiny_env()
    learner = RepresentationLearner(env, "beta_tcvae", seed=0, device="cpu", estimator="mss", **TINY)
    learner.train(steps=5, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config and loaded.model.dataset_size == 64
    obs = env.sample_trajectories(6, 0, rng=3).obs[:, 0]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(learner.decode(z), loaded.decode(z))
    assert learner.train(steps=3, progress=False)["loss"][-3:] == loaded.train(steps=3, progress=False)["loss"][-3:]


def test_dataset_size_of_the_default_world():
    assert build_model("beta_tcvae", make_env("circles")).dataset_size == 32 * 32
