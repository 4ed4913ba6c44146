"""The trainer's ``compile`` and ``autocast="bf16"`` switches: per-step time at the GridWorld defaults (issue 18 item 6).

Four learners of the GridWorld defaults (``RepresentationLearner(GridWorld(size=5), "rotation", seed=0)``: 16
episodes x 5 actions, 64x64x3, latent 4), one per setting (float32 eager, compiled, bf16 autocast, both), on the
same seed and so the same data. Prints, measured in this one process:
  1. the first step of each (for the compiled ones: dynamo + inductor's build, from an empty cache unless
     TORCHINDUCTOR_CACHE_DIR holds an earlier run's), with the load average, then 2 untimed warm-up steps;
  2. ms per step: rounds of ``--steps`` training steps, the settings in turn each round (the same background
     load for each), the median over the rounds and the ratio to float32 eager;
  3. the last loss of each against float32 eager's (the same steps on the same data);
  4. float32 eager against compiled: the loss alone (forward) and loss + backward on one batch, interleaved.

    python benchmarks/precision.py            # 10 rounds of 10 steps
    python benchmarks/precision.py --quick    # 4 rounds of 5 steps (~1.5 minutes, most of it compiling)
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from dynrep import GridWorld, RepresentationLearner

SETTINGS = {"float32": {}, "compile": {"compile": True}, "bf16": {"autocast": "bf16"},
            "compile+bf16": {"compile": True, "autocast": "bf16"}}


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 rounds of 5 steps instead of 10 of 10")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="training steps of each setting per round")
    args = parser.parse_args()
    rounds, steps = (4, 5) if args.quick else (args.rounds, args.steps)
    # inductor's cache of compiled kernels: a fresh one, so that the first step shows the whole compilation
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="dynrep-inductor-"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {_load()}")

    learners = {name: RepresentationLearner(GridWorld(size=5), "rotation", seed=0, device="cpu", **switches)
                for name, switches in SETTINGS.items()}
    print("\n== first step (compiled: includes the compilation) ==")
    for name, learner in learners.items():
        start = time.perf_counter()
        learner.train(1, progress=False)
        print(f"{name:14s}{time.perf_counter() - start:8.2f} s   ({_load()})")
    for learner in learners.values():
        learner.train(2, progress=False)

    times = {name: [] for name in learners}
    for _ in range(rounds):
        for name, learner in learners.items():
            start = time.perf_counter()
            learner.train(steps, progress=False)
            times[name].append((time.perf_counter() - start) / steps)
    base = statistics.median(times["float32"])
    print(f"\n== ms per step, median of {rounds} rounds of {steps} steps, interleaved ({_load()}) ==")
    print(f"{'setting':14s}{'ms/step':>9s}{'min':>8s}{'max':>8s}{'vs float32':>12s}{'last loss':>12s}{'rel. diff':>11s}")
    last = learners["float32"].history["loss"][-1]
    for name, learner in learners.items():
        median, loss = statistics.median(times[name]), learner.history["loss"][-1]
        print(f"{name:14s}{1e3 * median:9.1f}{1e3 * min(times[name]):8.1f}{1e3 * max(times[name]):8.1f}"
              f"{median / base:11.2f}x{loss:12.5f}{(loss - last) / last:+11.2%}")
    print(f"\n{learners['float32'].step} steps each")

    batch = learners["float32"].trainer.sample_batch()
    calls = {}
    for name in ("float32", "compile"):
        trainer = learners[name].trainer
        calls[f"{name} forward"] = lambda t=trainer: t.loss(batch, t.step, t.generator)
        calls[f"{name} forward+backward"] = lambda t=trainer: t.loss(batch, t.step, t.generator).total.backward()
    ms = {name: [] for name in calls}
    for _ in range(5 * rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            ms[name].append(1e3 * (time.perf_counter() - start))
    print(f"\n== one batch, median ms of {5 * rounds} calls, interleaved ({_load()}) ==")
    for name, values in ms.items():
        print(f"{name:26s}{statistics.median(values):8.1f}")


if __name__ == "__main__":
    main()
