"""Environment-level sampling for metrics: draw observations with their factors and encode them in batches.

A *representation function* maps a batch of observations ``[B, *obs_shape]`` (a torch tensor
in the environment's dtype, on ``device``) to codes ``[B, D]`` (tensor or array), e.g.
``model.representation``. :class:`Sampler` owns the random stream, so a metric computed
twice with the same seed sees the same observations.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from dynrep.checks import check_int
from dynrep.data.devices import to_device
from dynrep.envs.base import Environment

#: Observations ``[B, *obs_shape]`` -> codes ``[B, D]``; deterministic (metrics read the encoder mean).
RepresentationFn = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]

#: Share of the free memory (host RAM; on CUDA the device's) that one automatically sized batch may use.
MEMORY_SHARE = 0.25
#: Largest automatic batch on a CPU, whatever the number of torch threads. There the per-image cost of a conv
#: encoder grows with the batch once its activations leave the cores' caches (benchmarks/metrics_throughput.py,
#: the Burgess coder on 64x64x3, 2026-12-04, load 0.8: images/s at batches 32 / 64 / 96 / 128 / 192 / 256 were
#: 13,400 / 14,900 / 15,500 / 15,700 / 10,100 / 8,700 at two threads and 7,700 / 7,900 / 8,200 / 8,000 / 4,900 /
#: 4,500 at one: the fall after 128 does not move with the threads), so the batch that fits memory is not the
#: fastest; on CUDA the batch is as large as fits.
CPU_BATCH = 128
#: Episodes drawn from the environment per call when the Sampler sizes its encode batches itself: fixed, so that
#: what is drawn (some worlds interleave start and action draws per call) never depends on the machine.
DRAW_BATCH = 256


def free_memory(device: torch.device | str | None = None) -> int:
    """Bytes free for new allocations on ``device``: ``torch.cuda.mem_get_info`` on CUDA, the kernel's
    ``MemAvailable`` (else the free pages) on the host."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


#: Working bytes of one encoder call per float32 byte of its observations: the float copy of the batch, and the
#: largest layer's input and output (a conv stack's first layer outputs up to ~3x its input: the Burgess coder
#: 32x32x32 floats from 64x64x3), which an inference pass holds at once.
WORKING_FACTOR = 8


def auto_batch_size(obs_shape: tuple[int, ...], device: torch.device | str | None = None) -> int:
    """The largest batch of observations ``obs_shape`` whose working memory (:data:`WORKING_FACTOR` times its
    float32 size) fits :data:`MEMORY_SHARE` of :func:`free_memory` on ``device``; on a CPU at most
    :data:`CPU_BATCH`."""
    fits = int(MEMORY_SHARE * free_memory(device)) // (WORKING_FACTOR * 4 * int(np.prod(obs_shape)))
    if torch.device("cpu" if device is None else device).type == "cpu":
        fits = min(fits, CPU_BATCH)
    return max(1, fits)


