"""Torch datasets of trajectories: an endless seeded stream from any environment, and a finite set.

Observations stay uint8 (as the environment renders them) until they reach the model's device.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class TrajectoryStream(IterableDataset):
    """Endless batches of random-action episodes from ``env``.

    Each (epoch, rank, worker) draws from its own generator seeded with
    ``[seed, epoch, rank, worker]``, so DataLoader workers and DDP ranks never repeat
    each other's data and a run is reproducible. Use with ``DataLoader(stream,
    batch_size=None, num_workers=...)``: every item is already a :class:`Trajectory`
    with ``obs [batch_size, length+1, *obs_shape]``.

    The epoch lives in shared memory, so :meth:`set_epoch` reaches DataLoader workers that were started
    before it (``persistent_workers=True``): each new iteration reads it.
    """

    def __init__(self, env, batch_size: int, length: int, *, seed: int = 0, max_magnitude: int = 1,
                 rank: int | None = None):
        self.env = env
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.length = check_int("length", length, 0)
        self.seed = check_int("seed", seed, 0)
        self.max_magnitude = check_int("max_magnitude", max_magnitude, 1)
        self.rank = rank
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch the next iteration draws (see :meth:`set_epoch`)."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Start a different (still reproducible) stream, as DistributedSampler.set_epoch does."""
        self._epoch.fill_(check_int("epoch", epoch, 0))

    def __iter__(self):
        info = get_worker_info()
        rank = _rank() if self.rank is None else self.rank
        rng = np.random.default_rng([self.seed, self.epoch, rank, 0 if info is None else info.id])
        while True:
            yield self.env.sample_trajectories(self.batch_size, self.length, rng, self.max_magnitude)


class TrajectoryDataset(Dataset):
    """A fixed set of episodes (e.g. a held-out split): item ``i`` is episode ``i`` as a batch of one.

    Use ``DataLoader(dataset, batch_size=B, collate_fn=Trajectory.collate)``.
    """

    def __init__(self, trajectories: Trajectory):
        self.trajectories = trajectories

    @classmethod
    def sample(cls, env, num_episodes: int, length: int, seed: int = 0) -> "TrajectoryDataset":
        """``num_episodes`` random episodes of ``length`` actions drawn once with ``seed``."""
        return cls(env.sample_trajectories(num_episodes, length, np.random.default_rng(seed)))

    def __len__(self) -> int:
        return self.trajectories.batch_size

    def __getitem__(self, index: int) -> Trajectory:
        t = self.trajectories
        if not -len(self) <= index < len(self):
            raise IndexError(f"episode index {index} out of range for {len(self)} episodes")
        i = slice(index % len(self), index % len(self) + 1)
        return Trajectory(obs=t.obs[i], actions=t.actions[i], factors=t.factors[i],
                          magnitudes=None if t.magnitudes is None else t.magnitudes[i])
