"""FactorSpace, ActionSpace, Environment stepping/sampling and the GridWorld renderer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dynrep import GridWorld, list_envs, make_env
from dynrep.checks import as_generator, check_int
from dynrep.envs import ActionSpace, Environment, FactorSpace, register_env
from dynrep.envs import base as base_module


# -- helpers ---------------------------------------------------------------------------------
def test_check_int_messages_name_argument_and_range():
    assert check_int("x", np.int64(3), 0) == 3
    assert isinstance(check_int("x", np.int64(3), 0), int)
    with pytest.raises(ValueError, match=r"width must be >= 2 and <= 5, got 7"):
        check_int("width", 7, 2, 5)
    with pytest.raises(ValueError, match=r"width must be >= 2, got 1"):
        check_int("width", 1, 2)
    with pytest.raises(ValueError, match=r"width must be an integer, got 2\.5"):
        check_int("width", 2.5, 0)
    with pytest.raises(ValueError, match=r"width must be an integer, got True"):
        check_int("width", True, 0)


def test_as_generator():
    g = np.random.default_rng(0)
    assert as_generator(g) is g
    assert as_generator(5).integers(0, 1000, 10).tolist() == np.random.default_rng(5).integers(0, 1000, 10).tolist()
    with pytest.raises(TypeError, match="rng must be"):
        as_generator("seed")


# -- FactorSpace -----------------------------------------------------------------------------
def test_factor_space_validation():
    with pytest.raises(ValueError, match="same length"):
        FactorSpace(("a", "b"), (2,), (True, True))
    with pytest.raises(ValueError, match="unique"):
        FactorSpace(("a", "a"), (2, 2), (True, True))
    with pytest.raises(ValueError, match=r"factor 'b' must have size >= 1"):
        FactorSpace(("a", "b"), (2, 0), (True, True))
    with pytest.raises(ValueError, match=r"periods must have one entry per factor \(2\), got 1"):
        FactorSpace(("a", "b"), (2, 3), (True, True), periods=(2,))
    for periods, periodic in (((None, 4), (True, True)), ((None, 0), (True, True)), ((None, 2), (True, False))):
        with pytest.raises(ValueError, match=rf"periods of factor 'b' must be None or, for a periodic discrete "
                                             rf"factor, in \[1, size=3\]; got {periods[1]} \(periodic={periodic[1]}\)"):
            FactorSpace(("a", "b"), (2, 3), periodic, periods=periods)


def test_factor_space_index_and_num_states():
    space = FactorSpace(("row", "column", "scale"), (5, 4, 3), (True, True, False))
    assert len(space) == 3
    assert space.discrete
    assert space.num_states == 60
    assert space.index("column") == 1
    with pytest.raises(KeyError, match=r"unknown factor 'colour'.*\['row', 'column', 'scale'\]"):
        space.index("colour")


def test_continuous_factor_space_refuses_discrete_operations():
    space = FactorSpace(("x", "y"), (None, 4), (False, True))
    assert not space.discrete
    with pytest.raises(ValueError, match="num_states needs discrete"):
        space.num_states
    with pytest.raises(ValueError, match="sample needs discrete"):
        space.sample(3, np.random.default_rng(0))


def test_to_index_is_c_order_last_factor_fastest():
    space = FactorSpace(("row", "column"), (5, 5), (True, True))
    assert space.to_index(np.array([[1, 2]])).tolist() == [7]
    assert space.to_index(np.array([[0, 0], [0, 4], [1, 0], [4, 4]])).tolist() == [0, 4, 5, 24]
    assert space.from_index(np.array([7])).tolist() == [[1, 2]]


def test_to_index_from_index_round_trip_mixed_radix():
    space = FactorSpace(("a", "b", "c"), (2, 3, 4), (True, False, True))
    index = np.arange(space.num_states)
    factors = space.from_index(index)
    assert factors.shape == (24, 3)
    assert factors.dtype == np.int64
    # Enumeration order: last factor fastest.
    assert factors[:5].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 1, 0]]
    assert np.array_equal(space.to_index(factors), index)
    assert len({tuple(f) for f in factors}) == 24


def test_factor_space_sample_is_in_range_and_seeded():
    space = FactorSpace(("a", "b"), (2, 7), (True, True))
    s = space.sample(500, np.random.default_rng(3))
    assert s.shape == (500, 2) and s.dtype == np.int64
    assert s.min(0).tolist() == [0, 0] and s.max(0).tolist() == [1, 6]
    assert np.array_equal(s, space.sample(500, np.random.default_rng(3)))


# -- ActionSpace -----------------------------------------------------------------------------
def test_factor_shifts_names_and_signs_skip_single_valued_factors():
    factors = FactorSpace(("row", "column", "scale"), (5, 4, 1), (True, True, False))
    actions = ActionSpace.factor_shifts(factors)
    assert actions.names == ("row+", "row-", "column+", "column-")
    assert actions.factor_of == (0, 0, 1, 1)
    assert actions.sign == (1, -1, 1, -1)
    assert actions.n == 4
    assert actions.discrete


def test_factor_shifts_explicit_actionable():
    factors = FactorSpace(("row", "column"), (5, 4), (True, True))
    actions = ActionSpace.factor_shifts(factors, actionable=[1])
    assert actions.names == ("column+", "column-")
    assert actions.factor_of == (1, 1)


def test_action_space_sample_errors_and_range():
    with pytest.raises(ValueError, match="no actions"):
        ActionSpace().sample((2,), np.random.default_rng(0))
    with pytest.raises(ValueError, match="continuous"):
        ActionSpace(dim=2).sample((2,), np.random.default_rng(0))
    a = ActionSpace.factor_shifts(FactorSpace(("row",), (3,), (True,))).sample((50, 4), np.random.default_rng(0))
    assert a.shape == (50, 4) and a.dtype == np.int64
    assert set(np.unique(a).tolist()) == {0, 1}


# -- GridWorld construction ------------------------------------------------------------------
def test_default_gridworld_spaces():
    env = GridWorld()
    assert (env.rows, env.cols) == (5, 5)
    assert env.factors.names == ("row", "column")
    assert env.factors.sizes == (5, 5)
    assert env.factors.periodic == (True, True)
    assert env.actions.names == ("row+", "row-", "column+", "column-")
    assert env.observation_shape == (3, 64, 64)
    assert env.observation_dtype == np.uint8
    assert env.is_image
    assert env.env_name == "gridworld"


def test_optional_factors_and_their_actions():
    env = GridWorld(size=4, scales=(0, 3, 6), colours=("white", "red"), backgrounds=("black", "blue"))
    assert env.factors.names == ("row", "column", "scale", "colour", "background")
    assert env.factors.sizes == (4, 4, 3, 2, 2)
    assert env.factors.periodic == (True, True, False, True, True)
    assert env.actions.names == ("row+", "row-", "column+", "column-", "scale+", "scale-", "colour+", "colour-",
                                 "background+", "background-")
    assert env.factors.num_states == 4 * 4 * 3 * 2 * 2


@pytest.mark.parametrize("size", [1, (1, 4), (4, 1), 0, -3])
def test_size_below_two_is_rejected(size):
    with pytest.raises(ValueError, match=r"size \((rows|cols)\) must be >= 2"):
        GridWorld(size=size)


@pytest.mark.parametrize("size", [(3,), (2, 3, 4), 2.5, True, "5"])
def test_malformed_size_is_rejected(size):
    with pytest.raises(ValueError, match="size must be an int >= 2 or a pair"):
        GridWorld(size=size)


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"colours: unknown colour\(s\) \['purple'\]; allowed: .*'white'"):
        GridWorld(colours=("white", "purple"))
    with pytest.raises(ValueError, match=r"backgrounds: unknown colour"):
        GridWorld(backgrounds=("grey",))
    with pytest.raises(ValueError, match="colours must name at least one colour"):
        GridWorld(colours=())
    with pytest.raises(ValueError, match=r"observation must be one of \('image', 'onehot'\), got 'pixels'"):
        GridWorld(observation="pixels")
    with pytest.raises(ValueError, match=r"scales must be >= 0 and <= 10, got 11"):
        GridWorld(scales=(0, 11))
    with pytest.raises(ValueError, match="scales must hold at least one value"):
        GridWorld(scales=())
    with pytest.raises(ValueError, match="onehot"):
        GridWorld(observation="onehot", colours=("white", "red"))
    with pytest.raises(ValueError, match="onehot"):
        GridWorld(observation="onehot", scales=(0, 2))


def test_image_size_too_small():
    with pytest.raises(ValueError, match=r"image_size must be >= 5, got 4"):
        GridWorld(size=5, image_size=4)
    # One pixel per cell: a centred square of side 1 would round to nothing.
    with pytest.raises(ValueError, match=r"image_size=5 is too small for a 5x5 grid"):
        GridWorld(size=5, image_size=5)
    with pytest.raises(ValueError, match="too small"):
        GridWorld(size=5, image_size=12, scales=(0, 10))


# -- stepping --------------------------------------------------------------------------------
def test_step_wraps_around_on_the_torus():
    env = GridWorld(size=5, observation="onehot")
    row_plus, row_minus, col_plus, col_minus = range(4)
    f = np.array([[4, 2], [0, 2], [1, 4], [1, 0], [2, 2]])
    out = env.step(f, np.array([row_plus, row_minus, col_plus, col_minus, row_plus]))
    assert out.tolist() == [[0, 2], [4, 2], [1, 0], [1, 4], [3, 2]]
    assert f.tolist() == [[4, 2], [0, 2], [1, 4], [1, 0], [2, 2]]  # input untouched


def test_step_magnitudes_wrap_and_sign():
    env = GridWorld(size=5, observation="onehot")
    f = np.array([[4, 0], [1, 1], [0, 3]])
    out = env.step(f, np.array([0, 1, 3]), magnitudes=np.array([3, 3, 2]))
    assert out.tolist() == [[2, 0], [3, 1], [0, 1]]


class _Dial(Environment):
    """An angle of 5 classes over [0, 2pi] with both ends: class 4 repeats class 0, period 4."""

    observation_shape, observation_dtype = (2,), np.dtype(np.int64)

    def __init__(self):
        self.factors = FactorSpace(("angle", "size"), (5, 3), (True, True), periods=(4, None))
        self.actions = ActionSpace.factor_shifts(self.factors)

    def render(self, factors):
        return np.asarray(factors)

    def get_config(self):
        return {}


def test_step_is_modulo_the_period():
    env = _Dial()
    assert env.factors.cycles == (4, 3) and FactorSpace(("a",), (5,), (True,)).cycles == (5,)
    f = np.array([[0, 0], [3, 0], [4, 0], [0, 0], [4, 0], [2, 2]])
    out = env.step(f, np.array([0, 0, 0, 1, 1, 2]))  # angle+ x3, angle- x2, size+
    assert out.tolist() == [[1, 0], [0, 0], [1, 0], [3, 0], [3, 0], [2, 0]]
    out = env.step(f[:3], np.array([0, 0, 1]), magnitudes=np.array([4, 6, 9]))
    assert out[:, 0].tolist() == [0, 1, 3]


def test_clamped_scale_does_not_wrap():
    env = GridWorld(size=3, scales=(0, 2, 4), image_size=16)
    plus, minus = env.actions.names.index("scale+"), env.actions.names.index("scale-")
    f = np.array([[0, 0, 2], [0, 0, 0], [1, 1, 1], [1, 1, 1]])
    out = env.step(f, np.array([plus, minus, plus, minus]))
    assert out[:, 2].tolist() == [2, 0, 2, 0]
    assert out[:, :2].tolist() == f[:, :2].tolist()
    out = env.step(np.array([[0, 0, 0]]), np.array([plus]), magnitudes=np.array([5]))
    assert out.tolist() == [[0, 0, 2]]


def test_colour_factor_is_cyclic():
    env = GridWorld(size=3, colours=("white", "red", "green"), image_size=16)
    plus, minus = env.actions.names.index("colour+"), env.actions.names.index("colour-")
    assert env.step(np.array([[0, 0, 2]]), np.array([plus])).tolist() == [[0, 0, 0]]
    assert env.step(np.array([[0, 0, 0]]), np.array([minus])).tolist() == [[0, 0, 2]]


def test_step_validates_actions():
    env = GridWorld(size=3, observation="onehot")
    f = np.zeros((2, 2), dtype=np.int64)
    names = r"\(\['row\+', 'row-', 'column\+', 'column-'\]\)"
    with pytest.raises(ValueError, match=r"actions must be in \[0, 4\) " + names + r", got values in \[0, 4\]"):
        env.step(f, np.array([0, 4]))
    with pytest.raises(ValueError, match=r"actions must be in \[0, 4\)"):
        env.step(f, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\), got \(3,\)"):
        env.step(f, np.array([0, 1, 2]))


# -- sampling --------------------------------------------------------------------------------
@pytest.mark.parametrize("observation,shape,dtype", [("image", (3, 16, 16), torch.uint8),
                                                     ("onehot", (9,), torch.float32)])
def test_sample_trajectories_shapes_and_dtypes(observation, shape, dtype):
    env = GridWorld(size=3, image_size=16, observation=observation)
    traj = env.sample_trajectories(6, 4, rng=0)
    assert traj.obs.shape == (6, 5, *shape)
    assert traj.obs.dtype == dtype
    assert traj.actions.shape == (6, 4) and traj.actions.dtype == torch.int64
    assert traj.factors.shape == (6, 5, 2) and traj.factors.dtype == torch.int64
    assert traj.magnitudes is None
    assert traj.batch_size == 6 and traj.length == 4
    # Observations are the rendering of the factors.
    flat = traj.factors.reshape(-1, 2).numpy()
    assert np.array_equal(traj.obs.reshape(30, *shape).numpy(), env.render(flat))


def test_sample_trajectories_follow_step():
    env = GridWorld(size=4, scales=(0, 2, 5), image_size=16)
    traj = env.sample_trajectories(16, 6, rng=1)
    f, a = traj.factors.numpy(), traj.actions.numpy()
    for t in range(6):
        assert np.array_equal(f[:, t + 1], env.step(f[:, t], a[:, t]))


def test_same_seed_same_trajectories_different_seed_differs():
    env = GridWorld(size=3, image_size=16)
    a = env.sample_trajectories(8, 5, rng=7)
    b = env.sample_trajectories(8, 5, rng=np.random.default_rng(7))
    c = env.sample_trajectories(8, 5, rng=8)
    for name in ("obs", "actions", "factors"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.factors, c.factors)
    assert not torch.equal(a.actions, c.actions)


def test_magnitudes_range_and_step_size():
    env = GridWorld(size=7, observation="onehot")
    traj = env.sample_trajectories(64, 8, rng=0, max_magnitude=3)
    m = traj.magnitudes.numpy()
    assert traj.magnitudes.dtype == torch.int64 and m.shape == (64, 8)
    assert m.min() == 1 and m.max() == 3
    assert set(np.unique(m).tolist()) == {1, 2, 3}
    f, a = traj.factors.numpy(), traj.actions.numpy()
    factor_of = np.array(env.actions.factor_of)[a]
    sign = np.array(env.actions.sign)[a]
    diff = np.take_along_axis(f[:, 1:] - f[:, :-1], factor_of[..., None], axis=-1)[..., 0]
    assert np.array_equal(np.mod(diff, 7), np.mod(sign * m, 7))
    other = 1 - factor_of
    assert np.all(np.take_along_axis(f[:, 1:] - f[:, :-1], other[..., None], axis=-1) == 0)


def test_length_zero_is_a_static_dataset():
    env = GridWorld(size=3, image_size=16)
    traj = env.sample_trajectories(5, 0, rng=0)
    assert traj.obs.shape == (5, 1, 3, 16, 16)
    assert traj.actions.shape == (5, 0)


def test_sampling_argument_errors():
    env = GridWorld(size=3, image_size=16)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        env.sample_trajectories(0, 3)
    with pytest.raises(ValueError, match="length must be >= 0"):
        env.sample_trajectories(2, -1)
    with pytest.raises(ValueError, match="max_magnitude must be >= 1"):
        env.sample_trajectories(2, 3, max_magnitude=0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        env.sample_factors(-1)


# -- rendering -------------------------------------------------------------------------------
def test_default_render_is_exact():
    env = GridWorld()
    img = env.render(np.array([[0, 0], [4, 4], [1, 3]]))
    assert img.shape == (3, 3, 64, 64) and img.dtype == np.uint8
    for k, (r0, c0) in enumerate([(2, 2), (50, 50), (14, 38)]):
        expected = np.zeros((3, 64, 64), dtype=np.uint8)
        expected[:, r0:r0 + 12, c0:c0 + 12] = 255
        assert np.array_equal(img[k], expected), f"state {k}"


def test_render_is_channels_last_memory():
    """[N, C, H, W] frames over [N, H, W, C] memory, through the cache and the direct draw alike, and the
    trajectories' tensors keep it: the layout the conv coders and their logits run in."""
    for env in (GridWorld(), GridWorld(size=500, image_size=1000)):  # cached, and too large to cache
        frames = env.render(np.array([[0, 0], [4, 4]]))
        assert frames.shape == (2, 3, env.image_size, env.image_size)
        assert frames.transpose(0, 2, 3, 1).flags.c_contiguous
    obs = GridWorld().sample_trajectories(2, 3, rng=0).obs
    assert obs.shape == (2, 4, 3, 64, 64) and obs.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_cached_render_equals_direct_draw():
    env = GridWorld(size=4, scales=(0, 4), colours=("white", "red"), backgrounds=("black", "blue"), image_size=32)
    everything = env.factors.from_index(np.arange(env.factors.num_states))
    rendered = env.render(everything)
    assert np.array_equal(rendered, env._draw(everything))
    # Every state renders differently.
    assert len({r.tobytes() for r in rendered}) == env.factors.num_states


