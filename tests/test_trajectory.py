"""Trajectory: shape validation, collate, device moves."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dynrep.data import Trajectory


def make(batch=2, steps=3, obs_shape=(5,), magnitudes=False, offset=0):
    obs = torch.arange(batch * (steps + 1) * 5, dtype=torch.float32).view(batch, steps + 1, *obs_shape) + offset
    actions = torch.arange(batch * steps).view(batch, steps) + offset
    factors = torch.zeros(batch, steps + 1, 2, dtype=torch.int64) + offset
    mags = torch.ones(batch, steps, dtype=torch.int64) + offset if magnitudes else None
    return Trajectory(obs=obs, actions=actions, factors=factors, magnitudes=mags)


def test_properties():
    t = make(batch=2, steps=3)
    assert t.batch_size == 2
    assert t.length == 3
    assert make(batch=4, steps=0).length == 0


def test_shape_validation_names_the_field():
    obs = torch.zeros(2, 4, 5)
    with pytest.raises(ValueError, match=r"actions must start with shape \(2, 3\), got \(2, 4\)"):
        Trajectory(obs=obs, actions=torch.zeros(2, 4), factors=torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"actions must start with shape \(2, 3\), got \(3, 3\)"):
        Trajectory(obs=obs, actions=torch.zeros(3, 3), factors=torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"factors must start with shape \(2, 4\), got \(2, 3, 2\)"):
        Trajectory(obs=obs, actions=torch.zeros(2, 3), factors=torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match=r"magnitudes must have shape \(2, 3\), got \(2, 3, 1\)"):
        Trajectory(obs=obs, actions=torch.zeros(2, 3), factors=torch.zeros(2, 4, 2),
                   magnitudes=torch.ones(2, 3, 1))
    # Continuous actions [B, T, A] are allowed.
    assert Trajectory(obs=obs, actions=torch.zeros(2, 3, 6), factors=torch.zeros(2, 4, 2)).length == 3


def test_collate_concatenates_along_batch():
    a, b = make(batch=2), make(batch=3, offset=100)
    c = Trajectory.collate([a, b])
    assert c.batch_size == 5 and c.length == 3
    assert torch.equal(c.obs[:2], a.obs) and torch.equal(c.obs[2:], b.obs)
    assert torch.equal(c.actions[2:], b.actions)
    assert torch.equal(c.factors[:2], a.factors)
    assert c.magnitudes is None


def test_collate_with_magnitudes():
    c = Trajectory.collate([make(magnitudes=True), make(magnitudes=True, offset=1)])
    assert c.magnitudes.shape == (4, 3)
    assert c.magnitudes[:2].eq(1).all() and c.magnitudes[2:].eq(2).all()


def test_collate_errors():
    with pytest.raises(ValueError, match="at least one batch"):
        Trajectory.collate([])
    with pytest.raises(ValueError, match="either every batch has magnitudes or none"):
        Trajectory.collate([make(magnitudes=True), make()])
    with pytest.raises(RuntimeError):  # different lengths cannot be concatenated
        Trajectory.collate([make(steps=3), make(steps=2)])


def test_to_device_moves_every_tensor_and_keeps_values():
    t = make(magnitudes=True)
    moved = t.to("meta")
    for name in ("obs", "actions", "factors", "magnitudes"):
        assert getattr(moved, name).device.type == "meta"
        assert getattr(t, name).device.type == "cpu"  # the original is untouched
    same = t.to(torch.device("cpu"))
    assert isinstance(same, Trajectory)
    for name in ("obs", "actions", "factors", "magnitudes"):
        assert torch.equal(getattr(same, name), getattr(t, name))
    assert make().to("meta").magnitudes is None


def test_a_moved_batch_keeps_its_host_factors():
    t = make()
    moved = t.to("meta")
    assert moved.host_factors() is t.factors  # no copy back from the device (meta has no values to copy)
    assert moved.to("meta").host_factors() is t.factors
    assert t.host_factors() is t.factors
    with pytest.raises(NotImplementedError, match="meta"):  # made on the device: a copy from it
        Trajectory(moved.obs, moved.actions, moved.factors).host_factors()
    replaced = replace(moved, factors=moved.factors + 1)  # the host copy no longer describes it
    with pytest.raises(NotImplementedError, match="meta"):
        replaced.host_factors()


def test_moves_to_cuda_pin_the_host_tensors_first(monkeypatch):
    # From pageable memory a non_blocking copy to CUDA is synchronous: pinned first for CUDA, and only for it.
    pinned, copies = [], []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self) or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, device, non_blocking=False: copies.append(
        (torch.device(device).type, non_blocking)) or self)
    t = make(magnitudes=True)
    t.to("cuda")
    assert [id(x) for x in pinned] == [id(x) for x in (t.obs, t.actions, t.factors, t.magnitudes)]
    assert copies == [("cuda", True)] * 4
    pinned.clear(), copies.clear()
    t.to("cpu"), t.to(torch.device("meta"))
    assert pinned == [] and copies == [("cpu", True)] * 4 + [("meta", True)] * 4


def test_trajectory_is_frozen():
    t = make()
    with pytest.raises(AttributeError):
        t.obs = torch.zeros(1)
