"""Environment-level sampling for metrics: draw observations with their factors and encode them in batches.

A *representation function* maps a batch of observations ``[B, *obs_shape]`` (a torch tensor
in the environment's dtype, on ``device``) to codes ``[B, D]`` (tensor or array), e.g.
``model.representation``. :class:`Sampler` owns the random stream, so a metric computed
twice with the same seed sees the same observations.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from dynrep.checks import check_int
from dynrep.envs.base import Environment

#: Observations ``[B, *obs_shape]`` -> codes ``[B, D]``; deterministic (metrics read the encoder mean).
RepresentationFn = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]


class Sampler:
    """Observations of ``env`` encoded by ``representation_fn``, ``batch_size`` at a time, without gradients.

    Args:
        env: any :class:`~dynrep.envs.base.Environment`.
        representation_fn: observations ``[B, *obs_shape]`` -> codes ``[B, D]``.
        seed: seeds the numpy Generator every draw of this sampler uses.
        batch_size: observations per call of ``representation_fn``.
        device: where observations are moved before encoding (default: left on the CPU).
    """

    def __init__(self, env: Environment, representation_fn: RepresentationFn, *, seed: int = 0,
                 batch_size: int = 256, device: torch.device | str | None = None):
        if not callable(representation_fn):
            raise TypeError(f"representation_fn must be callable (observations -> codes), got "
                            f"{type(representation_fn).__name__}")
        self.env = env
        self.representation_fn = representation_fn
        self.rng = np.random.default_rng(check_int("seed", seed, 0))
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.device = device

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

    @torch.no_grad()
    def encode(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Codes ``[N, D]`` float64 of observations ``[N, *obs_shape]``, encoded ``batch_size`` at a time."""
        obs = torch.as_tensor(obs)
        chunks = []
        for start in range(0, len(obs), self.batch_size):
            batch = obs[start:start + self.batch_size]
            codes = self.representation_fn(batch if self.device is None else batch.to(self.device))
            codes = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
            if codes.ndim != 2 or codes.shape[0] != len(batch):
                raise ValueError(f"representation_fn must return codes of shape [{len(batch)}, num_codes], "
                                 f"got {codes.shape}")
            chunks.append(codes.astype(np.float64))
        return np.concatenate(chunks) if chunks else np.zeros((0, 0))

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
        codes = np.concatenate([self.encode(self.env.render(unique[start:start + self.batch_size]))
                                for start in range(0, len(unique), self.batch_size)])
        return codes[inverse.reshape(-1)]

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` observations drawn as the environment draws episode starts (uniform factors for factor
        worlds, dataset rows for recorded ones), encoded: ``(codes [n, D], factors [n, K])``."""
        n = check_int("num_samples", n, 1)
        codes, factors = [], []
        for start in range(0, n, self.batch_size):
            batch = self.env.sample_trajectories(min(self.batch_size, n - start), 0, self.rng)
            codes.append(self.encode(batch.obs[:, 0]))
            factors.append(batch.factors[:, 0].numpy())
        return np.concatenate(codes), np.concatenate(factors)

    def sample_transitions(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` random one-action transitions, encoded: ``(codes [n, D], next_codes [n, D], actions [n])``."""
        n = check_int("num_samples", n, 1)
        if not self.env.actions.discrete or self.env.actions.n == 0:
            raise ValueError(f"{type(self.env).__name__} has no discrete actions to fit one map per action")
        codes, next_codes, actions = [], [], []
        for start in range(0, n, self.batch_size):
            batch = self.env.sample_trajectories(min(self.batch_size, n - start), 1, self.rng)
            codes.append(self.encode(batch.obs[:, 0]))
            next_codes.append(self.encode(batch.obs[:, 1]))
            actions.append(batch.actions[:, 0].numpy())
        return np.concatenate(codes), np.concatenate(next_codes), np.concatenate(actions)

    def sample_factors(self, n: int) -> np.ndarray:
        """``n`` uniformly random factor vectors ``[n, K]`` from this sampler's stream."""
        return self.env.sample_factors(n, self.rng)

    def integers(self, high: int, size: int) -> np.ndarray:
        """``size`` random integers in ``[0, high)`` from this sampler's stream."""
        return self.rng.integers(0, high, size=size)
