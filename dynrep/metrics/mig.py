"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

Two estimators of the code/factor mutual information, which give very different numbers
(disvae#52/#64), so the result always names the one used:

- ``"histogram"`` (default): disentanglement_lib's variant,
  ``disentanglement_lib/evaluation/metrics/mig.py`` — codes binned by the 20-bin histogram
  discretiser, discrete MI, gap normalised by the factor's empirical entropy.
- ``"chen"``: the original continuous estimator of rtqichen/beta-tcvae
  (``disentanglement_metrics.py: estimate_entropies`` and ``metric_helpers/mi_metric.py``) —
  MI estimated from the encoder's Gaussians q(z|x), gap normalised by log(number of values).
"""
from __future__ import annotations

import math

import numpy as np

from .utils import NUM_BINS, check_codes, check_factors, check_not_constant, discrete_entropy, discretize, \
    mutual_info_matrix

ESTIMATORS = ("histogram", "chen")
#: Elements of the largest ``[samples, points, codes]`` block the "chen" estimator holds at once (16 MiB).
_CHUNK = 2 ** 21


def mig(codes, factors, *, estimator: str = "histogram", num_bins: int = NUM_BINS, log_vars=None,
        num_samples: int = 10000, seed: int = 0) -> dict:
    """Mutual Information Gap: per factor, the gap between the two codes most informative about it.

    Args:
        codes: ``[N, D]`` float codes (encoder means), ``D >= 2``.
        factors: ``[N, K]`` integer class indices; every factor must take at least two values.
        estimator: ``"histogram"`` (default, disentanglement_lib ``mig.py``): MI[i, j] =
            ``mutual_info_score(y_j, digitize(z_i))`` with ``num_bins`` equal-width bins, normaliser
            H(y_j) = empirical entropy. ``"chen"`` (rtqichen/beta-tcvae): MI[i, j] = H(z_i) - H(z_i | y_j)
            with entropies estimated from one sample z_n ~ q(z|x_n) per point and the mixture
            q(z) = mean_n q(z|x_n) (for H(z_i | y_j = v), the mixture and the samples of the points with
            y_j = v), MI clamped at 0, normaliser log(number of distinct values of y_j).
        num_bins: bins of the histogram discretiser (``"histogram"`` only).
        log_vars: ``[N, D]`` log-variances of the encoder's Gaussians q(z|x); required by ``"chen"``,
            rejected by ``"histogram"``.
        num_samples: ``"chen"``: each entropy averages -log q over at most this many samples (a random
            subset, as the original's ``n_samples=10000``); the mixture always uses all its points.
        seed: ``"chen"``: ``np.random.RandomState(seed)`` draws first the noise of the samples
            (``standard_normal((N, D))``), then the sample subsets.

    Returns:
        ``"mig"`` float; ``"mutual_info"`` ``[D, K]`` MI in nats; ``"entropy"`` ``[K]`` the normalisers;
        ``"gap_per_factor"`` ``[K]`` the normalised top-two gap; ``"estimator"`` the estimator's name.

    Codes that are angles in 2-D planes (the rotation model: each cyclic factor is an angle whose cosine and
    sine are two codes) score low by construction, not by a fault of the model or of this estimator: both
    codes of the plane determine the factor, so the gap between the two most informative codes is small. On a
    perfect rotation code of GridWorld(size=5) (2,000 points, codes ``(cos a, sin a, cos b, sin b) / √2`` with
    ``a = 2πk/5 + φ``) it is 0.0 to 0.35 depending only on the phase φ (which of cos and sin have two of the 5
    values in one of the 20 bins), while the MIG of the planes' angles ``atan2(sin, cos)`` is 0.998. DCI,
    FactorVAE and β-VAE, which read all codes together, score such codes 1.0.

    Deviation (``"chen"`` only): the original conditions on the full factor grid, where every value has
    the same count, and averages H(z | y = v) uniformly; here the average is weighted by the empirical
    frequency of v (identical on a balanced sample). Cost: about 2 N² D exponentials (~30 s for
    N = 10,000, D = 10 on one core); memory is bounded by chunking.
    """
    codes = check_codes(codes)
    factors = check_factors(factors, codes.shape[0])
    if codes.shape[1] < 2:
        raise ValueError(f"mig needs at least 2 codes (it takes a gap between the top two), got {codes.shape[1]}")
    check_not_constant(factors)
    if estimator == "histogram":
        if log_vars is not None:
            raise ValueError("log_vars is only used by estimator='chen'; the 'histogram' estimator reads codes only")
        mutual_info = mutual_info_matrix(discretize(codes, num_bins), factors)
        entropy = discrete_entropy(factors)
    elif estimator == "chen":
        if log_vars is None:
            raise ValueError("estimator='chen' needs log_vars [num_samples, num_codes], the log-variances of q(z|x)")
        log_vars = check_codes(log_vars, "log_vars")
        if log_vars.shape != codes.shape:
            raise ValueError(f"log_vars must have the shape of codes {codes.shape}, got {log_vars.shape}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        mutual_info = _chen_mutual_info(codes, log_vars, factors, num_samples, np.random.RandomState(seed))
        entropy = np.log([len(np.unique(column)) for column in factors.T])
    else:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    top = np.sort(mutual_info / entropy, axis=0)
    gap = top[-1] - top[-2]
    return {"mig": float(gap.mean()), "mutual_info": mutual_info, "entropy": entropy, "gap_per_factor": gap,
            "estimator": estimator}


def _chen_mutual_info(means: np.ndarray, log_vars: np.ndarray, factors: np.ndarray, num_samples: int,
                      rng: np.random.RandomState) -> np.ndarray:
    """``[D, K]`` MI H(z_i) - sum_v p(v) H(z_i | y_j = v), clamped at 0 (beta-tcvae ``mi_metric.py``)."""
    samples = means + np.exp(0.5 * log_vars) * rng.standard_normal(means.shape)

    def entropy(rows: np.ndarray) -> np.ndarray:
        return _mixture_entropy(samples[rows], means[rows], log_vars[rows], num_samples, rng)

    marginal = entropy(np.arange(len(means)))
    mutual_info = np.empty((means.shape[1], factors.shape[1]))
    for k, column in enumerate(factors.T):
        values, counts = np.unique(column, return_counts=True)
        conditional = sum(count / len(column) * entropy(np.flatnonzero(column == value))
                          for value, count in zip(values, counts))
        mutual_info[:, k] = marginal - conditional
    return np.maximum(mutual_info, 0.0)


def _mixture_entropy(samples: np.ndarray, means: np.ndarray, log_vars: np.ndarray, num_samples: int,
                     rng: np.random.RandomState) -> np.ndarray:
    """Per code, -mean over (at most ``num_samples`` of) ``samples [M, D]`` of log q(z_d), where
    q = mean over the M points of N(means, exp(log_vars)); chunked over samples. -> ``[D]``."""
    picked = samples[rng.permutation(len(samples))[:num_samples]]
    num_points, num_codes = means.shape
    inv_var = np.exp(-log_vars)
    offset = -0.5 * (log_vars + math.log(2 * math.pi)) - math.log(num_points)  # includes the mixture's 1/M
    step = max(1, _CHUNK // (num_points * num_codes))
    total = np.zeros(num_codes)
    for start in range(0, len(picked), step):
        log_q = picked[start:start + step, None, :] - means  # [c, M, D], then log q(z_s,d | x_m) / M in place
        log_q *= log_q
        log_q *= -0.5 * inv_var
        log_q += offset
        peak = log_q.max(axis=1)
        log_q -= peak[:, None]  # log-sum-exp over the M points, in place (scipy's is ~3x slower here)
        np.exp(log_q, out=log_q)
        total += (np.log(log_q.sum(axis=1)) + peak).sum(axis=0)
    return -total / len(picked)
