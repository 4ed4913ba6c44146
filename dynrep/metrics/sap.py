"""SAP score, Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of Disentangled
Latent Concepts from Unlabeled Observations", Section 3).

Reference: ``disentanglement_lib/evaluation/metrics/sap_score.py``.
"""
from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from .utils import check_train_test


def sap(train_codes, train_factors, test_codes, test_factors, *, continuous_factors: bool = False,
        seed: int = 0) -> dict:
    """SAP: per factor, the gap between the two single codes that predict it best, averaged over factors.

    Args:
        train_codes, test_codes: ``[N, D]`` / ``[M, D]`` float codes, ``D >= 2``.
        train_factors, test_factors: ``[N, K]`` / ``[M, K]`` integer class indices (floats when
            ``continuous_factors``); every train factor must vary.
        continuous_factors: False (default, as the unsupervised study): score[i, j] = test accuracy of
            ``LinearSVC(C=0.01, class_weight="balanced")`` fit on train code i alone to predict factor j.
            True: score[i, j] = cov(z_i, y_j)² / (var z_i · var y_j) on the **train** split only (``ddof=1``,
            0 where var z_i <= 1e-12), as the reference; the test split is then validated but not used.
        seed: ``random_state=np.random.RandomState(seed)`` of the LinearSVCs (the reference passes none;
            with one feature sklearn's ``dual="auto"`` picks the deterministic primal solver, so it does
            not change the result).

    Returns:
        ``"sap"`` float; ``"score_matrix"`` ``[D, K]``.

    The reference crashes inside ``LinearSVC.fit`` (discrete) or divides by zero (continuous) when a train
    factor takes a single value; here that raises a ValueError naming the factor first.
    """
    train_codes, train_factors, test_codes, test_factors = check_train_test(
        train_codes, train_factors, test_codes, test_factors, discrete=not continuous_factors)
    if train_codes.shape[1] < 2:
        raise ValueError(f"sap needs at least 2 codes (it takes a gap between the top two), got {train_codes.shape[1]}")
    if continuous_factors:
        scores = _squared_correlation(train_codes, train_factors)
    else:
        rng = np.random.RandomState(seed)
        scores = np.empty((train_codes.shape[1], train_factors.shape[1]))
        for i in range(train_codes.shape[1]):
            for j in range(train_factors.shape[1]):
                classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=rng)
                classifier.fit(train_codes[:, i:i + 1], train_factors[:, j])
                scores[i, j] = np.mean(classifier.predict(test_codes[:, i:i + 1]) == test_factors[:, j])
    top = np.sort(scores, axis=0)
    return {"sap": float(np.mean(top[-1] - top[-2])), "score_matrix": scores}


def _squared_correlation(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``[D, K]`` cov(z_i, y_j)² / (var z_i · var y_j), ``ddof=1``; 0 where var z_i <= 1e-12."""
    centred_codes = codes - codes.mean(axis=0)
    centred_factors = factors - factors.mean(axis=0)
    dof = codes.shape[0] - 1
    var_codes = np.sum(centred_codes ** 2, axis=0) / dof
    var_factors = np.sum(centred_factors ** 2, axis=0) / dof
    cov = centred_codes.T @ centred_factors / dof
    alive = var_codes > 1e-12
    scores = np.zeros_like(cov)
    scores[alive] = cov[alive] ** 2 / (var_codes[alive, None] * var_factors)
    return scores
