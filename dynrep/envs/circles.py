"""Circles, Simple and TwoShapes: procedural grids of anti-aliased shapes on black (Lost-in-Latent-Space data).

The published files were made with an adapted Spriteworld renderer that is not in the study's repository;
their grid sizes, sprite radius, shapes and colours are not documented (specs/latent.md). Here they are
parameters, with defaults of a 32 x 32 position grid, radius 5 px, 64 x 64 images for Circles and Simple.
TwoShapes keeps only what the study's splits need: its eight factor names, positions in [0, 1], and at
least four hue classes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dynrep.checks import check_int
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.registry import register_env

SHAPES = ("circle", "square")


def _check_geometry(grid: int, radius: float, image_size: int) -> tuple[int, float, int]:
    grid, image_size = check_int("grid", grid, 2), check_int("image_size", image_size, 8)
    if not 1.0 <= radius <= image_size / 4:
        raise ValueError(f"radius must be in [1, image_size/4 = {image_size / 4}] pixels, got {radius}")
    return grid, float(radius), image_size


def _coverage(positions: np.ndarray, square: np.ndarray, grid: int, radius: float, size: int) -> np.ndarray:
    """Anti-aliased coverage ``[N, size, size]`` in [0, 1] (clip(edge distance + 0.5, 0, 1)) of a disc, or a
    square where ``square [N]``, of ``radius`` px at lattice classes ``positions [N, 2]`` (x, y) of a
    ``grid x grid`` lattice mapped to pixel centres with a margin of one radius."""
    centres = radius + positions / (grid - 1) * (size - 1 - 2 * radius)
    pixels = np.arange(size, dtype=np.float64)
    dx = pixels[None, None, :] - centres[:, 0, None, None]  # x = column
    dy = pixels[None, :, None] - centres[:, 1, None, None]  # y = row
    circle = np.clip(radius + 0.5 - np.sqrt(dx ** 2 + dy ** 2), 0.0, 1.0)
    if not square.any():
        return circle
    box = np.minimum(np.clip(radius + 0.5 - np.abs(dx), 0, 1), np.clip(radius + 0.5 - np.abs(dy), 0, 1))
    return np.where(square[:, None, None], box, circle)


class _Sprites(Environment):
    """A white shape at a ``grid x grid`` lattice of positions (values linspace(0, 1, grid), mapped
    to pixel centres with a margin of one radius); observations ``[1, S, S]`` uint8."""

    shapes: tuple[str, ...] = ("circle",)

    def __init__(self, grid: int = 32, radius: float = 5.0, image_size: int = 64):
        self.grid, self.radius, self.image_size = _check_geometry(grid, radius, image_size)
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
        square = factors[:, 2] == 1 if len(self.shapes) > 1 else np.zeros(len(factors), dtype=bool)
        coverage = _coverage(factors[:, :2], square, self.grid, self.radius, self.image_size)
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


@register_env("two_shapes")
class TwoShapes(Environment):
    """Two coloured sprites on black, object 2 drawn over object 1; observations ``[3, S, S]`` uint8.

    Factors ``o1_px, o1_py, o1_shape, o1_hue, o2_px, o2_py, o2_shape, o2_hue`` (the study's names and order):
    positions on a ``grid x grid`` lattice (values linspace(0, 1, grid), clamped), shape circle or square and
    ``hues`` hues (values linspace(0, 1, hues, endpoint=False), HSV hue at full saturation and value), both
    cyclic. The study's TwoShapes file came from a renderer it does not publish, so this is a world on which its
    ``huecomb`` split and ``noverlap`` modifier are defined, not a copy of that file.
    """

    def __init__(self, grid: int = 8, hues: int = 4, radius: float = 5.0, image_size: int = 64):
        self.grid, self.radius, self.image_size = _check_geometry(grid, radius, image_size)
        self.hues = check_int("hues", hues, 4)  # huecomb compares hue classes with 2
        names = tuple(f"o{k}_{f}" for k in (1, 2) for f in ("px", "py", "shape", "hue"))
        sizes = (self.grid, self.grid, len(SHAPES), self.hues) * 2
        self.factors = FactorSpace(names, sizes, (False, False, True, True) * 2)
        self.actions = ActionSpace.factor_shifts(self.factors)
        positions, hue_values = np.linspace(0.0, 1.0, self.grid), np.linspace(0.0, 1.0, self.hues, endpoint=False)
        self.factor_values = [positions, positions, np.arange(len(SHAPES)), hue_values] * 2
        self._colours = _hue_to_rgb(hue_values)
        self.observation_shape = (3, self.image_size, self.image_size)
        self.observation_dtype = np.dtype(np.uint8)

    def get_config(self) -> dict[str, Any]:
        return {"grid": self.grid, "hues": self.hues, "radius": self.radius, "image_size": self.image_size}

    def _draw(self, factors: np.ndarray) -> np.ndarray:
        image = np.zeros((len(factors), 3, self.image_size, self.image_size))
        for first in (0, 4):  # object 2 last, so it occludes object 1
            cover = _coverage(factors[:, first:first + 2], factors[:, first + 2] == 1, self.grid, self.radius,
                              self.image_size)[:, None]
            image = image * (1 - cover) + cover * self._colours[factors[:, first + 3]][:, :, None, None]
        return np.round(image * 255).astype(np.uint8)

    def render(self, factors: np.ndarray) -> np.ndarray:
        return self._render_cached(self.factors.validate(factors), self._draw, 3 * self.image_size ** 2)


def _hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """RGB ``[N, 3]`` in [0, 1] of HSV colours with hue ``[N]`` in [0, 1) and full saturation and value."""
    k = (np.array([5.0, 3.0, 1.0])[None, :] + 6.0 * hue[:, None]) % 6.0
    return 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
