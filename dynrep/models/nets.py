"""Shared encoders and decoders, chosen from the environment's observation shape.

Images ``[C, H, W]`` get a stride-2 convolutional stack (kernel 4, padding 1, so
every layer halves the side: 64 -> 32 -> 16 -> 8 -> 4 with four layers); flat
vectors ``[D]`` get an MLP. Decoders mirror encoders and output logits.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _mlp(sizes: Sequence[int]) -> list[nn.Module]:
    """Linear layers between consecutive ``sizes`` with ReLU between (not after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return layers


def _check_image(shape: Sequence[int], channels: Sequence[int]) -> int:
    """Side after the conv stack; ValueError if the image does not fit it."""
    _, height, width = shape
    factor = 2 ** len(channels)
    if height != width or height % factor:
        raise ValueError(f"conv nets need square images whose side is divisible by 2**len(channels) = {factor}; "
                         f"got observation shape {tuple(shape)}")
    return height // factor


def build_encoder(obs_shape: Sequence[int], out_dim: int, channels: Sequence[int], hidden: int,
                  mlp_hidden: Sequence[int]) -> nn.Module:
    """Network ``[B, *obs_shape] float -> [B, out_dim]``.

    Images: conv(k4, s2, p1) with ``channels`` and ReLU, flatten, Linear ``hidden``, ReLU,
    Linear ``out_dim``. Vectors: MLP through ``mlp_hidden``.
    """
    if len(obs_shape) == 1:
        return nn.Sequential(*_mlp([obs_shape[0], *mlp_hidden, out_dim]))
    if len(obs_shape) != 3:
        raise ValueError(f"no encoder for observation shape {tuple(obs_shape)}; expected [C, H, W] or [D]")
    side = _check_image(obs_shape, channels)
    layers: list[nn.Module] = []
    for c_in, c_out in zip([obs_shape[0], *channels[:-1]], channels):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
    layers += [nn.Flatten(), *_mlp([channels[-1] * side * side, hidden, out_dim])]
    return nn.Sequential(*layers)


class _Unflatten(nn.Module):
    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape)


def build_decoder(latent_dim: int, obs_shape: Sequence[int], channels: Sequence[int], hidden: int,
                  mlp_hidden: Sequence[int]) -> nn.Module:
    """Network ``[B, latent_dim] -> [B, *obs_shape]`` logits, the mirror of :func:`build_encoder`."""
    if len(obs_shape) == 1:
        return nn.Sequential(*_mlp([latent_dim, *reversed(mlp_hidden), obs_shape[0]]))
    if len(obs_shape) != 3:
        raise ValueError(f"no decoder for observation shape {tuple(obs_shape)}; expected [C, H, W] or [D]")
    side = _check_image(obs_shape, channels)
    rev = list(reversed(channels))
    layers: list[nn.Module] = [*_mlp([latent_dim, hidden, rev[0] * side * side]), nn.ReLU(),
                               _Unflatten((rev[0], side, side))]
    for i, (c_in, c_out) in enumerate(zip(rev, [*rev[1:], obs_shape[0]])):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
        if i < len(rev) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
