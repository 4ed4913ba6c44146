"""Combinatorial-generalisation report: held-out reconstruction vs. held-out latent-factor alignment.

After Montero et al. ("Lost in Latent Space"): on a split that holds out factor combinations, a model can fail
because its **encoder** maps the unseen combinations to the wrong latent region (a regressor from latents to
factors, fitted on training latents, then scores badly on held-out latents) or because its **decoder** cannot
render latents it never saw (alignment holds on held-out latents but their reconstruction error is high).
Array level: the caller encodes both splits and computes the per-sample reconstruction errors.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from dynrep.metrics.utils import check_codes, check_factors, check_not_constant

REGRESSORS = ("linear", "mlp")
BASELINES = ("test_mean", "train_mean")


def _errors(values, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-sample reconstruction errors, got shape {values.shape}")
    return check_codes(values[:, None], name, min_samples=1)[:, 0]


def _fit_predict(regressor: str, seed: int, codes: np.ndarray, factors: np.ndarray, *queries: np.ndarray):
    """Fit ``codes -> factors`` and return the ``[N, K]`` predictions for each of ``queries``."""
    if regressor == "linear":
        model = LinearRegression().fit(codes, factors)
        return [model.predict(q) for q in queries]
    # One MLP for all factors; codes and factors standardised with the training statistics.
    scaler = StandardScaler().fit(codes)
    mean, std = factors.mean(axis=0), factors.std(axis=0)
    targets = (factors - mean) / std
    model = MLPRegressor(random_state=np.random.RandomState(seed))
    model.fit(scaler.transform(codes), targets[:, 0] if targets.shape[1] == 1 else targets)
    return [model.predict(scaler.transform(q)).reshape(len(q), -1) * std + mean for q in queries]


def _r2(truth: np.ndarray, predicted: np.ndarray, mean: np.ndarray, name: str) -> np.ndarray:
    """Per-column ``1 - SSE / sum((truth - mean)^2)`` -> ``[K]``; ValueError if a denominator is 0."""
    total = np.sum((truth - mean) ** 2, axis=0)
    if np.any(total == 0):
        raise ValueError(f"{name}: factor {int(np.argmin(total))} equals its baseline mean on every sample, so its "
                         "R² is undefined (on a split that holds a factor fixed, use baseline='train_mean')")
    return 1.0 - np.sum((truth - predicted) ** 2, axis=0) / total


def generalisation_report(train_recon_errors, test_recon_errors, train_codes, train_factors, test_codes,
                          test_factors, *, regressor: str = "linear", seed: int = 0,
                          baseline: str = "test_mean") -> dict:
    """Reconstruction and latent-factor alignment on the training and the held-out split.

    Args:
        train_recon_errors, test_recon_errors: ``[N_train]``, ``[N_test]`` per-sample reconstruction errors (any
            loss; the caller computes them, e.g. summed BCE per image).
        train_codes, test_codes: ``[N_train, D]``, ``[N_test, D]`` codes (encoder means).
        train_factors, test_factors: ``[N_train, K]``, ``[N_test, K]`` factors; class indices are regressed as
            floats (their order is taken as meaningful, as for positions, scales, angles).
        regressor: ``"linear"`` (``LinearRegression``) or ``"mlp"`` (``MLPRegressor`` with sklearn defaults,
            ``random_state=np.random.RandomState(seed)``, one network for all factors, codes and factors
            standardised with training statistics; may warn that it has not converged in its 200 epochs).
        seed: seed of the MLP.
        baseline: ``"test_mean"``: the usual R² (``sklearn.metrics.r2_score``) on each split; it is undefined
            for a factor that is constant on the held-out split (common: a held-out corner fixes factors), which
            raises. ``"train_mean"``: out-of-sample R², ``1 - SSE / sum((y - mean_train(y))^2)``, the error
            relative to always predicting the training mean; identical on the training split.

    Returns:
        ``"reconstruction_train"``, ``"reconstruction_test"`` (mean errors), ``"reconstruction_gap"`` (test -
        train), ``"alignment_train_r2"``, ``"alignment_test_r2"`` (R² averaged uniformly over factors) and
        ``"alignment_per_factor_test_r2"`` ``[K]``. Low held-out alignment points at the encoder; good held-out
        alignment with a large reconstruction gap points at the decoder.
    """
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor must be one of {REGRESSORS}, got {regressor!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    train_errors = _errors(train_recon_errors, "train_recon_errors")
    test_errors = _errors(test_recon_errors, "test_recon_errors")
    train_codes = check_codes(train_codes, "train_codes")
    test_codes = check_codes(test_codes, "test_codes", min_samples=1)
    if test_codes.shape[1] != train_codes.shape[1]:
        raise ValueError(f"test_codes must have {train_codes.shape[1]} columns like train_codes, got "
                         f"{test_codes.shape[1]}")
    train_factors = check_factors(train_factors, train_codes.shape[0], "train_factors", discrete=False)
    test_factors = check_factors(test_factors, test_codes.shape[0], "test_factors", discrete=False)
    if test_factors.shape[1] != train_factors.shape[1]:
        raise ValueError(f"test_factors must have {train_factors.shape[1]} columns like train_factors, got "
                         f"{test_factors.shape[1]}")
    check_not_constant(train_factors, "train_factors")
    train_predicted, test_predicted = _fit_predict(regressor, seed, train_codes, train_factors, train_codes,
                                                   test_codes)
    train_mean = train_factors.mean(axis=0)
    test_mean = train_mean if baseline == "train_mean" else test_factors.mean(axis=0)
    train_r2 = _r2(train_factors, train_predicted, train_mean, "train_factors")
    test_r2 = _r2(test_factors, test_predicted, test_mean, "test_factors")
    reconstruction_train, reconstruction_test = float(train_errors.mean()), float(test_errors.mean())
    return {"reconstruction_train": reconstruction_train, "reconstruction_test": reconstruction_test,
            "reconstruction_gap": reconstruction_test - reconstruction_train,
            "alignment_train_r2": float(train_r2.mean()), "alignment_test_r2": float(test_r2.mean()),
            "alignment_per_factor_test_r2": test_r2}
