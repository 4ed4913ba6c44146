"""The one batch type every model consumes."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from dynrep.data.devices import to_device


@dataclass(frozen=True)
class Trajectory:
    """A batch of episodes.

    Attributes:
        obs: observations ``[B, T+1, *obs_shape]`` (uint8 images or float vectors).
        actions: ``[B, T]`` int64 for discrete actions, ``[B, T, A]`` float for continuous.
        factors: ground-truth factors ``[B, T+1, K]``.
        magnitudes: optional ``[B, T]`` int64 action magnitudes (None means all 1).

    A static dataset is the case ``T = 0``.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    factors: torch.Tensor
    magnitudes: torch.Tensor | None = None
    #: Not a field: the factors a batch made by :meth:`to` was moved from (``replace`` and ``collate`` drop it).
    _host_factors = None

    def __post_init__(self):
        batch, steps = self.obs.shape[0], self.obs.shape[1] - 1
        if self.actions.shape[:2] != (batch, steps):
            raise ValueError(f"Trajectory: actions must start with shape ({batch}, {steps}), "
                             f"got {tuple(self.actions.shape)}")
        if self.factors.shape[:2] != (batch, steps + 1):
            raise ValueError(f"Trajectory: factors must start with shape ({batch}, {steps + 1}), "
                             f"got {tuple(self.factors.shape)}")
        if self.magnitudes is not None and self.magnitudes.shape != (batch, steps):
            raise ValueError(f"Trajectory: magnitudes must have shape ({batch}, {steps}), "
                             f"got {tuple(self.magnitudes.shape)}")

    @property
    def batch_size(self) -> int:
        return self.obs.shape[0]

    @property
    def length(self) -> int:
        """Number of actions T per episode."""
        return self.obs.shape[1] - 1

    def to(self, device: torch.device | str) -> "Trajectory":
        """Copy of the batch with every tensor moved to ``device`` without making the host wait
        (:func:`~dynrep.data.devices.to_device`: pinned first for CUDA). The copy keeps this batch's host
        factors for :meth:`host_factors`."""
        moved = replace(self, **{f.name: to_device(getattr(self, f.name), device)
                                 for f in fields(self) if getattr(self, f.name) is not None})
        object.__setattr__(moved, "_host_factors", self._host_copy())
        return moved

    def host_factors(self) -> torch.Tensor:
        """``factors [B, T+1, K]`` on the CPU without waiting for a device: the tensor :meth:`to` moved this
        batch's factors from, or ``factors`` on the CPU. Otherwise (a batch made on a device) ``factors.cpu()``,
        which waits."""
        host = self._host_copy()
        return self.factors.cpu() if host is None else host

    def _host_copy(self) -> torch.Tensor | None:
        """The factors on the CPU if this batch has them without a copy from a device, else None."""
        if self._host_factors is not None:
            return self._host_factors
        return self.factors if self.factors.device.type == "cpu" else None

    @staticmethod
    def collate(batches: list["Trajectory"]) -> "Trajectory":
        """Concatenate trajectories of equal length along the batch axis."""
        if not batches:
            raise ValueError("Trajectory.collate needs at least one batch")
        has_magnitudes = [b.magnitudes is not None for b in batches]
        if any(has_magnitudes) and not all(has_magnitudes):
            raise ValueError("Trajectory.collate: either every batch has magnitudes or none has")
        return Trajectory(
            obs=torch.cat([b.obs for b in batches]),
            actions=torch.cat([b.actions for b in batches]),
            factors=torch.cat([b.factors for b in batches]),
            magnitudes=torch.cat([b.magnitudes for b in batches]) if all(has_magnitudes) else None,
        )
