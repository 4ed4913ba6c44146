"""dynrep.metrics.sap: SAP score, discrete (LinearSVC accuracy) and continuous (squared correlation)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import svm

from dynrep.metrics.sap import sap

SIZES = (4, 3, 5)


def random_factors(rng: np.random.RandomState, n: int, sizes=SIZES) -> np.ndarray:
    return np.stack([rng.randint(s, size=n) for s in sizes], axis=1)


def reference_sap(mus, ys, mus_test, ys_test, continuous_factors: bool) -> np.ndarray:
    """disentanglement_lib sap_score._compute_score_matrix, written from the spec ([D, N] layout)."""
    mus, ys, mus_test, ys_test = mus.T, ys.T, mus_test.T, ys_test.T
    score = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            if continuous_factors:
                cov = np.cov(mus[i], ys[j], ddof=1)
                score[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            else:
                classifier = svm.LinearSVC(C=0.01, class_weight="balanced")
                classifier.fit(mus[i][:, None], ys[j])
                score[i, j] = np.mean(classifier.predict(mus_test[i][:, None]) == ys_test[j])
    return score


def sap_of(score: np.ndarray) -> float:
    ordered = np.sort(score, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def structured_codes(rng, factors):
    n = len(factors)
    return np.concatenate([factors + 0.8 * rng.randn(n, 3), rng.randn(n, 1), np.full((n, 1), 2.0)], axis=1)


def test_discrete_parity_with_reference():
    rng = np.random.RandomState(0)
    train, test = random_factors(rng, 1500), random_factors(rng, 700)
    codes, codes_test = structured_codes(rng, train), structured_codes(rng, test)
    out = sap(codes, train, codes_test, test)
    expected = reference_sap(codes, train, codes_test, test, continuous_factors=False)
    assert out["score_matrix"].shape == (5, 3)
    assert np.allclose(out["score_matrix"], expected, atol=1e-6)
    assert out["sap"] == pytest.approx(sap_of(expected), abs=1e-6) and isinstance(out["sap"], float)


def test_continuous_parity_with_reference_uses_train_split_only():
    rng = np.random.RandomState(1)
    train, test = rng.uniform(size=(1000, 3)), rng.uniform(size=(400, 3))
    codes, codes_test = structured_codes(rng, train), structured_codes(rng, test)
    out = sap(codes, train, codes_test, test, continuous_factors=True)
    expected = reference_sap(codes, train, codes_test, test, continuous_factors=True)
    assert np.allclose(out["score_matrix"], expected, atol=1e-9)
    assert out["score_matrix"][4].tolist() == [0.0, 0.0, 0.0]  # the constant code
    assert out["sap"] == pytest.approx(sap_of(expected), abs=1e-6)
    other_test = sap(codes, train, rng.randn(400, 5), test, continuous_factors=True)
    assert other_test["sap"] == out["sap"]


def test_continuous_perfect_random_and_mixed_codes():
    rng = np.random.RandomState(2)
    train, test = rng.uniform(size=(2000, 3)), rng.uniform(size=(500, 3))
    perfect = sap(np.exp(train), train, np.exp(test), test, continuous_factors=True)["sap"]
    random = sap(rng.randn(2000, 3), train, rng.randn(500, 3), test, continuous_factors=True)["sap"]
    mixed_codes = train.copy()
    mixed_codes[:, 0] = train[:, 0] + train[:, 1]
    mixed = sap(mixed_codes, train, test, test, continuous_factors=True)["sap"]
    assert perfect > 0.95 and random < 0.02 and mixed < perfect - 0.2


def test_discrete_perfect_random_and_mixed_codes():
    rng = np.random.RandomState(3)
    train, test = random_factors(rng, 2000, (2, 2, 2)), random_factors(rng, 800, (2, 2, 2))
    perfect = sap(train.astype(float), train, test.astype(float), test)
    assert np.diag(perfect["score_matrix"]).tolist() == [1.0, 1.0, 1.0]
    assert perfect["sap"] > 0.4  # a binary factor's other codes are at chance (~0.5)
    random = sap(rng.randn(2000, 3), train, rng.randn(800, 3), test)
    assert random["sap"] < 0.05
    mix = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # code 0 = factor 0 + factor 1
    mixed = sap(train @ mix.T, train, test @ mix.T, test)
    assert mixed["sap"] < perfect["sap"] - 0.1


def test_single_class_train_factor_raises():
    rng = np.random.RandomState(4)
    train, test = random_factors(rng, 100), random_factors(rng, 50)
    train[:, 2] = 1
    for continuous in (False, True):
        with pytest.raises(ValueError, match="train_factors: column 2 is constant"):
            sap(rng.randn(100, 3), train, rng.randn(50, 3), test, continuous_factors=continuous)


def test_input_errors():
    rng = np.random.RandomState(5)
    train, test = random_factors(rng, 100), random_factors(rng, 50)
    codes, codes_test = rng.randn(100, 3), rng.randn(50, 3)
    with pytest.raises(ValueError, match="at least 2 codes"):
        sap(codes[:, :1], train, codes_test[:, :1], test)
    with pytest.raises(ValueError, match=r"test_codes must have as many codes as train_codes \(3\), got 2"):
        sap(codes, train, codes_test[:, :2], test)
    with pytest.raises(ValueError, match=r"test_factors must have as many factors as train_factors \(3\), got 2"):
        sap(codes, train, codes_test, test[:, :2])
    with pytest.raises(ValueError, match=r"test_factors must have 50 rows"):
        sap(codes, train, codes_test, test[:40])
    with pytest.raises(ValueError, match="train_factors must be integer class indices"):
        sap(codes, train + 0.5, codes_test, test)
    with pytest.raises(ValueError, match="train_codes contains NaN"):
        sap(np.full((100, 3), np.nan), train, codes_test, test)
