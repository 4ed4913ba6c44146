"""dynrep.metrics.dci: parity with disentanglement_lib's serial GBT loop, the D/C formulas, sanity cases, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from dynrep.metrics.dci import completeness, dci, disentanglement, residual_importances

SIZES = (3, 4, 2)


def factors(n: int, rng: np.random.RandomState, sizes=SIZES) -> np.ndarray:
    return np.stack([rng.randint(s, size=n) for s in sizes], axis=1)


def noisy_codes(y: np.ndarray, rng: np.random.RandomState, noise: float = 0.3) -> np.ndarray:
    """One code per factor (scaled class + noise) and one pure-noise code."""
    scaled = y / (np.array(SIZES) - 1) + noise * rng.randn(*y.shape)
    return np.concatenate([scaled, rng.randn(len(y), 1)], axis=1)


def reference_dci(mus_train, ys_train, mus_test, ys_test, seed=0):
    """disentanglement_lib's compute_dci on codes/factors laid out [num_codes, N] / [num_factors, N], with the
    classifier's random_state fixed (the reference leaves it unset)."""
    num_codes, num_factors = mus_train.shape[0], ys_train.shape[0]
    importance = np.zeros([num_codes, num_factors])
    train_acc, test_acc = [], []
    for i in range(num_factors):
        model = GradientBoostingClassifier(random_state=seed)
        model.fit(mus_train.T, ys_train[i, :])
        importance[:, i] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(mus_train.T) == ys_train[i, :]))
        test_acc.append(np.mean(model.predict(mus_test.T) == ys_test[i, :]))
    per_code = 1. - scipy.stats.entropy(importance.T + 1e-11, base=num_factors)
    per_factor = 1. - scipy.stats.entropy(importance + 1e-11, base=num_codes)
    weights = importance if importance.sum() != 0 else np.ones_like(importance)
    return {"disentanglement": np.sum(per_code * weights.sum(axis=1) / weights.sum()),
            "completeness": np.sum(per_factor * weights.sum(axis=0) / weights.sum()),
            "informativeness_train": np.mean(train_acc), "informativeness_test": np.mean(test_acc),
            "importance": importance}


@pytest.fixture(scope="module")
def noisy_data():
    rng = np.random.RandomState(3)
    y_train, y_test = factors(300, rng), factors(150, rng)
    return noisy_codes(y_train, rng), y_train, noisy_codes(y_test, rng), y_test


# -- parity ------------------------------------------------------------------------------------------
def test_exact_parallel_equals_serial_reference(noisy_data):
    x_train, y_train, x_test, y_test = noisy_data
    ours = dci(x_train, y_train, x_test, y_test, mode="exact", seed=5, n_jobs=2)
    ref = reference_dci(x_train.T, y_train.T, x_test.T, y_test.T, seed=5)
    assert np.array_equal(ours["importance"], ref["importance"])
    for key in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
        assert isinstance(ours[key], float)
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert ours["mode"] == "exact" and ours["importance"].shape == (4, 3)
    assert 0.1 < ours["disentanglement"] < 0.9  # a non-degenerate case: the formula is exercised


def test_fast_mode_does_not_depend_on_n_jobs(noisy_data):
    serial = dci(*noisy_data, mode="fast", n_jobs=1)
    parallel = dci(*noisy_data, mode="fast", n_jobs=2)
    assert np.array_equal(serial["importance"], parallel["importance"])
    assert serial["disentanglement"] == parallel["disentanglement"]
    assert serial["informativeness_test"] == parallel["informativeness_test"]
    assert serial["mode"] == "fast"


def node_residual_sums(nodes, codes: np.ndarray, residual: np.ndarray, j: int = 0, rows=None) -> list:
    """(feature, n_left n_right / n (mean_left - mean_right)**2) of every split under node ``j``, by recursion."""
    rows = np.arange(len(codes)) if rows is None else rows
    if nodes[j]["is_leaf"]:
        return []
    f = int(nodes[j]["feature_idx"])
    go_left = codes[rows, f] <= nodes[j]["num_threshold"]
    left, right = rows[go_left], rows[~go_left]
    drop = len(left) * len(right) / len(rows) * (residual[left].mean() - residual[right].mean()) ** 2
    return ([(f, drop)] + node_residual_sums(nodes, codes, residual, int(nodes[j]["left"]), left)
            + node_residual_sums(nodes, codes, residual, int(nodes[j]["right"]), right))


