"""dynrep.metrics.downstream: parity with disentanglement_lib's downstream task loop, sanity cases, errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold

from dynrep.metrics.downstream import downstream

SIZES = (3, 2)


def factors(n: int, rng: np.random.RandomState) -> np.ndarray:
    return np.stack([rng.randint(s, size=n) for s in SIZES], axis=1)


def noisy_codes(y: np.ndarray, rng: np.random.RandomState, noise: float = 0.4) -> np.ndarray:
    return np.concatenate([y + noise * rng.randn(*y.shape), rng.randn(len(y), 1)], axis=1)


def reference_downstream(x_train, y_train, x_test, y_test, num_train, predictor_fn):
    """disentanglement_lib's compute_downstream_task / _compute_loss for one predictor, the training set of size n
    being the first n rows (codes [N, D], factors laid out [num_factors, N] as in the reference)."""
    scores = {}
    for n in num_train:
        train_acc, test_acc = [], []
        ys_train, ys_test = y_train[:n].T, y_test.T
        for i in range(ys_train.shape[0]):
            model = predictor_fn()
            model.fit(x_train[:n], ys_train[i, :])
            train_acc.append(np.mean(model.predict(x_train[:n]) == ys_train[i, :]))
            test_acc.append(np.mean(model.predict(x_test) == ys_test[i, :]))
        scores[f"{n}:mean_train_accuracy"] = np.mean(train_acc)
        scores[f"{n}:mean_test_accuracy"] = np.mean(test_acc)
        scores[f"{n}:min_train_accuracy"] = np.min(train_acc)
        scores[f"{n}:min_test_accuracy"] = np.min(test_acc)
        for i in range(len(train_acc)):
            scores[f"{n}:train_accuracy_factor_{i}"] = train_acc[i]
            scores[f"{n}:test_accuracy_factor_{i}"] = test_acc[i]
    return scores


@pytest.fixture(scope="module")
def noisy_data():
    rng = np.random.RandomState(0)
    y_train, y_test = factors(150, rng), factors(100, rng)
    return noisy_codes(y_train, rng), y_train, noisy_codes(y_test, rng), y_test


# -- parity ------------------------------------------------------------------------------------------
def test_matches_reference_loop(noisy_data):
    num_labels = (30, 150)
    ours = downstream(*noisy_data, num_labels=num_labels, seed=3, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference's LogisticRegressionCV defaults warn in sklearn 1.9
        predictors = {"logistic_regression": lambda: LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5)),
                      "boosted_trees": lambda: GradientBoostingClassifier(random_state=3)}
        expected = {f"{name}/{key.replace(':', '/')}": value for name, fn in predictors.items()
                    for key, value in reference_downstream(*noisy_data, num_labels, fn).items()}
    assert ours.keys() == expected.keys()
    for key, value in expected.items():
        assert isinstance(ours[key], float)
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert len(ours) == 2 * 2 * (4 + 2 * len(SIZES))
    # non-degenerate: neither perfect nor chance, and 150 labels beat 30 for boosted trees
    assert 0.5 < ours["logistic_regression/150/mean_test_accuracy"] < 0.99
    assert ours["boosted_trees/150/mean_test_accuracy"] > ours["boosted_trees/30/mean_test_accuracy"]


# -- sanity ----------------------------------------------------------------------------------------------
def test_perfect_codes_are_predicted_perfectly():
    rng = np.random.RandomState(1)
    y_train, y_test = factors(100, rng), factors(50, rng)
    out = downstream(y_train * 3.0, y_train, y_test * 3.0, y_test, num_labels=(100,), n_jobs=1)
    assert out["boosted_trees/100/min_test_accuracy"] == 1.0
    assert out["logistic_regression/100/min_test_accuracy"] >= 0.95


def test_random_codes_are_at_chance():
    rng = np.random.RandomState(2)
    y_train, y_test = factors(100, rng), factors(400, rng)
    out = downstream(rng.randn(100, 3), y_train, rng.randn(400, 3), y_test, num_labels=100,
                     estimators=("boosted_trees",), n_jobs=1)
    chance = np.mean([1 / s for s in SIZES])
    assert abs(out["boosted_trees/100/mean_test_accuracy"] - chance) < 0.1
    assert out["boosted_trees/100/mean_train_accuracy"] > 0.9  # fits the noise it was given
    assert not any(key.startswith("logistic_regression") for key in out)


# -- errors ------------------------------------------------------------------------------------------------
def test_errors(noisy_data):
    x_train, y_train, x_test, y_test = noisy_data
    with pytest.raises(ValueError, match=r"num_labels must be .* ints in \[2, 150\] .*got \(10, 1000\)"):
        downstream(x_train, y_train, x_test, y_test, num_labels=(10, 1000))
    with pytest.raises(ValueError, match=r"num_labels must be a non-empty"):
        downstream(x_train, y_train, x_test, y_test, num_labels=())
    with pytest.raises(ValueError, match=r"num_labels must be .*got \(12.5,\)"):
        downstream(x_train, y_train, x_test, y_test, num_labels=12.5)
    with pytest.raises(ValueError, match=r"estimators must be a non-empty sequence of \('logistic_regression', "
                                         r"'boosted_trees'\), got \('svm',\)"):
        downstream(x_train, y_train, x_test, y_test, num_labels=(10,), estimators=("svm",))
    sorted_factor = y_train.copy()
    sorted_factor[:, 1] = np.sort(sorted_factor[:, 1])  # the first 10 rows all have class 0
    with pytest.raises(ValueError, match=r"train_factors\[:10\]: column 1 is constant"):
        downstream(x_train, sorted_factor, x_test, y_test, num_labels=(10, 100))
    with pytest.raises(ValueError, match=r"test_codes must have as many codes as train_codes \(3\)"):
        downstream(x_train, y_train, x_test[:, :2], y_test, num_labels=(10,))
