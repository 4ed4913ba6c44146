"""dynrep.metrics.mcc: strong/weak MCC and the linear score against Lachapelle et al.'s formulas."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from dynrep.metrics.mcc import abs_correlation, linear_score, mcc


def _sources(n=800, k=4, seed=0):
    return np.random.RandomState(seed).uniform(-2, 2, size=(n, k))


def _reference_mcc(x, y, method):
    """Lachapelle's mean_corr_coef_np (square case), written from the spec."""
    d = x.shape[1]
    cc = np.corrcoef(x, y, rowvar=False)[:d, d:] if method == "pearson" else spearmanr(x, y)[0][:d, d:]
    cc = np.abs(cc)
    rows, cols = linear_sum_assignment(-cc)
    return cc[rows, cols].mean(), cols


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_mcc_parity_with_reference(method):
    rng = np.random.RandomState(1)
    true = _sources(k=4)
    pred = np.tanh(true @ rng.normal(size=(4, 4))) + 0.3 * rng.normal(size=(800, 4))
    expected, cols = _reference_mcc(true, pred, method)
    out = mcc(true, pred, method=method)
    assert out["mcc"] == pytest.approx(expected, abs=1e-6)
    assert np.array_equal(out["permutation"], cols)
    assert out["correlation"].shape == (4, 4)
    assert out["matched_correlations"].mean() == pytest.approx(expected, abs=1e-6)


def test_permuted_rescaled_sign_flipped_copy_scores_one():
    true = _sources(k=5)
    order = np.array([3, 0, 4, 1, 2])  # code j holds true factor order[j]
    pred = true[:, order] * np.array([2.0, -0.5, 3.0, -7.0, 0.1]) + np.array([1, 2, 3, 4, 5])
    out = mcc(true, pred)
    assert out["mcc"] == pytest.approx(1.0, abs=1e-12)
    assert np.array_equal(order[out["permutation"]], np.arange(5))  # each factor matched to the code holding it
    assert np.allclose(out["matched_correlations"], 1.0)


def test_spearman_is_invariant_to_monotone_transforms_pearson_is_not():
    true = _sources(k=3)
    pred = np.stack([np.exp(3 * true[:, 2]), true[:, 0] ** 3, -np.arctan(5 * true[:, 1])], axis=1)
    assert mcc(true, pred, method="spearman")["mcc"] == pytest.approx(1.0, abs=1e-12)
    assert mcc(true, pred, method="pearson")["mcc"] < 0.95


def test_random_codes_score_low():
    rng = np.random.RandomState(3)
    out = mcc(_sources(n=3000, k=5), rng.normal(size=(3000, 5)))
    assert out["mcc"] < 0.06


def test_mixing_two_factors_lowers_strong_mcc_but_not_weak_mcc():
    true = _sources(n=2000, k=3)
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    pred = true.copy()
    pred[:, 0], pred[:, 1] = c * true[:, 0] - s * true[:, 1], s * true[:, 0] + c * true[:, 1]
    strong = mcc(true, pred)["mcc"]
    assert 0.75 < strong < 0.85  # (1 + 2 * 0.707) / 3 = 0.80 for independent uniform sources
    weak = mcc(true, pred, alignment="affine")
    assert weak["mcc"] == pytest.approx(1.0, abs=1e-9)
    assert np.array_equal(weak["permutation"], np.arange(3))
    assert weak["correlation"].shape == (3, 3)


def test_affine_mcc_parity_with_mean_sqrt_r2():
    """Pearson weak MCC = mean over factors of sqrt(R²) of the affine fit (Lachapelle's later linear score)."""
    rng = np.random.RandomState(4)
    true = _sources(k=3)
    pred = np.sin(true @ rng.normal(size=(3, 5))) + 0.2 * rng.normal(size=(800, 5))
    fitted = LinearRegression().fit(pred, true).predict(pred)
    expected = np.mean(np.sqrt(r2_score(true, fitted, multioutput="raw_values")))
    assert mcc(true, pred, alignment="affine")["mcc"] == pytest.approx(expected, abs=1e-6)


def test_more_codes_than_factors_matches_every_factor():
    rng = np.random.RandomState(5)
    true = _sources(n=2000, k=3)
    pred = np.concatenate([rng.normal(size=(2000, 2)), true[:, [2, 0, 1]]], axis=1)
    out = mcc(true, pred)
    assert out["mcc"] == pytest.approx(1.0, abs=1e-12)
    assert np.array_equal(out["permutation"], [3, 4, 2])
    assert out["correlation"].shape == (3, 5)


def test_fewer_codes_than_factors_averages_over_matched_factors():
    true = _sources(n=1000, k=4)
    out = mcc(true, true[:, [1, 3]] * 2.0)
    assert out["mcc"] == pytest.approx(1.0, abs=1e-12)
    assert np.array_equal(out["permutation"], [-1, 0, -1, 1])
    assert np.array_equal(out["matched_correlations"] == 0.0, [True, False, True, False])


def test_linear_score_parity_and_sanity():
    rng = np.random.RandomState(6)
    true = _sources(k=3)
    pred = np.tanh(true @ rng.normal(size=(3, 4)))
    expected = LinearRegression().fit(pred, true).score(pred, true)
    assert linear_score(true, pred)["r2"] == pytest.approx(expected, abs=1e-6)
    assert linear_score(true, true @ rng.normal(size=(3, 3)) + 4.0)["r2"] == pytest.approx(1.0, abs=1e-9)
    assert linear_score(true, rng.normal(size=(800, 3)))["r2"] < 0.05


def test_abs_correlation_is_pearson_by_default():
    rng = np.random.RandomState(7)
    a, b = _sources(n=200, k=2), rng.normal(size=(200, 3))
    b[:, 1] += 0.5 * a[:, 0] ** 3
    expected = np.abs(np.corrcoef(a, b, rowvar=False)[:2, 2:])
    assert np.allclose(abs_correlation(a, b), expected, atol=1e-12)
    assert not np.allclose(abs_correlation(a, b, method="spearman"), expected, atol=1e-3)


def test_constant_columns_raise_naming_them():
    true = _sources(n=50, k=3)
    bad = true.copy()
    bad[:, 2] = 1.5
    with pytest.raises(ValueError, match="true: column 2 is constant"):
        mcc(bad, true)
    with pytest.raises(ValueError, match="pred: column 2 is constant"):
        mcc(true, bad, method="spearman")
    with pytest.raises(ValueError, match="true: column 2 is constant"):
        linear_score(bad, true)


def test_input_errors():
    true = _sources(n=50, k=2)
    with pytest.raises(ValueError, match=r"same number of rows \(samples\), got 50 and 40"):
        mcc(true, true[:40])
    with pytest.raises(ValueError, match="method must be one of"):
        mcc(true, true, method="kendall")
    with pytest.raises(ValueError, match="alignment must be one of"):
        mcc(true, true, alignment="cca")
    with pytest.raises(ValueError, match=r"pred must have shape \[num_samples, num_codes\]"):
        mcc(true, true[:, 0])
    nan = true.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="pred contains NaN"):
        mcc(true, nan)
    with pytest.raises(ValueError, match="^true contains NaN"):
        mcc(nan, true)
