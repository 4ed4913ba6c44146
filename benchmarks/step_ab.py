"""A training step with this tree's functions against another tree's versions of them, interleaved in one process.

For each change (a group of functions this tree changed, issue 18 items 2 and 3), two learners of one
configuration are built and trained in turns, one step each: before each step the learner's version of every
function of the group is installed (the other tree's is compiled from that tree's source into this tree's
module, so everything else is shared). Prints per change and configuration the median wall and CPU time
(``resource.getrusage``) per step in ms of each, their ratio (reference / this tree: > 1 is faster here) and whether
the two learners' parameters are bitwise the same at the end. Run at one thread on a loaded machine
(``OMP_NUM_THREADS=1``); medians of many interleaved steps.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/step_ab.py --reference /path/to/main [--quick]
"""
from __future__ import annotations

import argparse
import ast
import importlib
import os
import resource
import statistics
import textwrap
import time
from pathlib import Path

import torch

from dynrep import GridWorld, RepresentationLearner

#: change -> functions ``module:qualname`` (``@source_module`` when the name is imported from there).
CHANGES = {
    "givens constants cached, rollout bmm": ["dynrep.models.rotation:givens_product",
                                             "dynrep.models.rotation:RotationModel.rollout"],
    "bce target term as torch.dot": ["dynrep.models.losses:_BinaryCrossEntropyWithLogits"],
    "conv ReLU backward in place": ["dynrep.models.base:build_encoder@dynrep.models.nets",
                                    "dynrep.models.base:build_decoder@dynrep.models.nets"],
}
#: configuration -> (model, batch size, steps timed per learner, --quick steps); None: GridWorld defaults.
CONFIGS = {"gridworld rotation": (None, None, 150, 40), "beta_vae b64": ("beta_vae", 64, 40, 10),
           "beta_vae b256": ("beta_vae", 256, 20, 0), "beta_tcvae b256": ("beta_tcvae", 256, 20, 0)}


def reference_version(tree: Path, module: str, qualname: str):
    """``module.qualname`` as ``tree``'s source defines it, compiled in this tree's module namespace."""
    source = (tree / Path(*module.split("."))).with_suffix(".py").read_text()
    body, node = ast.parse(source).body, None
    for part in qualname.split("."):
        node = next(n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part)
        body = node.body
    code = "".join(f"@{ast.get_source_segment(source, d)}\n" for d in node.decorator_list)
    code += textwrap.dedent(ast.get_source_segment(source, node))
    namespace = dict(vars(importlib.import_module(module)))
    exec(compile(code, f"{tree}:{module}", "exec"), namespace)
    return namespace[node.name]


def swaps(tree: Path, specs: list[str]) -> list[tuple[object, str, object, object]]:
    """``(owner, attribute, reference version, this tree's version)`` of each ``module:qualname[@source]``."""
    out = []
    for spec in specs:
        target, _, source = spec.partition("@")
        module, qualname = target.split(":")
        owner = importlib.import_module(module)
        for part in qualname.split(".")[:-1]:
            owner = getattr(owner, part)
        name = qualname.split(".")[-1]
        ours = vars(owner)[name] if isinstance(owner, type) else getattr(owner, name)
        out.append((owner, name, reference_version(tree, source or module, qualname), ours))
    return out


def learner(model: str | None, batch: int | None) -> RepresentationLearner:
    if model is None:
        return RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=0)
    from peers import dynrep_learner  # benchmarks/peers.py: the Burgess coder at 764,245 parameters
    return dynrep_learner(model, batch)


def compare(tree: Path, specs: list[str], model: str | None, batch: int | None, steps: int) -> str:
    changed = swaps(tree, specs)

    def install(which: str) -> None:
        for owner, name, reference, ours in changed:
            setattr(owner, name, reference if which == "reference" else ours)

    learners = {}
    for which in ("reference", "ours"):
        install(which)
        learners[which] = learner(model, batch)
        learners[which].train(2, progress=False)
    wall = {which: [] for which in learners}
    cpu = {which: [] for which in learners}
    load = os.getloadavg()[0]
    for _ in range(steps):
        for which, one in learners.items():
            install(which)
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            one.train(1, progress=False)
            end, after = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            wall[which].append(end - start)
            cpu[which].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    install("ours")
    same = all(torch.equal(a, b) for a, b in zip(learners["reference"].model.parameters(),
                                                 learners["ours"].model.parameters()))
    w = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
    c = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    return (f"{w['reference']:9.2f}{w['ours']:9.2f}{w['reference'] / w['ours']:7.3f}"
            f"{c['reference']:9.2f}{c['ours']:9.2f}{c['reference'] / c['ours']:7.3f}  {same!s:8s}"
            f"{load:.1f}-{os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="the other tree (a checkout of dynrep)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, GridWorld and beta_vae b64 only")
    parser.add_argument("--only", help="only the changes whose name contains this")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; reference {args.reference}")
    print(f"{'change / configuration':<60s}{'ref wall':>9s}{'ours':>9s}{'ratio':>7s}{'ref cpu':>9s}{'ours':>9s}"
          f"{'ratio':>7s}  {'bitwise':8s}load")
    for change, specs in [*CHANGES.items(), ("all of them", [s for v in CHANGES.values() for s in v])]:
        if args.only and args.only not in change:
            continue
        for config, (model, batch, steps, quick) in CONFIGS.items():
            steps = quick if args.quick else steps
            if steps:
                print(f"{change + ' / ' + config:<60s}{compare(args.reference, specs, model, batch, steps)}",
                      flush=True)


if __name__ == "__main__":
    main()
