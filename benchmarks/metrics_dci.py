"""DCI cost: disentanglement_lib's serial GBT loop against dynrep's ``dci`` (exact, parallel) and ``dci(mode="fast")``.

Synthetic Shapes3D-sized factors (sizes 10, 10, 10, 8, 4, 15; 57 classes) drawn uniformly, and 10-dim
near-disentangled codes: code k = factor k scaled to [0, 1] + N(0, 0.05²) for the six factors, then four
N(0, 1) noise codes; 10,000 train / 5,000 test points, fixed seed. Prints, measured in this one process:
the scores of the three side by side, wall times and speed-ups, and asserts that the exact mode reproduces
the reference's scores exactly and that the fast mode is within 0.05 of them.

The reference loop is disentanglement_lib's ``compute_importance_gbt`` (codes laid out [num_codes, N]) with one
change: ``GradientBoostingClassifier(random_state=seed)`` instead of the unset (global) random state, which
only breaks ties between equally good splits and is what makes an exact comparison possible.

    python benchmarks/metrics_dci.py            # ~3-4 minutes on 2 cores, dominated by the reference
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.stats
from joblib.externals.loky import get_reusable_executor
from sklearn.ensemble import GradientBoostingClassifier

from dynrep.metrics.dci import dci

SIZES = (10, 10, 10, 8, 4, 15)
NUM_NOISE_CODES = 4
NOISE = 0.05
SCORES = ("disentanglement", "completeness", "informativeness_train", "informativeness_test")


def sample(num: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """``(codes [num, 10], factors [num, 6])``."""
    factors = np.stack([rng.randint(size, size=num) for size in SIZES], axis=1)
    signal = factors / (np.array(SIZES) - 1) + NOISE * rng.randn(num, len(SIZES))
    return np.concatenate([signal, rng.randn(num, NUM_NOISE_CODES)], axis=1), factors


def reference(mus_train, ys_train, mus_test, ys_test, seed: int) -> dict:
    """disentanglement_lib's ``compute_dci`` on ``[num_codes, N]`` / ``[num_factors, N]`` arrays, serially."""
    importance = np.zeros([mus_train.shape[0], ys_train.shape[0]])
    train_acc, test_acc = [], []
    for i in range(ys_train.shape[0]):
        model = GradientBoostingClassifier(random_state=seed)
        model.fit(mus_train.T, ys_train[i, :])
        importance[:, i] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(mus_train.T) == ys_train[i, :]))
        test_acc.append(np.mean(model.predict(mus_test.T) == ys_test[i, :]))
    per_code = 1. - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    per_factor = 1. - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    return {"disentanglement": np.sum(per_code * importance.sum(axis=1) / importance.sum()),
            "completeness": np.sum(per_factor * importance.sum(axis=0) / importance.sum()),
            "informativeness_train": np.mean(train_acc), "informativeness_test": np.mean(test_acc),
            "importance": importance}


def timed(fn, *args, **kwargs) -> tuple[dict, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=10_000)
    parser.add_argument("--num-test", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.RandomState(args.seed)
    train_codes, train_factors = sample(args.num_train, rng)
    test_codes, test_factors = sample(args.num_test, rng)
    print(f"DCI, factor sizes {SIZES}, {train_codes.shape[1]} codes, {args.num_train} train / {args.num_test} test, "
          f"{os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}")

    results, seconds = {}, {}
    results["reference"], seconds["reference"] = timed(reference, train_codes.T, train_factors.T, test_codes.T,
                                                       test_factors.T, args.seed)
    for mode in ("exact", "fast"):
        get_reusable_executor().shutdown(wait=True)  # every dynrep timing includes starting its worker processes
        results[mode], seconds[mode] = timed(dci, train_codes, train_factors, test_codes, test_factors, mode=mode,
                                             seed=args.seed)

    names = ("reference", "exact", "fast")
    print(f"\n{'':24}" + "".join(f"{name:>12}" for name in names) + f"{'|fast-ref|':>12}")
    for key in SCORES:
        values = [float(results[name][key]) for name in names]
        print(f"{key:24}" + "".join(f"{v:12.4f}" for v in values) + f"{abs(values[2] - values[0]):12.4f}")
    print(f"{'wall time (s)':24}" + "".join(f"{seconds[name]:12.1f}" for name in names))
    print(f"{'speed-up vs reference':24}" + "".join(f"{seconds['reference'] / seconds[name]:11.1f}x" for name in names))
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    assert np.array_equal(results["exact"]["importance"], results["reference"]["importance"])
    for key in SCORES:
        assert results["exact"][key] == results["reference"][key], key
        assert abs(results["fast"][key] - results["reference"][key]) <= 0.05, key
    print("exact == reference: identical importance matrix and scores; fast within 0.05 of the reference")


if __name__ == "__main__":
    main()
