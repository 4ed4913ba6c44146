"""Circles and Simple: procedural grids of anti-aliased shapes on black (Lost-in-Latent-Space data).

The published files were made with an adapted Spriteworld renderer whose grid size
and sprite radius are not documented (specs/latent.md); here they are parameters,
with defaults of a 32 x 32 position grid, radius 5 px, 64 x 64 images.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dynrep.checks import check_int
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.registry import register_env

SHAPES = ("circle", "square")


class _Sprites(Environment):
    """A white shape at a ``grid x grid`` lattice of positions (values linspace(0, 1, grid), mapped
    to pixel centres with a margin of one radius); observations ``[1, S, S]`` uint8."""

    shapes: tuple[str, ...] = ("circle",)

    def __init__(self, grid: int = 32, radius: float = 5.0, image_size: int = 64):
        self.grid = check_int("grid", grid, 2)
        self.image_size = check_int("image_size", image_size, 8)
        if not 1.0 <= radius <= image_size / 4:
            raise ValueError(f"radius must be in [1, image_size/4 = {image_size / 4}] pixels, got {radius}")
        self.radius = float(radius)
        names, sizes = ["pos_x", "pos_y"], [self.grid, self.grid]
        if len(self.shapes) > 1:
            names.append("shape")
            sizes.append(len(self.shapes))
        self.factors = FactorSpace(tuple(names), tuple(sizes), (False,) * len(names))
        self.actions = ActionSpace.factor_shifts(self.factors)
        self.factor_values = [np.linspace(0.0, 1.0, self.grid)] * 2 + [np.arange(len(self.shapes))] * (len(names) > 2)
        self.observation_shape = (1, self.image_size, self.image_size)
        self.observation_dtype = np.dtype(np.uint8)

    def get_config(self) -> dict[str, Any]:
        return {"grid": self.grid, "radius": self.radius, "image_size": self.image_size}

    def _draw(self, factors: np.ndarray) -> np.ndarray:
        """Vectorised anti-aliased drawing: coverage = clip(edge distance + 0.5, 0, 1)."""
        centres = self.radius + factors[:, :2] / (self.grid - 1) * (self.image_size - 1 - 2 * self.radius)
        pixels = np.arange(self.image_size, dtype=np.float64)
        dx = pixels[None, None, :] - centres[:, 0, None, None]  # x = column
        dy = pixels[None, :, None] - centres[:, 1, None, None]  # y = row
        circle = np.clip(self.radius + 0.5 - np.sqrt(dx ** 2 + dy ** 2), 0.0, 1.0)
        if len(self.shapes) == 1:
            coverage = circle
        else:
            square = np.minimum(np.clip(self.radius + 0.5 - np.abs(dx), 0, 1),
                                np.clip(self.radius + 0.5 - np.abs(dy), 0, 1))
            coverage = np.where((factors[:, 2] == 0)[:, None, None], circle, square)
        return np.round(coverage * 255).astype(np.uint8)[:, None]

    def render(self, factors: np.ndarray) -> np.ndarray:
        return self._render_cached(self.factors.validate(factors), self._draw, self.image_size ** 2)


@register_env("circles")
class Circles(_Sprites):
    """One white disc; factors ``pos_x``, ``pos_y`` (clamped)."""


@register_env("simple")
class Simple(_Sprites):
    """A white disc or square; factors ``pos_x``, ``pos_y`` (clamped) and ``shape`` (circle, square)."""

    shapes = SHAPES
