"""Multi-process (DDP) scaling on this machine: 1 vs 2 processes at equal global batch.

For each workload, trains ``--steps`` timed steps (after ``--warmup`` untimed ones) in one plain process with
the global batch on one torch thread, in one process on two threads (the alternative on two cores), and in two
gloo processes of one thread each, started as torchrun starts them (each drawing half the batch); the three are
interleaved ``--repeats`` times and the medians are reported. Prints, measured in this one run:

* steps/s and samples/s (episodes per second, over all processes) of each;
* the speed-up over one process on one thread (2.0 would be perfect scaling);
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
import statistics
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


def worker(name: str, steps: int, warmup: int, device: str, threads: int) -> None:
    """One process of a measurement: train ``warmup`` then ``steps`` steps; rank 0 prints the seconds."""
    from dynrep import RepresentationLearner, make_env
    from dynrep.training import distributed
    torch.set_num_threads(threads)
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


def measure(name: str, processes: int, steps: int, warmup: int, device: str, threads: int = 1) -> float:
    """Seconds of ``steps`` steps of workload ``name`` on ``processes`` processes of ``threads`` threads each."""
    base = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        base.pop(var, None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    envs = [base] if processes == 1 else [
        {**base, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": str(processes), "RANK": str(r),
         "LOCAL_RANK": str(r), "LOCAL_WORLD_SIZE": str(processes)} for r in range(processes)]
    cmd = [sys.executable, __file__, "--worker", name, "--steps", str(steps), "--warmup", str(warmup),
           "--device", device, "--threads", str(threads)]
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
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements of each (medians)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.warmup, args.device, args.threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    print(f"{'workload':<20} {'procs x threads':>15} {'steps/s':>9} {'samples/s':>10} {'speed-up':>9} "
          f"{'DDP overhead/step':>18}")
    layouts = [(1, 1), (1, 2), (2, 1)]
    for name in args.workloads.split(","):
        batch = WORKLOADS[name]["config"]["batch_size"]
        times = {layout: [] for layout in layouts}
        for _ in range(args.repeats):
            for processes, threads in layouts:
                seconds = measure(name, processes, args.steps, args.warmup, args.device, threads)
                times[processes, threads].append(seconds / args.steps)
        step = {layout: statistics.median(values) for layout, values in times.items()}
        for (processes, threads), seconds in step.items():
            overhead = f"{1000 * (seconds - step[1, 1] / 2):>15.1f} ms" if processes == 2 else ""
            print(f"{name:<20} {f'{processes} x {threads}':>15} {1 / seconds:>9.2f} {batch / seconds:>10.0f} "
                  f"{step[1, 1] / seconds:>9.2f} {overhead:>18}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