@pytest.mark.parametrize("factor", [0, 2])  # three classes (one tree per class) and two classes (one tree)
def test_residual_importances_are_the_references_impurity_drops(noisy_data, factor):
    from scipy.special import expit, softmax
    x_train, y_train = noisy_data[0], noisy_data[1][:, factor]
    with threadpool_limits(1, user_api="openmp"):  # OpenMP threads crawl on a busy shared machine
        model = HistGradientBoostingClassifier(max_iter=6, max_depth=3, min_samples_leaf=1, random_state=0).fit(
            x_train, y_train)
    importance = np.zeros(x_train.shape[1])
    raw = np.tile(model._baseline_prediction, (len(x_train), 1))
    for trees, after in zip(model._predictors, model.staged_decision_function(x_train)):
        # the residual each tree was fitted to: onehot(y) - softmax(raw) (y - expit(raw) for two classes)
        if len(trees) == 1:
            residual = (y_train == model.classes_[1])[:, None] - expit(raw)
        else:
            residual = np.eye(len(trees))[y_train] - softmax(raw, axis=1)
        for t, tree in enumerate(trees):
            for f, drop in node_residual_sums(tree.nodes, x_train, residual[:, t]):
                importance[f] += drop
        raw = after.reshape(len(x_train), -1)
    out = residual_importances(model, x_train, y_train)
    assert out == pytest.approx(importance / importance.sum(), rel=1e-9, abs=1e-12)
    assert out.sum() == pytest.approx(1.0) and np.argmax(out) == factor


def test_residual_importances_of_a_regressor_and_of_stumps():
    from sklearn.ensemble import HistGradientBoostingRegressor
    rng = np.random.RandomState(0)
    x = rng.randn(200, 3)
    # small values: the summed drops are far below 1 and must still be normalised; two features share them
    y = 1e-3 * (np.sin(2 * x[:, 1]) + 0.5 * x[:, 0] + 0.1 * rng.randn(200))
    with threadpool_limits(1, user_api="openmp"):
        model = HistGradientBoostingRegressor(max_iter=6, max_depth=3, min_samples_leaf=1).fit(x, y)
        constant = HistGradientBoostingRegressor(max_iter=3).fit(np.ones((50, 2)), rng.randn(50))
    importance, raw = np.zeros(3), np.full(200, model._baseline_prediction.item())
    for (tree,), after in zip(model._predictors, model.staged_predict(x)):
        for f, drop in node_residual_sums(tree.nodes, x, y - raw):
            importance[f] += drop
        raw = after
    out = residual_importances(model, x, y)
    assert out == pytest.approx(importance / importance.sum(), rel=1e-9)
    assert out.sum() == pytest.approx(1.0) and 0.05 < out[0] < out[1]
    assert not residual_importances(constant, np.ones((50, 2)), rng.randn(50)).any()  # no tree splits


def test_residual_importances_need_a_fitted_model(noisy_data):
    x_train, y_train = noisy_data[0], noisy_data[1][:, 0]
    message = r"no fitted _predictors / _baseline_prediction; dci\(mode='fast'\) needs them \(use mode='exact'\)"
    with pytest.raises(RuntimeError, match=message):
        residual_importances(HistGradientBoostingClassifier(), x_train, y_train)
    with threadpool_limits(1, user_api="openmp"):
        model = HistGradientBoostingClassifier(max_iter=2).fit(x_train, y_train)
    del model._baseline_prediction
    with pytest.raises(RuntimeError, match=message):
        residual_importances(model, x_train, y_train)


def test_fast_mode_within_its_stated_bound_of_the_reference():
    # near-disentangled codes: summed split gains put D and C 0.05 below the reference here (0.0520, 0.0505)
    rng = np.random.RandomState(0)
    y_train, y_test = factors(800, rng), factors(400, rng)
    x_train, x_test = noisy_codes(y_train, rng, noise=0.1), noisy_codes(y_test, rng, noise=0.1)
    fast = dci(x_train, y_train, x_test, y_test, mode="fast", n_jobs=1)
    ref = reference_dci(x_train.T, y_train.T, x_test.T, y_test.T)
    for key in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
        assert abs(fast[key] - ref[key]) <= 0.02, key


