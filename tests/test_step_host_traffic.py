"""GPU readiness, tested without a GPU: every model's training step (its loss and backward pass) queues its work
without making the host wait for the device.

The step runs on torch's ``meta`` device, whose tensors have shapes but no values: any host read of a device
tensor (``.item()``, ``.cpu()``, ``.tolist()``, ``.numpy()``, ``int()``, ``float()``, ``bool()``, ``nonzero``,
a boolean-mask index) raises there, as it would make the host wait on CUDA. :class:`SynchronousCopies` flags
the host -> device copies that CUDA makes synchronous (a Python number or host tensor copied to the device
without ``non_blocking``: ``torch.tensor(..., device=)``, ``new_tensor``, ``as_tensor``, ``.to(device)``,
``copy_``). The batch comes from the trainer's path (``Trajectory.to``), as on a GPU.
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch.overrides import TorchFunctionMode

from test_training_precision import _zoo_learner
from dynrep import list_models

#: Training steps each loss runs at: the first, and one past every warm-up, ramp and stage of the defaults.
STEPS = (0, 10**6)
#: Options with a loss path of their own.
OPTIONS = {"beta_vae": [{"capacity": True}], "rotation": [{"max_action_magnitude": 3}],
           "liegroup_vae": [{"capacity_max": 1.0}], "vae": [{"reconstruction": "normal", "learn_decoder_var": True}],
           "mechanism_sparsity": [{"hard_masks": True, "mask_samples": "per_batch", "reg_z": 0.1, "reg_a": 0.1}],
           "cascade_vae": [{"cascade_schedule": "lils"}]}
CASES = [(name, {}) for name in list_models()] + [(name, o) for name, opts in OPTIONS.items() for o in opts]


def _device_of(value) -> torch.device | None:
    if isinstance(value, torch.Tensor):
        return value.device
    if isinstance(value, (torch.device, str)):
        return torch.device(value)
    return None


def _synchronous_copy(func, args, kwargs) -> bool:
    """Whether the call copies host data to a device without ``non_blocking`` (a wait for the device on CUDA)."""
    if func in (torch.tensor, torch.as_tensor, torch.Tensor.new_tensor):
        data = args[1] if func is torch.Tensor.new_tensor else args[0]
        target = kwargs.get("device") or (args[0].device if func is torch.Tensor.new_tensor else None)
        source = data.device if isinstance(data, torch.Tensor) else torch.device("cpu")
        return target is not None and torch.device(target).type != "cpu" and source.type == "cpu"
    if func is torch.Tensor.to:
        targets = [d for d in map(_device_of, [*args[1:], kwargs.get("device")]) if d is not None]
        non_blocking = kwargs.get("non_blocking", False) or any(a is True for a in args[1:])
        return (args[0].device.type == "cpu" and any(t.type != "cpu" for t in targets)) and not non_blocking
    if func is torch.Tensor.copy_:
        non_blocking = kwargs.get("non_blocking", False) or (len(args) > 2 and args[2] is True)
        return args[0].device.type != "cpu" and args[1].device.type == "cpu" and not non_blocking
    return False


class SynchronousCopies(TorchFunctionMode):
    """Records (:attr:`calls`) every host -> device copy that CUDA would make synchronous."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _synchronous_copy(func, args, kwargs):
            self.calls.append(getattr(func, "__name__", repr(func)))
        return func(*args, **kwargs)


@contextlib.contextmanager
def meta_autocast(monkeypatch):
    """``torch.autocast`` accepts no ``"meta"`` device: the models' ``autocast(device.type, enabled=False)``
    blocks (float32 rotations) get the CPU's instead, which changes nothing for meta tensors."""
    real = torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda device_type, *a, **k: real(
        "cpu" if device_type == "meta" else device_type, *a, **k))
    yield


def unreadable_step(learner, step: int) -> list[str]:
    """The model's loss and backward pass on the meta device at ``step``; returns the synchronous copies."""
    batch = learner.trainer.sample_batch().to("meta")
    model = learner.model.to("meta").train()
    with torch.random.fork_rng(devices=[]), SynchronousCopies() as copies:
        out = model.loss(batch, step, None)  # no generator exists on meta: the noise is drawn without values
        out.total.backward()
    assert out.total.device.type == "meta"
    return copies.calls


@pytest.mark.parametrize("name, options", CASES, ids=[n + "".join(f"-{k}" for k in o) for n, o in CASES])
def test_the_step_needs_no_value_from_the_device(name, options, monkeypatch, one_thread):
    with meta_autocast(monkeypatch):
        for step in STEPS:
            learner = _zoo_learner(name, **options)
            if name == "cascade_vae" and step >= learner.model.config.discrete_start:
                # Inherent: the balanced category assignment is an exact LP solved on the host (one read a step).
                with pytest.raises(NotImplementedError, match="meta"):
                    unreadable_step(learner, step)
                continue
            assert unreadable_step(learner, step) == [], f"{name} at step {step} copies host data synchronously"


def test_the_checks_catch_reads_and_synchronous_copies():
    x = torch.ones(3, device="meta")
    for read in (lambda: x.sum().item(), lambda: x.cpu(), lambda: int(x[0]), lambda: bool(x.all()), lambda: x[x > 0]):
        with pytest.raises((RuntimeError, NotImplementedError)):
            read()
    with SynchronousCopies() as copies:
        x.new_tensor(2.0), torch.tensor([1.0], device="meta"), torch.as_tensor((1.0,), device="meta")
        torch.ones(2).to("meta"), x.copy_(torch.ones(3))
        torch.ones(2).to("meta", non_blocking=True), x.new_full((), 2.0), torch.as_tensor(x), torch.ones(2).to("cpu")
    assert copies.calls == ["new_tensor", "tensor", "as_tensor", "to", "copy_"]
