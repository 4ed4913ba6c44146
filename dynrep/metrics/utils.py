"""Shared pieces of the array-level metrics: input checks, the histogram discretiser, discrete MI.

Pure numpy (no torch, no environments). Conventions of every array-level metric:
codes are ``[num_samples, num_codes]`` floats, factors ``[num_samples, num_factors]`` integer
class indices (or floats where a metric takes continuous factors); logarithms are natural.
"""
from __future__ import annotations

import numpy as np

#: Bins of the histogram discretiser (disentanglement_lib's ``discretizer.num_bins``).
NUM_BINS = 20


def check_codes(codes, name: str = "codes", min_samples: int = 2) -> np.ndarray:
    """``codes`` as float64 ``[N, D]``; ValueError naming ``name`` if the shape is wrong, N is below
    ``min_samples`` or a value is not finite."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"{name} must have shape [num_samples, num_codes], got {codes.shape}")
    if codes.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples, got {codes.shape[0]}")
    if not np.issubdtype(codes.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {codes.dtype}")
    codes = codes.astype(np.float64)
    if not np.all(np.isfinite(codes)):
        raise ValueError(f"{name} contains NaN or infinite values (first at row {np.argwhere(~np.isfinite(codes))[0, 0]})")
    return codes


def check_factors(factors, num_samples: int, name: str = "factors", discrete: bool = True) -> np.ndarray:
    """``factors`` as ``[N, K]`` (int64 class indices when ``discrete``, else float64) with ``N = num_samples``."""
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] < 1:
        raise ValueError(f"{name} must have shape [num_samples, num_factors], got {factors.shape}")
    if factors.shape[0] != num_samples:
        raise ValueError(f"{name} must have {num_samples} rows (one per code row), got {factors.shape[0]}")
    if not discrete:
        return check_codes(factors, name, min_samples=0)
    if np.issubdtype(factors.dtype, np.integer):
        return factors.astype(np.int64)
    if np.issubdtype(factors.dtype, np.floating) and np.all(np.isfinite(factors)) and np.all(factors == np.round(factors)):
        return factors.astype(np.int64)
    raise ValueError(f"{name} must be integer class indices, got dtype {factors.dtype} with non-integer values; "
                     "pass continuous factors to a metric that takes them (e.g. mcc, or sap(continuous_factors=True))")


def check_not_constant(factors: np.ndarray, name: str = "factors") -> None:
    """ValueError naming the first column of ``factors [N, K]`` that takes a single value."""
    constant = np.all(factors == factors[:1], axis=0)
    if constant.any():
        raise ValueError(f"{name}: column {int(np.argmax(constant))} is constant over the sample; "
                         "this metric needs every column to vary (drop it or sample more)")


def discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Histogram discretiser of disentanglement_lib: per column, ``np.digitize(z, np.histogram(z, num_bins)[1][:-1])``
    (``num_bins`` equal-width bins over the sample's own range, ids ``1..num_bins``). ``[N, D]`` -> ``[N, D]`` int64."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        out[:, i] = np.digitize(codes[:, i], np.histogram(codes[:, i], num_bins)[1][:-1])
    return out


def _labels(column: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(column, return_inverse=True)
    return inverse.ravel(), len(values)


def mutual_info_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Discrete mutual information (nats) of every column pair: ``a [N, P]``, ``b [N, Q]`` (integer labels)
    -> ``[P, Q]``, equal to ``sklearn.metrics.mutual_info_score(b[:, q], a[:, p])``."""
    n = a.shape[0]
    coded_a = [_labels(a[:, p]) for p in range(a.shape[1])]
    coded_b = [_labels(b[:, q]) for q in range(b.shape[1])]
    out = np.zeros((a.shape[1], b.shape[1]))
    for p, (la, ka) in enumerate(coded_a):
        pa = np.bincount(la, minlength=ka) / n
        for q, (lb, kb) in enumerate(coded_b):
            joint = np.bincount(la * kb + lb, minlength=ka * kb).reshape(ka, kb) / n
            pb = np.bincount(lb, minlength=kb) / n
            nz = joint > 0
            out[p, q] = max(0.0, float(np.sum(joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz]))))
    return out


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each column of integer labels ``[N, K]`` -> ``[K]`` (= ``mutual_info_score(y, y)``)."""
    out = np.empty(factors.shape[1])
    for k in range(factors.shape[1]):
        p = np.bincount(_labels(factors[:, k])[0]) / factors.shape[0]
        out[k] = float(-np.sum(p * np.log(p)))
    return out


def check_train_test(train_codes, train_factors, test_codes, test_factors, *, discrete: bool = True):
    """Validated ``(train_codes, train_factors, test_codes, test_factors)`` of a metric with a train/test split:
    the two splits must have the same numbers of codes and of factors (the test split may hold a single row), and
    every train factor must take at least two values."""
    train_codes = check_codes(train_codes, "train_codes")
    train_factors = check_factors(train_factors, train_codes.shape[0], "train_factors", discrete=discrete)
    test_codes = check_codes(test_codes, "test_codes", min_samples=1)
    test_factors = check_factors(test_factors, test_codes.shape[0], "test_factors", discrete=discrete)
    if test_codes.shape[1] != train_codes.shape[1]:
        raise ValueError(f"test_codes must have as many codes as train_codes ({train_codes.shape[1]}), "
                         f"got {test_codes.shape[1]}")
    if test_factors.shape[1] != train_factors.shape[1]:
        raise ValueError(f"test_factors must have as many factors as train_factors ({train_factors.shape[1]}), "
                         f"got {test_factors.shape[1]}")
    check_not_constant(train_factors, "train_factors")
    return train_codes, train_factors, test_codes, test_factors