def test_render_colours_background_and_scale():
    env = GridWorld(size=2, scales=(0, 5), colours=("white", "red"), backgrounds=("black", "blue"), image_size=16)
    # row 1, column 0, scale index 1 (5), colour red, background blue
    img = env.render(np.array([[1, 0, 1, 1, 1]]))[0]
    pixels = img.reshape(3, -1).T
    colours = {tuple(p) for p in pixels}
    assert colours == {(255, 0, 0), (0, 0, 255)}
    red = np.all(img == np.array([255, 0, 0], dtype=np.uint8)[:, None, None], axis=0)
    rows, cols = np.nonzero(red)
    # The agent stays inside its cell: the lower-left 8x8 quadrant.
    assert rows.min() >= 8 and rows.max() < 16 and cols.min() >= 0 and cols.max() < 8
    full = env.render(np.array([[1, 0, 0, 1, 1]]))[0]
    full_red = np.all(full == np.array([255, 0, 0], dtype=np.uint8)[:, None, None], axis=0)
    assert red.sum() < full_red.sum() == 64  # a larger scale index draws a smaller square


def test_non_square_grid_keeps_agent_inside_the_image():
    env = GridWorld(size=(3, 7))
    assert env.factors.sizes == (3, 7)
    everything = env.factors.from_index(np.arange(21))
    img = env.render(everything)
    assert img.shape == (21, 3, 64, 64)
    areas = (img[:, 0] == 255).reshape(21, -1).sum(-1)
    # Same square for every state, never clipped by the border.
    assert len(set(areas.tolist())) == 1 and areas[0] > 0
    assert len({x.tobytes() for x in img}) == 21
    # Moving a column right moves the square right.
    left = np.nonzero(img[0, 0].any(0))[0].min()
    right = np.nonzero(img[1, 0].any(0))[0].min()
    assert right > left


