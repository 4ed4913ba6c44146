"""Flatland: periodic ball rendering, toroidal actions, the ((obs, action), next_obs) pair view."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dynrep.envs import base as base_module
from dynrep.envs import flatland as flatland_module
from dynrep.envs.flatland import Flatland
from dynrep.envs.registry import make_env

RIGHT, LEFT, DOWN, UP = 0, 1, 2, 3


def all_states(env: Flatland) -> np.ndarray:
    return env.factors.from_index(np.arange(env.factors.num_states))


def circular_centroid(frames: np.ndarray, size: int) -> np.ndarray:
    """Circular-mean centre ``[N, 2]`` (x, y) of the pixel mass of frames ``[N, 1, S, S]`` on the torus."""
    mass = frames[:, 0].astype(np.float64)
    angles = 2 * np.pi * (np.arange(size) + 0.5) / size
    out = []
    for axis_sum in (1, 2):  # summing rows leaves the x profile; summing columns the y profile
        profile = mass.sum(axis=axis_sum)  # [N, S]
        angle = np.arctan2(profile @ np.sin(angles), profile @ np.cos(angles))
        out.append(np.mod(angle, 2 * np.pi) * size / (2 * np.pi))
    return np.stack(out, axis=-1)


def wrapped_difference(a: np.ndarray, b: np.ndarray, size: float) -> np.ndarray:
    """``a - b`` taken into ``[-size/2, size/2)``."""
    return np.mod(a - b + size / 2, size) - size / 2


# -- spaces, shapes, dtypes ------------------------------------------------------------------
def test_spaces_shapes_and_dtypes():
    env = Flatland()
    assert env.factors.names == ("x", "y")
    assert env.factors.sizes == (10, 10)
    assert env.factors.periodic == (True, True)
    assert env.actions.names == ("right", "left", "down", "up")
    assert env.actions.factor_of == (0, 0, 1, 1)
    assert env.actions.sign == (1, -1, 1, -1)
    assert env.observation_shape == (1, 64, 64)
    obs = env.render(np.array([[0, 0], [9, 4]]))
    assert obs.shape == (2, 1, 64, 64) and obs.dtype == np.uint8
    assert obs.max() == 255 and obs.min() == 0
    assert env.render(np.zeros((0, 2), dtype=np.int64)).shape == (0, 1, 64, 64)

    rgb = Flatland(period=5, image_size=84, channels=3)
    assert rgb.pixel_radius == 15.0  # radius is measured at the 84-px reference size
    frames = rgb.render(np.array([[1, 2]]))
    assert frames.shape == (1, 3, 84, 84)
    assert (frames == frames[:, :1]).all()  # three identical channels
    image = rgb.observation_to_image(frames)
    assert image.shape == (1, 84, 84, 3) and image.dtype == np.uint8


def test_default_fits_default_conv_stack():
    from dynrep.models.base import ModelConfig
    from dynrep.models.nets import build_encoder

    encoder = build_encoder(Flatland().observation_shape, 4, ModelConfig.channels, 16, (8,))
    assert encoder(torch.zeros(1, *Flatland().observation_shape)).shape == (1, 4)


def test_sample_trajectories_seeded_and_consistent():
    env = Flatland(period=6, image_size=24)
    a = env.sample_trajectories(3, 4, rng=7)
    b = env.sample_trajectories(3, 4, rng=np.random.default_rng(7))
    c = env.sample_trajectories(3, 4, rng=8)
    assert a.obs.shape == (3, 5, 1, 24, 24) and a.obs.dtype == torch.uint8
    assert a.actions.shape == (3, 4) and a.actions.dtype == torch.int64
    assert torch.equal(a.obs, b.obs) and torch.equal(a.actions, b.actions) and torch.equal(a.factors, b.factors)
    assert not (torch.equal(a.factors, c.factors) and torch.equal(a.actions, c.actions))
    factors = a.factors.numpy()
    for t in range(4):
        assert np.array_equal(factors[:, t + 1], env.step(factors[:, t], a.actions[:, t].numpy()))
    assert np.array_equal(a.obs.numpy(), env.render(factors.reshape(-1, 2)).reshape(a.obs.shape))


# -- dynamics --------------------------------------------------------------------------------
def test_actions_wrap_on_the_torus():
    env = Flatland(period=5)
    start = np.array([[4, 0], [0, 4], [2, 2], [2, 2]])
    assert env.step(start, np.array([RIGHT, LEFT, DOWN, UP])).tolist() == [[0, 0], [4, 4], [2, 3], [2, 1]]
    assert env.step(np.array([[0, 0]]), np.array([UP])).tolist() == [[0, 4]]
    # period equal actions bring the ball back; magnitude m repeats the action m times
    factors = env.sample_factors(20, rng=0)
    for action in range(4):
        actions = np.full(20, action)
        moved = factors
        for _ in range(env.period):
            moved = env.step(moved, actions)
        assert np.array_equal(moved, factors)
        twice = env.step(env.step(factors, actions), actions)
        assert np.array_equal(env.step(factors, actions, np.full(20, 2)), twice)


@pytest.mark.parametrize("kwargs", [{"period": 10, "image_size": 64},  # 6.4 px steps (sub-pixel)
                                    {"period": 5, "image_size": 84, "radius": 15.0},
                                    {"period": 7, "image_size": 40, "radius": 20.0}])
def test_each_action_moves_the_centroid_one_step(kwargs):
    env = Flatland(**kwargs)
    size, step = env.image_size, env.image_size / env.period
    factors = all_states(env)
    before = circular_centroid(env.render(factors), size)
    assert np.abs(wrapped_difference(before, env.centres(factors), size)).max() < 0.05
    expected = {RIGHT: (step, 0.0), LEFT: (-step, 0.0), DOWN: (0.0, step), UP: (0.0, -step)}
    for action, (dx, dy) in expected.items():
        after = circular_centroid(env.render(env.step(factors, np.full(len(factors), action))), size)
        moved = wrapped_difference(after, before, size)
        assert np.abs(moved - np.array([dx, dy])).max() < 0.1, env.actions.names[action]


def test_integer_steps_are_exact_pixel_rolls():
    """With image_size / period whole, each action rolls the frame by exactly that many pixels."""
    env = Flatland(period=8, image_size=32, radius=20.0)
    factors = all_states(env)
    frames = env.render(factors)
    for action, (shift, axis) in {RIGHT: (4, 3), LEFT: (-4, 3), DOWN: (4, 2), UP: (-4, 2)}.items():
        moved = env.render(env.step(factors, np.full(len(factors), action)))
        assert np.array_equal(moved, np.roll(frames, shift, axis=axis))


# -- periodic drawing ------------------------------------------------------------------------
def test_ball_near_the_edge_is_drawn_on_both_sides():
    env = Flatland(period=10, image_size=64)  # drawn radius 11.4 px, centre of x=0 at 3.2 px
    frame = env.render(np.array([[0, 5]]))[0, 0]
    row = frame[int(env.centres(np.array([[0, 5]]))[0, 1])]
    assert row[0] == 255 and row[-1] == 255  # lit at both the left and the right border
    assert row[env.image_size // 2] == 0
    corner = env.render(np.array([[0, 0]]))[0, 0]
    assert corner[0, 0] == corner[0, -1] == corner[-1, 0] == corner[-1, -1] == 255  # all four corners


@pytest.mark.parametrize("antialias, tolerance", [(True, 0.005), (False, 0.05)])
def test_pixel_mass_is_conserved_across_positions(antialias, tolerance):
    env = Flatland(period=10, image_size=64, antialias=antialias)
    frames = env.render(all_states(env)).astype(np.float64)
    mass = frames.reshape(len(frames), -1).sum(axis=1) / 255
    assert np.ptp(mass) / mass.mean() < tolerance
    assert abs(mass.mean() - np.pi * env.pixel_radius ** 2) / mass.mean() < tolerance
    lit = (frames > 127).reshape(len(frames), -1).sum(axis=1)
    assert np.ptp(lit) / lit.mean() < 3 * tolerance + 0.01


def test_hard_edges_are_binary():
    frames = Flatland(antialias=False).render(np.array([[3, 7]]))
    assert set(np.unique(frames).tolist()) == {0, 255}


def test_cached_render_equals_direct_drawing(monkeypatch):
    factors = Flatland(period=9, image_size=36).sample_factors(50, rng=3)
    cached = Flatland(period=9, image_size=36)
    cached_frames = cached.render(factors)
    assert cached._table is not None and cached._table.shape == (81, 1, 36, 36)
    monkeypatch.setattr(base_module, "CACHE_BYTES", 81 * 36 * 36 - 1)  # one byte short of the table
    monkeypatch.setattr(flatland_module, "DRAW_CHUNK", 7)  # several chunks, the last one partial
    direct = Flatland(period=9, image_size=36, channels=3)
    direct_frames = direct.render(factors)
    assert direct._table is None
    assert np.array_equal(direct_frames, np.repeat(cached_frames, 3, axis=1))


def test_render_is_translation_consistent_and_centred():
    env = Flatland(period=4, image_size=16, radius=21.0)  # drawn radius 4 px, steps of 4 px
    frame = env.render(np.array([[1, 2]]))[0, 0]
    ys, xs = np.nonzero(frame)
    # centre (1.5 * 4, 2.5 * 4) = (6, 10): the lit region is symmetric around it
    assert np.isclose(xs.mean() + 0.5, 6.0) and np.isclose(ys.mean() + 0.5, 10.0)


# -- pair view -------------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [1, 3])
def test_pair_view_matches_step_and_render(offset):
    env = Flatland(period=6, image_size=24)
    rng = np.random.default_rng(11)
    factors = env.sample_factors(32, rng)
    actions = env.actions.sample((32,), rng)
    (obs, acts), next_obs = env.pairs(32, rng=11, offset=offset)
    assert obs.shape == next_obs.shape == (32, 1, 24, 24)
    assert obs.dtype == next_obs.dtype == torch.uint8 and acts.dtype == torch.int64 and acts.shape == (32,)
    assert np.array_equal(acts.numpy(), actions)
    assert np.array_equal(obs.numpy(), env.render(factors))
    moved = factors
    for _ in range(offset):  # the same action applied offset times
        moved = env.step(moved, actions)
    assert np.array_equal(next_obs.numpy(), env.render(moved))
    (obs2, acts2), next2 = env.pair_view(factors, actions, offset)
    assert torch.equal(obs, obs2) and torch.equal(acts, acts2) and torch.equal(next_obs, next2)


def test_pairs_are_seeded():
    env = Flatland(period=5, image_size=20)
    (a, x), b = env.pairs(16, rng=4)
    (c, y), d = env.pairs(16, rng=np.random.default_rng(4))
    (e, z), _ = env.pairs(16, rng=5)
    assert torch.equal(a, c) and torch.equal(x, y) and torch.equal(b, d)
    assert not (torch.equal(a, e) and torch.equal(x, z))


def test_pair_view_validation():
    env = Flatland(period=5, image_size=20)
    with pytest.raises(ValueError, match=r"offset must be >= 1, got 0"):
        env.pairs(4, rng=0, offset=0)
    with pytest.raises(ValueError, match=r"batch must be >= 1, got 0"):
        env.pairs(0, rng=0)
    with pytest.raises(ValueError, match=r"actions must be in \[0, 4\)"):
        env.pair_view(np.zeros((2, 2), dtype=np.int64), np.array([0, 4]))
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\)"):
        env.pair_view(np.zeros((2, 2), dtype=np.int64), np.array([0]))


# -- config and errors -----------------------------------------------------------------------
def test_get_config_round_trip_through_make_env():
    env = Flatland(period=7, radius=12.5, image_size=48, channels=3, antialias=False)
    config = json.loads(json.dumps(env.get_config()))
    assert config == {"period": 7, "radius": 12.5, "image_size": 48, "channels": 3, "antialias": False}
    rebuilt = make_env("flatland", **config)
    assert isinstance(rebuilt, Flatland) and rebuilt.get_config() == config
    factors = env.sample_factors(10, rng=0)
    assert np.array_equal(rebuilt.render(factors), env.render(factors))
    assert repr(rebuilt).startswith("Flatland(period=7, radius=12.5")


@pytest.mark.parametrize("kwargs, message", [
    ({"period": 1}, r"period must be >= 2, got 1"),
    ({"period": 2.5}, r"period must be an integer, got 2\.5"),
    ({"period": 65}, r"period must be <= image_size = 64 .* got 65"),
    ({"image_size": 4}, r"image_size must be >= 8, got 4"),
    ({"radius": 42.0, "image_size": 84}, r"radius must be in \[1, 41\.5\] for image_size=84 .* got 42\.0"),
    ({"radius": 0.5}, r"radius must be in \[1\.312, 41\.34\] for image_size=64 .* got 0\.5"),
    ({"radius": "big"}, r"radius must be a number .* got 'big'"),
    ({"channels": 2}, r"channels must be 1 \(greyscale\) or 3 \(RGB\), got 2"),
    ({"channels": True}, r"channels must be 1 \(greyscale\) or 3 \(RGB\), got True"),
    ({"antialias": "yes"}, r"antialias must be True or False, got 'yes'"),
])
def test_constructor_errors_name_argument_value_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Flatland(**kwargs)


def test_render_and_step_reject_bad_factors():
    env = Flatland(period=5, image_size=20)
    with pytest.raises(ValueError, match=r"factors must have shape \[N, 2\], got \(3,\)"):
        env.render(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"factors out of range: y must be in \[0, 5\), got 5"):
        env.render(np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"factors out of range: x must be in \[0, 5\), got -1"):
        env.step(np.array([[-1, 0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"factors must be integers, got dtype float64"):
        env.render(np.array([[0.5, 1.0]]))
