"""GridWorld: a square agent on an n x m torus, rendered procedurally (no download)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dynrep.checks import check_int
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.registry import register_env

#: RGB values of the named colours; the first five are the seed project's palette order.
PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "black": (0, 0, 0), "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255),
}
#: Square side = cell pitch * (1 - scale / MAX_SCALE_DIVISOR), as in the seed renderer.
MAX_SCALE_DIVISOR = 11
OBSERVATIONS = ("image", "onehot")


def _colours(name: str, values: Sequence[str]) -> tuple[str, ...]:
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must name at least one colour")
    unknown = [v for v in values if v not in PALETTE]
    if unknown:
        raise ValueError(f"{name}: unknown colour(s) {unknown}; allowed: {sorted(PALETTE)}")
    return values


@register_env("gridworld")
class GridWorld(Environment):
    """An agent square on a ``rows x cols`` torus.

    Factors: ``row`` and ``column`` (cyclic: moving off one edge re-enters at the
    other), plus ``scale`` (clamped), ``colour`` and ``background`` (cyclic) when
    more than one value is given for them. Every factor with more than one value
    has two actions, ``+1`` and ``-1``.

    Args:
        size: grid size, an int ``n`` (n x n) or a pair ``(rows, cols)``; each >= 2.
        scales: agent scale values in ``0..10``; side = pitch * (1 - scale/11) (0 = full cell).
        colours: agent colour names (see :data:`PALETTE`).
        backgrounds: background colour names.
        image_size: side in pixels of the square image (default 64).
        observation: ``"image"`` (uint8 ``[3, image_size, image_size]``) or ``"onehot"``
            (float32 ``[rows * cols]``, the official paper's GridWorld).

    Observations, ``render(factors [N, K]) -> [N, 3, S, S]`` uint8 or ``[N, rows*cols]`` float32.
    """

    def __init__(self, size: int | Sequence[int] = 5, *, scales: Sequence[int] = (0,),
                 colours: Sequence[str] = ("white",), backgrounds: Sequence[str] = ("black",),
                 image_size: int = 64, observation: str = "image"):
        if isinstance(size, (tuple, list)) and len(size) == 2:
            rows, cols = size
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            rows = cols = size
        else:
            raise ValueError(f"size must be an int >= 2 or a pair (rows, cols), got {size!r}")
        self.rows = check_int("size (rows)", rows, 2)
        self.cols = check_int("size (cols)", cols, 2)
        self.scales = tuple(check_int("scales", s, 0, MAX_SCALE_DIVISOR - 1) for s in scales)
        if not self.scales:
            raise ValueError("scales must hold at least one value in 0..10")
        self.colours = _colours("colours", colours)
        self.backgrounds = _colours("backgrounds", backgrounds)
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        self.observation = observation
        self.image_size = check_int("image_size", image_size, max(self.rows, self.cols))
        if observation == "onehot" and (len(self.scales), len(self.colours), len(self.backgrounds)) != (1, 1, 1):
            raise ValueError("observation='onehot' encodes the position only; "
                             "use a single scale, colour and background with it")

        names, sizes, periodic = ["row", "column"], [self.rows, self.cols], [True, True]
        for name, values, cyclic in (("scale", self.scales, False), ("colour", self.colours, True),
                                     ("background", self.backgrounds, True)):
            if len(values) > 1:
                names.append(name)
                sizes.append(len(values))
                periodic.append(cyclic)
        self.factors = FactorSpace(tuple(names), tuple(sizes), tuple(periodic))
        self.actions = ActionSpace.factor_shifts(self.factors)

        if observation == "image":
            self.observation_shape = (3, self.image_size, self.image_size)
            self.observation_dtype = np.dtype(np.uint8)
        else:
            self.observation_shape = (self.rows * self.cols,)
            self.observation_dtype = np.dtype(np.float32)
        # One pitch for both axes keeps cells square and inside the frame for any rows x cols.
        self._pitch = self.image_size // max(self.rows, self.cols)
        sides = self._pitch * (1 - np.asarray(self.scales) / MAX_SCALE_DIVISOR)
        if observation == "image" and np.any(np.floor(sides / 2) * 2 < 1):
            raise ValueError(f"image_size={self.image_size} is too small for a {self.rows}x{self.cols} grid "
                             f"with scales {self.scales}: the agent would be invisible")
        self._sides = sides
        self._fg = np.array([PALETTE[c] for c in self.colours], dtype=np.uint8)
        self._bg = np.array([PALETTE[c] for c in self.backgrounds], dtype=np.uint8)
        self._frame_bytes = int(np.prod(self.observation_shape)) * self.observation_dtype.itemsize

    def get_config(self) -> dict[str, Any]:
        return {"size": [self.rows, self.cols], "scales": list(self.scales), "colours": list(self.colours),
                "backgrounds": list(self.backgrounds), "image_size": self.image_size,
                "observation": self.observation}

    def _factor(self, factors: np.ndarray, name: str) -> np.ndarray:
        """Column of ``factors`` for an optional factor, or zeros when it is fixed."""
        if name in self.factors.names:
            return factors[:, self.factors.index(name)]
        return np.zeros(len(factors), dtype=np.int64)

    def _span(self, index: np.ndarray, count: int, sides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and one-past-last pixel of the agent along one axis, ``[N]`` each."""
        offset = 0.5 * (self.image_size - self._pitch * count)
        centre = (index + 0.5) * self._pitch + offset
        return (centre - sides / 2).astype(np.int64), (centre + sides / 2).astype(np.int64)

    def render(self, factors: np.ndarray) -> np.ndarray:
        return self._render_cached(self.factors.validate(factors), self._draw, self._frame_bytes)

    def _draw(self, factors: np.ndarray) -> np.ndarray:
        """Vectorised drawing of ``[N, K]`` factor vectors (no per-sample loop)."""
        row, col = factors[:, 0], factors[:, 1]
        if self.observation == "onehot":
            obs = np.zeros((len(factors), self.rows * self.cols), dtype=np.float32)
            obs[np.arange(len(factors)), row * self.cols + col] = 1.0
            return obs
        sides = self._sides[self._factor(factors, "scale")]
        pixels = np.arange(self.image_size)
        r_lo, r_hi = self._span(row, self.rows, sides)
        c_lo, c_hi = self._span(col, self.cols, sides)
        in_rows = (pixels >= r_lo[:, None]) & (pixels < r_hi[:, None])  # [N, H]
        in_cols = (pixels >= c_lo[:, None]) & (pixels < c_hi[:, None])  # [N, W]
        mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]  # [N, H, W, 1]
        channels, height, width = self.observation_shape
        out = np.empty((len(factors), height, width, channels), dtype=np.uint8)
        out[:] = self._bg[self._factor(factors, "background")][:, None, None, :]
        np.copyto(out, self._fg[self._factor(factors, "colour")][:, None, None, :], where=mask)
        # [N, C, H, W] over channels-last memory, the layout the conv coders run in: the first convolution
        # takes it without a reorder, and the decoder's channels-last logits meet a target of their own layout
        return out.transpose(0, 3, 1, 2)

    def observation_to_image(self, obs: np.ndarray) -> np.ndarray:
        if self.observation == "image":
            return super().observation_to_image(obs)
        grid = np.clip(np.asarray(obs, dtype=np.float32), 0, 1).reshape(-1, self.rows, self.cols)
        scale = max(1, self.image_size // max(self.rows, self.cols))
        grid = np.round(grid * 255).astype(np.uint8).repeat(scale, axis=1).repeat(scale, axis=2)
        return np.repeat(grid[..., None], 3, axis=-1)
