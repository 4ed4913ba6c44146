"""Mean correlation coefficient (MCC) and the linear identifiability score.

Reference: Lachapelle et al.'s ``metrics.py`` (CLeaR 2022, first commit; its ``mean_corr_coef_np`` comes from
icebeem): Pearson correlation between every true source and every code (the true x code block of
``np.corrcoef``), absolute values, Hungarian matching on ``-|C|`` (``scipy.optimize.linear_sum_assignment``),
MCC = mean of the matched ``|C|`` ("strong" MCC: identifiable up to permutation and element-wise rescaling).
``linear_score`` is that code's ``get_linear_score``: R² of ``LinearRegression`` from codes to sources, fit and
scored on the same points. Pure numpy/scipy/sklearn.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from sklearn.linear_model import LinearRegression

from dynrep.metrics.utils import check_codes, check_not_constant

METHODS = ("pearson", "spearman")
ALIGNMENTS = ("none", "affine")


def _check_pair(true, pred) -> tuple[np.ndarray, np.ndarray]:
    """``true [N, K]`` and ``pred [N, D]`` as float64 with the same N and no constant column."""
    true = check_codes(true, "true")
    pred = check_codes(pred, "pred")
    if pred.shape[0] != true.shape[0]:
        raise ValueError(f"true and pred must have the same number of rows (samples), got {true.shape[0]} "
                         f"and {pred.shape[0]}")
    check_not_constant(true, "true")
    check_not_constant(pred, "pred")
    return true, pred


def abs_correlation(a: np.ndarray, b: np.ndarray, method: str = "pearson") -> np.ndarray:
    """``|corr(a[:, i], b[:, j])|`` for every column pair: ``a [N, P]``, ``b [N, Q]`` -> ``[P, Q]``.

    ``method="pearson"``: the ``[:P, P:]`` block of ``np.corrcoef(a, b, rowvar=False)``; ``"spearman"``: the same on
    column ranks (``scipy.stats.rankdata``, ties averaged), which equals ``scipy.stats.spearmanr``. Columns must
    not be constant (the caller checks).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "spearman":
        a, b = rankdata(a, axis=0), rankdata(b, axis=0)
    return np.abs(np.corrcoef(a, b, rowvar=False)[:a.shape[1], a.shape[1]:])


def mcc(true, pred, *, method: str = "pearson", alignment: str = "none") -> dict:
    """Mean correlation coefficient between true sources and learned codes.

    Args:
        true: ``[N, K]`` true sources / factors (floats; class indices are read as numbers).
        pred: ``[N, D]`` learned codes (e.g. encoder means). ``D`` may differ from ``K``.
        method: ``"pearson"`` (Lachapelle's default) or ``"spearman"`` (SlowVAE's gin setting; Pearson on ranks,
            so any strictly monotone per-code transform keeps the score).
        alignment: ``"none"`` = strong MCC (permutation matching only, the reference). ``"affine"`` = "weak" MCC:
            fit ``LinearRegression`` from ``pred`` to ``true`` (least squares with intercept, on the same points),
            then correlate each true factor with its own prediction; with Pearson this equals the mean over
            factors of sqrt(R²), Lachapelle's later (JMLR) linear score.

    Returns:
        ``"mcc"`` (float): mean of the matched correlations over the matched true factors.
        ``"correlation"``: ``[K, D]`` absolute correlations of true factors (rows) and codes (columns); with
        ``alignment="affine"`` ``[K, K]`` between true factors and their affine predictions.
        ``"permutation"``: ``[K]`` int, the code matched to each true factor (-1 if unmatched); the identity
        with ``alignment="affine"``.
        ``"matched_correlations"``: ``[K]`` the matched ``|corr|`` per true factor (0.0 where unmatched).

    ``D != K``: the assignment is rectangular. With ``D >= K`` every true factor gets its own code and the extra
    codes are ignored (SlowVAE instead pads the true factors with standard-normal noise columns and averages over
    the true ones: the same up to chance correlations of the noise; no padding here). With ``D < K`` only ``D``
    factors can be matched, ``mcc`` averages over those and the others get ``permutation = -1``: check it, since
    the score alone then overstates how much is recovered.

    Raises ValueError on bad shapes, non-finite values, different row counts or a constant column (a constant
    column has no defined correlation).
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    true, pred = _check_pair(true, pred)
    num_factors = true.shape[1]
    if alignment == "affine":
        aligned = LinearRegression().fit(pred, true).predict(pred)
        check_not_constant(aligned, "affine prediction of true (pred carries no linear information on it)")
        correlation = abs_correlation(true, aligned, method)
        matched = np.diag(correlation).copy()
        return {"mcc": float(matched.mean()), "correlation": correlation,
                "permutation": np.arange(num_factors), "matched_correlations": matched}
    correlation = abs_correlation(true, pred, method)
    rows, cols = linear_sum_assignment(-correlation)
    permutation = np.full(num_factors, -1, dtype=np.int64)
    permutation[rows] = cols
    matched = np.zeros(num_factors)
    matched[rows] = correlation[rows, cols]
    return {"mcc": float(correlation[rows, cols].mean()), "correlation": correlation,
            "permutation": permutation, "matched_correlations": matched}


def linear_score(true, pred) -> dict:
    """R² of an affine map from codes to true sources ("weak" identifiability, CLeaR-2022 Lachapelle et al.).

    ``sklearn.linear_model.LinearRegression().fit(pred, true).score(pred, true)``: fit and scored on the same
    points, multi-output R² averaged uniformly over the ``K`` true factors. ``true [N, K]``, ``pred [N, D]``.
    Returns ``{"r2": float}``. The later (JMLR) code reports mean sqrt(R²) instead: that is
    ``mcc(true, pred, alignment="affine")["mcc"]``. Raises ValueError on a constant column (in ``true`` R² is
    undefined; in ``pred`` it is rejected for the same inputs as :func:`mcc`).
    """
    true, pred = _check_pair(true, pred)
    return {"r2": float(LinearRegression().fit(pred, true).score(pred, true))}
