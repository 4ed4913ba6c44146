"""dynrep.metrics.modularity: modularity (binned MI) and explicitness (logistic-regression ROC-AUC)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer

from dynrep.metrics.modularity import modularity_explicitness

SIZES = (4, 3, 5)


def random_factors(rng: np.random.RandomState, n: int, sizes=SIZES) -> np.ndarray:
    return np.stack([rng.randint(s, size=n) for s in sizes], axis=1)


def reference(mus_train, ys_train, mus_test, ys_test) -> dict:
    """disentanglement_lib modularity_explicitness.py, written from the spec ([D, N] layout)."""
    mus_train, ys_train, mus_test, ys_test = mus_train.T, ys_train.T, mus_test.T, ys_test.T
    binned = np.zeros_like(mus_train)
    for i in range(len(mus_train)):
        binned[i] = np.digitize(mus_train[i], np.histogram(mus_train[i], 20)[1][:-1])
    m = np.array([[mutual_info_score(y, b) for y in ys_train] for b in binned])
    squared = np.square(m)
    peak = np.max(squared, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_code = 1.0 - (np.sum(squared, axis=1) - peak) / (peak * (squared.shape[1] - 1.0))
    per_code[peak == 0.0] = 0.0
    mean, std = np.mean(mus_train, axis=1), np.std(mus_train, axis=1)
    x_train = ((mus_train - mean[:, None]) / std[:, None]).T
    x_test = ((mus_test - mean[:, None]) / std[:, None]).T
    auc = []
    for y_train, y_test in zip(ys_train, ys_test):
        classifier = LogisticRegression().fit(x_train, y_train)
        mlb = MultiLabelBinarizer()
        auc.append([roc_auc_score(mlb.fit_transform(np.expand_dims(y_train, 1)), classifier.predict_proba(x_train)),
                    roc_auc_score(mlb.fit_transform(np.expand_dims(y_test, 1)), classifier.predict_proba(x_test))])
    auc = np.array(auc)
    return {"modularity": np.mean(per_code), "mutual_info": m, "explicitness_train": np.mean(auc[:, 0]),
            "explicitness_test": np.mean(auc[:, 1])}


def noisy_codes(rng, factors):
    n = len(factors)
    codes = np.concatenate([factors + 0.9 * rng.randn(n, 3), rng.randn(n, 2)], axis=1)
    codes[:, 3] += 0.4 * factors[:, 0]
    return codes


def test_parity_with_reference():
    rng = np.random.RandomState(0)
    train, test = random_factors(rng, 1500, (4, 3, 2)), random_factors(rng, 600, (4, 3, 2))
    codes, codes_test = noisy_codes(rng, train), noisy_codes(rng, test)
    out = modularity_explicitness(codes, train, codes_test, test)
    expected = reference(codes, train, codes_test, test)
    for key in ("modularity", "explicitness_train", "explicitness_test"):
        assert isinstance(out[key], float) and out[key] == pytest.approx(expected[key], abs=1e-6), key
    assert np.allclose(out["mutual_info"], expected["mutual_info"], atol=1e-12)
    assert out["modularity_per_code"].shape == (5,) and out["explicitness_per_factor_test"].shape == (3,)


def test_hand_computed_modularity_with_a_code_of_zero_information():
    f0, f1 = np.tile([0, 0, 1, 1], 25), np.tile([0, 1, 0, 1], 25)
    factors = np.stack([f0, f1], axis=1)
    codes = np.stack([f0, f1, f0 ^ f1], axis=1).astype(float)  # XOR: independent of each factor alone
    out = modularity_explicitness(codes, factors, codes, factors)
    assert out["modularity_per_code"].tolist() == [1.0, 1.0, 0.0]
    assert out["modularity"] == pytest.approx(2 / 3)
    assert np.allclose(out["mutual_info"][:2], [[np.log(2), 0.0], [0.0, np.log(2)]])
    assert out["explicitness_test"] == pytest.approx(1.0)


def test_perfect_random_and_mixed_codes():
    rng = np.random.RandomState(1)
    train, test = random_factors(rng, 2000), random_factors(rng, 800)
    perfect = modularity_explicitness(2.0 * train + 1.0, train, 2.0 * test + 1.0, test)
    assert perfect["modularity"] > 0.98 and perfect["explicitness_test"] > 0.99
    random = modularity_explicitness(rng.randn(2000, 3), train, rng.randn(800, 3), test)
    assert random["explicitness_test"] == pytest.approx(0.5, abs=0.05)
    assert random["modularity"] < perfect["modularity"] - 0.2
    mixed_train, mixed_test = train.astype(float), test.astype(float)
    mixed_train[:, 0] += train[:, 1]
    mixed_test[:, 0] += test[:, 1]
    mixed = modularity_explicitness(mixed_train, train, mixed_test, test)
    assert mixed["modularity_per_code"][0] < perfect["modularity_per_code"][0] - 0.1
    assert mixed["modularity_per_code"][1:] == pytest.approx(perfect["modularity_per_code"][1:])


def test_test_factor_with_other_classes_raises():
    rng = np.random.RandomState(2)
    train, test = random_factors(rng, 200), random_factors(rng, 100)
    test[test[:, 1] == 2, 1] = 0  # test column 1 lacks class 2
    with pytest.raises(ValueError, match=r"test_factors: column 1 must take exactly the values .* \[0, 1, 2\]; "
                                         r"these differ: \[2\]"):
        modularity_explicitness(rng.randn(200, 3), train, rng.randn(100, 3), test)


def test_input_errors():
    rng = np.random.RandomState(3)
    train, test = random_factors(rng, 100), random_factors(rng, 50)
    codes, codes_test = rng.randn(100, 3), rng.randn(50, 3)
    with pytest.raises(ValueError, match="at least 2 factors"):
        modularity_explicitness(codes, train[:, :1], codes_test, test[:, :1])
    constant = train.copy()
    constant[:, 0] = 3
    with pytest.raises(ValueError, match="train_factors: column 0 is constant"):
        modularity_explicitness(codes, constant, codes_test, test)
    codes[:, 2] = 1.0
    with pytest.raises(ValueError, match="train_codes: column 2 is constant"):
        modularity_explicitness(codes, train, codes_test, test)
    with pytest.raises(ValueError, match=r"test_codes must have as many codes as train_codes \(3\), got 4"):
        modularity_explicitness(codes, train, rng.randn(50, 4), test)
