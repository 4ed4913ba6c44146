"""Pendulum and Flow: published grids and splits, mechanisms, interventions, steps and rendered pixels."""
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from dynrep.data.loaders import TrajectoryStream
from dynrep.envs import make_env
from dynrep.envs.flow import Flow
from dynrep.envs.pendulum import Pendulum
from dynrep.envs.raster import Canvas

#: 8 Pendulum and 8 Flow states drawn by the generators' own matplotlib code (a line-for-line transcription of
#: CausalVAE's causal_data/pendulum.py and flow.py: 1x1 in figure, dpi 96, PNG read back as RGB; Flow's jet with
#: the coefficient 0.98 of its label). Keys: pendulum_images [8, 96, 96, 3] uint8 for pendulum_params (i, j) with
#: pendulum_labels (i, j, shadow_length, shadow_position); flow_images for flow_params (ball, u, hole).
REFERENCE_RENDERS = Path(__file__).parent / "data" / "causal_renders.npz"


@pytest.fixture(scope="module")
def pendulum():
    return Pendulum(subset="all")


@pytest.fixture(scope="module")
def flow():
    return Flow(subset="all")


def pixel(x, y, xlim, ylim, size=96):
    """(row, col) of data point (x, y) in a 1-inch figure with matplotlib's default axes box."""
    col = (0.125 + (x - xlim[0]) / (xlim[1] - xlim[0]) * 0.775) * size
    row = (1 - (0.11 + (y - ylim[0]) / (ylim[1] - ylim[0]) * 0.77)) * size
    return int(row), int(col)


def generator_pendulum_labels(i, j):
    """The CausalVAE generator's shadow labels, written independently with its line-intercept form."""
    theta, phi = i * math.pi / 200, j * math.pi / 200

    def proj(x, y, base=-0.5):
        return (base - (y - x * math.tan(phi))) / math.tan(phi)

    near, far = proj(10.0, 10.5), proj(10 + 9.5 * math.sin(theta), 10.5 - 9.5 * math.cos(theta))
    return max(3, abs(near - far)), (near + far) / 2


# ------------------------------------------------------------------------------------------------ pendulum

def test_pendulum_grid_order_split_and_labels(pendulum):
    rows = pendulum.grid_factors()
    assert rows.shape == (7308, 4) and rows.dtype == np.float64
    assert tuple(rows[0, :2]) == (-40, 60) and tuple(rows[-1, :2]) == (43, 147)
    assert not np.any(rows[:, 1] == 100)
    assert Pendulum(subset="train").num_rows == 5482 and Pendulum(subset="test").num_rows == 1826
    test = Pendulum(subset="test").grid_factors()
    assert tuple(test[0, :2]) == (-40, 64) and tuple(test[1, :2]) == (-40, 68)  # images 4 and 8
    train = Pendulum(subset="train").grid_factors()
    assert [tuple(r) for r in train[:5, :2]] == [(-40, 60), (-40, 61), (-40, 62), (-40, 63), (-40, 65)]
    for k in (0, 777, 3001, 7307):
        i, j = rows[k, :2]
        length, mid = generator_pendulum_labels(i, j)
        assert rows[k, 2] == pytest.approx(length, abs=1e-9) and rows[k, 3] == pytest.approx(mid, abs=1e-9)


def test_pendulum_graph_and_standardisation(pendulum):
    g = pendulum.graph  # rows = children
    assert g.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]
    labels = pendulum.standardize(np.array([[44.0, 140.0, 10.0, 15.0]]))
    np.testing.assert_allclose(labels, [[1.0, 1.0, 1.0, 1.0]])
    assert labels.dtype == np.float32


def test_pendulum_intervention_on_root_recomputes_descendants(pendulum):
    rows = pendulum.grid_factors()[[10, 2000, 5000]]
    out = pendulum.intervene({"light": 120.0}, rows)
    assert np.all(out[:, 1] == 120) and np.all(out[:, 0] == rows[:, 0])
    for r in out:
        length, mid = generator_pendulum_labels(r[0], 120.0)
        assert r[2] == pytest.approx(length) and r[3] == pytest.approx(mid)
    assert np.all(out[:, 3] != rows[:, 3])  # the shadow moved


def test_pendulum_intervention_on_descendant_keeps_the_rest(pendulum):
    rows = pendulum.grid_factors()[[10, 2000]]
    out = pendulum.intervene({"shadow_length": np.array([5.0, 9.0])}, rows)
    np.testing.assert_array_equal(out[:, 2], [5.0, 9.0])
    np.testing.assert_array_equal(np.delete(out, 2, axis=1), np.delete(rows, 2, axis=1))
    before, after = pendulum.render(rows), pendulum.render(out)
    changed_rows = np.nonzero(np.any(before != after, axis=(0, 1, 3)))[0]
    ground = pixel(0, -0.5, (0, 20), (-1, 21))[0]
    assert len(changed_rows) and np.all(np.abs(changed_rows - ground) <= 3)  # only the shadow changed


