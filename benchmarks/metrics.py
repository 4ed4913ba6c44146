"""Metric speed and faithfulness: dynrep next to the reference computation, measured in one run.

1. Array-level metrics at the reference sizes (10,000 train / 5,000 test points) on
   Shapes3D-sized factors (sizes 10, 10, 10, 8, 4, 15) with 10-dim near-disentangled codes:
   MIG, SAP and MCC, each next to the reference formula written out the way
   disentanglement_lib / Lachapelle's metrics.py compute it (same sklearn/scipy calls), with
   both scores printed. DCI is benchmarks/metrics_dci.py (it takes minutes).
2. FactorVAE and beta-VAE scores at reference settings on GridWorld 5x5 (64x64x3) with a
   rotation-model encoder trained for a few hundred steps, next to the reference's loop of
   64-sample encoder calls (timed on a slice of the votes and extrapolated linearly; printed
   as such).

    python benchmarks/metrics.py
"""
from __future__ import annotations

import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from dynrep import GridWorld, RepresentationLearner, metrics

SIZES = (10, 10, 10, 8, 4, 15)


def codes_and_factors(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Factors of a Shapes3D-sized grid and 10 codes: one noisy monotone code per factor plus 4 noise codes."""
    factors = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    scaled = factors / (np.array(SIZES) - 1)
    codes = np.concatenate([np.tanh(2 * scaled - 1) + 0.1 * rng.normal(size=scaled.shape),
                            rng.normal(size=(n, 4))], axis=1)
    return codes, factors


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def reference_mig(codes, factors):
    binned = np.stack([np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in codes.T])
    m = np.array([[mutual_info_score(f, b) for f in factors.T] for b in binned])
    entropy = np.array([mutual_info_score(f, f) for f in factors.T])
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


def reference_sap(train_codes, train_factors, test_codes, test_factors):
    score = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    for i in range(train_codes.shape[1]):
        for j in range(train_factors.shape[1]):
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(train_codes[:, i:i + 1], train_factors[:, j])
            score[i, j] = np.mean(clf.predict(test_codes[:, i:i + 1]) == test_factors[:, j])
    top = np.sort(score, axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))


def reference_mcc(true, pred):
    k = true.shape[1]
    corr = np.abs(np.corrcoef(true.T, pred.T)[:k, k:])
    rows, cols = linear_sum_assignment(-corr)
    return float(corr[rows, cols].mean())


def array_level() -> None:
    rng = np.random.default_rng(0)
    train, test = codes_and_factors(10_000, rng), codes_and_factors(5_000, rng)
    print("array level, 10,000 train / 5,000 test points, 10 codes, factor sizes", SIZES)
    print(f"{'metric':8s}{'dynrep s':>10s}{'reference s':>13s}{'dynrep':>10s}{'reference':>11s}")
    rows = [("MIG", lambda: metrics.mig(*train)["mig"], lambda: reference_mig(*train)),
            ("SAP", lambda: metrics.sap(*train, *test)["sap"], lambda: reference_sap(*train, *test)),
            ("MCC", lambda: metrics.mcc(train[1], train[0][:, :6])["mcc"],
             lambda: reference_mcc(train[1], train[0][:, :6]))]
    for name, ours, reference in rows:
        score, seconds = timed(ours)
        ref_score, ref_seconds = timed(reference)
        print(f"{name:8s}{seconds:10.3f}{ref_seconds:13.3f}{score:10.4f}{ref_score:11.4f}")


def reference_factor_vae_votes(env, rep, rng, num_votes, global_var, active):
    """disentanglement_lib's loop: one vote, one 64-sample encoder call."""
    votes = np.zeros((len(env.factors), len(global_var)), dtype=np.int64)
    dims = np.flatnonzero(active)
    for _ in range(num_votes):
        k = rng.integers(0, len(env.factors))
        f = env.sample_factors(64, rng)
        f[:, k] = f[0, k]
        local = np.var(rep(torch.from_numpy(env.render(f))).numpy(), axis=0, ddof=1)
        votes[k, dims[np.argmin(local[dims] / global_var[dims])]] += 1
    return votes


def reference_beta_vae_points(env, rep, rng, num_points):
    for _ in range(num_points):
        k = rng.integers(0, len(env.factors))
        a, b = env.sample_factors(64, rng), env.sample_factors(64, rng)
        b[:, k] = a[:, k]
        np.mean(np.abs(rep(torch.from_numpy(env.render(a))).numpy() - rep(torch.from_numpy(env.render(b))).numpy()),
                axis=0)


def sampled_scores() -> None:
    learner = RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=0)
    learner.train(400, progress=False)
    env, rep = learner.env, torch.no_grad()(learner.model.representation)
    print(f"\nGridWorld 5x5 (64x64x3), rotation encoder after {learner.step} steps; reference settings")
    result, seconds = timed(metrics.compute, "factor_vae", env, rep)
    rng = np.random.default_rng(0)
    codes = rep(torch.from_numpy(env.render(env.sample_factors(10_000, rng)))).numpy()
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_var) >= 0.05
    slice_votes = 300
    _, ref_slice = timed(reference_factor_vae_votes, env, rep, rng, slice_votes, global_var, active)
    ref_total = ref_slice * (10_000 + 5_000) / slice_votes
    print(f"FactorVAE  dynrep {seconds:6.1f} s (eval accuracy {result['eval_accuracy']:.3f}, "
          f"{result['num_active_dims']} active dims); reference loop {ref_total:6.1f} s "
          f"(extrapolated from {slice_votes} votes), ratio {ref_total / seconds:.1f}x")
    result, seconds = timed(metrics.compute, "beta_vae", env, rep)
    slice_points = 150
    _, ref_slice = timed(reference_beta_vae_points, env, rep, rng, slice_points)
    ref_total = ref_slice * (10_000 + 5_000) / slice_points
    print(f"beta-VAE   dynrep {seconds:6.1f} s (eval accuracy {result['eval_accuracy']:.3f}); reference loop "
          f"{ref_total:6.1f} s (extrapolated from {slice_points} points), ratio {ref_total / seconds:.1f}x")


if __name__ == "__main__":
    array_level()
    sampled_scores()
