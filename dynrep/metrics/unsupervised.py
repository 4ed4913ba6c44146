"""Unsupervised scores of a representation from its code covariance and binned mutual information.

Reference: ``disentanglement_lib/evaluation/metrics/unsupervised_metrics.py``.
"""
from __future__ import annotations

import numpy as np

from .utils import NUM_BINS, check_codes, check_not_constant, discretize, mutual_info_matrix

#: Smallest eigenvalue of the codes' correlation matrix below which the covariance counts as singular
#: (rounding leaves ~1e-16 for exactly dependent codes; 1e-12 lets total correlations up to ~13.8 nats through).
_SINGULAR = 1e-12


def unsupervised(codes, *, num_bins: int = NUM_BINS) -> dict:
    """Dependence between codes, no factors needed.

    Args:
        codes: ``[N, D]`` float codes, ``D >= 2``, none constant, covariance positive definite.
        num_bins: bins of the histogram discretiser.

    Returns:
        With Σ = ``np.cov`` of the codes (one variable per code, ``ddof=1``), returned as ``"covariance"``:
        ``"gaussian_total_correlation"`` ½(Σ_i log Σ_ii - log det Σ), the KL divergence of N(0, Σ) from the
        product of its marginals; ``"wasserstein_correlation"`` 2 tr Σ - 2 tr sqrtm(Σ · diag(Σ)[:, None])
        (the reference's name: ``gaussian_wasserstein_correlation``), the squared W2 distance between N(0, Σ)
        and N(0, diag Σ); ``"wasserstein_correlation_norm"`` that divided by tr Σ;
        ``"mutual_info_score"`` the mean of the discrete MI between binned codes over the D² - D off-diagonal
        pairs; ``"mutual_info"`` ``[D, D]`` that matrix with a zero diagonal.

    tr sqrtm(diag(Σ) Σ) is computed as Σ sqrt(eigvalsh(diag(Σ)^½ Σ diag(Σ)^½)) (similar matrices, same
    trace) rather than with ``scipy.linalg.sqrtm`` of the non-symmetric product: equal up to rounding and
    never complex. The reference returns NaN for a constant code and a rounding-dependent (huge or infinite)
    total correlation for linearly dependent codes; here both raise (singular: the smallest eigenvalue of the
    correlation matrix is <= 1e-12).
    """
    codes = check_codes(codes)
    num_codes = codes.shape[1]
    if num_codes < 2:
        raise ValueError(f"unsupervised needs at least 2 codes (it measures dependence between them), got {num_codes}")
    check_not_constant(codes, "codes")
    cov = np.cov(codes, rowvar=False)
    variances = np.diag(cov)
    scale = np.sqrt(variances)
    if np.linalg.eigvalsh(cov / scale[:, None] / scale)[0] <= _SINGULAR:
        raise ValueError("codes: the covariance of the codes is singular (some codes are linear combinations of "
                         "others), so the Gaussian total correlation is infinite; drop the redundant codes")
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(cov * scale[:, None] * scale), 0.0, None)))
    wasserstein = float(2 * variances.sum() - 2 * trace_sqrt)

    binned = discretize(codes, num_bins)
    mutual_info = mutual_info_matrix(binned, binned)
    np.fill_diagonal(mutual_info, 0.0)
    return {"gaussian_total_correlation": float(0.5 * (np.sum(np.log(variances)) - np.linalg.slogdet(cov)[1])),
            "wasserstein_correlation": wasserstein,
            "wasserstein_correlation_norm": float(wasserstein / variances.sum()),
            "mutual_info_score": float(mutual_info.sum() / (num_codes ** 2 - num_codes)), "mutual_info": mutual_info,
            "covariance": cov}
