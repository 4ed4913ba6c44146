"""Few-label downstream accuracy: how well a classifier trained on a few labelled codes predicts each factor.

disentanglement_lib's ``evaluation/metrics/downstream_task.py`` (Locatello et al. 2019), with its two
predictors (``utils.logistic_regression_cv`` and ``utils.gradient_boosting_classifier``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold

from dynrep.metrics.dci import check_n_jobs, fit_per_factor
from dynrep.metrics.utils import check_not_constant, check_train_test

#: disentanglement_lib's ``downstream_task.num_train``.
NUM_LABELS = (10, 100, 1000, 10000)


#: LogisticRegressionCV parameters whose default sklearn (1.9) announces to change (their default is then the
#: string "warn"): pinned to what the reference ran with: pure L2 penalty, C chosen by accuracy; the legacy
#: fitted attributes do not change the fit.
_LOGISTIC_PINNED = {"l1_ratios": (0.0,), "scoring": "accuracy", "use_legacy_attributes": False}


def _logistic_regression(seed: int) -> LogisticRegressionCV:
    """dlib's ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))``; lbfgs is deterministic, ``random_state``
    only follows the convention."""
    announced = {k: v for k, v in _LOGISTIC_PINNED.items() if LogisticRegressionCV().get_params().get(k) == "warn"}
    return LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), random_state=seed, **announced)


def _boosted_trees(seed: int) -> GradientBoostingClassifier:
    return GradientBoostingClassifier(random_state=seed)


#: Estimator name -> factory(seed), the reference's ``predictor.predictor_fn`` choices.
ESTIMATORS = {"logistic_regression": _logistic_regression, "boosted_trees": _boosted_trees}


def downstream(train_codes, train_factors, test_codes, test_factors, *, num_labels: Sequence[int] = NUM_LABELS,
               estimators: Sequence[str] = ("logistic_regression", "boosted_trees"), seed: int = 0,
               n_jobs: int | None = None) -> dict:
    """Train/test accuracy of per-factor classifiers fitted on ``n`` labelled codes, for each ``n`` in ``num_labels``.

    Args:
        train_codes, test_codes: ``[N, D]`` codes.
        train_factors, test_factors: ``[N, K]`` integer factor classes.
        num_labels: training-set sizes (or one size); each must be at most ``len(train_codes)``, and every factor
            must take at least two values in the first ``n`` training rows.
        estimators: names from :data:`ESTIMATORS`: ``"logistic_regression"`` =
            ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))``, ``"boosted_trees"`` =
            ``GradientBoostingClassifier()`` (sklearn defaults), as disentanglement_lib.
        seed: ``random_state`` of the classifiers (the reference leaves it unset; see :func:`dynrep.metrics.dci.dci`).
        n_jobs: worker processes fitting factors in parallel (``None``: all cores); results do not depend on it.

    Returns:
        For each estimator ``e`` and size ``n``, floats ``"e/n/mean_train_accuracy"``, ``"e/n/mean_test_accuracy"``,
        ``"e/n/min_train_accuracy"``, ``"e/n/min_test_accuracy"`` and per factor ``i``
        ``"e/n/train_accuracy_factor_i"``, ``"e/n/test_accuracy_factor_i"`` (the reference's ``"n:..."`` keys,
        prefixed by the estimator, which the reference chooses by gin config).

    Deviation: the reference samples a fresh training set of ``n`` points and a fresh test set for every ``n``;
    here the training set of size ``n`` is the first ``n`` rows of ``train_codes`` (nested subsets of one
    i.i.d. sample) and every size is scored on the whole test set.
    """
    unknown = [name for name in estimators if name not in ESTIMATORS]
    if unknown or not estimators:
        raise ValueError(f"estimators must be a non-empty sequence of {tuple(ESTIMATORS)}, got {tuple(estimators)}")
    n_jobs = check_n_jobs(n_jobs)
    train_codes, train_factors, test_codes, test_factors = check_train_test(
        train_codes, train_factors, test_codes, test_factors)
    num_labels = tuple(np.atleast_1d(num_labels).tolist())  # a single size may be given as an int
    bad = [n for n in num_labels if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(train_codes)]
    if bad or not num_labels:
        raise ValueError(f"num_labels must be a non-empty sequence of ints in [2, {len(train_codes)}] (the number "
                         f"of training points), got {tuple(num_labels)}")
    for n in num_labels:
        check_not_constant(train_factors[:n], f"train_factors[:{n}]")
    scores = {}
    for name in estimators:
        for n in num_labels:
            _, train_accuracy, test_accuracy = fit_per_factor(ESTIMATORS[name](seed), train_codes[:n],
                                                              train_factors[:n], test_codes, test_factors, n_jobs)
            prefix = f"{name}/{n}/"
            scores.update({prefix + "mean_train_accuracy": float(train_accuracy.mean()),
                           prefix + "mean_test_accuracy": float(test_accuracy.mean()),
                           prefix + "min_train_accuracy": float(train_accuracy.min()),
                           prefix + "min_test_accuracy": float(test_accuracy.min())})
            for i, (train, test) in enumerate(zip(train_accuracy, test_accuracy)):
                scores[prefix + f"train_accuracy_factor_{i}"] = float(train)
                scores[prefix + f"test_accuracy_factor_{i}"] = float(test)
    return scores
