"""GridWorld rotation-learner speed: dynrep vs a re-implementation of the seed code's hot path.

Prints, measured in this one process (issue 18 item 2):
  1. the peak GFLOP/s of a large convolution on these cores;
  2. a dynrep training step at its defaults against the reference step on the
     reference's network at the same batch (16 episodes x 5 actions, 64x64x3,
     latent 4), and both on the seed's own network and batch (3 x 20,
     32-32-64-64): ms per step, FLOPs per step (torch's FlopCounterMode), ms and
     GFLOP/s of encoder + decoder forward/backward, time outside the networks
     (= step - networks), and the ratio per step and at equal FLOPs;
  3. each conv layer of dynrep's default coder and of the seed's network alone, timed with every CPU
     kernel torch has (oneDNN channels-last, oneDNN NCHW, im2col + GEMM): the fastest one's GFLOP/s and
     share of peak, and the networks' floor (the fastest kernel per layer, summed, all else free);
  4. the item's three targets, met or not, with the numbers, and what the floors allow: the networks'
     best share of peak, and the seed's step over its own network's floor (no implementation of that
     network can be faster than its layers' fastest kernels);
  5. GridWorld rendering throughput vs a per-sample Python renderer.
Time to a disentangled GridWorld is benchmarks/gridworld_convergence.py.

The reference reproduces what the seed project (tomdbar/dynamical-disentanglement,
specs/dynamics.md 1.5-1.9) does per step: episodes stepped sample by sample in
Python with a factor->index lookup into a float image array, rotation matrices
built with a Python loop over planes and actions, per-step gathers, sigmoid decoder
with F.binary_cross_entropy, three Adam optimisers, and its conv architecture
(32-32-64-64, padding 0, output_padding). Both run on the same threads.

    python benchmarks/gridworld_training.py            # 40 timed calls of each function
    python benchmarks/gridworld_training.py --quick    # 10
"""
from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dynrep import GridWorld, RepresentationLearner

BATCH, LENGTH, LATENT = 16, 5, 4
PURITY, BCE_THRESHOLD = 0.95, 0.01


def timed(fns: dict, repeats: int) -> dict[str, float]:
    """Fastest seconds per call of each function, calling them in turn ``repeats`` times.

    Interleaving and taking the minimum keeps the comparison fair on a noisy shared
    machine: every function sees the same background load, and the minimum is the
    run least disturbed by it.
    """
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()  # warm-up (allocator, oneDNN primitive caches)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------- reference
class ReferenceCoder(nn.Module):
    """The seed project's default conv encoder/decoder for 64x64x3 (specs/dynamics.md 1.9)."""

    def __init__(self, latent: int):
        super().__init__()
        chans = [3, 32, 32, 64, 64]
        self.encoder = nn.Sequential(
            *[m for a, b in zip(chans[:-1], chans[1:]) for m in (nn.Conv2d(a, b, 4, 2, 0), nn.ReLU())],
            nn.Flatten(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, latent))
        self.decoder = nn.Sequential(
            nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Unflatten(1, (64, 2, 2)),
            nn.ConvTranspose2d(64, 64, 4, 2), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, output_padding=1), nn.ReLU(), nn.ConvTranspose2d(32, 3, 4, 2),
            nn.Sigmoid())