def test_render_errors():
    env = GridWorld(size=3, image_size=16)
    with pytest.raises(ValueError, match="factors out of range"):
        env.render(np.array([[3, 0]]))
    with pytest.raises(ValueError, match="factors out of range"):
        env.render(np.array([[0, -1]]))
    with pytest.raises(ValueError, match=r"factors must have shape \[N, 2\]"):
        env.render(np.array([[0, 0, 0]]))
    with pytest.raises(ValueError, match=r"factors must have shape \[N, 2\]"):
        env.render(np.array([0, 0]))


def test_onehot_observation():
    env = GridWorld(size=(3, 4), observation="onehot")
    assert env.observation_shape == (12,)
    assert env.observation_dtype == np.float32
    assert not env.is_image
    f = env.factors.from_index(np.arange(12))
    obs = env.render(f)
    assert obs.dtype == np.float32 and obs.shape == (12, 12)
    assert np.array_equal(obs.sum(1), np.ones(12))
    assert np.array_equal(np.argmax(obs, 1), f[:, 0] * 4 + f[:, 1])
    assert set(np.unique(obs).tolist()) == {0.0, 1.0}


def test_render_cache_respects_its_byte_budget(monkeypatch):
    """CACHE_BYTES is documented as a byte budget ("fits in this many bytes"); float32 one-hot
    observations take 4 bytes per element."""
    monkeypatch.setattr(base_module, "CACHE_BYTES", 1000)
    env = GridWorld(size=4, observation="onehot")  # 16 states x 16 float32 = 1024 bytes > 1000
    env.render(np.array([[0, 0]]))
    cached = env._table is not None
    assert not cached, "a 1024-byte render table was cached under a 1000-byte CACHE_BYTES budget"
    monkeypatch.setattr(base_module, "CACHE_BYTES", 1024)
    env = GridWorld(size=4, observation="onehot")
    env.render(np.array([[0, 0]]))
    assert env._table is not None


