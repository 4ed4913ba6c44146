"""The input contract of the public API: observations, latents and actions, checked where they come in.

Image worlds (``env.observation_dtype`` uint8) take pixels as uint8 (0..255), as any other integer dtype
with values in 0..255 (read as the same pixels), or as floats in [0, 1] (intensities, what decoders give);
float images in 0..255, negative pixels or pixels above 255 are refused, never rescaled by guesswork.
Vector worlds (float observations, e.g. toy-nn) take any finite real numbers. Discrete actions are integers
in ``[0, env.actions.n)``; latents are finite reals of the model's latent size.
"""
from __future__ import annotations

import numpy as np
import torch

from dynrep.envs.base import Environment


def _tensor(name: str, x) -> torch.Tensor:
    """``x`` as a tensor; unsigned integers wider than 8 bits (few torch ops take them) as int64."""
    if not isinstance(x, torch.Tensor):
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numbers (an array or tensor), got dtype {array.dtype}")
        if array.dtype.kind == "u" and array.dtype.itemsize > 1:
            if array.dtype.itemsize == 8:  # clipping changes only values that are invalid pixels anyway
                array = np.minimum(array, np.uint64(np.iinfo(np.int64).max))
            array = array.astype(np.int64)
        x = torch.from_numpy(array)
    if x.dtype in (torch.uint16, torch.uint32, torch.uint64):
        x = x.to(torch.int64)
    return x


def _range(x: torch.Tensor) -> str:
    return f"{x.min().item():g}..{x.max().item():g}"


def _check_finite(name: str, x: torch.Tensor) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def as_observations(obs, env: Environment, device: torch.device, name: str = "obs") -> torch.Tensor:
    """Observations ``[B, *env.observation_shape]`` (numpy or torch) checked against the contract above and
    moved to ``device``: uint8 (integer pixels) or float32 (intensities in [0, 1]) for image worlds, float32
    for vector worlds. Raises ValueError naming ``name``, what was given and what is allowed."""
    x = _tensor(name, obs)
    shape = tuple(env.observation_shape)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"{name} must have shape [B, {', '.join(map(str, shape))}], got {list(x.shape)}")
    if x.dtype == torch.bool:
        raise ValueError(f"{name} must be numbers, got a bool tensor; pass uint8 pixels (0..255)")
    _check_finite(name, x)
    if np.dtype(env.observation_dtype) != np.uint8:  # vector observations: real numbers
        return x.to(device=device, dtype=torch.float32)
    if x.numel() == 0:
        return x.to(device=device, dtype=torch.uint8)
    if x.is_floating_point():
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name}: float images must be intensities in [0, 1], got values in {_range(x)}; "
                             "pass uint8 pixels (0..255) or divide by 255")
        return x.to(device=device, dtype=torch.float32)
    if x.dtype != torch.uint8 and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"{name}: integer images must be pixels in 0..255, got values in {_range(x)}")
    return x.to(device=device, dtype=torch.uint8)


def as_actions(actions, env: Environment, batch: int, device: torch.device, name: str = "actions") -> torch.Tensor:
    """Discrete actions ``[B, T]`` as int64 on ``device``: integers (any integer dtype) in
    ``[0, env.actions.n)`` for ``batch`` episodes; floats, bools and out-of-range values are refused."""
    if not env.actions.discrete:
        raise ValueError(f"{type(env).__name__} has continuous actions; rollout takes discrete action indices")
    x = _tensor(name, actions)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be integer action indices in [0, {env.actions.n}), got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] != batch:
        raise ValueError(f"{name} must have shape [B={batch}, T], got {list(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() >= env.actions.n):
        raise ValueError(f"{name} must be in [0, {env.actions.n}) ({', '.join(env.actions.names)}), "
                         f"got values in {_range(x)}")
    return x.to(device=device, dtype=torch.int64)


def as_latents(z, size: int, device: torch.device, name: str = "z") -> torch.Tensor:
    """Latents ``[B, size]`` as float32 on ``device``; raises ValueError on another shape or non-finite values."""
    x = _tensor(name, z)
    if x.ndim != 2 or x.shape[1] != size:
        raise ValueError(f"{name} must have shape [B, {size}] (the model's latent size), got {list(x.shape)}")
    _check_finite(name, x)
    return x.to(device=device, dtype=torch.float32)
