"""GridWorld time to disentangled: steps and training wall seconds per seed until every action's
rotation purity >= 0.95 with mean reconstruction BCE (last 25 steps) < 0.01.

Runs the README's four lines (``RepresentationLearner(GridWorld(size=5), model="rotation",
latent_dim=4, seed=s).train(...)``), checking the target every ``--every`` steps; the seconds are
training wall time only (the checks are not counted). Then (not with ``--quick``) trains each seed to
``--steps`` and prints the final purity and BCE, so that a change of defaults can be compared with the
old ones (``--config key=value`` overrides a model option; ``--reference key=value`` runs a second
configuration after each seed's first, e.g. the old defaults, and prints both).

    python benchmarks/gridworld_convergence.py                 # seeds 0-4, target then 3000 steps
    python benchmarks/gridworld_convergence.py --quick         # seeds 0-4, time to target only
    python benchmarks/gridworld_convergence.py --config lr_angles=0.01
    python benchmarks/gridworld_convergence.py --reference lr=0.01   # the defaults and the paper's rate (the old default)
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from dynrep import GridWorld, RepresentationLearner
from dynrep.runs import parse_override

PURITY, BCE_THRESHOLD, TARGET_SECONDS = 0.95, 0.01, 10.0


def learner_for(seed: int, config: dict) -> RepresentationLearner:
    return RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=seed, **config)


def scores(learner: RepresentationLearner, window: int) -> tuple[float, float]:
    purity = learner.model.structure_scores()["rotation_purity_min"]
    return purity, float(np.mean(learner.history["reconstruction"][-window:]))


def time_to_target(seed: int, config: dict, every: int, max_steps: int) -> tuple[float | None, int, float, float]:
    """(training seconds or None, steps, purity_min, BCE) at the first check meeting the target."""
    learner = learner_for(seed, config)
    seconds = 0.0
    while learner.step < max_steps:
        start = time.perf_counter()
        learner.train(every, progress=False)
        seconds += time.perf_counter() - start
        purity, bce = scores(learner, every)
        if purity >= PURITY and bce < BCE_THRESHOLD:
            return seconds, learner.step, purity, bce
    return None, learner.step, purity, bce


def parse_config(items: list[str]) -> dict:
    """Model options from ``key=value`` items, parsed as the CLI's overrides are (:func:`dynrep.runs.parse_override`)."""
    config = {}
    for item in items:
        try:
            keys, value = parse_override(item)
        except ValueError as err:
            raise SystemExit(f"--config: {err}") from None
        config[".".join(keys)] = value
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="time to target only, no long runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--every", type=int, default=25, help="steps between checks of the target")
    parser.add_argument("--max-steps", type=int, default=2000, help="give up on the target after this many steps")
    parser.add_argument("--steps", type=int, default=3000, help="length of the long runs")
    parser.add_argument("--config", nargs="*", default=[], help="model options key=value (YAML values, as the CLI's overrides)")
    parser.add_argument("--reference", nargs="*", default=None,
                        help="model options key=value of a second configuration run after each seed's first")
    args = parser.parse_args()
    configs = {"config": parse_config(args.config)}
    if args.reference is not None:
        configs["reference"] = parse_config(args.reference)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}, " +
          ", ".join(f"{label} {config or 'defaults'}" for label, config in configs.items()))
    width = max(map(len, configs))
    prefix = {label: f"{label:<{width}} " if len(configs) > 1 else "" for label in configs}
    print(f"\n== time until every action's purity >= {PURITY} and BCE < {BCE_THRESHOLD} "
          f"(checked every {args.every} steps; target <= {TARGET_SECONDS:.0f} s) ==")
    for seed in args.seeds:
        for label, config in configs.items():
            seconds, steps, purity, bce = time_to_target(seed, config, args.every, args.max_steps)
            status = (f"{seconds:6.1f} s ({seconds / steps * 1e3:5.1f} ms/step)" if seconds is not None
                      else f"not within {args.max_steps} steps")
            print(f"{prefix[label]}seed {seed}: {steps:5d} steps, {status}, "
                  f"purity_min {purity:.3f}, BCE {bce:.4f}, load {os.getloadavg()[0]:.2f}", flush=True)
    if not args.quick:
        print(f"\n== after {args.steps} steps (BCE: mean of the last 50) ==")
        for seed in args.seeds:
            for label, config in configs.items():
                learner = learner_for(seed, config)
                start = time.perf_counter()
                learner.train(args.steps, progress=False)
                seconds = time.perf_counter() - start
                purity, bce = scores(learner, 50)
                print(f"{prefix[label]}seed {seed}: purity_min {purity:.3f}, "
                      f"BCE {bce:.2e}, {seconds:6.1f} s, load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
