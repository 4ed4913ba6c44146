"""dynrep.metrics.mig: histogram MIG (disentanglement_lib) and the continuous estimator of Chen et al."""
from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.metrics import mutual_info_score

from dynrep.metrics.mig import mig

mig_module = importlib.import_module("dynrep.metrics.mig")  # the package exports the function under the same name

SIZES = (4, 3, 5, 2)


def random_factors(rng: np.random.RandomState, n: int, sizes=SIZES) -> np.ndarray:
    return np.stack([rng.randint(s, size=n) for s in sizes], axis=1)


def grid_factors(sizes, repeats: int) -> np.ndarray:
    """Every factor combination ``repeats`` times: each value of each factor equally frequent."""
    return np.array(list(itertools.product(*[range(s) for s in sizes])) * repeats)


# -- histogram estimator (default) ----------------------------------------------------------------
def reference_histogram_mig(codes: np.ndarray, factors: np.ndarray) -> float:
    """disentanglement_lib mig.py, written from the spec: [D, N] layout, sklearn MI, sort along codes."""
    mus, ys = codes.T, factors.T
    binned = np.zeros_like(mus)
    for i in range(mus.shape[0]):
        binned[i] = np.digitize(mus[i], np.histogram(mus[i], 20)[1][:-1])
    m = np.array([[mutual_info_score(ys[j], binned[i]) for j in range(len(ys))] for i in range(len(mus))])
    entropy = np.array([mutual_info_score(y, y) for y in ys])
    sorted_m = np.sort(m, axis=0)[::-1]
    return float(np.mean((sorted_m[0] - sorted_m[1]) / entropy))


def test_histogram_parity_with_reference():
    rng = np.random.RandomState(0)
    factors = random_factors(rng, 3000)
    codes = np.concatenate([factors[:, :2] + 0.7 * rng.randn(3000, 2), rng.randn(3000, 3) ** 3], axis=1)
    codes[:, 2] += 0.5 * factors[:, 2]
    out = mig(codes, factors)
    assert out["mig"] == pytest.approx(reference_histogram_mig(codes, factors), abs=1e-6)
    assert out["estimator"] == "histogram" and isinstance(out["mig"], float)
    assert out["mutual_info"].shape == (5, 4) and out["entropy"].shape == (4,) and out["gap_per_factor"].shape == (4,)
    assert out["entropy"] == pytest.approx([mutual_info_score(f, f) for f in factors.T], abs=1e-12)


def test_histogram_perfect_codes_score_near_one():
    rng = np.random.RandomState(1)
    factors = random_factors(rng, 4000)
    out = mig(3.0 * factors - 1.0, factors)  # an affine map of the factors: nothing lost by binning
    assert out["mig"] > 0.98
    assert np.allclose(np.diag(out["mutual_info"]), out["entropy"])


def test_histogram_random_codes_score_near_zero():
    rng = np.random.RandomState(2)
    assert mig(rng.randn(4000, 6), random_factors(rng, 4000))["mig"] < 0.03


def test_histogram_mixing_two_factors_lowers_their_gaps():
    rng = np.random.RandomState(3)
    factors = random_factors(rng, 4000)
    perfect = mig(factors.astype(float), factors)
    mixed_codes = factors.astype(float)
    mixed_codes[:, 0] = factors[:, 0] + 0.6 * factors[:, 1]
    mixed = mig(mixed_codes, factors)
    assert mixed["mig"] < perfect["mig"] - 0.1
    assert mixed["gap_per_factor"][1] < perfect["gap_per_factor"][1] - 0.2
    assert mixed["gap_per_factor"][2:] == pytest.approx(perfect["gap_per_factor"][2:], abs=0.01)  # untouched


def test_num_bins_is_used():
    rng = np.random.RandomState(4)
    factors = random_factors(rng, 2000)
    codes = factors + 0.3 * rng.randn(2000, 4)
    assert mig(codes, factors, num_bins=5)["mig"] != pytest.approx(mig(codes, factors)["mig"], abs=1e-3)


@pytest.mark.parametrize("estimator", ["histogram", "chen"])
def test_constant_factor_raises(estimator):
    rng = np.random.RandomState(5)
    factors = random_factors(rng, 100)
    factors[:, 1] = 2
    with pytest.raises(ValueError, match="factors: column 1 is constant"):
        mig(rng.randn(100, 3), factors, estimator=estimator, log_vars=np.zeros((100, 3)) if estimator == "chen" else None)


def test_input_errors():
    rng = np.random.RandomState(6)
    codes, factors = rng.randn(50, 3), random_factors(rng, 50)
    with pytest.raises(ValueError, match="at least 2 codes"):
        mig(codes[:, :1], factors)
    with pytest.raises(ValueError, match=r"factors must have 50 rows .* got 49"):
        mig(codes, factors[:49])
    with pytest.raises(ValueError, match="integer class indices"):
        mig(codes, factors + 0.5)
    with pytest.raises(ValueError, match=r"estimator must be one of \('histogram', 'chen'\), got 'ksg'"):
        mig(codes, factors, estimator="ksg")
    with pytest.raises(ValueError, match="log_vars is only used by estimator='chen'"):
        mig(codes, factors, log_vars=np.zeros((50, 3)))