def test_intervene_defaults_and_errors(pendulum):
    out = pendulum.intervene({"pendulum": 0.0}, n=5, rng=0)
    assert out.shape == (5, 4) and np.all(out[:, 0] == 0)
    np.testing.assert_array_equal(out, pendulum.intervene({"pendulum": 0.0}, n=5, rng=0))
    with pytest.raises(ValueError, match="unknown variable 'sun'.*pendulum"):
        pendulum.intervene({"sun": 1.0}, n=2)
    with pytest.raises(ValueError, match=r"light must be in \[10.0, 190.0\], got 250"):
        pendulum.intervene({"light": 250.0}, n=2)
    with pytest.raises(ValueError, match=r"shadow_length must be a scalar or have shape \[2\]"):
        pendulum.intervene({"shadow_length": np.ones(3)}, n=2)
    with pytest.raises(ValueError, match="at least one variable"):
        pendulum.intervene({}, n=2)
    with pytest.raises(ValueError, match=r"factors must have shape \[N, 4\]"):
        pendulum.render(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="pendulum must be in"):
        pendulum.render(np.array([[np.nan, 100.0, 3.0, 10.0]]))


def test_pendulum_step_shifts_clamps_and_recomputes(pendulum):
    rows = pendulum.grid_factors()[[0, len(pendulum.grid_factors()) - 1]]  # (-40, 60) and (43, 147)
    names = pendulum.actions.names
    assert names == ("pendulum+", "pendulum-", "light+", "light-")
    up = pendulum.step(rows, np.array([0, 0]))
    assert up[:, 0].tolist() == [-39.0, 43.0]  # second row clamped at the published maximum
    down = pendulum.step(rows, np.array([3, 3]), magnitudes=np.array([5, 5]))
    assert down[:, 1].tolist() == [60.0, 142.0]
    for r in np.concatenate([up, down]):
        length, mid = generator_pendulum_labels(r[0], r[1])
        assert r[2] == pytest.approx(length) and r[3] == pytest.approx(mid)
    with pytest.raises(ValueError, match=r"actions must be in \[0, 4\)"):
        pendulum.step(rows, np.array([0, 4]))


def test_pendulum_known_pixels(pendulum):
    row = pendulum.grid_factors()[pendulum.grid_factors()[:, 0] == 0][10]  # theta = 0: bob straight down
    image = pendulum.render(row[None])[0].transpose(1, 2, 0)
    lims = ((0, 20), (-1, 21))
    assert tuple(image[pixel(10, 2.5, *lims)]) == (178, 34, 34)  # bob centre (10, 10.5 - 8)
    assert tuple(image[pixel(10, 6.5, *lims)]) == (0, 0, 0)  # the rod
    assert tuple(image[pixel(row[3], -0.5, *lims)]) == (0, 0, 0)  # shadow centre
    assert tuple(image[0, 0]) == (255, 255, 255) and tuple(image[-1, -1]) == (255, 255, 255)
    sun_x = 10 + 10 * math.cos(row[1] * math.pi / 200) / math.sin(row[1] * math.pi / 200)
    assert tuple(image[pixel(sun_x, 19.5, *lims)]) == (255, 165, 0)
    assert tuple(image[pixel(sun_x, 21.8, *lims)]) == (255, 255, 255)  # clipped by the axes above y = 21


# ------------------------------------------------------------------------------------------------ flow

def test_flow_grid_order_split_graph_and_labels(flow):
    rows = flow.grid_factors()
    assert rows.shape == (8100, 4)
    assert flow.variables == ("ball", "water", "outflow", "hole")
    assert flow.graph.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]]
    assert Flow(subset="train").num_rows == 6480 and Flow(subset="test").num_rows == 1620
    assert tuple(Flow(subset="test").grid_factors()[0, [0, 3]]) == (5, 10)  # image 4: ball 5, u 10, hole 10
    # published file name a_10_2_31_9 for ball 10, u 20, hole 9 (loop order ball, u, hole)
    k = (10 - 5) * 30 * 9 + (20 - 10) * 9 + (9 - 6)
    ball, water, outflow, hole = rows[k]
    assert (ball, int(water), int(outflow), hole) == (10, 2, 31, 9)
    assert water == pytest.approx((10 / 30) ** 3 + 2.0)
    assert outflow == pytest.approx(10 * math.sqrt(2 * 0.98 * water * (9 / 3 - 0.5)))


