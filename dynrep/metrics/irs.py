"""Interventional Robustness Score (Suter et al., ICML 2019), as disentanglement_lib's ``irs.py``.

Reference (``compute_irs`` + ``scalable_disentanglement_score``, gin ``unsupervised_study_v1/irs.gin``: 10,000
points, ``diff_quantile=0.99``, factors through the 20-bin histogram discretiser): constant codes are dropped;
for each factor i and each of its values v, the codes of the points with ``g_i = v`` deviate from their group
mean by ``|z - E[z | g_i = v]|``; the ``diff_quantile`` quantile of that deviation, averaged over the values of
``g_i``, is the code's expected maximal deviation when only the other factors change. Normalised per code by
``max |z - E[z]|`` over the whole sample, ``irs[i, d] = 1 - deviation / max_deviation``; a code's score is its
best factor's; the IRS is the average of the codes' scores weighted by their ``max_deviation``.
"""
from __future__ import annotations

import numpy as np

from dynrep.metrics.utils import NUM_BINS, check_codes, check_factors, discretize


def irs(codes, factors, *, diff_quantile: float = 0.99, num_bins: int | None = NUM_BINS) -> dict:
    """Interventional Robustness Score of ``codes [N, D]`` with respect to ``factors [N, K]``.

    Args:
        codes: ``[N, D]`` learned codes (encoder means).
        factors: ``[N, K]`` ground-truth factors.
        diff_quantile: quantile of the within-group deviations taken as the "maximal" deviation (0.99 in
            disentanglement_lib; 1.0 is the paper's max).
        num_bins: disentanglement_lib always passes the factors through its histogram discretiser
            (``num_bins=20`` equal-width bins over each factor's range, :func:`dynrep.metrics.utils.discretize`):
            integer factors with at most 20 evenly spaced values keep their groups, factors with more values
            (e.g. 32 positions) are merged into 20 bins, and continuous factors (e.g. the Pendulum labels that
            ICM-VAE passes, standardised floats) become 20 bins. ``None``: use the factors as given class
            indices (must be integers; the paper's definition, and what disentanglement_lib's own test does
            with an identity discretiser).

    Returns:
        ``"irs"`` (float); ``"disentanglement_scores"`` ``[D]`` per-code score (max over factors);
        ``"parents"`` ``[D]`` the factor each code is most robustly tied to; ``"irs_matrix"`` ``[K, D]``
        (factors x codes: the transpose of disentanglement_lib's ``IRS_matrix``); ``"num_active_dims"`` (int,
        codes with non-zero variance). Constant codes are left out of the score as in the reference and get
        score 0, parent -1 and a zero column. If every code is constant the reference's score 0.0 is returned.
        (disentanglement_lib reports ``num_active_dims`` as ``np.sum`` of the active codes' values, a bug; here
        it is the count.)

    ICM-VAE (``experiments/test_*.py``) calls a ``compute_irs(rep_train.T, y_train.T)`` on raw float labels;
    its ``codebase/metrics.py`` could not be read, so whether it keeps the histogram discretiser is unverified:
    the default here is what disentanglement_lib's ``compute_irs`` does with those inputs.
    """
    codes = check_codes(codes)
    factors = check_factors(factors, codes.shape[0], discrete=num_bins is None)
    if not 0.0 <= diff_quantile <= 1.0:
        raise ValueError(f"diff_quantile must be in [0, 1], got {diff_quantile}")
    if num_bins is not None:
        if int(num_bins) != num_bins or num_bins < 1:
            raise ValueError(f"num_bins must be a positive integer or None, got {num_bins!r}")
        factors = discretize(factors, int(num_bins))
    num_codes, num_factors = codes.shape[1], factors.shape[1]
    active = codes.var(axis=0) > 0
    scores, parents = np.zeros(num_codes), np.full(num_codes, -1, dtype=np.int64)
    matrix = np.zeros((num_factors, num_codes))
    if not active.any():
        return {"irs": 0.0, "disentanglement_scores": scores, "parents": parents, "irs_matrix": matrix,
                "num_active_dims": 0}
    z = codes[:, active]
    max_deviations = np.max(np.abs(z - z.mean(axis=0)), axis=0)
    deviations = np.zeros((num_factors, z.shape[1]))
    for i in range(num_factors):
        values = np.unique(factors[:, i])
        for value in values:
            group = z[factors[:, i] == value]
            deviations[i] += np.quantile(np.abs(group - group.mean(axis=0)), diff_quantile, axis=0)
        deviations[i] /= len(values)
    matrix[:, active] = 1.0 - deviations / max_deviations
    scores[active] = matrix[:, active].max(axis=0)
    parents[active] = matrix[:, active].argmax(axis=0)
    return {"irs": float(np.average(scores[active], weights=max_deviations)), "disentanglement_scores": scores,
            "parents": parents, "irs_matrix": matrix, "num_active_dims": int(active.sum())}
