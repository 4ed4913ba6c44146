"""dynrep.metrics.irs: the Interventional Robustness Score against disentanglement_lib's formula."""
from __future__ import annotations

import numpy as np
import pytest

from dynrep.metrics.irs import irs

SIZES = (5, 8, 32)


def _factors(n=2000, seed=0):
    rng = np.random.RandomState(seed)
    return np.stack([rng.randint(0, s, size=n) for s in SIZES], axis=1)


def _reference_irs(codes, factors, diff_quantile=0.99, num_bins=20):
    """disentanglement_lib compute_irs + scalable_disentanglement_score, written from the spec."""
    ys = np.stack([np.digitize(f, np.histogram(f, num_bins)[1][:-1]) for f in factors.T.astype(float)], axis=1)
    mus = codes[:, codes.var(axis=0) > 0]
    max_dev = np.max(np.abs(mus - mus.mean(axis=0)), axis=0)
    cum = np.zeros((mus.shape[1], ys.shape[1]))
    for i in range(ys.shape[1]):
        values = np.unique(ys[:, i])
        for v in values:
            m = ys[:, i] == v
            cum[:, i] += np.quantile(np.abs(mus[m] - mus[m].mean(axis=0)), q=diff_quantile, axis=0)
        cum[:, i] /= len(values)
    matrix = 1.0 - cum / max_dev[:, None]
    scores = matrix.max(axis=1)
    return np.average(scores, weights=max_dev), matrix, matrix.argmax(axis=1)


def test_irs_parity_with_reference():
    rng = np.random.RandomState(1)
    factors = _factors()
    codes = np.concatenate([np.tanh(factors / 10.0) @ rng.normal(size=(3, 4)), rng.normal(size=(2000, 1))], axis=1)
    codes += 0.1 * rng.normal(size=codes.shape)
    expected, matrix, parents = _reference_irs(codes, factors)
    out = irs(codes, factors)
    assert out["irs"] == pytest.approx(expected, abs=1e-6)
    assert np.allclose(out["irs_matrix"], matrix.T, atol=1e-6)
    assert np.array_equal(out["parents"], parents)
    assert out["num_active_dims"] == 5
    expected_q1, _, _ = _reference_irs(codes, factors, diff_quantile=1.0)
    assert irs(codes, factors, diff_quantile=1.0)["irs"] == pytest.approx(expected_q1, abs=1e-6)


def test_perfect_and_monotone_codes_score_one():
    factors = _factors()
    out = irs(factors.astype(float), factors, num_bins=None)
    assert out["irs"] == pytest.approx(1.0)
    assert np.array_equal(out["parents"], [0, 1, 2])
    monotone = np.stack([np.exp(factors[:, 1]), -factors[:, 2] ** 3, np.sqrt(factors[:, 0])], axis=1)
    out = irs(monotone, factors, num_bins=None)
    assert out["irs"] == pytest.approx(1.0)
    assert np.array_equal(out["parents"], [1, 2, 0])


def test_random_codes_score_low():
    rng = np.random.RandomState(2)
    assert irs(rng.uniform(size=(2000, 3)), _factors())["irs"] < 0.1


def test_mixing_two_factors_lowers_score():
    factors = _factors()
    perfect = factors / (np.array(SIZES) - 1.0)  # every code spans [0, 1]
    mixed = perfect.copy()
    mixed[:, 0], mixed[:, 1] = (perfect[:, 0] + perfect[:, 1]) / 2, (perfect[:, 0] - perfect[:, 1]) / 2
    out = irs(mixed, factors, num_bins=None)
    assert out["irs"] < 0.75
    assert np.all(out["disentanglement_scores"][:2] < 0.6) and out["disentanglement_scores"][2] == pytest.approx(1.0)


def test_default_discretiser_merges_factor_values_beyond_num_bins():
    """32 positions become 20 bins by default, so the code of that factor is no longer perfectly robust."""
    factors = _factors()
    codes = factors.astype(float)
    assert irs(codes, factors, num_bins=None)["disentanglement_scores"][2] == pytest.approx(1.0)
    assert irs(codes, factors)["disentanglement_scores"][2] < 0.99
    assert irs(codes, factors, num_bins=40)["disentanglement_scores"][2] == pytest.approx(1.0)


def test_continuous_factors_need_the_discretiser():
    rng = np.random.RandomState(3)
    labels = rng.uniform(-1, 1, size=(1000, 2))
    out = irs(np.tanh(labels), labels)
    assert out["irs"] > 0.8
    with pytest.raises(ValueError, match="factors must be integer class indices"):
        irs(labels, labels, num_bins=None)


def test_constant_codes_are_dropped_as_in_reference():
    factors = _factors()
    rng = np.random.RandomState(4)
    codes = factors.astype(float) + 0.3 * rng.normal(size=factors.shape)
    with_dead = np.concatenate([codes[:, :1], np.full((2000, 1), 2.0), codes[:, 1:]], axis=1)
    base, out = irs(codes, factors), irs(with_dead, factors)
    assert out["irs"] == pytest.approx(base["irs"])
    assert out["num_active_dims"] == 3
    assert out["parents"][1] == -1 and out["disentanglement_scores"][1] == 0.0
    assert np.all(out["irs_matrix"][:, 1] == 0.0) and out["irs_matrix"].shape == (3, 4)
    dead = irs(np.zeros((2000, 2)), factors)
    assert dead["irs"] == 0.0 and dead["num_active_dims"] == 0
    assert np.array_equal(dead["disentanglement_scores"], [0.0, 0.0]) and np.array_equal(dead["parents"], [-1, -1])
    assert np.array_equal(dead["irs_matrix"], np.zeros((3, 2)))


def test_quantile_zero_and_a_single_bin_are_valid():
    rng = np.random.RandomState(6)
    factors = _factors(n=500)
    codes = factors + 0.5 * rng.normal(size=factors.shape)
    expected, _, _ = _reference_irs(codes, factors, diff_quantile=0.0)
    assert irs(codes, factors, diff_quantile=0.0)["irs"] == pytest.approx(expected, abs=1e-9)
    # one bin puts every point in one group: its max deviation is the normaliser itself, so every score is 0
    one_bin = irs(codes, factors, diff_quantile=1.0, num_bins=1)
    assert np.allclose(one_bin["irs_matrix"], 0.0, atol=1e-12) and one_bin["irs"] == pytest.approx(0.0, abs=1e-12)


def test_irs_errors():
    factors = _factors(n=100)
    with pytest.raises(ValueError, match=r"diff_quantile must be in \[0, 1\]"):
        irs(factors.astype(float), factors, diff_quantile=99)
    with pytest.raises(ValueError, match=r"diff_quantile must be in \[0, 1\], got 1.5"):
        irs(factors.astype(float), factors, diff_quantile=1.5)
    with pytest.raises(ValueError, match="num_bins must be a positive integer or None"):
        irs(factors.astype(float), factors, num_bins=0)
    with pytest.raises(ValueError, match="factors must have 50 rows"):
        irs(factors[:50].astype(float), factors)
