"""Flatland: a ball on a 2-D torus, rendered procedurally with numpy (no pygame, no pymunk).

The official Flatland (Quessard et al.) is an 84 x 84 greyscale pymunk render of a
ball of radius 15 whose four actions move it so that ``period`` steps cross the
whole domain, with a wall handler that teleports it to the opposite side; episodes
reset on a ``period x period`` lattice. Here the ball lives on that lattice of a
torus directly: each action moves it one lattice step (``image_size / period``
pixels) and wraps, and a ball near an edge is drawn on both sides (the honest
picture of a torus, where the original teleports). The UAE FlatLand files
(Painter et al.) are 64 x 64 downscales of the same world.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from dynrep.checks import as_generator, check_int
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.registry import register_env

#: Image side (pixels) at which ``radius`` is measured: the official render is 84 x 84.
REFERENCE_SIZE = 84
#: Action names in :meth:`ActionSpace.factor_shifts` order over the factors ``(x, y)``:
#: ``x+`` = right, ``x-`` = left, ``y+`` = down (image rows grow downwards), ``y-`` = up.
ACTION_NAMES = ("right", "left", "down", "up")
#: Frames drawn at a time when rendering directly (bounds the float32 temporaries).
DRAW_CHUNK = 512


@register_env("flatland")
class Flatland(Environment):
    """A white ball on a black ``period x period`` lattice of a torus.

    Factors: ``x`` (column) and ``y`` (row), both cyclic with ``period`` values.
    Lattice position ``i`` has its ball centre at pixel coordinate
    ``(i + 0.5) * image_size / period`` (pixel ``j`` spans ``[j, j + 1)``), so every
    action moves the ball ``image_size / period`` pixels and ``period`` equal actions
    bring it back. Actions (base-class ``step`` semantics, ``factor_of`` / ``sign``):
    ``0 = right (x+1)``, ``1 = left (x-1)``, ``2 = down (y+1)``, ``3 = up (y-1)``,
    all modulo ``period``.

    Args:
        period: lattice positions per axis (>= 2 and <= image_size); the official
            experiments use 10 (and 5).
        radius: ball radius in pixels of the 84-pixel reference image (official 15);
            the drawn radius is ``radius * image_size / 84``. It must be at least one
            drawn pixel, and the ball must fit in the torus (drawn radius + 0.5 <=
            image_size / 2) so its wrapped parts never overlap. The ball may be larger
            than a lattice step, as in the original (diameter 30 px vs. 8.4 px steps).
        image_size: side of the square image in pixels (>= 8). The default 64 matches
            the UAE FlatLand files and the default conv stack (sides divisible by 16);
            use 84 for the official resolution.
        channels: 1 (greyscale, like the original) or 3 (three identical RGB channels).
        antialias: draw the ball edge with pixel coverage ``clip(r + 0.5 - d, 0, 1)``
            (default) instead of a hard ``d <= r`` disc.

    Observations, ``render(factors [N, 2]) -> [N, channels, image_size, image_size]`` uint8.
    The pair view used by ForwardVAE / RGrVAE is :meth:`pairs` / :meth:`pair_view`.
    """

    def __init__(self, period: int = 10, *, radius: float = 15.0, image_size: int = 64, channels: int = 1,
                 antialias: bool = True):
        self.image_size = check_int("image_size", image_size, 8)
        self.period = check_int("period", period, 2)
        if self.period > self.image_size:
            raise ValueError(f"period must be <= image_size = {self.image_size} so that one step moves the ball "
                             f"at least one pixel, got {self.period}")
        if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)):
            raise ValueError(f"radius must be a number (pixels at the {REFERENCE_SIZE}-px reference size), "
                             f"got {radius!r}")
        scale = self.image_size / REFERENCE_SIZE
        low, high = 1.0 / scale, (self.image_size / 2 - 0.5) / scale
        if not low <= radius <= high:
            raise ValueError(f"radius must be in [{low:.4g}, {high:.4g}] for image_size={self.image_size} "
                             f"(pixels at the {REFERENCE_SIZE}-px reference size: at least one drawn pixel, "
                             f"and the ball must fit in the torus), got {radius}")
        self.radius = float(radius)
        if isinstance(channels, bool) or channels not in (1, 3):
            raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
        self.channels = int(channels)
        if not isinstance(antialias, (bool, np.bool_)):
            raise ValueError(f"antialias must be True or False, got {antialias!r}")
        self.antialias = bool(antialias)

        self.factors = FactorSpace(("x", "y"), (self.period, self.period), (True, True))
        self.actions = replace(ActionSpace.factor_shifts(self.factors), names=ACTION_NAMES)
        self.observation_shape = (self.channels, self.image_size, self.image_size)
        self.observation_dtype = np.dtype(np.uint8)
        #: Pixels the ball moves per action.
        self.step_pixels = self.image_size / self.period
        #: Drawn ball radius in pixels of this image.
        self.pixel_radius = self.radius * scale

    def get_config(self) -> dict[str, Any]:
        return {"period": self.period, "radius": self.radius, "image_size": self.image_size,
                "channels": self.channels, "antialias": self.antialias}

    def centres(self, factors: np.ndarray) -> np.ndarray:
        """Ball centres ``[N, 2]`` float64 as (x = column, y = row) pixel coordinates of factors ``[N, 2]``."""
        return (self.factors.validate(factors) + 0.5) * self.step_pixels

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Frames ``[N, channels, S, S]`` uint8 (ball 255, background 0) of factor vectors ``[N, 2]``."""
        # The cache holds greyscale frames (the default world: 100 of them); channels are copies.
        grey = self._render_cached(self.factors.validate(factors), self._draw_chunked, self.image_size ** 2)
        return grey if self.channels == 1 else np.repeat(grey, self.channels, axis=1)

    def _draw_chunked(self, factors: np.ndarray) -> np.ndarray:
        """:meth:`_draw` over chunks of :data:`DRAW_CHUNK` frames, bounding the float32 temporaries."""
        grey = np.empty((len(factors), 1, self.image_size, self.image_size), dtype=np.uint8)
        for start in range(0, len(factors), DRAW_CHUNK):
            grey[start:start + DRAW_CHUNK] = self._draw(factors[start:start + DRAW_CHUNK])
        return grey

    def _draw(self, factors: np.ndarray) -> np.ndarray:
        """Vectorised periodic drawing of ``[N, 2]`` factor vectors -> greyscale ``[N, 1, S, S]`` uint8.

        Each pixel takes its distance to the nearest copy of the ball centre on the torus
        (minimum-image convention), so a ball crossing an edge shows on both sides.
        """
        size = self.image_size
        centres = ((factors + 0.5) * self.step_pixels).astype(np.float32)  # [N, 2] (x, y)
        pixels = np.arange(size, dtype=np.float32) + 0.5
        offsets = pixels[None, :] - centres[:, :, None]  # [N, 2, S]
        offsets = np.mod(offsets + size / 2, size) - size / 2  # wrapped into [-S/2, S/2)
        dist2 = offsets[:, 1, :, None] ** 2 + offsets[:, 0, None, :] ** 2  # [N, H (y), W (x)]
        if self.antialias:
            coverage = np.clip(np.float32(self.pixel_radius + 0.5) - np.sqrt(dist2), 0.0, 1.0)
        else:
            coverage = (dist2 <= np.float32(self.pixel_radius) ** 2).astype(np.float32)
        return np.round(coverage * 255).astype(np.uint8)[:, None]

    def pair_view(self, factors: np.ndarray, actions: np.ndarray, offset: int = 1
                  ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The ``((obs, action), next_obs)`` pairs ForwardVAE / RGrVAE consume, for given states and actions.

        Args:
            factors: start states ``[B, 2]``.
            actions: ``[B]`` action indices (0 right, 1 left, 2 down, 3 up).
            offset: how many times the action is applied (>= 1): ``next_obs`` shows the
                ball ``offset`` lattice steps away in the action's direction, i.e.
                ``render(step(factors, actions, magnitudes=offset))``.

        Returns:
            ``((obs [B, C, S, S] uint8, actions [B] int64), next_obs [B, C, S, S] uint8)`` torch tensors.
        """
        offset = check_int("offset", offset, 1)
        factors = self.factors.validate(factors)
        actions = np.asarray(actions, dtype=np.int64)
        next_factors = self.step(factors, actions, np.full(len(factors), offset, dtype=np.int64))
        obs = self.render(np.concatenate([factors, next_factors]))
        batch = len(factors)
        return (torch.from_numpy(obs[:batch]), torch.from_numpy(actions.copy())), torch.from_numpy(obs[batch:])

    def pairs(self, batch: int, rng: np.random.Generator | int | None = None, offset: int = 1
              ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Random pairs ``((obs [B, C, S, S] uint8, actions [B] int64), next_obs [B, C, S, S] uint8)``.

        Start states are uniform on the lattice and actions uniform over the four, drawn
        in that order from ``rng`` (``sample_factors(batch, rng)`` then
        ``actions.sample((batch,), rng)``); ``next_obs`` applies the same action
        ``offset`` times (see :meth:`pair_view`). This follows UAE's paired dSprites,
        where the offset is the size of the labelled shift; UAE's FlatLand files instead
        pair frame ``i`` with frame ``i + offset`` of a random walk labelled by the
        first action only, whose target that label does not determine.
        """
        batch = check_int("batch", batch, 1)
        offset = check_int("offset", offset, 1)
        rng = as_generator(rng)
        factors = self.sample_factors(batch, rng)
        actions = self.actions.sample((batch,), rng)
        return self.pair_view(factors, actions, offset)
