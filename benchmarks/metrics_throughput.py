"""Encoding throughput of the FactorVAE and β-VAE scores on a Shapes3D-sized world, against the encoder's own
forward throughput at its best batch, measured in one run.

The world is a :class:`~dynrep.envs.factor_images.FactorImageEnvironment` with Shapes3D's layout (factor sizes
10, 10, 10, 8, 4, 15: 480,000 states of 64x64x3 uint8) whose images are random pixels (a pool of 4,096 random
images indexed modulo its size, so no 5.9 GB array is needed; the draws are still nearly all distinct states,
as on the real data). The encoder is the β-VAE's default Burgess 32-32-64-64 coder (latent 10), untrained:
throughput does not depend on the weights.

1. The encoder alone: ``model.representation`` on a fixed uint8 batch (channels-last, the layout of the coder
   and of the image worlds' renders) under ``torch.inference_mode`` at
   batches 16 ... 1024, best of several calls each; the best batch's images/s is the reference.
2. Each score at the reference's group size (64 images per vote / point) on fewer votes than the reference's
   15,000 (``--votes``), counting the images the representation function receives: images/s of the whole
   metric (sampling, rendering, encoding, scoring) and its ratio to (1). The reference runs encode
   1,920,000 (β-VAE) and 970,000 (FactorVAE) images; at the measured rate the time is extrapolated.

    python benchmarks/metrics_throughput.py            # --votes 300 --threads 2 --rounds 3
    python benchmarks/metrics_throughput.py --quick    # --votes 100 --rounds 2: about a minute
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from dynrep.envs.factor_images import FactorImageEnvironment
from dynrep.metrics import compute
from dynrep.metrics.sampling import Sampler
from dynrep.models.registry import build_model

SIZES = (10, 10, 10, 8, 4, 15)
NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")


class RandomImages:
    """A read-only ``[480000, 64, 64, 3]`` uint8 store: row ``r`` is image ``r mod 4096`` of a random pool."""

    def __init__(self, num: int, pool: int = 4096, seed: int = 0):
        self.pool = np.random.default_rng(seed).integers(0, 256, size=(pool, 64, 64, 3), dtype=np.uint8)
        self.shape, self.dtype = (num, 64, 64, 3), np.dtype(np.uint8)

    def __getitem__(self, rows):
        return self.pool[np.asarray(rows) % len(self.pool)]


class Shapes3DSized(FactorImageEnvironment):
    env_name = "shapes3d_sized"

    def __init__(self):
        values = [np.arange(s, dtype=np.float64) for s in SIZES]
        super().__init__(RandomImages(int(np.prod(SIZES))), NAMES, values, (True, True, True, False, False, True))

    def get_config(self) -> dict:
        return {}


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def encoder_throughput(model, shape, batches=(16, 32, 64, 128, 256, 512, 1024), repeats: int = 2
                       ) -> dict[int, tuple[float, float]]:
    """(images per wall second, images per CPU second) of ``model.representation`` per batch size, best of
    ``repeats`` passes over 4096 images."""
    obs = torch.randint(0, 256, (4096, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    # In the layout the coder runs in (channels last), as the image worlds render: no conversion in the first conv.
    obs = obs.contiguous(memory_format=torch.channels_last) if obs.ndim == 4 else obs
    rates = {}
    with torch.inference_mode():
        model.representation(obs[:16])
        for batch in batches:
            wall = cpu = float("inf")
            for _ in range(repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                for chunk in obs.split(batch):
                    model.representation(chunk)
                wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
            rates[batch] = len(obs) / wall, len(obs) / cpu
    return rates


def metric_throughput(name: str, env, model, votes: int) -> tuple[float, int, float, float]:
    """(images/s, images encoded, wall s, cpu s) of ``compute(name)`` with ``votes`` training and votes / 2
    evaluation votes (FactorVAE: plus its 10,000 observations for the variances)."""
    count = [0]

    def representation(obs):
        count[0] += len(obs)
        return model.representation(obs)

    wall, cpu = time.perf_counter(), time.process_time()
    compute(name, env, representation, num_train=votes, num_test=votes // 2)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count[0] / wall, count[0], wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--votes", type=int, default=300, help="training votes / points (evaluation: half)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the best of each is kept)")
    parser.add_argument("--quick", action="store_true", help="--votes 100 --rounds 2 (about a minute)")
    args = parser.parse_args()
    if args.quick:
        args.votes, args.rounds = 100, 2
    torch.set_num_threads(args.threads)
    print(f"{load()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    env = Shapes3DSized()
    torch.manual_seed(0)
    model = build_model("beta_vae", env).eval()
    with torch.no_grad():  # untrained codes barely vary: scale the last layer so FactorVAE keeps its dimensions
        [layer for layer in model.encoder.modules() if isinstance(layer, torch.nn.Linear)][-1].weight.mul_(100)
    print(f"world: {env.factors.num_states:,} states of {env.observation_shape}; encoder "
          f"{sum(p.numel() for p in model.encoder.parameters()):,} parameters; Sampler batch "
          f"{Sampler(env, model.representation).batch_size}")
    reference = {"beta_vae": 2 * 64 * 15_000, "factor_vae": 64 * 15_000 + 10_000}
    # Rounds interleave the encoder alone (every batch) and each metric; the best of the rounds is the least
    # disturbed by other load on the machine, so the ratios compare bests.
    best = {name: (0.0, 0.0, 0, 0.0, 0.0) for name in reference}
    rates: dict[int, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for batch, (wall, cpu) in encoder_throughput(model, env.observation_shape).items():
            rates[batch] = max(rates.get(batch, (0.0, 0.0))[0], wall), max(rates.get(batch, (0.0, 0.0))[1], cpu)
        for name in reference:
            rate, images, seconds, cpu_seconds = metric_throughput(name, env, model, args.votes)
            if rate > best[name][0]:
                best[name] = (rate, images / cpu_seconds, images, seconds, cpu_seconds)
    best_batch = max(rates, key=lambda b: rates[b][0])
    encoder_best = rates[best_batch]
    print(f"encoder forward by batch, best of {args.rounds} rounds, images/s (per wall second / per CPU second): "
          + ", ".join(f"{b}: {w:,.0f} / {c:,.0f}" for b, (w, c) in rates.items()))
    print(f"best: {encoder_best[0]:,.0f} images/s at batch {best_batch}")
    print(f"{'metric':12s} {'images':>9s} {'wall s':>8s} {'cpu s':>8s} {'images/s':>9s} {'of encoder':>10s} "
          f"{'per cpu s':>9s} {'of encoder':>10s} {'reference run':>14s}")
    for name, (rate, cpu_rate, images, seconds, cpu_seconds) in best.items():
        print(f"{name:12s} {images:9,d} {seconds:8.2f} {cpu_seconds:8.2f} {rate:9,.0f} {rate / encoder_best[0]:10.1%} "
              f"{cpu_rate:9,.0f} {cpu_rate / encoder_best[1]:10.1%} {reference[name] / rate / 60:10.1f} min")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; {load()}")


if __name__ == "__main__":
    main()
