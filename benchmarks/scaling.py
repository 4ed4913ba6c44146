"""Multi-process (DDP) scaling on this machine: 1 vs 2 processes at equal global batch.

For each workload, trains ``--steps`` timed steps (after ``--warmup`` untimed ones) in one plain process with
the global batch, then in two gloo processes started as torchrun starts them (each drawing half the batch),
every process on one torch thread. Prints, measured in this one run:

* steps/s and samples/s (episodes per second, over all processes) for 1 and 2 processes;
* the speed-up (2-process steps/s / 1-process steps/s; 2.0 would be perfect scaling);
* the DDP overhead per step: 2-process step time minus half the 1-process step time (what the gradient
  all-reduce, the loss-term all-reduce and the synchronisation cost beyond perfect scaling).

Workloads: the GridWorld rotation model (64x64x3 frames, latent 4, 32 episodes x 5 actions) and mechanism
sparsity on toy-nn ``action_sparsity_non_trivial`` (MLPs 3x256, batch 512, as benchmarks/mechanism_sparsity.py's
reduced budget).

On this CPU two processes help only when two cores are free (each process needs its own core: on a shared or
loaded machine the speed-up drops below 1) and when a step is long enough (the conv rotation model) that the
all-reduce of the gradients (milliseconds over gloo for a few hundred thousand parameters) is small next to
it; short MLP steps are dominated by it. One process with two threads is the alternative to compare with.

On GPUs: ``torchrun --nproc_per_node G`` with one process per GPU uses nccl for the gradients (dynrep picks it
for CUDA tensors), whose all-reduce runs over NVLink/PCIe and overlaps the backward pass bucket by bucket;
per-process batches are large enough to keep each GPU busy, so the speed-up is close to G when the global
batch grows with G, and the per-step overhead is the all-reduce of the gradients (~2 x parameters x 4 bytes
over the interconnect). This script measures CPU/gloo only; run it under torchrun on a GPU machine with
``--device cuda`` to time the same workloads there (the single-process baseline then uses one GPU).

    python benchmarks/scaling.py                 # ~2 minutes on 2 free cores
    python benchmarks/scaling.py --steps 20      # quicker, noisier
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "gridworld_rotation": {"env": ("gridworld", {"size": 5}), "model": "rotation",
                           "config": {"latent_dim": 4, "batch_size": 32, "episode_length": 5}},
    "mechanism_sparsity": {"env": ("toy_nn", {"dataset": "action_sparsity_non_trivial", "num_samples": 100_000}),
                           "model": "mechanism_sparsity",
                           "config": {"batch_size": 512, "mlp_hidden": [256] * 3, "transition_hidden": 64,
                                      "transition_layers": 2, "learn_decoder_var": True,
                                      "decoder_logvar_init": -10.0}},
}


def worker(name: str, steps: int, warmup: int, device: str) -> None:
    """One process of a measurement: train ``warmup`` then ``steps`` steps; rank 0 prints the seconds."""
    from dynrep import RepresentationLearner, make_env
    from dynrep.training import distributed
    torch.set_num_threads(1)
    spec = WORKLOADS[name]
    env_name, env_args = spec["env"]
    learner = RepresentationLearner(make_env(env_name, **env_args), spec["model"], seed=0, device=device,
                                    **spec["config"])
    learner.train(warmup, progress=False)
    distributed.barrier()
    start = time.perf_counter()
    learner.train(steps, progress=False)
    seconds = time.perf_counter() - start
    if distributed.is_main():
        print(json.dumps({"seconds": seconds}))


def measure(name: str, processes: int, steps: int, warmup: int, device: str) -> float:
    """Seconds of ``steps`` steps of workload ``name`` on ``processes`` processes."""
    base = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        base.pop(var, None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    envs = [base] if processes == 1 else [
        {**base, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": str(processes), "RANK": str(r),
         "LOCAL_RANK": str(r), "LOCAL_WORLD_SIZE": str(processes)} for r in range(processes)]
    cmd = [sys.executable, __file__, "--worker", name, "--steps", str(steps), "--warmup", str(warmup),
           "--device", device]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for env in envs]
    outputs = [proc.communicate() for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode:
            raise RuntimeError(f"{name} on {processes} process(es) failed:\n{err}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of " + ", ".join(WORKLOADS))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.warmup, args.device)
    print(f"{'workload':<20} {'procs':>5} {'steps/s':>9} {'samples/s':>10} {'speed-up':>9} {'DDP overhead/step':>18}")
    for name in args.workloads.split(","):
        batch = WORKLOADS[name]["config"]["batch_size"]
        one = measure(name, 1, args.steps, args.warmup, args.device) / args.steps
        two = measure(name, 2, args.steps, args.warmup, args.device) / args.steps
        print(f"{name:<20} {1:>5} {1 / one:>9.2f} {batch / one:>10.0f} {'':>9} {'':>18}")
        print(f"{name:<20} {2:>5} {1 / two:>9.2f} {batch / two:>10.0f} {one / two:>9.2f} "
              f"{1000 * (two - one / 2):>15.1f} ms")


if __name__ == "__main__":
    main()