def test_fast_mode_defaults_are_the_references_tree_budget():
    """Fast mode = HistGradientBoostingClassifier with GradientBoostingClassifier()'s budget (100 iterations,
    learning rate 0.1, depth 3, one sample per leaf), no early stopping (sklearn's "auto" would hold out 10 % of
    the data from 10,001 points on), importances from residual_importances: pinned by the outputs."""
    budget = GradientBoostingClassifier().get_params()
    rng = np.random.RandomState(0)
    num = 10_001
    y_train, y_test = factors(num, rng, sizes=(2, 3)), factors(200, rng, sizes=(2, 3))
    x_train = np.c_[y_train + 0.6 * rng.randn(num, 2), rng.randn(num)]
    x_test = np.c_[y_test + 0.6 * rng.randn(200, 2), rng.randn(200)]
    out = dci(x_train, y_train, x_test, y_test, mode="fast", seed=3, n_jobs=1)
    importance, train_acc, test_acc = [], [], []
    with threadpool_limits(1, user_api="openmp"):
        for k in range(2):
            model = HistGradientBoostingClassifier(
                max_iter=budget["n_estimators"], learning_rate=budget["learning_rate"], max_depth=budget["max_depth"],
                min_samples_leaf=budget["min_samples_leaf"], max_leaf_nodes=None, early_stopping=False,
                random_state=3).fit(x_train, y_train[:, k])
            importance.append(residual_importances(model, x_train, y_train[:, k]))
            train_acc.append(np.mean(model.predict(x_train) == y_train[:, k]))
            test_acc.append(np.mean(model.predict(x_test) == y_test[:, k]))
    assert np.array_equal(out["importance"], np.stack(importance, axis=1))
    assert out["informativeness_train"] == pytest.approx(np.mean(train_acc), abs=1e-12)
    assert out["informativeness_test"] == pytest.approx(np.mean(test_acc), abs=1e-12)


# -- the D and C formulas ------------------------------------------------------------------------------
def test_disentanglement_and_completeness_hand_computed():
    importance = np.array([[0.5, 0.5], [0.0, 1.0]])  # code 0 split over both factors, code 1 only factor 1
    assert disentanglement(importance) == pytest.approx(0.5, abs=1e-9)
    h = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))  # factor 1's column (0.5, 1) normalised
    assert completeness(importance) == pytest.approx(0.25 * 1 + 0.75 * (1 - h), abs=1e-9)
    assert disentanglement(np.eye(3)) == pytest.approx(1.0, abs=1e-9)
    assert completeness(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)


def test_zero_importance_gives_zero_not_nan():
    assert disentanglement(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-9)
    assert completeness(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-9)


# -- sanity ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_perfect_codes_score_one(mode):
    rng = np.random.RandomState(0)
    y_train, y_test = factors(300, rng), factors(100, rng)
    out = dci(np.exp(y_train), y_train, np.exp(y_test), y_test, mode=mode, n_jobs=1)
    assert out["disentanglement"] == pytest.approx(1.0, abs=1e-6)
    assert out["completeness"] == pytest.approx(1.0, abs=1e-6)
    assert out["informativeness_train"] == out["informativeness_test"] == 1.0


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_code_holding_two_factors_lowers_disentanglement(mode):
    rng = np.random.RandomState(0)
    y_train, y_test = factors(300, rng), factors(100, rng)

    def mixed(y):  # code 0 holds factors 0 and 2 jointly, code 1 factor 1, code 2 nothing
        return np.stack([2 * y[:, 0] + y[:, 2], y[:, 1], np.zeros(len(y))], axis=1).astype(float)
    out = dci(mixed(y_train), y_train, mixed(y_test), y_test, mode=mode, n_jobs=1)
    # rows of R: code 0 = (1, 0, 1), code 1 = (0, 1, 0): D = (2 (1 - log 2 / log 3) + 1) / 3, C = 1
    assert out["disentanglement"] == pytest.approx((2 * (1 - math.log(2) / math.log(3)) + 1) / 3, abs=1e-6)
    assert out["completeness"] == pytest.approx(1.0, abs=1e-6)
    assert out["informativeness_test"] == 1.0


