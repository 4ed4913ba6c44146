"""dynrep.metrics.unsupervised: Gaussian total correlation, Wasserstein correlation, mean pairwise binned MI."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from sklearn.metrics import mutual_info_score

from dynrep.metrics.unsupervised import unsupervised


def reference(codes: np.ndarray) -> dict:
    """disentanglement_lib unsupervised_metrics.py, written from the spec ([D, N] layout, np.cov over rows)."""
    mus = codes.T
    num_codes = len(mus)
    cov = np.cov(mus)
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    wasserstein = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.expand_dims(np.diag(cov), axis=1)))
    binned = np.zeros_like(mus)
    for i in range(num_codes):
        binned[i] = np.digitize(mus[i], np.histogram(mus[i], 20)[1][:-1])
    m = np.array([[mutual_info_score(b, a) for b in binned] for a in binned])
    np.fill_diagonal(m, 0)
    return {"gaussian_total_correlation": tc, "wasserstein_correlation": np.real(wasserstein),
            "wasserstein_correlation_norm": np.real(wasserstein) / np.sum(np.diag(cov)),
            "mutual_info_score": np.sum(m) / (num_codes ** 2 - num_codes)}


def test_parity_with_reference():
    rng = np.random.RandomState(0)
    codes = rng.randn(3000, 4) @ rng.randn(4, 4) * np.array([1.0, 3.0, 0.2, 1.0])
    codes[:, 3] = np.tanh(codes[:, 3])
    out = unsupervised(codes)
    expected = reference(codes)
    for key, value in expected.items():
        assert isinstance(out[key], float) and out[key] == pytest.approx(value, abs=1e-6), key
    assert out["covariance"] == pytest.approx(np.cov(codes.T))
    assert out["mutual_info"].shape == (4, 4) and np.all(np.diag(out["mutual_info"]) == 0)


def test_bivariate_gaussian_matches_closed_forms():
    rng = np.random.RandomState(1)
    rho = 0.8
    codes = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=20000)
    out = unsupervised(codes)
    r = np.corrcoef(codes.T)[0, 1]  # TC of a 2-d Gaussian depends on its correlation only
    assert out["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - r ** 2), rel=1e-9)
    # W2² between N(0, [[1, ρ], [ρ, 1]]) and N(0, I) = 4 - 2 tr sqrtm(Σ) = 4 - 2 (√(1+ρ) + √(1-ρ))
    population = 4 - 2 * (np.sqrt(1 + rho) + np.sqrt(1 - rho))
    assert out["wasserstein_correlation"] == pytest.approx(population, rel=0.05)
    assert out["wasserstein_correlation_norm"] == pytest.approx(population / 2, rel=0.05)


def test_independent_codes_score_near_zero_and_dependent_codes_higher():
    rng = np.random.RandomState(2)
    independent = unsupervised(rng.randn(5000, 3) * [1.0, 5.0, 0.1])
    assert independent["gaussian_total_correlation"] < 0.01
    assert independent["wasserstein_correlation_norm"] < 0.01
    assert independent["mutual_info_score"] < 0.05
    base = rng.randn(5000, 3)
    dependent = unsupervised(np.stack([base[:, 0], base[:, 0] ** 3 + 0.3 * base[:, 1], base[:, 2]], axis=1))
    assert dependent["mutual_info_score"] > independent["mutual_info_score"] + 0.1
    assert dependent["gaussian_total_correlation"] > independent["gaussian_total_correlation"] + 0.1


def test_input_errors():
    rng = np.random.RandomState(3)
    codes = rng.randn(100, 3)
    with pytest.raises(ValueError, match="at least 2 codes"):
        unsupervised(codes[:, :1])
    constant = codes.copy()
    constant[:, 1] = 0.5
    with pytest.raises(ValueError, match="codes: column 1 is constant"):
        unsupervised(constant)
    singular = codes.copy()
    singular[:, 2] = singular[:, 0] - singular[:, 1]
    with pytest.raises(ValueError, match="covariance of the codes is singular"):
        unsupervised(singular)
    with pytest.raises(ValueError, match=r"codes must have shape \[num_samples, num_codes\], got \(100,\)"):
        unsupervised(codes[:, 0])
