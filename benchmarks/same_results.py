"""Bitwise the same training and scores as another tree (e.g. main before a change that must not move numbers).

Each tree's dynrep trains every registered model (plus a few options with loss paths of their own) for
``--steps`` steps at the tests' tiny zoo settings on CPU, one thread, and hashes the history and the
parameters; then it evaluates four learners with their default metric suites (and FactorVAE-world
``true_independence``) and hashes the scores. Each tree runs in its own process; the script prints both
hashes per case and whether they agree.

    .venv/bin/python benchmarks/same_results.py --reference /path/to/main [--steps 12]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = [("beta_vae", {"capacity": True}), ("rotation", {"max_action_magnitude": 3}),
           ("cascade_vae", {"discrete_start": 4, "cascade_period": 2})]


def fingerprints(steps: int) -> dict[str, str]:
    """``{case: sha256 prefix}`` of this process's dynrep."""
    import hashlib

    import torch
    sys.path.insert(0, str(Path(os.environ["PYTHONPATH"]) / "tests"))
    from conftest import tiny_learner
    from test_training_precision import _zoo_learner

    from dynrep import list_models
    from dynrep.metrics.compute import metric_names
    torch.set_num_threads(1)
    out = {}
    for name, options in [(name, {}) for name in list_models()] + OPTIONS:
        learner = _zoo_learner(name, **options)
        learner.train(steps, progress=False)
        digest = hashlib.sha256(repr(learner.history).encode())
        for key, value in sorted(learner.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().contiguous().numpy().tobytes())
        out[f"train {name} {options or ''}"] = digest.hexdigest()[:16]
    for name in ("rotation", "mechanism_sparsity", "vae", "forward_vae"):
        learner = tiny_learner("rotation") if name == "rotation" else _zoo_learner(name)
        learner.train(3, progress=False)
        metrics = metric_names(None, learner.env, None) + (["true_independence"] if name == "forward_vae" else [])
        scores = learner.evaluate(metrics, num_train=600, num_test=100)
        out[f"evaluate {name}"] = hashlib.sha256(repr(sorted(scores.items())).encode()).hexdigest()[:16]
    return out


def run(tree: Path, steps: int) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--worker", "--steps", str(steps)], env=env, cwd=tree,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="the other tree (a checkout of dynrep)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(fingerprints(args.steps)))
        return
    if args.reference is None:
        parser.error("--reference DIR is required")
    ours, theirs = run(ROOT, args.steps), run(args.reference.resolve(), args.steps)
    width = max(map(len, ours))
    for case in ours:
        print(f"{case:<{width}}  {ours[case]}  {theirs.get(case, '-'):<16}  "
              f"{'same' if ours[case] == theirs.get(case) else 'DIFFERENT'}")
    same = sum(ours[c] == theirs.get(c) for c in ours)
    print(f"{same} of {len(ours)} cases bitwise the same ({args.steps} training steps each)")


if __name__ == "__main__":
    main()