# -- observation_to_image --------------------------------------------------------------------
def test_observation_to_image_for_images():
    env = GridWorld(size=3, image_size=16)
    obs = env.render(np.array([[0, 0], [2, 1]]))
    img = env.observation_to_image(obs)
    assert img.shape == (2, 16, 16, 3) and img.dtype == np.uint8
    assert np.array_equal(img, obs.transpose(0, 2, 3, 1))
    floats = env.observation_to_image(obs.astype(np.float32) / 255.0)
    assert floats.dtype == np.uint8 and np.array_equal(floats, img)
    clipped = env.observation_to_image(np.full((1, 3, 16, 16), 1.7, dtype=np.float32))
    assert clipped.max() == 255 and clipped.min() == 255


def test_observation_to_image_for_onehot():
    env = GridWorld(size=(2, 4), observation="onehot", image_size=16)
    obs = env.render(np.array([[1, 2]]))
    img = env.observation_to_image(obs)
    scale = 16 // 4
    assert img.shape == (1, 2 * scale, 4 * scale, 3) and img.dtype == np.uint8
    white = np.all(img[0] == 255, axis=-1)
    expected = np.zeros((2 * scale, 4 * scale), dtype=bool)
    expected[scale:2 * scale, 2 * scale:3 * scale] = True
    assert np.array_equal(white, expected)
    assert img[0][~white].max() == 0