class Sampler:
    """Observations of ``env`` encoded by ``representation_fn``, ``batch_size`` at a time, without gradients.

    Args:
        env: any :class:`~dynrep.envs.base.Environment`.
        representation_fn: observations ``[B, *obs_shape]`` -> codes ``[B, D]``.
        seed: seeds the numpy Generator every draw of this sampler uses.
        batch_size: observations per call of ``representation_fn`` and per draw from the environment; None:
            encode :func:`auto_batch_size` of the environment's observations on ``device`` at a time (the largest
            batch that fits the free memory; on a CPU at most :data:`CPU_BATCH`)
            and draw :data:`DRAW_BATCH` at a time, so that the draws, and the scores, are the same on every
            machine.
        device: where observations are moved before encoding (default: left on the CPU).
    """

    def __init__(self, env: Environment, representation_fn: RepresentationFn, *, seed: int = 0,
                 batch_size: int | None = None, device: torch.device | str | None = None):
        if not callable(representation_fn):
            raise TypeError(f"representation_fn must be callable (observations -> codes), got "
                            f"{type(representation_fn).__name__}")
        self.env = env
        self.representation_fn = representation_fn
        self.rng = np.random.default_rng(check_int("seed", seed, 0))
        self._batch_size = None if batch_size is None else check_int("batch_size", batch_size, 1)
        self.draw_size = DRAW_BATCH if batch_size is None else batch_size
        self.device = device

    @property
    def batch_size(self) -> int:
        """Observations per call of the representation function."""
        if self._batch_size is None:
            self._batch_size = auto_batch_size(self.env.observation_shape, self.device)
        return self._batch_size

    def require_discrete(self, metric: str) -> None:
        """ValueError unless every factor of the environment is discrete with at least two values."""
        sizes = self.env.factors.sizes
        if not self.env.factors.discrete:
            raise ValueError(f"{metric} needs discrete factors (class indices); {type(self.env).__name__} has "
                             f"continuous factors {list(self.env.factors.names)}: use mcc, dci(mode=...) or irs")
        small = [name for name, size in zip(self.env.factors.names, sizes) if size < 2]
        if small:
            raise ValueError(f"{metric}: factor {small[0]!r} of {type(self.env).__name__} has a single value; "
                             "build the environment without it (or with more values)")

    def encode(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Codes ``[N, D]`` float64 of observations ``[N, *obs_shape]``, encoded ``batch_size`` at a time."""
        obs = torch.as_tensor(obs)
        return self._encode_batches(obs[start:start + self.batch_size] for start in range(0, len(obs), self.batch_size))

    @torch.inference_mode()
    def _encode_batches(self, batches: Iterable[np.ndarray | torch.Tensor]) -> np.ndarray:
        """Codes ``[N, D]`` float64 of observation batches ``[B_i, *obs_shape]`` (N = the sum of the B_i).

        Each batch's codes are written into a buffer on the encoder's device, moved to the host once: no
        per-batch host copy or synchronisation, no concatenation."""
        parts = []
        for batch in batches:
            batch = torch.as_tensor(batch)
            codes = self.representation_fn(batch if self.device is None else to_device(batch, self.device))
            codes = torch.as_tensor(codes)
            if codes.ndim != 2 or codes.shape[0] != len(batch):
                raise ValueError(f"representation_fn must return codes of shape [{len(batch)}, num_codes], "
                                 f"got {tuple(codes.shape)}")
            parts.append(codes)
        if not parts:
            return np.zeros((0, 0))
        out = torch.empty((sum(len(p) for p in parts), parts[0].shape[1]), dtype=torch.float64, device=parts[0].device)
        torch.cat(parts, out=out)
        return out.cpu().numpy()

    def encode_factors(self, factors: np.ndarray) -> np.ndarray:
        """Codes ``[N, D]`` of the observations of factor vectors ``[N, K]``.

        Each distinct factor vector is rendered and encoded once (``batch_size`` at a time) and its
        code shared by its repeats: exact for a deterministic representation (the encoder mean), and
        what makes the FactorVAE / β-VAE scores cheap on small worlds, whose millions of draws repeat
        a few states."""
        if self.env.factors.discrete:  # a 1-D unique of the states' indices is 40-60x faster than unique(axis=0)
            _, first, inverse = np.unique(self.env.factors.to_index(factors), return_index=True, return_inverse=True)
            unique = factors[first]
        else:
            unique, inverse = np.unique(factors, axis=0, return_inverse=True)
        codes = self._encode_batches(self.env.render(unique[start:start + self.batch_size])
                                     for start in range(0, len(unique), self.batch_size))
        return codes[inverse.reshape(-1)]

    def _draws(self, n: int, length: int) -> Iterator:
        """``n`` random episodes of ``length`` actions, :attr:`draw_size` per call of the environment."""
        for start in range(0, n, self.draw_size):
            yield self.env.sample_trajectories(min(self.draw_size, n - start), length, self.rng)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` observations drawn as the environment draws episode starts (uniform factors for factor
        worlds, dataset rows for recorded ones), encoded: ``(codes [n, D], factors [n, K])``."""
        n = check_int("num_samples", n, 1)
        factors = []

        def batches() -> Iterator[torch.Tensor]:
            for batch in self._draws(n, 0):
                factors.append(batch.factors[:, 0].numpy())
                obs = batch.obs[:, 0]
                yield from obs.split(self.batch_size)

        codes = self._encode_batches(batches())
        return codes, np.concatenate(factors)

    def sample_transitions(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` random one-action transitions, encoded: ``(codes [n, D], next_codes [n, D], actions [n])``, brought
        to the host in one copy."""
        n = check_int("num_samples", n, 1)
        if not self.env.actions.discrete or self.env.actions.n == 0:
            raise ValueError(f"{type(self.env).__name__} has no discrete actions to fit one map per action")
        sizes, actions = [], []

        def batches() -> Iterator[torch.Tensor]:  # each draw's first frames, then its second ones
            for batch in self._draws(n, 1):
                sizes.extend([batch.batch_size] * 2)
                actions.append(batch.actions[:, 0].numpy())
                yield from batch.obs[:, 0].split(self.batch_size)
                yield from batch.obs[:, 1].split(self.batch_size)

        parts = np.split(self._encode_batches(batches()), np.cumsum(sizes)[:-1])
        return np.concatenate(parts[0::2]), np.concatenate(parts[1::2]), np.concatenate(actions)

    def sample_factors(self, n: int) -> np.ndarray:
        """``n`` uniformly random factor vectors ``[n, K]`` from this sampler's stream."""
        return self.env.sample_factors(n, self.rng)

    def integers(self, high: int, size: int) -> np.ndarray:
        """``size`` random integers in ``[0, high)`` from this sampler's stream."""
        return self.rng.integers(0, high, size=size)