# -- Chen et al. continuous estimator -------------------------------------------------------------
def reference_chen_mig(means, log_vars, factors, seed=0) -> float:
    """beta-tcvae disentanglement_metrics.py / mi_metric.py, written from the paper's estimator with every
    sample used (n_samples >= N): one draw per point, H(z_d) = -mean_s log mean_n N(z_sd; mu_nd, sigma_nd),
    H(z_d | v) the same within the points with value v, averaged uniformly over values (balanced grid);
    MI clamped at 0, normalised by log(#values), MIG = mean over factors of top1 - top2."""
    sigma = np.exp(0.5 * log_vars)
    samples = means + sigma * np.random.RandomState(seed).standard_normal(means.shape)

    def entropy(rows):
        log_q = norm.logpdf(samples[rows][:, None, :], means[rows][None], sigma[rows][None])  # [S, M, D]
        return -np.mean(logsumexp(log_q, axis=1) - np.log(len(rows)), axis=0)

    marginal = entropy(np.arange(len(means)))
    gaps = []
    for column in factors.T:
        values = np.unique(column)
        conditional = np.mean([entropy(np.flatnonzero(column == v)) for v in values], axis=0)
        normed = np.sort(np.clip(marginal - conditional, 0, None))[::-1] / np.log(len(values))
        gaps.append(normed[0] - normed[1])
    return float(np.mean(gaps))


def test_chen_parity_with_reference():
    rng = np.random.RandomState(7)
    factors = grid_factors((4, 3, 2), repeats=10)  # 240 points, balanced
    means = np.concatenate([factors / 3.0 + 0.3 * rng.randn(240, 3), rng.randn(240, 1)], axis=1)
    log_vars = np.log(rng.uniform(0.05, 0.5, size=means.shape))
    out = mig(means, factors, estimator="chen", log_vars=log_vars, seed=3)
    assert out["estimator"] == "chen"
    assert out["mig"] == pytest.approx(reference_chen_mig(means, log_vars, factors, seed=3), abs=1e-6)
    assert out["entropy"] == pytest.approx(np.log([4, 3, 2]))


def test_chen_chunking_does_not_change_the_result(monkeypatch):
    rng = np.random.RandomState(8)
    factors = random_factors(rng, 300)
    means, log_vars = factors + rng.randn(300, 4), np.full((300, 4), -1.0)
    whole = mig(means, factors, estimator="chen", log_vars=log_vars)
    monkeypatch.setattr(mig_module, "_CHUNK", 7)  # one sample per chunk
    chunked = mig(means, factors, estimator="chen", log_vars=log_vars)
    assert chunked["mutual_info"] == pytest.approx(whole["mutual_info"], abs=1e-10)


def test_chen_num_samples_subsamples():
    rng = np.random.RandomState(9)
    factors = random_factors(rng, 400)
    means, log_vars = factors + 0.5 * rng.randn(400, 4), np.full((400, 4), -2.0)
    full = mig(means, factors, estimator="chen", log_vars=log_vars)["mig"]
    sub = mig(means, factors, estimator="chen", log_vars=log_vars, num_samples=50)["mig"]
    assert sub != full and sub == pytest.approx(full, abs=0.15)


def test_chen_perfect_codes_score_near_one_and_random_near_zero():
    rng = np.random.RandomState(10)
    factors = grid_factors((4, 3, 5), repeats=8)  # 480 points
    n = len(factors)
    perfect = mig(factors.astype(float), factors, estimator="chen", log_vars=np.full((n, 3), np.log(0.01 ** 2)))
    assert perfect["mig"] > 0.95
    random = mig(rng.randn(n, 3), factors, estimator="chen", log_vars=np.full((n, 3), np.log(0.3 ** 2)))
    assert random["mig"] < 0.1


def test_chen_input_errors():
    rng = np.random.RandomState(11)
    codes, factors = rng.randn(50, 3), random_factors(rng, 50)
    with pytest.raises(ValueError, match="estimator='chen' needs log_vars"):
        mig(codes, factors, estimator="chen")
    with pytest.raises(ValueError, match=r"log_vars must have the shape of codes \(50, 3\), got \(50, 2\)"):
        mig(codes, factors, estimator="chen", log_vars=np.zeros((50, 2)))
    with pytest.raises(ValueError, match="log_vars contains NaN"):
        mig(codes, factors, estimator="chen", log_vars=np.full((50, 3), np.nan))
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        mig(codes, factors, estimator="chen", log_vars=np.zeros((50, 3)), num_samples=0)