class ReferenceLearner:
    """Per-step work of the seed code's DynamicRepresentationLearner on GridWorld([5,5,[0],[0],[4]])."""

    def __init__(self, images: np.ndarray, sizes: tuple[int, int], seed: int = 0,
                 batch: int = BATCH, length: int = LENGTH):
        torch.manual_seed(seed)
        self.batch, self.length = batch, length
        # whole set pre-loaded as float, in C order as the seed holds it
        self.data = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)
        self.sizes = sizes
        self.coder = ReferenceCoder(LATENT)
        n_planes = LATENT * (LATENT - 1) // 2
        self.thetas = [nn.Parameter(torch.empty(n_planes).uniform_(-np.pi / LATENT, np.pi / LATENT))
                       for _ in range(4)]
        self.optimisers = [torch.optim.Adam(self.coder.encoder.parameters(), lr=1e-2, foreach=False),
                           torch.optim.Adam(self.coder.decoder.parameters(), lr=1e-2, foreach=False),
                           torch.optim.Adam(self.thetas, lr=1e-2, foreach=False)]
        self.rng = np.random.default_rng(seed)

    def factor2idx(self, factors) -> int:
        return int(factors[0]) * self.sizes[1] + int(factors[1])

    def observe(self, states: list[list[int]]) -> torch.Tensor:
        return torch.stack([self.data[self.factor2idx(s)] for s in states])

    def matrix(self, theta: torch.Tensor) -> torch.Tensor:
        rot, k = torch.eye(LATENT), 0
        for i in range(LATENT):
            for j in range(i + 1, LATENT):
                g = torch.eye(LATENT)
                c, s = torch.cos(theta[k]), torch.sin(theta[k])
                g = g.index_put((torch.tensor([i, i, j, j]), torch.tensor([i, j, i, j])), torch.stack([c, s, -s, c]))
                rot = rot @ g
                k += 1
        return rot

    def step(self) -> None:
        states = [[int(self.rng.integers(self.sizes[0])), int(self.rng.integers(self.sizes[1]))]
                  for _ in range(self.batch)]
        obs = [self.observe(states)]
        z = self.coder.encoder(obs[0])
        z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        matrices = [self.matrix(t) for t in self.thetas]  # cached per step, cleared after it
        latents = [z]
        for _ in range(self.length):
            actions = self.rng.integers(0, 4, self.batch)
            for b, a in enumerate(actions):
                axis, sign = divmod(int(a), 2)
                states[b][axis] = (states[b][axis] + (1 if sign == 0 else -1)) % self.sizes[axis]
            obs.append(self.observe(states))
            rho = torch.stack([matrices[a] for a in actions])
            latents.append((rho @ latents[-1].unsqueeze(-1)).squeeze(-1))
        recon = self.coder.decoder(torch.cat(latents))
        rec_loss = F.binary_cross_entropy(recon, torch.cat(obs))
        sq = torch.stack([t.square() for t in self.thetas])
        ent = (sq.sum(-1) - sq.max(-1).values).mean()
        loss = rec_loss + 1e-2 * ent
        for opt in self.optimisers:
            opt.zero_grad()
        loss.backward()
        for opt in self.optimisers:
            opt.step()

    def network_only(self) -> None:
        x = self.data[torch.zeros(self.batch, dtype=torch.long)]
        z = self.coder.encoder(x)
        out = self.coder.decoder(z.repeat(self.length + 1, 1))
        out.sum().backward()


