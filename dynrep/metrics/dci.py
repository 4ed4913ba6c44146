"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018), disentanglement_lib variant.

For each factor a gradient-boosted tree classifier predicts the factor from all codes; its feature
importances form the column of the importance matrix ``R [num_codes, num_factors]``. Disentanglement
weights each code's ``1 - entropy`` of its (normalised) row by the code's share of the total importance;
completeness does the same for the factors' columns; informativeness is the classifiers' mean accuracy.
For continuous factors (``continuous_factors=True``, ICM-VAE's evaluation) the trees are regressors and
informativeness is their mean R². The models of different factors are independent, so they are fitted in
parallel processes.
"""
from __future__ import annotations

import os

import numpy as np
import scipy.special
import scipy.stats
from joblib import Parallel, delayed, parallel_backend
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor, HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor)
from sklearn.model_selection import cross_validate
from threadpoolctl import threadpool_limits

from dynrep.metrics.utils import check_train_test

MODES = ("exact", "fast")
#: ``n_jobs=None`` fits in worker processes only from this much work (training points x codes x trees per
#: boosting iteration, summed over factors; a factor with c > 2 classes grows c trees per iteration, else one):
#: the exact trees cost ~12.5 us per unit on one of the project machine's cores and starting the workers (each
#: imports sklearn) ~2-3 s, so below ~5 s of serial fitting the workers cost more than they save (the demo's DCI
#: on 2,000 points: 1.0 s serial, 3-4 s with two fresh workers).
PROCESS_MIN_WORK = 400_000


def check_n_jobs(n_jobs) -> int:
    """``n_jobs`` as a positive int (``None`` -> ``os.cpu_count()``); ValueError otherwise."""
    if n_jobs is None:
        return os.cpu_count() or 1
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ValueError(f"n_jobs must be None (all cores) or a positive int, got {n_jobs!r}")
    return int(n_jobs)


def boosting_work(num_codes: int, train_factors: np.ndarray, regression: bool = False) -> int:
    """The size of fitting one boosted-tree model on ``num_codes`` codes per factor column of ``train_factors
    [N, K]`` (class indices; real values with ``regression``: one tree per iteration), in the units of
    :data:`PROCESS_MIN_WORK`."""
    train_factors = np.asarray(train_factors)
    classes = [1 if regression else len(np.unique(column)) for column in train_factors.T]
    return len(train_factors) * num_codes * sum(c if c > 2 else 1 for c in classes)


def fit_per_factor(estimator, train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                   test_factors: np.ndarray, n_jobs: int = 1, scoring: str = "accuracy"
                   ) -> tuple[list, np.ndarray, np.ndarray]:
    """Fit a clone of ``estimator`` per factor column on all codes; ``(models, train_score [K],
    test_score [K])``, score = accuracy ``mean(predict(codes) == factor)`` as in disentanglement_lib (or
    another sklearn ``scoring``, e.g. ``"r2"`` for regressors).

    With ``n_jobs > 1`` the factors run in ``joblib`` worker processes (loky), largest class count first so the
    longest fits start first. Each job is ``sklearn.model_selection.cross_validate`` on the single split
    (train rows, test rows), which fits, predicts and scores accuracy in the worker while the worker imports
    only sklearn (not dynrep and torch). Every fit is the serial loop's deterministic computation (the estimator
    carries its own ``random_state``), so nothing depends on ``n_jobs``. OpenMP (histogram boosting) runs one
    thread per process: parallelism is over factors, and OpenMP's spinning threads slow down several-fold
    when a shared machine's cores are busy.
    """
    num_factors, num_train = train_factors.shape[1], len(train_codes)
    codes = np.concatenate([train_codes, test_codes])
    factors = np.concatenate([train_factors, test_factors])
    split = [(np.arange(num_train), np.arange(num_train, len(codes)))]
    order = sorted(range(num_factors), key=lambda k: -len(np.unique(train_factors[:, k])))
    jobs = (delayed(cross_validate)(estimator, codes, factors[:, k], cv=split, scoring=scoring,
                                    return_train_score=True, return_estimator=True, error_score="raise")
            for k in order)
    # n_jobs=1 is the context's default for the estimators' own joblib calls (LogisticRegressionCV's folds):
    # without it they would inherit loky with all cores here; the call below sets its own n_jobs.
    with parallel_backend("loky", n_jobs=1, inner_max_num_threads=1), threadpool_limits(1, user_api="openmp"):
        results = dict(zip(order, Parallel(n_jobs=min(n_jobs, num_factors))(jobs)))
    results = [results[k] for k in range(num_factors)]
    return ([r["estimator"][0] for r in results], np.array([r["train_score"][0] for r in results]),
            np.array([r["test_score"][0] for r in results]))


def residual_importances(model: HistGradientBoostingClassifier | HistGradientBoostingRegressor, codes: np.ndarray,
                         target: np.ndarray) -> np.ndarray:
    """The reference's impurity importances for the trees of a fitted histogram gradient-boosting model,
    ``[num_features]`` (normalised to sum to 1; all zeros when no tree splits).

    ``GradientBoostingClassifier.feature_importances_`` credits every split with the drop of the squared error of
    the residual its tree was fitted to (``n_left n_right / n (mean_left - mean_right)**2``; residual
    ``onehot(y) - softmax(raw)`` per class, ``y - expit(raw)`` for two classes, ``y - raw`` for a regressor) and
    normalises the sum over trees to 1. Histogram boosting stores a hessian-weighted gain per split instead;
    on one draw of near-disentangled codes (4,000 points, factor sizes (10, 8, 5, 4), two noise codes) summing
    those gains put D and C 0.045 and 0.050 below the reference, these drops 0.005 and 0.006 above it. Here the
    training ``codes [N, D]`` and ``target [N]`` (the classes or values the model was fitted on) are routed
    through each iteration's trees, the residual at that iteration's raw prediction is summed per node, and
    every split is credited with the reference's drop. Reads the private ``_predictors`` and
    ``_baseline_prediction`` of sklearn's histogram boosting.
    """
    predictors, raw = getattr(model, "_predictors", None), getattr(model, "_baseline_prediction", None)
    if predictors is None or raw is None:
        raise RuntimeError("this sklearn's histogram gradient boosting has no fitted _predictors / "
                           "_baseline_prediction; dci(mode='fast') needs them (use mode='exact')")
    codes = np.asarray(codes, dtype=np.float64)  # the dtype histogram boosting predicts on
    num_samples, num_features = codes.shape
    num_trees = len(predictors[0])
    classifier = hasattr(model, "classes_")
    if classifier:
        labels = np.searchsorted(model.classes_, target)
        truth = labels[:, None].astype(np.float64) if num_trees == 1 else np.eye(num_trees)[labels]
    else:
        truth = np.asarray(target, dtype=np.float64)[:, None]
    raw = np.tile(np.asarray(raw, dtype=np.float64).reshape(1, num_trees), (num_samples, 1))
    flat_codes, row_start = codes.ravel(), (np.arange(num_samples)[:, None] * num_features).astype(np.int32)
    importance = np.zeros(num_features)
    for trees in predictors:
        width = max(len(tree.nodes) for tree in trees)
        nodes = np.zeros((num_trees, width), dtype=trees[0].nodes.dtype)
        for t, tree in enumerate(trees):
            nodes[t, :len(tree.nodes)] = tree.nodes
        nodes = nodes.ravel()  # every tree's nodes in one table; tree t's node j is row t * width + j
        index = np.arange(len(nodes))
        inner = ~nodes["is_leaf"].astype(bool) & (nodes["count"] > 0)
        feature, threshold = nodes["feature_idx"].astype(np.intp), nodes["num_threshold"]
        # children[2 node + went_right]; a leaf (or padding) is its own child, so routing may run the full depth
        left = np.where(inner, nodes["left"].astype(np.intp) + index - index % width, index)
        right = np.where(inner, nodes["right"].astype(np.intp) + index - index % width, index)
        children = np.stack([left, right], axis=1).ravel().astype(np.int32)
        if classifier:
            residual = truth - (scipy.special.expit(raw) if num_trees == 1 else scipy.special.softmax(raw, axis=1))
        else:
            residual = truth - raw
        node = np.tile(np.arange(num_trees) * width, (num_samples, 1))  # every sample at every tree's root
        depth = int(nodes["depth"].max())
        for _ in range(depth):
            node = children[2 * node + (flat_codes[row_start + feature[node]] > threshold[node])]
        total = np.bincount(node.ravel(), weights=residual.ravel(), minlength=len(nodes))
        count = np.bincount(node.ravel(), minlength=len(nodes)).astype(np.float64)
        for level in range(depth - 1, -1, -1):  # children's sums into their parents, bottom up
            at = np.flatnonzero(inner & (nodes["depth"] == level))
            total[at], count[at] = total[left[at]] + total[right[at]], count[left[at]] + count[right[at]]
        split = np.flatnonzero(inner)
        gain = (total[left[split]] ** 2 / count[left[split]] + total[right[split]] ** 2 / count[right[split]]
                - total[split] ** 2 / count[split])
        importance += np.bincount(feature[split], weights=gain, minlength=num_features)
        raw += nodes["value"][node]
    total = importance.sum()
    return importance / total if total > 0 else importance


def _estimator(mode: str, seed: int, continuous: bool):
    if mode == "exact":
        return (GradientBoostingRegressor if continuous else GradientBoostingClassifier)(random_state=seed)
    if mode == "fast":
        return (HistGradientBoostingRegressor if continuous else HistGradientBoostingClassifier)(
            max_depth=3, max_leaf_nodes=None, min_samples_leaf=1, early_stopping=False, random_state=seed)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _importances(model, codes: np.ndarray, target: np.ndarray) -> np.ndarray:
    if isinstance(model, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return residual_importances(model, codes, target)
    return np.abs(model.feature_importances_)


def _weighted_specialisation(importance: np.ndarray) -> float:
    """Σ_rows ρ_row (1 - H(row / Σ row)), entropy in base #columns, ρ = row share of the total importance
    (uniform when the matrix is all zero); the ``1e-11`` offset is disentanglement_lib's."""
    per_row = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_row * weights.sum(axis=1) / weights.sum()))