def test_random_codes_score_near_zero():
    rng = np.random.RandomState(1)
    y_train, y_test = factors(300, rng), factors(150, rng)
    out = dci(rng.randn(300, 3), y_train, rng.randn(150, 3), y_test, n_jobs=1)
    assert out["disentanglement"] < 0.1 and out["completeness"] < 0.1
    chance = np.mean([1 / s for s in SIZES])
    assert abs(out["informativeness_test"] - chance) < 0.1


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_constant_codes_give_zero_importance_and_zero_scores(mode):
    rng = np.random.RandomState(0)
    y_train, y_test = factors(200, rng), factors(50, rng)
    out = dci(np.ones((200, 2)), y_train, np.ones((50, 2)), y_test, mode=mode, n_jobs=1)
    assert not out["importance"].any()  # no tree can split
    assert out["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    assert out["completeness"] == pytest.approx(0.0, abs=1e-9)
    majority = np.mean([np.mean(y_train[:, k] == np.bincount(y_train[:, k]).argmax()) for k in range(3)])
    assert out["informativeness_train"] == pytest.approx(majority)


# -- errors ------------------------------------------------------------------------------------------------
def test_errors():
    rng = np.random.RandomState(0)
    y = factors(40, rng)
    x = rng.randn(40, 3)
    one_class = y.copy()
    one_class[:, 1] = 2
    with pytest.raises(ValueError, match=r"train_factors: column 1 is constant"):
        dci(x, one_class, x, y)
    with pytest.raises(ValueError, match=r"mode must be one of \('exact', 'fast'\), got 'slow'"):
        dci(x, y, x, y, mode="slow")
    with pytest.raises(ValueError, match=r"n_jobs must be None \(all cores\) or a positive int, got 0"):
        dci(x, y, x, y, n_jobs=0)
    with pytest.raises(ValueError, match=r"test_codes must have as many codes as train_codes \(3\), got 2"):
        dci(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match=r"test_factors must have as many factors as train_factors \(3\), got 1"):
        dci(x, y, x, y[:, :1])
    with pytest.raises(ValueError, match=r"at least 2 codes and 2 factors.*got 3 codes and 1 factors"):
        dci(x, y[:, :1], x, y[:, :1])
    with pytest.raises(ValueError, match=r"train_factors must be integer class indices"):
        dci(x, y + 0.5, x, y)
    with pytest.raises(ValueError, match=r"train_factors must have 40 rows"):
        dci(x, y[:30], x, y)


def test_continuous_factors_use_regressors_and_r2():
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import r2_score
    rng = np.random.RandomState(0)
    y = rng.uniform(-1, 1, size=(400, 2))
    y_test = rng.uniform(-1, 1, size=(200, 2))
    codes = np.c_[y[:, 1] + 0.05 * rng.randn(400), np.tanh(2 * y[:, 0]), rng.randn(400)]
    codes_test = np.c_[y_test[:, 1] + 0.05 * rng.randn(200), np.tanh(2 * y_test[:, 0]), rng.randn(200)]
    out = dci(codes, y, codes_test, y_test, continuous_factors=True, n_jobs=1)
    importance, train_r2, test_r2 = [], [], []
    for k in range(2):  # the reference computation, written out: one default regressor per factor
        model = GradientBoostingRegressor(random_state=0).fit(codes, y[:, k])
        importance.append(np.abs(model.feature_importances_))
        train_r2.append(r2_score(y[:, k], model.predict(codes)))
        test_r2.append(r2_score(y_test[:, k], model.predict(codes_test)))
    importance = np.stack(importance, axis=1)
    assert np.allclose(out["importance"], importance, atol=1e-12)
    assert out["informativeness_train"] == pytest.approx(np.mean(train_r2), abs=1e-9)
    assert out["informativeness_test"] == pytest.approx(np.mean(test_r2), abs=1e-9)
    assert out["disentanglement"] == pytest.approx(disentanglement(importance), abs=1e-9)
    assert out["disentanglement"] > 0.8 and out["informativeness_test"] > 0.9
    fast = dci(codes, y, codes_test, y_test, continuous_factors=True, mode="fast", n_jobs=1)
    assert abs(fast["disentanglement"] - out["disentanglement"]) < 0.1
    with pytest.raises(ValueError, match="integer class indices|discrete"):
        dci(codes, y, codes_test, y_test)  # real-valued factors need continuous_factors=True
    with pytest.raises(ValueError, match="continuous_factors must be True or False"):
        dci(codes, y, codes_test, y_test, continuous_factors="yes")


def test_n_jobs_none_fits_small_problems_in_this_process(monkeypatch):
    """Starting worker processes costs seconds: n_jobs=None uses them only for fits large enough to repay it."""
    import importlib
    dci_module = importlib.import_module("dynrep.metrics.dci")  # the module (dynrep.metrics.dci is the function)
    rng = np.random.RandomState(0)
    y = rng.randint(0, 5, size=(400, 2))
    x = y + 0.1 * rng.randn(400, 2)
    assert dci_module.boosting_work(2, y) == 400 * 2 * 10
    assert dci_module.boosting_work(2, y[:, :1] % 2) == 400 * 2  # two classes: one tree per iteration
    assert dci_module.boosting_work(3, x, regression=True) == 400 * 3 * 2
    jobs = []
    fit = dci_module.fit_per_factor
    # record the worker count, then fit serially (the same numbers; the test need not start processes)
    monkeypatch.setattr(dci_module, "fit_per_factor", lambda *args: jobs.append(args[5]) or fit(*args[:5], 1, *args[6:]))
    monkeypatch.setattr(dci_module.os, "cpu_count", lambda: 2)
    dci(x, y, x, y, mode="fast")
    dci(x, y, x, y, mode="fast", n_jobs=2)  # an explicit count is obeyed
    monkeypatch.setattr(dci_module, "PROCESS_MIN_WORK", 400 * 2 * 10)
    dci(x, y, x, y, mode="fast")
    assert jobs == [1, 2, 2]
