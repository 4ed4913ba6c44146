"""Flow: the water-flow causal benchmark of CausalVAE and ICM-VAE, drawn procedurally.

Re-derived from the CausalVAE generator (``causal_data/flow.py`` of huawei-noah/trustworthyAI;
specs/causal.md section 2.1). A cup (walls at x = 3 and x = 8) holds a ball of radius
``ball / 30`` resting at the bottom and water up to height ``5 + water``; a hole in the
right wall at height ``hole / 3`` lets out a jet that reaches ``outflow / 10`` units
beyond the wall at height 0.5. The generator loops over ``ball`` (5..34), an exogenous
water term ``u`` (10..39) and ``hole`` (6..14), 8100 images, and sets

* ``water = (ball / 30) ** 3 + u / 10``       (the ball displaces water),
* ``outflow = 10 * sqrt(2 * 0.98 * water * (hole / 3 - 0.5))``   (Torricelli).

**Label order and graph, re-derived.** The generator writes file names
``a_{ball}_{int(water)}_{int(outflow)}_{hole}``, so the label order is
``[ball, water, outflow, hole]`` (CausalVAE's scale table ``[[20, 15], [2, 2], [59.5, 26.5],
[10.5, 4.5]]`` matches it), and the code above gives the graph ``ball -> water``,
``water -> outflow``, ``hole -> outflow``. ICM-VAE parses the same file names but uses the
scale table and adjacency of the order ``[ball, hole, water, outflow]`` (edges 0->2, 1->3,
2->3): its labels 1-3 are misassigned. dynrep uses the generator's order and graph.

Counting images in generation order from 0, image ``k`` went to the test set when
``k % 5 == 4`` (1620 test, 6480 train). File names truncate water and outflow to integers;
here they are exact. The generator jitters the drawn jet by a random factor
``sqrt((0.98 + eps) / 0.98)`` (eps >= 0.01, unseeded), which no label records; the jet is
drawn here exactly as the outflow label says, so images are a function of the factors.
Drawn with :class:`~dynrep.envs.raster.Canvas` in the generator's order, widths and caps; on
8 states drawn by the generator's matplotlib code (jet at 0.98) the mean absolute difference
is below 0.05 / 255 per image and no value differs by more than 20.
"""
from __future__ import annotations

import numpy as np

from dynrep.envs.causal import CausalEnvironment
from dynrep.envs.raster import Canvas
from dynrep.envs.registry import register_env

GRAVITY = 0.98
#: Walls of the cup, height of its rim, gap of the hole, height at which the jet is measured.
LEFT_WALL, RIGHT_WALL, RIM, HOLE_GAP, JET_END = 3.0, 8.0, 19.0, 0.4, 0.5
#: Vertices of the drawn jet (spaced evenly along x, so denser where the jet curves most).
JET_VERTICES = 16


@register_env("flow")
class Flow(CausalEnvironment):
    """Ball size and an exogenous term set the water level; water level and hole height set the outflow.

    Factors (float64, label units): ``ball`` (radius in units of 1/30, published 5..34),
    ``water`` (level above 5), ``outflow`` (jet reach x 10) and ``hole`` (height in units of
    1/3, published 6..14). Graph: ``ball -> water -> outflow <- hole``. Actions: ``ball+/-`` and
    ``hole+/-`` (one label unit; the water term ``u`` of each row is kept, so adding to the ball
    raises the water and with it the outflow).

    Args:
        subset: ``"train"`` (6480 published images), ``"test"`` (1620) or ``"all"`` (8100).
        image_size: side in pixels of the RGB observations (published: 96).
    """

    variables = ("ball", "water", "outflow", "hole")
    parents = {"water": ("ball",), "outflow": ("water", "hole")}
    root_ranges = {"ball": (5.0, 34.0), "hole": (6.0, 14.0)}
    #: The water must stay in the cup (level below the rim) and the hole above the jet's end.
    bounds = {"ball": (0.0, 60.0), "water": (0.0, 14.0), "outflow": (0.0, 200.0), "hole": (2.0, 56.0)}
    label_scale = np.array([[20.0, 15.0], [2.0, 2.0], [59.5, 26.5], [10.5, 4.5]])

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        ball, u, hole = np.meshgrid(np.arange(5, 35), np.arange(10, 40), np.arange(6, 15), indexing="ij")
        values = np.zeros((ball.size, 4))
        values[:, 0], values[:, 3] = ball.ravel(), hole.ravel()
        noise = u.reshape(-1, 1).astype(np.float64)
        values[:, 1] = self.mechanism("water", values, noise)
        values[:, 2] = self.mechanism("outflow", values, noise)
        return values, np.arange(len(values)) % 5 == 4

    def mechanism(self, child: str, values: np.ndarray, noise: np.ndarray) -> np.ndarray:
        if child == "water":
            return (values[:, 0] / 30) ** 3 + noise[:, 0] / 10
        head = np.maximum(values[:, 3] / 3 - JET_END, 0.0)
        return 10 * np.sqrt(2 * GRAVITY * values[:, 1] * head)

    def abduct(self, values: np.ndarray) -> np.ndarray:
        """The water term ``u = 10 * (water - (ball / 30) ** 3)`` of each row, ``[N, 1]``."""
        return (10 * (values[:, 1] - (values[:, 0] / 30) ** 3))[:, None]

    def _draw(self, values: np.ndarray) -> np.ndarray:
        radius, water, outflow, deep = values[:, 0] / 30, values[:, 1], values[:, 2], values[:, 3] / 3
        canvas = Canvas(len(values), self.image_size, (0.0, 20.0), (0.0, 20.0))
        canvas.rectangle(LEFT_WALL, 0.0, RIGHT_WALL, 5 + water, "lightskyblue")
        canvas.segment(LEFT_WALL, 0.0, LEFT_WALL, RIM, 2.0, "black")
        canvas.segment(RIGHT_WALL, 0.0, RIGHT_WALL, deep, 2.0, "black")
        canvas.segment(RIGHT_WALL, deep + HOLE_GAP, RIGHT_WALL, RIM, 2.0, "black")
        canvas.disc(5.5, radius + 0.5, radius, "firebrick")
        # jet x(y) = 8 + reach * sqrt((deep - y) / (deep - 0.5)), sampled evenly in x
        s = np.linspace(0.0, 1.0, JET_VERTICES)[None, :]
        jet_x = RIGHT_WALL + (outflow / 10)[:, None] * s
        jet_y = deep[:, None] - (deep - JET_END)[:, None] * s ** 2
        canvas.polyline(jet_x, jet_y, 2.0, "lightskyblue", caps="projecting")  # plt.plot's default caps
        canvas.segment(0.0, 0.2, 20.0, 0.2, 2.0, "black", caps="projecting")
        return canvas.to_uint8()