# --------------------------------------------------------------------------- FLOPs and peak
def flops(fn) -> float:
    """FLOPs of one call of ``fn`` (forward and backward), counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def peak_conv() -> tuple[str, float]:
    """(shape, GFLOP/s) of a large 3x3 convolution's forward: the cores' attainable conv peak."""
    x = torch.randn(32, 64, 64, 64).contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = timed({"conv": lambda: conv(x)}, 10)["conv"]
        return "conv 64->64 k3 on 32x64x64x64", flops(lambda: conv(x)) / seconds / 1e9


#: The CPU kernels torch has for a convolution: oneDNN on channels-last memory, oneDNN on NCHW memory, and
#: torch's own im2col + GEMM (oneDNN off, NCHW).
KERNELS = ("oneDNN channels-last", "oneDNN NCHW", "im2col+GEMM")


def _kernel_run(layer: nn.Module, inp: torch.Tensor, kernel: str):
    """A call of ``layer`` forward and backward on ``inp`` (a copy of each, in ``kernel``'s layout)."""
    layout = torch.channels_last if kernel == KERNELS[0] else torch.contiguous_format
    layer = copy.deepcopy(layer).to(memory_format=layout)
    inp = inp.detach().contiguous(memory_format=layout).requires_grad_(inp.requires_grad)

    def run():
        with torch.backends.mkldnn.flags(enabled=kernel != KERNELS[2]):
            layer(inp).sum().backward()
    return run


def layer_table(network: nn.Module, x: torch.Tensor, repeats: int) -> list[tuple[str, float, dict[str, float]]]:
    """(layer, GFLOP, {kernel: ms}) of each conv and transposed conv of ``network`` on its input shapes when
    run on ``x``, forward and backward (input gradient included except for the first layer), timed one layer
    at a time with each of :data:`KERNELS` (interleaved). Linear layers get one row, timed as they run."""
    inputs: dict[nn.Module, torch.Tensor] = {}
    layers = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    hooks = [m.register_forward_hook(lambda m, i, o: inputs.__setitem__(m, i[0].detach())) for m in layers]
    with torch.no_grad():
        network(x)
    for hook in hooks:
        hook.remove()
    rows = []
    for k, layer in enumerate(layers):
        inp = inputs[layer].clone().requires_grad_(k > 0)
        if isinstance(layer, nn.Linear):
            runs = {"as it runs": lambda layer=layer, inp=inp: layer(inp).sum().backward()}
        else:
            runs = {kernel: _kernel_run(layer, inp, kernel) for kernel in KERNELS}
        with warnings.catch_warnings():  # oneDNN's flags warn that this torch has no Intel GPU
            warnings.simplefilter("ignore", UserWarning)
            seconds = timed(runs, repeats)
            gflop = flops(next(iter(runs.values()))) / 1e9
        name = f"{type(layer).__name__} {tuple(inp.shape)}->{getattr(layer, 'out_channels', layer.weight.shape[0])}"
        rows.append((name, gflop, {k: v * 1e3 for k, v in seconds.items()}))
    return rows


def print_layers(title: str, coder: list[tuple[nn.Module, torch.Tensor]], repeats: int, peak: float) -> float:
    """Print :func:`layer_table` of each ``(network, input)`` and return the networks' floor in seconds: the sum
    over layers of the fastest kernel's time (activations, reshapes and the loss counted as free)."""
    print(f"\n== {title}: layers alone, forward + backward, each torch CPU kernel ==")
    print(f"{'layer':44s}{'GFLOP':>7s}" + "".join(f"{k:>22s}" for k in KERNELS) +
          f"{'best ms':>9s}{'GFLOP/s':>9s}{'of peak':>8s}")
    floor = gflop_total = 0.0
    for network, x in coder:
        for name, gflop, ms in layer_table(network, x, repeats):
            best = min(ms.values())
            floor, gflop_total = floor + best / 1e3, gflop_total + gflop
            cells = "".join(f"{ms[k]:22.2f}" if k in ms else f"{'-':>22s}" for k in KERNELS)
            print(f"{name:44s}{gflop:7.3f}{cells}{best:9.2f}{gflop / best * 1e3:9.1f}{gflop / best * 1e3 / peak:8.0%}")
    print(f"{'floor (fastest kernel per layer, summed)':44s}{gflop_total:7.3f}{'':>66s}{floor * 1e3:9.2f}"
          f"{gflop_total / floor:9.1f}{gflop_total / floor / peak:8.0%}")
    return floor


# --------------------------------------------------------------------------- dynrep
def dynrep_network_only(learner: RepresentationLearner, batch) -> None:
    model = learner.model
    z = model.encoder(batch.obs[:, 0].float().div_(255))
    out = model.decoder(z.repeat(batch.obs.shape[1], 1))
    out.sum().backward()


def render_reference(env: GridWorld, factors: np.ndarray) -> np.ndarray:
    """Per-sample Python loop renderer (the seed code draws each image in a loop)."""
    out = np.zeros((len(factors), 3, env.image_size, env.image_size), dtype=np.uint8)
    pitch, offset = env.image_size // 5, 0.5 * (env.image_size - env.image_size // 5 * 5)
    for n, (i, j) in enumerate(factors):
        ci, cj = (i + 0.5) * pitch + offset, (j + 0.5) * pitch + offset
        out[n, :, int(ci - pitch / 2):int(ci + pitch / 2), int(cj - pitch / 2):int(cj + pitch / 2)] = 255
    return out


def step_comparison(title: str, learner: RepresentationLearner, reference: ReferenceLearner,
                    repeats: int) -> dict[str, float]:
    """Print and return step / network times and FLOPs of ``learner`` and ``reference``, interleaved."""
    batch = learner.trainer.sample_batch()
    t = timed({"ours_step": lambda: learner.train(1, progress=False),
               "ours_net": lambda: dynrep_network_only(learner, batch),
               "ref_step": reference.step, "ref_net": reference.network_only}, repeats)
    t["ours_flops"] = flops(lambda: learner.model.loss(batch, 0).total.backward())
    t["ours_net_flops"] = flops(lambda: dynrep_network_only(learner, batch))
    t["ref_flops"], t["ref_net_flops"] = flops(reference.step), flops(reference.network_only)
    learner.model.zero_grad(set_to_none=True)
    ours_out, ref_out = max(t["ours_step"] - t["ours_net"], 0.0), max(t["ref_step"] - t["ref_net"], 0.0)
    print(f"\n== {title} ==")
    print(f"{'':28s}{'dynrep':>12s}{'reference':>12s}{'ratio':>8s}")
    rows = [("step time (ms)", t["ours_step"] * 1e3, t["ref_step"] * 1e3),
            ("GFLOP per step", t["ours_flops"] / 1e9, t["ref_flops"] / 1e9),
            ("encoder+decoder (ms)", t["ours_net"] * 1e3, t["ref_net"] * 1e3),
            ("encoder+decoder GFLOP/s", t["ours_net_flops"] / t["ours_net"] / 1e9,
             t["ref_net_flops"] / t["ref_net"] / 1e9),
            ("outside networks (ms)", ours_out * 1e3, ref_out * 1e3)]
    for name, ours, ref in rows:
        ratio = f"{ref / ours:8.2f}" if ours > 0 else f"{'-':>8s}"  # a loaded run can time the step below its nets
        print(f"{name:28s}{ours:12.2f}{ref:12.2f}{ratio}")
    per_flop = (t["ref_step"] / t["ref_flops"]) / (t["ours_step"] / t["ours_flops"])
    print(f"{'ms per GFLOP (equal FLOPs)':28s}{t['ours_step'] / t['ours_flops'] * 1e12:12.2f}"
          f"{t['ref_step'] / t['ref_flops'] * 1e12:12.2f}{per_flop:8.2f}")
    t["outside_share"] = ours_out / t["ours_step"]
    t["per_flop"] = per_flop
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 timed calls of each function instead of 40")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    repeats = 10 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")

    env = GridWorld(size=5)
    images = env.render(env.factors.from_index(np.arange(25)))
    shape, peak = peak_conv()
    print(f"\npeak: {shape}: {peak:.1f} GFLOP/s")

    learner = RepresentationLearner(env, model="rotation", latent_dim=LATENT, seed=0)
    ours = step_comparison(f"training step, defaults ({BATCH} episodes x {LENGTH} actions, 8-16-32-32) against "
                           "the reference on its network at the same batch", learner,
                           ReferenceLearner(images, (5, 5)), repeats)
    seed_net = RepresentationLearner(env, model="rotation", latent_dim=LATENT, seed=0,
                                     channels=(32, 32, 64, 64), batch_size=3, episode_length=20)
    seed = step_comparison("training step, both on the seed's network and batch (3 episodes x 20 actions, "
                           "32-32-64-64; dynrep: padding 1, 1024-unit FC)", seed_net,
                           ReferenceLearner(images, (5, 5), batch=3, length=20), repeats)

    model, batch = learner.model, learner.trainer.sample_batch()
    obs = batch.obs[:, 0].float().div_(255)
    z = model.encoder(obs).detach().repeat(batch.obs.shape[1], 1)
    floor = print_layers(f"dynrep defaults ({BATCH} frames encoded, {BATCH * (LENGTH + 1)} decoded)",
                         [(model.encoder, obs), (model.decoder, z)], repeats, peak)
    reference = ReferenceLearner(images, (5, 5), batch=3, length=20)
    ref_obs = reference.data[:3]
    ref_z = reference.coder.encoder(ref_obs).detach().repeat(21, 1)
    ref_floor = print_layers("the seed's network at its batch (3 frames encoded, 63 decoded)",
                             [(reference.coder.encoder, ref_obs), (reference.coder.decoder, ref_z)], repeats, peak)

    net_rate = ours["ours_net_flops"] / ours["ours_net"] / 1e9
    best_rate = ours["ours_net_flops"] / floor / 1e9
    print("\n== issue 18 item 2 targets ==")
    print(f"encoder+decoder at >= 50% of peak: {net_rate:.1f} / {peak:.1f} GFLOP/s = {net_rate / peak:.0%} "
          f"({'met' if net_rate >= 0.5 * peak else 'not met'}); the fastest torch kernel per layer, timed alone, "
          f"{best_rate / peak:.0%} (their sum is {floor / ours['ours_net']:.2f}x the networks' measured time)"
          f"{' (out of reach with these kernels)' if best_rate < 0.5 * peak else ''}")
    print(f"outside networks <= 15% of a step: {ours['outside_share']:.0%} "
          f"({'met' if ours['outside_share'] <= 0.15 else 'not met'})")
    best_ratio = seed["ref_step"] / ref_floor
    print(f">= 3x the seed per step on its network and batch: {seed['ref_step'] / seed['ours_step']:.2f}x per step, "
          f"{seed['per_flop']:.2f}x at equal FLOPs ({seed['ours_flops'] / seed['ref_flops']:.2f}x its FLOPs; "
          f"{'met' if seed['ref_step'] >= 3 * seed['ours_step'] else 'not met'}); best possible on the seed's own "
          f"network = its step / the floor of that network's layers = {best_ratio:.2f}x"
          f"{' (impossible)' if best_ratio < 3 else ''}")

    factors = env.sample_factors(4096, 0)
    fresh = GridWorld(size=5)
    t = timed({"render": lambda: env.render(factors), "draw": lambda: fresh._draw(factors),
               "loop": lambda: render_reference(env, factors)}, 5)
    ours_render, draw, ref_render = t["render"], t["draw"], t["loop"]
    print("\n== GridWorld rendering, batches of 4096 frames ==")
    print(f"cached render  {4096 / ours_render:12,.0f} frames/s  ({ref_render / ours_render:.1f}x the per-sample loop)")
    print(f"vectorised draw{4096 / draw:12,.0f} frames/s  ({ref_render / draw:.1f}x the per-sample loop)")
    print(f"per-sample loop{4096 / ref_render:12,.0f} frames/s")


if __name__ == "__main__":
    main()