def test_flow_counterfactual_keeps_the_water_term(flow):
    rows = flow.grid_factors()[[0, 4321]]
    out = flow.intervene({"ball": 34.0}, rows)
    u = 10 * (rows[:, 1] - (rows[:, 0] / 30) ** 3)
    np.testing.assert_allclose(out[:, 1], (34 / 30) ** 3 + u / 10)
    np.testing.assert_allclose(out[:, 2], 10 * np.sqrt(2 * 0.98 * out[:, 1] * (rows[:, 3] / 3 - 0.5)))
    np.testing.assert_array_equal(out[:, 3], rows[:, 3])
    only_water = flow.intervene({"water": 1.0}, rows)
    np.testing.assert_array_equal(only_water[:, 0], rows[:, 0])  # a parent is not touched
    assert np.all(only_water[:, 2] < rows[:, 2])
    stepped = flow.step(rows, np.array([2, 2]))  # hole+
    assert stepped[:, 3].tolist() == [7.0, min(rows[1, 3] + 1, 14.0)]
    np.testing.assert_allclose(stepped[:, 1], rows[:, 1])


def test_flow_known_pixels(flow):
    row = flow.grid_factors()[0]  # ball 5, water level 5 + 1.005, hole 2
    image = flow.render(row[None])[0].transpose(1, 2, 0)
    lims = ((0, 20), (0, 20))
    assert tuple(image[pixel(4.2, 4.0, *lims)]) == (135, 206, 250)  # water
    assert tuple(image[pixel(4.2, 8.0, *lims)]) == (255, 255, 255)  # above the water
    assert tuple(image[pixel(3.0, 12.0, *lims)]) == (0, 0, 0)  # left wall
    r, c = pixel(8.0, 12.0, *lims)  # x = 8 is at pixel 41.76; Agg snaps the wall to the centre of column 42
    assert tuple(image[r, c + 1]) == (0, 0, 0) and tuple(image[r, c]) == (42, 42, 42)  # right wall
    # the ground (2.67 px wide, centre snapped to 85.5) is cut at 85 by the axes' whole-pixel clip box: row 84 at 5/6
    r, c = pixel(14.0, 0.2, *lims)
    assert tuple(image[r, c]) == (42, 42, 42) and tuple(image[r + 1, c]) == (255, 255, 255)
    assert tuple(image[pixel(8.0 + row[2] / 10 + 0.7, 0.9, *lims)]) == (255, 255, 255)  # past the jet


# ------------------------------------------------------------------------------------------------ shared

@pytest.mark.parametrize("name", ["pendulum", "flow"])
def test_trajectories_sampling_and_config(name):
    env = make_env(name, subset="test", image_size=64)
    batch = env.sample_trajectories(3, 2, rng=1)
    assert batch.obs.shape == (3, 3, 3, 64, 64) and batch.factors.shape == (3, 3, 4)
    assert str(batch.factors.dtype) == "torch.float64"
    again = env.sample_trajectories(3, 2, rng=1)
    assert (batch.obs == again.obs).all() and (batch.factors == again.factors).all()
    np.testing.assert_array_equal(batch.obs[:, 1].numpy(), env.render(batch.factors[:, 1].numpy()))
    fixed = env.trajectories(np.arange(4))
    assert fixed.obs.shape == (4, 1, 3, 64, 64) and fixed.length == 0
    np.testing.assert_array_equal(fixed.factors[:, 0].numpy(), env.grid_factors()[:4])
    clone = pickle.loads(pickle.dumps(env))
    assert clone.get_config() == {"subset": "test", "image_size": 64}
    np.testing.assert_array_equal(clone.grid_factors(), env.grid_factors())
    stream = next(iter(TrajectoryStream(env, batch_size=2, length=1, seed=3)))
    assert stream.obs.shape == (2, 2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"subset must be one of \('train', 'test', 'all'\), got 'valid'"):
        make_env(name, subset="valid")


