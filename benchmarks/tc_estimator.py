"""β-TCVAE's minibatch estimator: dynrep's blocked form against the plain ``[B, B, D]`` autograd form.

Both compute ``log q(z_i)`` and every ``log q(z_i,d)`` by minibatch-weighted sampling and back-propagate a
random linear function of them; the plain form is the textbook one (``logsumexp`` over the broadcast
pairwise Gaussian log densities, autograd for the gradient), run in the same process on the same inputs.
Two input regimes:

* ``overlapping``: means N(0, 1), log-variances N(-1, 0.5²), as at initialisation;
* ``tight``: means N(0, 3²), log-variances -6, as after training; most pairwise exponents underflow,
  which is where torch's CPU ``exp`` slows down and dynrep's clamp at e^-80 pays off.

Prints the median time of forward + backward for each form, their ratio (plain / ours), and the largest
differences of values and gradients.

    python benchmarks/tc_estimator.py                 # batches 64 512 1024, 10 latents, 1 thread
    python benchmarks/tc_estimator.py --batches 512 --threads 2
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from dynrep.models.beta_tcvae import aggregate_log_densities, gaussian_log_density

DATASET_SIZE = 100_000


def plain(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference form: ``[B, B, D]`` pairwise log densities, ``torch.logsumexp``, autograd."""
    pairs = gaussian_log_density(z[:, None, :], mean[None], logvar[None])
    offset = math.log(DATASET_SIZE * z.shape[0])
    return torch.logsumexp(pairs.sum(-1), 1) - offset, torch.logsumexp(pairs, 1) - offset


def ours(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return aggregate_log_densities(z, mean, logvar, DATASET_SIZE, "mws")


def inputs(regime: str, batch: int, dims: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if regime == "overlapping":
        mean = torch.randn(batch, dims, generator=g)
        logvar = -1.0 + 0.5 * torch.randn(batch, dims, generator=g)
    else:
        mean = 3.0 * torch.randn(batch, dims, generator=g)
        logvar = torch.full((batch, dims), -6.0)
    z = mean + torch.randn(batch, dims, generator=g) * (0.5 * logvar).exp()
    return [t.requires_grad_() for t in (z, mean, logvar)]


def run(fn, tensors: list[torch.Tensor], weights: tuple[torch.Tensor, torch.Tensor], repeats: int):
    """Median seconds of forward + backward over ``repeats`` runs (after one warm-up), outputs, gradients."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        outputs = fn(*tensors)
        grads = torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, outputs)), tensors)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), outputs, grads


def max_difference(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512, 1024])
    parser.add_argument("--dims", type=int, default=10, help="latent dimensions D")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), D = {args.dims}, float32, forward + backward, "
          f"median of {args.repeats}")
    print(f"{'regime':12s} {'B':>5s} {'plain ms':>9s} {'ours ms':>8s} {'ratio':>6s} {'max |dvalue|':>13s} "
          f"{'max |dgrad|':>12s}")
    for regime in ("overlapping", "tight"):
        for batch in args.batches:
            tensors = inputs(regime, batch, args.dims)
            g = torch.Generator().manual_seed(1)
            weights = torch.randn(batch, generator=g), torch.randn(batch, args.dims, generator=g)
            t_plain, out_plain, grad_plain = run(plain, tensors, weights, args.repeats)
            t_ours, out_ours, grad_ours = run(ours, tensors, weights, args.repeats)
            print(f"{regime:12s} {batch:5d} {1e3 * t_plain:9.2f} {1e3 * t_ours:8.2f} {t_plain / t_ours:6.2f} "
                  f"{max_difference(out_plain, out_ours):13.2e} {max_difference(grad_plain, grad_ours):12.2e}",
                  flush=True)


if __name__ == "__main__":
    main()