def disentanglement(importance: np.ndarray) -> float:
    """DCI disentanglement of an importance matrix ``[num_codes, num_factors]`` (entropy base num_factors)."""
    return _weighted_specialisation(np.asarray(importance, dtype=np.float64))


def completeness(importance: np.ndarray) -> float:
    """DCI completeness of an importance matrix ``[num_codes, num_factors]`` (entropy base num_codes)."""
    return _weighted_specialisation(np.asarray(importance, dtype=np.float64).T)


def dci(train_codes, train_factors, test_codes, test_factors, *, mode: str = "exact", seed: int = 0,
        n_jobs: int | None = None, continuous_factors: bool = False) -> dict:
    """DCI scores of disentanglement_lib (``evaluation/metrics/dci.py``; 10,000 train / 5,000 test points there).

    Args:
        train_codes, test_codes: ``[N, D]`` codes (D >= 2).
        train_factors, test_factors: ``[N, K]`` integer factor classes (K >= 2); every train factor must take
            at least two values.
        mode: ``"exact"``: one ``GradientBoostingClassifier()`` with sklearn defaults per factor, as the
            reference. ``"fast"``: ``HistGradientBoostingClassifier`` with the reference's tree budget
            (100 iterations, learning rate 0.1, depth 3, min 1 sample per leaf, no early stopping), importances
            from :func:`residual_importances` (the reference's definition applied to these trees). Its trees
            (binned, hessian-weighted splits) are not the reference's, and the scores differ by what
            ``benchmarks/metrics_dci.py`` measured (factor sizes (10, 8, 5, 4), 6 codes, 4,000 and 10,000 train
            points, seeds 0-2): |ΔD|, |ΔC| <= 0.018 and |ΔI| <= 0.012 on near-disentangled and rotated codes,
            up to 0.039 (ΔI 0.027) on partially mixed and entangled codes; on one thread 8.1-15x (median
            10.3x) faster than the serial reference at 10,000 / 5,000 points, 6.0-15.4x (median 7.4x) at 4,000 /
            2,000. Use ``"exact"`` for numbers to compare with published ones.
        seed: ``random_state`` of every factor's classifier.
        n_jobs: worker processes fitting factors in parallel (``None``: all cores, except for fits too small to
            repay starting the workers, :data:`PROCESS_MIN_WORK`, which run in this process; 1: serial, in this
            process). Results are identical for every value.
        continuous_factors: False (disentanglement_lib): classifiers on integer classes. True (real-valued
            factors, e.g. the causal labels of Pendulum, as ICM-VAE's evaluation): the same trees as
            regressors (``GradientBoostingRegressor()`` / ``HistGradientBoostingRegressor``), importances as
            above, and informativeness = mean R² over factors (ICM-VAE's code prints an exact-match accuracy
            of the regressors instead, which is ~0 for real values).

    Returns:
        ``disentanglement``, ``completeness``, ``informativeness_train``, ``informativeness_test`` (mean
        accuracy, or R² for continuous factors, over factors) as floats, ``importance`` ``[D, K]`` (column k
        sums to 1 unless factor k's trees never split) and ``mode``.

    Deviation: the reference leaves the classifier's ``random_state`` unset (numpy's global RNG, which only
    breaks ties between equally good splits); here every factor's classifier gets ``random_state=seed`` so the
    scores are reproducible and independent of the fitting order.
    """
    if not isinstance(continuous_factors, (bool, np.bool_)):
        raise ValueError(f"continuous_factors must be True or False, got {continuous_factors!r}")
    estimator = _estimator(mode, seed, bool(continuous_factors))
    jobs = check_n_jobs(n_jobs)
    train_codes, train_factors, test_codes, test_factors = check_train_test(
        train_codes, train_factors, test_codes, test_factors, discrete=not continuous_factors)
    if n_jobs is None and boosting_work(train_codes.shape[1], train_factors, continuous_factors) < PROCESS_MIN_WORK:
        jobs = 1
    if train_codes.shape[1] < 2 or train_factors.shape[1] < 2:
        raise ValueError(f"dci needs at least 2 codes and 2 factors (entropies are in base num_codes and "
                         f"num_factors), got {train_codes.shape[1]} codes and {train_factors.shape[1]} factors")
    models, train_score, test_score = fit_per_factor(estimator, train_codes, train_factors, test_codes,
                                                     test_factors, jobs, "r2" if continuous_factors else "accuracy")
    importance = np.stack([_importances(model, train_codes, train_factors[:, k]) for k, model in enumerate(models)],
                          axis=1)
    return {"disentanglement": disentanglement(importance), "completeness": completeness(importance),
            "informativeness_train": float(train_score.mean()), "informativeness_test": float(test_score.mean()),
            "importance": importance, "mode": mode}