@pytest.mark.parametrize("name", ["pendulum", "flow"])
def test_renders_match_the_generators_matplotlib_drawing(name, pendulum, flow):
    with np.load(REFERENCE_RENDERS) as reference:
        images, params = reference[f"{name}_images"], reference[f"{name}_params"]
        labels = reference["pendulum_labels"]
    rows = np.zeros((len(params), 4))
    if name == "pendulum":
        env, rows[:, :2] = pendulum, params
        for k, child in ((2, "shadow_length"), (3, "shadow_position")):
            rows[:, k] = env.mechanism(child, rows, np.zeros((len(rows), 0)))
        np.testing.assert_allclose(rows, labels)
    else:
        env, rows[:, 0], rows[:, 3] = flow, params[:, 0], params[:, 2]
        rows[:, 1] = env.mechanism("water", rows, params[:, 1:2])
        rows[:, 2] = env.mechanism("outflow", rows, params[:, 1:2])
    difference = np.abs(env.render(rows).transpose(0, 2, 3, 1).astype(int) - images)
    # before the rasteriser followed Agg's pixel snapping and whole-pixel clip box: Flow 6.2 / 255 and 3.8 % of
    # pixels off by > 64, Pendulum 0.4-0.8 / 255 and 0.4-0.6 %; now 0.02-0.08 / 255, none off by more than 20
    # (Flow; 32 with round caps on the jet) or 48 (Pendulum, on the discs' outlines)
    assert difference.mean(axis=(1, 2, 3)).max() < 0.25
    assert difference.max() <= {"pendulum": 56, "flow": 24}[name]


def test_canvas_snaps_rectilinear_paths_and_clips_to_whole_pixels():
    """matplotlib's Agg moves vertices of horizontal/vertical paths to pixel centres (stroke an odd number of pixels
    wide) or corners (even) and rounds the axes' clip box to whole pixels."""
    canvas = Canvas(1, 96, (0, 20), (0, 20))
    canvas.segment(3.0, 5.0, 3.0, 15.0, 2.0, "black")  # x = 3 at pixel 23.16, y = 15 / 5 at rows 30.0 / 66.96
    coverage = 1 - canvas.to_uint8()[0, 0].astype(float) / 255
    np.testing.assert_allclose(coverage[40, 21:26], [0, 5 / 6, 1, 5 / 6, 0], atol=0.01)  # 2.67 px about 23.5
    np.testing.assert_allclose(coverage[29:32, 23], [0, 0.5, 1], atol=0.01)  # the butt end at 30.5
    np.testing.assert_allclose(coverage[66:69, 23], [1, 0.5, 0], atol=0.01)  # and at 67.5
    canvas = Canvas(2, 96, (0, 20), (0, 20))
    canvas.segment(5.0, 10.0, 15.0, [10.0, 10.1], 3.0, "black")  # y = 10 at row 48.48; 4 px wide
    coverage = 1 - canvas.to_uint8()[:, 0].astype(float) / 255
    np.testing.assert_allclose(coverage[0, 44:52, 50], [0, 0, 1, 1, 1, 1, 0, 0], atol=0.01)  # about 48.0
    np.testing.assert_allclose(coverage[1, 45:52, 50], [0, 0.71, 1, 1, 1, 0.29, 0], atol=0.02)  # slanted: unsnapped
    canvas = Canvas(1, 96, (0, 20), (0, 20))
    canvas.disc(10.0, 20.0, 3.0, "black")  # cut by the axes' top at 11.52 px, rounded to row 12
    coverage = 1 - canvas.to_uint8()[0, 0].astype(float) / 255
    assert coverage[11, 48] == 0 and coverage[12, 48] == 1


def test_canvas_areas_match_geometry():
    canvas = Canvas(3, 96, (0, 20), (0, 20))
    px_per_unit = 0.775 * 96 / 20, 0.77 * 96 / 20
    canvas.disc(np.array([10.0, 10.0, 10.0]), 10.0, np.array([2.0, 3.0, 4.0]), "black")
    coverage = 1 - canvas.to_uint8()[:, 0].astype(float) / 255
    edge = 0.5 * 96 / 72  # matplotlib strokes patches with a 1-pt edge
    for area, r in zip(coverage.sum(axis=(1, 2)), (2.0, 3.0, 4.0)):
        expected = math.pi * (r * px_per_unit[0] + edge) * (r * px_per_unit[1] + edge)
        assert area == pytest.approx(expected, rel=0.02)
    width = 3 * 96 / 72
    for caps, extra in (("butt", 0.0), ("projecting", width)):
        canvas = Canvas(1, 96, (0, 20), (0, 20))
        canvas.segment(5.0, 10.0, 15.0, 10.0, 3.0, "black", caps=caps)
        area = (1 - canvas.to_uint8()[0, 0].astype(float) / 255).sum()
        assert area == pytest.approx((10 * px_per_unit[0] + extra) * width, rel=0.02)
    with pytest.raises(ValueError, match="caps must be"):
        Canvas(1, 96, (0, 20), (0, 20)).segment(0, 0, 1, 1, 1.0, "black", caps="square")
