"""Pendulum: the causal benchmark of CausalVAE and ICM-VAE, drawn procedurally.

Re-derived from the CausalVAE generator (``causal_data/pendulum.py`` of
huawei-noah/trustworthyAI; specs/causal.md section 2.1). A pendulum of angle
``theta = pendulum * pi / 200`` hangs from ``(10, 10.5)`` (bob of radius 1.5 at distance 8,
rod in black); a sun at angle ``phi = light * pi / 200`` sits on the line ``y = 20.5``; the
shadow on the ground ``y = -0.5`` is the projection, along the light's direction, of the
rod from the pivot to radius 9.5:

* ``shadow_position`` = midpoint of the two projected end points,
* ``shadow_length`` = ``max(3, |difference|)``.

The published set is the grid ``pendulum in -40..43`` x ``light in 60..147 without 100``
(7308 images, 96 x 96); counting images in generation order from 0, image ``k`` went to the
test set when ``k > 0`` and ``k % 4 == 0`` (1826 test, 5482 train). Its file names
truncate the shadow labels to integers; here they are exact. Differences from the
published PNGs: RGB instead of an RGBA file with an opaque alpha channel, and an
anti-aliased numpy rasteriser instead of matplotlib's (same layout, colours, widths, pixel
snapping and clip box; on 8 states drawn by the generator's matplotlib code the mean
absolute difference is below 0.1 / 255 per image and no value differs by more than 48).
"""
from __future__ import annotations

import numpy as np

from dynrep.envs.causal import CausalEnvironment
from dynrep.envs.raster import Canvas
from dynrep.envs.registry import register_env

PIVOT = (10.0, 10.5)
#: Ground height of the shadow, height of the sun, bob distance, shadow-casting rod length.
GROUND, SUN_HEIGHT, BOB_DISTANCE, ROD_LENGTH = -0.5, 20.5, 8.0, 9.5
BOB_RADIUS, SUN_RADIUS, MIN_SHADOW = 1.5, 3.0, 3.0


def projection(x: np.ndarray, y: np.ndarray, phi: np.ndarray, height: float) -> np.ndarray:
    """Abscissa where the line through ``(x, y)`` with slope ``tan(phi)`` crosses ``y = height``."""
    return x + (height - y) * np.cos(phi) / np.sin(phi)


@register_env("pendulum")
class Pendulum(CausalEnvironment):
    """Pendulum angle and light angle cause the shadow's length and position.

    Factors (float64, label units): ``pendulum`` (angle in units of pi/200 rad, published
    -40..43), ``light`` (same units, 60..147), ``shadow_length`` and ``shadow_position``
    (ground units). Graph: ``{pendulum, light} -> {shadow_length, shadow_position}``.
    Actions: ``pendulum+/-`` and ``light+/-`` (one label unit).

    Args:
        subset: ``"train"`` (5482 published images), ``"test"`` (1826) or ``"all"`` (7308);
            ``sample_factors`` and ``trajectories`` draw from it.
        image_size: side in pixels of the RGB observations (published: 96).

    Example::

        env = Pendulum()
        factors = env.intervene({"light": 120.0}, env.grid_factors()[:8])
        images = env.render(factors)                    # [8, 3, 96, 96] uint8
    """

    variables = ("pendulum", "light", "shadow_length", "shadow_position")
    parents = {"shadow_length": ("pendulum", "light"), "shadow_position": ("pendulum", "light")}
    root_ranges = {"pendulum": (-40.0, 43.0), "light": (60.0, 147.0)}
    #: The rod swings at most horizontal; the light must not be horizontal (its shadow would be at infinity).
    bounds = {"pendulum": (-100.0, 100.0), "light": (10.0, 190.0), "shadow_length": (0.0, 100.0),
              "shadow_position": (-100.0, 120.0)}
    label_scale = np.array([[0.0, 44.0], [100.0, 40.0], [6.5, 3.5], [10.0, 5.0]])

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        pendulum, light = np.meshgrid(np.arange(-40, 44), np.setdiff1d(np.arange(60, 148), [100]), indexing="ij")
        values = np.zeros((pendulum.size, 4))
        values[:, 0], values[:, 1] = pendulum.ravel(), light.ravel()
        values[:, 2] = self.mechanism("shadow_length", values, np.zeros((len(values), 0)))
        values[:, 3] = self.mechanism("shadow_position", values, np.zeros((len(values), 0)))
        k = np.arange(len(values))
        return values, (k > 0) & (k % 4 == 0)

    @staticmethod
    def _shadow_ends(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta, phi = values[:, 0] * np.pi / 200, values[:, 1] * np.pi / 200
        near = projection(np.full_like(theta, PIVOT[0]), np.full_like(theta, PIVOT[1]), phi, GROUND)
        far = projection(PIVOT[0] + ROD_LENGTH * np.sin(theta), PIVOT[1] - ROD_LENGTH * np.cos(theta), phi, GROUND)
        return near, far

    def mechanism(self, child: str, values: np.ndarray, noise: np.ndarray) -> np.ndarray:
        near, far = self._shadow_ends(values)
        if child == "shadow_length":
            return np.maximum(MIN_SHADOW, np.abs(near - far))
        return (near + far) / 2

    def abduct(self, values: np.ndarray) -> np.ndarray:
        """No exogenous noise: the shadow is a deterministic function of the two angles."""
        return np.zeros((len(values), 0))

    def _draw(self, values: np.ndarray) -> np.ndarray:
        theta, phi = values[:, 0] * np.pi / 200, values[:, 1] * np.pi / 200
        length, middle = values[:, 2], values[:, 3]
        canvas = Canvas(len(values), self.image_size, (0.0, 20.0), (-1.0, 21.0))
        bob_x, bob_y = PIVOT[0] + BOB_DISTANCE * np.sin(theta), PIVOT[1] - BOB_DISTANCE * np.cos(theta)
        canvas.segment(PIVOT[0], PIVOT[1], bob_x, bob_y, 3.0, "black")
        canvas.disc(bob_x, bob_y, BOB_RADIUS, "firebrick")
        sun_x = projection(np.full_like(phi, PIVOT[0]), np.full_like(phi, PIVOT[1]), phi, SUN_HEIGHT)
        canvas.disc(sun_x, SUN_HEIGHT, SUN_RADIUS, "orange")
        canvas.segment(middle - length / 2, GROUND, middle + length / 2, GROUND, 3.0, "black")
        return canvas.to_uint8()
