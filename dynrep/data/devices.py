"""Host <-> device traffic that does not make the host wait for a device (CUDA): what a training step may do.

On CUDA a copy from pageable host memory is synchronous even with ``non_blocking=True``, and reading a device
tensor's values on the host (``.item()``, ``.cpu()``, ``int()``, ``bool()``, a boolean-mask index) waits for
every kernel queued before it.
"""
from __future__ import annotations

import torch


def reads_free(value: torch.Tensor | torch.Generator) -> bool:
    """Whether reading ``value`` (a tensor, or a generator's draws) on the host costs no wait for a device: it
    is on the CPU."""
    return value.device.type == "cpu"


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``, copied without making the host wait: a host tensor bound for CUDA is pinned
    first (a copy from pageable memory would be synchronous), then copied with ``non_blocking``. ``tensor``
    itself when it is on ``device`` already."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
