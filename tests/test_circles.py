"""Circles and Simple: procedural sprite grids."""
from __future__ import annotations

import numpy as np
import pytest

from dynrep import make_env
from dynrep.envs.circles import Circles, Simple


def centroid(obs: np.ndarray) -> np.ndarray:
    """Intensity-weighted (x, y) centre of [N, 1, H, W] images."""
    img = obs[:, 0].astype(np.float64)
    ys, xs = np.mgrid[: img.shape[1], : img.shape[2]]
    mass = img.sum(axis=(1, 2))
    return np.stack([(img * xs).sum(axis=(1, 2)) / mass, (img * ys).sum(axis=(1, 2)) / mass], axis=1)


def test_circles_positions_span_the_image_with_a_radius_margin():
    env = Circles(grid=5, radius=4, image_size=32)
    assert env.factors.names == ("pos_x", "pos_y") and env.factors.sizes == (5, 5)
    assert env.actions.names == ("pos_x+", "pos_x-", "pos_y+", "pos_y-")
    obs = env.render(np.array([[0, 0], [4, 0], [0, 4], [2, 2]]))
    assert obs.shape == (4, 1, 32, 32) and obs.dtype == np.uint8
    np.testing.assert_allclose(centroid(obs), [[4, 4], [27, 4], [4, 27], [15.5, 15.5]], atol=0.05)
    # Every position draws the same disc (same total intensity), fully inside the frame.
    mass = env.render(env.factors.from_index(np.arange(25))).reshape(25, -1).sum(1)
    assert mass.max() - mass.min() <= 255
    np.testing.assert_allclose(env.factor_values[0], [0, 0.25, 0.5, 0.75, 1])


def test_simple_has_two_shapes():
    env = Simple(grid=4)
    assert env.factors.names == ("pos_x", "pos_y", "shape") and env.factors.sizes == (4, 4, 2)
    circle, square = env.render(np.array([[1, 2, 0], [1, 2, 1]]))
    np.testing.assert_allclose(centroid(circle[None]), centroid(square[None]), atol=0.05)
    assert square.astype(int).sum() > circle.astype(int).sum()  # the square covers its corners
    x, y = np.round(centroid(square[None])[0]).astype(int)
    assert square[0, y - 4, x - 4] > 0 and circle[0, y - 4, x - 4] == 0  # a corner: square only
    # Positions clamp at the border.
    right = env.actions.names.index("pos_x+")
    assert env.step(np.array([[3, 0, 0]]), np.array([right])).tolist() == [[3, 0, 0]]
    assert make_env("simple", **env.get_config()).factors == env.factors


def test_errors():
    with pytest.raises(ValueError, match="grid must be >= 2, got 1"):
        Circles(grid=1)
    with pytest.raises(ValueError, match=r"radius must be in \[1, image_size/4 = 16.0\] pixels, got 20"):
        Circles(radius=20)
    with pytest.raises(ValueError, match=r"factors must have shape \[N, 2\]"):
        Circles().render(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="factors out of range"):
        Circles(grid=4).render(np.array([[4, 0]]))