# -- registry --------------------------------------------------------------------------------
def test_make_env_and_list_envs():
    assert "gridworld" in list_envs()
    assert list_envs() == sorted(list_envs())
    env = make_env("gridworld", size=3, image_size=16)
    assert isinstance(env, GridWorld) and env.rows == 3 and env.image_size == 16


def test_make_env_unknown_name_lists_registered_names():
    with pytest.raises(KeyError, match=r"unknown environment 'mujoco'; registered environments: \[.*'gridworld'"):
        make_env("mujoco")


def test_register_env_refuses_a_taken_name():
    with pytest.raises(ValueError, match="'gridworld' is already registered to GridWorld"):
        register_env("gridworld")(type("Impostor", (), {}))
    assert make_env("gridworld", size=2, image_size=8).__class__ is GridWorld


def test_get_config_round_trip_and_repr():
    env = GridWorld(size=(3, 4), scales=(0, 2), colours=("white", "red"), backgrounds=("black",),
                    image_size=16)
    config = env.get_config()
    clone = make_env("gridworld", **config)
    assert clone.get_config() == config
    f = env.factors.from_index(np.arange(env.factors.num_states))
    assert np.array_equal(clone.render(f), env.render(f))
    assert repr(env).startswith("GridWorld(size=[3, 4]")


def test_environment_is_abstract():
    with pytest.raises(TypeError):
        Environment()


@pytest.mark.parametrize("kept", [[0.5], [True], 1, "01", [0, 1.0], None])
def test_factor_subsets_take_integer_class_indices_only(kept):
    """``factors={"shape": [0.5]}`` used to be class 0 without a word."""
    from dynrep.envs.factor_images import FactorImageEnvironment
    parse = FactorImageEnvironment._parse_subset
    with pytest.raises(ValueError, match=r"factors\['b'\] must be a list of integer class indices in \[0, 3\), got"):
        parse(("a", "b"), (2, 3), {"b": kept})
    subset = parse(("a", "b"), (2, 3), {"b": np.array([2, 0]), "a": (1,)})  # any integer sequence
    assert [k.tolist() for k in subset] == [[1], [2, 0]]
