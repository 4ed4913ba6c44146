"""Streaming and finite trajectory datasets."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from dynrep import GridWorld
from dynrep.data.loaders import TrajectoryDataset, TrajectoryStream
from dynrep.data.trajectory import Trajectory


def first(loader, n):
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            return out


def test_stream_is_seeded_and_distinct_per_rank_and_epoch():
    env = GridWorld(size=3, image_size=16)
    a = first(TrajectoryStream(env, 4, 2, seed=1, rank=0), 2)
    b = first(TrajectoryStream(env, 4, 2, seed=1, rank=0), 2)
    c = first(TrajectoryStream(env, 4, 2, seed=1, rank=1), 2)
    assert a[0].obs.shape == (4, 3, 3, 16, 16) and a[0].obs.dtype == torch.uint8
    assert all(torch.equal(x.factors, y.factors) for x, y in zip(a, b))
    assert not torch.equal(a[0].factors, c[0].factors)
    stream = TrajectoryStream(env, 4, 2, seed=1, rank=0)
    stream.set_epoch(1)
    assert not torch.equal(first(stream, 1)[0].factors, a[0].factors)


def test_stream_with_workers_gives_each_worker_its_own_data():
    env = GridWorld(size=5, image_size=16)
    loader = DataLoader(TrajectoryStream(env, 8, 1, seed=0, rank=0), batch_size=None, num_workers=2)
    w0, w1 = first(loader, 2)  # DataLoader alternates workers
    assert isinstance(w0, Trajectory) and w0.obs.dtype == torch.uint8
    assert not torch.equal(w0.factors, w1.factors)
    again = first(DataLoader(TrajectoryStream(env, 8, 1, seed=0, rank=0), batch_size=None, num_workers=2), 2)
    assert torch.equal(again[0].factors, w0.factors) and torch.equal(again[1].factors, w1.factors)


def test_set_epoch_reaches_persistent_workers():
    env = GridWorld(size=5, image_size=16)
    stream = TrajectoryStream(env, 8, 1, seed=0, rank=0)
    loader = DataLoader(stream, batch_size=None, num_workers=1, persistent_workers=True)
    epoch0 = first(loader, 2)
    stream.set_epoch(1)
    assert stream.epoch == 1
    epoch1 = first(loader, 2)  # the same worker process, started during epoch 0
    fresh = first(DataLoader(stream, batch_size=None, num_workers=1), 2)
    assert all(torch.equal(a.factors, b.factors) for a, b in zip(epoch1, fresh))
    assert not any(torch.equal(a.factors, b.factors) for a, b in zip(epoch0, epoch1))
    stream.set_epoch(0)
    assert all(torch.equal(a.factors, b.factors) for a, b in zip(first(loader, 2), epoch0))
    with pytest.raises(ValueError, match="epoch must be >= 0, got -1"):
        stream.set_epoch(-1)


def test_finite_dataset_round_trip():
    env = GridWorld(size=3, image_size=16)
    data = TrajectoryDataset.sample(env, num_episodes=5, length=2, seed=3)
    assert len(data) == 5 and data[4].obs.shape == (1, 3, 3, 16, 16)
    assert torch.equal(data[-1].factors, data[4].factors)
    batches = list(DataLoader(data, batch_size=2, collate_fn=Trajectory.collate))
    assert [b.batch_size for b in batches] == [2, 2, 1]
    assert torch.equal(torch.cat([b.factors for b in batches]), data.trajectories.factors)
    with pytest.raises(IndexError, match="episode index 5 out of range for 5 episodes"):
        data[5]
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        TrajectoryStream(env, 0, 2)
