"""DCI fast mode against disentanglement_lib's serial GBT loop: score deltas on a panel of code families, and speed.

Factors of sizes (10, 8, 5, 4) drawn uniformly (27 classes), ``u = factor / (size - 1)`` in [0, 1], six codes per
family (the random matrices are drawn from the case's seed):

- ``near-disentangled``: code k = u_k + N(0, 0.05²) for the four factors, then two N(0, 1) noise codes;
- ``rotated+noise``: the four codes u + N(0, 0.1²) rotated by a random orthogonal 4x4 matrix, two noise codes;
- ``partially-mixed``: code k = u_k + 0.5 u_(k+1 mod 4) + N(0, 0.05²), two noise codes;
- ``entangled``: the six codes tanh(u W + N(0, 0.05²)), W a random 4x6 Gaussian matrix (every code sees every factor).

Each family runs at 4,000 / 2,000 and at the reference's 10,000 / 5,000 train / test points, seeds 0-2. Every case
runs the reference and ``dci(mode="fast", n_jobs=1)`` back to back in this process (which one goes first alternates),
both on one thread, and prints |fast - reference| of D, C and test informativeness and the wall-time ratio; the
summary gives the largest deltas and the median ratio per size, and the run asserts ``--bound`` on every delta.

The reference loop is disentanglement_lib's ``compute_importance_gbt`` (codes laid out [num_codes, N]) with one
change: ``GradientBoostingClassifier(random_state=seed)`` instead of the unset (global) random state, which only
breaks ties between equally good splits.

    python benchmarks/metrics_dci.py      # about 30 minutes on one busy core, dominated by the reference
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / sklearn load their thread pools: one thread each

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from dynrep.metrics.dci import dci  # noqa: E402

SIZES = (10, 8, 5, 4)
FAMILIES = ("near-disentangled", "rotated+noise", "partially-mixed", "entangled")
SCORES = ("disentanglement", "completeness", "informativeness_test")


def sample(family: str, num: int, mixing: np.ndarray, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """``(codes [num, 6], factors [num, 4])`` of one family; ``mixing`` is the family's random matrix."""
    factors = np.stack([rng.randint(size, size=num) for size in SIZES], axis=1)
    u = factors / (np.array(SIZES) - 1)
    noise_codes = rng.randn(num, 2)
    if family == "near-disentangled":
        codes = np.concatenate([u + 0.05 * rng.randn(*u.shape), noise_codes], axis=1)
    elif family == "rotated+noise":
        codes = np.concatenate([(u + 0.1 * rng.randn(*u.shape)) @ mixing, noise_codes], axis=1)
    elif family == "partially-mixed":
        codes = np.concatenate([u + 0.5 * np.roll(u, -1, axis=1) + 0.05 * rng.randn(*u.shape), noise_codes], axis=1)
    else:
        codes = np.tanh(u @ mixing + 0.05 * rng.randn(num, mixing.shape[1]))
    return codes, factors


def mixing_matrix(family: str, rng: np.random.RandomState) -> np.ndarray:
    if family == "rotated+noise":
        return scipy.stats.special_ortho_group.rvs(len(SIZES), random_state=rng)
    return rng.randn(len(SIZES), 6) if family == "entangled" else np.eye(len(SIZES))


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
    parser.add_argument("--sizes", default="4000/2000,10000/5000", help="train/test sizes, comma-separated")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. seeds-1")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--bound", type=float, default=0.04,
                        help="asserted bound on every |fast - reference| (the one dci's docstring states)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("/")) for size in args.sizes.split(",")]
    families = args.families.split(",")
    for family in families:
        if family not in FAMILIES:
            parser.error(f"--families: {family!r} is not one of {FAMILIES}")

    print(f"DCI fast vs reference, factor sizes {SIZES}, 6 codes, one thread, {os.cpu_count()} cores, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'family':18}{'train/test':>12}{'seed':>5}{'|dD|':>8}{'|dC|':>8}{'|dI|':>8}{'ref s':>8}{'fast s':>8}"
          f"{'ratio':>7}")
    deltas, ratios, case = {}, {}, 0
    with threadpool_limits(1):
        for num_train, num_test in sizes:
            for family in families:
                for seed in range(args.seeds):
                    rng = np.random.RandomState(seed)
                    mixing = mixing_matrix(family, rng)
                    train_codes, train_factors = sample(family, num_train, mixing, rng)
                    test_codes, test_factors = sample(family, num_test, mixing, rng)
                    runs = {"reference": lambda: timed(reference, train_codes.T, train_factors.T, test_codes.T,
                                                       test_factors.T, seed),
                            "fast": lambda: timed(dci, train_codes, train_factors, test_codes, test_factors,
                                                  mode="fast", seed=seed, n_jobs=1)}
                    order = ("reference", "fast") if case % 2 == 0 else ("fast", "reference")
                    out = {name: runs[name]() for name in order}
                    case += 1
                    delta = [abs(float(out["fast"][0][key]) - float(out["reference"][0][key])) for key in SCORES]
                    ratio = out["reference"][1] / out["fast"][1]
                    deltas.setdefault((num_train, family), []).append(delta)
                    ratios.setdefault(num_train, []).append(ratio)
                    print(f"{family:18}{f'{num_train}/{num_test}':>12}{seed:>5}" + "".join(f"{d:8.4f}" for d in delta)
                          + f"{out['reference'][1]:8.1f}{out['fast'][1]:8.2f}{ratio:6.1f}x", flush=True)

    print("\nlargest |fast - reference| over seeds (D, C, I_test) and median speed ratio")
    for (num_train, family), values in deltas.items():
        print(f"{family:18}{num_train:>7}" + "".join(f"{v:8.4f}" for v in np.max(values, axis=0)))
    for num_train, values in ratios.items():
        print(f"{num_train:>7} train points: median ratio {np.median(values):.1f}x (min {np.min(values):.1f}x, "
              f"max {np.max(values):.1f}x over {len(values)} cases)")
    worst = max(max(max(v) for v in values) for values in deltas.values())
    print(f"largest delta overall {worst:.4f}; load average after: {os.getloadavg()[0]:.2f}")
    assert worst <= args.bound, f"a delta {worst:.4f} exceeds the bound {args.bound}"


if __name__ == "__main__":
    main()
