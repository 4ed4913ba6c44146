"""Host syncs per training step (issue 18, item 6): how often the host waits for the device, and what the
bookkeeping that avoids it costs on CPU.

There is no GPU here, so the wait itself cannot be timed; what is counted is every ``Tensor.tolist``,
``Tensor.item`` and ``Tensor.cpu`` call during ``learner.train`` (each one a host sync on CUDA), for the
default GridWorld learner (rotation, 16 episodes x 5 actions, 64x64) with its progress bar and a checkpoint
with ``metrics.jsonl`` (log_every 10), at ``sync_every`` 1 (the CPU default) and 10 (the GPU default). The
step times of both, interleaved in one process, show the CPU cost of keeping the terms on the device; with
``--reference DIR`` (e.g. a checkout of main) the same run of that tree's dynrep, in a subprocess started
alternately with ours, gives the per-step cost against the code before the change.

    .venv/bin/python benchmarks/host_syncs.py [--quick] [--reference /path/to/main]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(steps: int, sync_every: int | None) -> dict:
    """One ``learner.train(steps)`` after a warm-up: ms per step and host syncs per step."""
    import torch

    from dynrep import GridWorld, RepresentationLearner
    learner = RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=0, device="cpu")
    kwargs = {} if sync_every is None else {"sync_every": sync_every}
    with tempfile.TemporaryDirectory() as tmp:
        learner.train(5, progress=False, **kwargs)
        calls = {"tolist": 0, "item": 0, "cpu": 0}
        originals = {name: getattr(torch.Tensor, name) for name in calls}

        def counting(name):
            def counted(self, *args, **kw):
                calls[name] += 1
                return originals[name](self, *args, **kw)
            return counted

        for name in calls:
            setattr(torch.Tensor, name, counting(name))
        try:
            start = time.perf_counter()
            learner.train(steps, checkpoint_dir=Path(tmp) / "ck", **kwargs)
            seconds = time.perf_counter() - start
        finally:
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)
    return {"ms_per_step": 1000 * seconds / steps, "syncs_per_step": sum(calls.values()) / steps, **calls}


def _worker(tree: str, steps: int, sync_every: int | None) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import host_syncs; "
            f"print(json.dumps(host_syncs.measure({steps}, {sync_every!r})))")
    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 30 steps (about a minute)")
    parser.add_argument("--reference", default=None, help="a dynrep tree to compare with (e.g. main's)")
    args = parser.parse_args()
    rounds, steps = (3, 30) if args.quick else (7, 100)
    runs = {"sync_every=1": (str(ROOT), 1), "sync_every=10": (str(ROOT), 10)}
    if args.reference:
        runs["reference"] = (args.reference, None)
    results: dict[str, list[dict]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (tree, sync_every) in runs.items():
            results[name].append(_worker(tree, steps, sync_every))
    print(f"load {os.getloadavg()[0]:.2f} (1 min) after {rounds} rounds of {steps} steps each, interleaved; "
          "each run in its own process, 2 threads")
    base = statistics.median(r["ms_per_step"] for r in results["sync_every=1"])
    print(f"{'run':<16}{'ms/step (median)':>18}{'ratio':>8}{'host syncs/step':>17}  tolist/item/cpu per run")
    for name, rows in results.items():
        ms = statistics.median(r["ms_per_step"] for r in rows)
        last = rows[-1]
        print(f"{name:<16}{ms:>18.1f}{ms / base:>8.3f}{last['syncs_per_step']:>17.2f}  "
              f"{last['tolist']}/{last['item']}/{last['cpu']}")


if __name__ == "__main__":
    main()
