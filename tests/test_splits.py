"""Lost-in-Latent-Space holdouts: every split's masks on the full grids against the study's predicates.

``STUDY`` below is a second transcription of the study's ``scripts/configs/datasplits.py``, written in its own
form (column-indexed ``(factor_values [N, K], factor_classes [N, K])`` matrices, both masks as the study gives
them), evaluated on the real factor values: dSprites ``latents_values`` (shape 1, 2, 3; scale
linspace(0.5, 1, 6); orientation linspace(0, 2pi, 40); positions linspace(0, 1, 32), as the file's metadata
lists them), Shapes3D ``labels`` (hues k/10, scale linspace(0.75, 1.25, 8), shape 0..3, orientation
linspace(-30, 30, 15)), MPI3D classes, and the procedural worlds' own ``factor_values``.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from dynrep import Circles, GridWorld, Simple, TwoShapes
from dynrep.envs.splits import list_modifiers, list_splits, split_masks

DSPRITES = (("shape", "scale", "orientation", "pos_x", "pos_y"),
            [np.array([1.0, 2.0, 3.0]), np.linspace(0.5, 1, 6), np.linspace(0, 2 * np.pi, 40),
             np.linspace(0, 1, 32), np.linspace(0, 1, 32)])
SHAPES3D = (("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
            [np.arange(10) / 10] * 3 + [np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30, 30, 15)])
MPI3D = (("object_color", "object_shape", "object_size", "camera_height", "background_color", "horizontal_axis",
          "vertical_axis"), [np.arange(s) for s in (6, 6, 2, 3, 3, 40, 40)])


def complement(test):
    return lambda v, c: ~test(v, c)


def dsprites_study():
    shp, scl, rot, tx, ty = range(5)
    a120, a240 = 4 * np.pi / 3, 2 * np.pi / 3  # as the study names them

    def leave1out(v, c):
        return ((c[:, shp] == 1) & (v[:, scl] > 0.6) & (v[:, rot] > 0.0) & (v[:, rot] < a120) & (v[:, rot] > a240)
                & (v[:, tx] > 0.66) & (v[:, ty] > 0.66))

    def cent(v, c):
        return (v[:, shp] == 1) & (v[:, tx] > 0.25) & (v[:, tx] < 0.75)

    def rs(v, c):
        return (v[:, shp] == 1) & (v[:, tx] > 0.40) & (v[:, tx] < 0.90)

    def flnk_train(v, c):
        return (v[:, shp] != 1) | (v[:, tx] < 0.25) | (v[:, tx] > 0.75)

    def ls_train(v, c):
        return (v[:, shp] != 2) | ((v[:, tx] > 0.10) & (v[:, tx] < 0.60))

    splits = {  # name: (train, test)
        "recomb2element/leave1out": (complement(leave1out), leave1out),
        "recomb2range/sqr2tx": (lambda v, c: (v[:, shp] != 1) | (v[:, tx] < 0.5),
                                lambda v, c: (v[:, shp] == 1) & (v[:, tx] > 0.5)),
        "recomb2range/ell2tx": (lambda v, c: (v[:, shp] != 2) | (v[:, tx] < 0.5),
                                lambda v, c: (v[:, shp] == 2) & (v[:, tx] > 0.5)),
        "recomb2range/sqr2scl": (lambda v, c: (v[:, shp] != 1) | (v[:, scl] < 0.75),
                                 lambda v, c: (v[:, shp] == 1) & (v[:, scl] > 0.75)),
        "recomb2range/sqr2tx_cent": (complement(cent), cent),
        "recomb2range/sqr2tx_flnk": (flnk_train, complement(flnk_train)),
        "recomb2range/sqr2tx_rs": (complement(rs), rs),
        "recomb2range/sqr2tx_ls": (ls_train, complement(ls_train)),
        "extrp/blank_side": (lambda v, c: v[:, tx] < 0.5, lambda v, c: v[:, tx] > 0.5),
    }
    return splits, {"sparse_posX": lambda v, c: np.isin(c[:, tx], [0, 7, 15, 23, 31])}


def shapes3d_study():
    fh, wh, oh, scl, shp, orient = range(6)

    def wnf_even(v, c):
        return ((c[:, wh] % 2) == 0) & ((c[:, fh] % 2) == 0)

    def test_only(test):
        return complement(test), test

    splits = {
        "interp/odd_ohue": (lambda v, c: c[:, oh] % 2 == 0, lambda v, c: c[:, oh] % 2 == 1),
        "interp/odd_wnf_hue": (wnf_even, complement(wnf_even)),
        "extrp/missing_fh": (lambda v, c: v[:, fh] < 0.5, lambda v, c: ~(v[:, fh] < 0.5)),
        "recomb2range/ohue2whue": test_only(lambda v, c: (v[:, oh] >= 0.75) & (v[:, wh] <= 0.5)),
        "recomb2range/fhue2whue": test_only(lambda v, c: (v[:, fh] >= 0.75) & (v[:, wh] <= 0.5)),
        "recomb2range/shape2fhue": test_only(lambda v, c: (v[:, shp] == 3.0) & (v[:, fh] >= 0.5)),
        "recomb2range/shape2ohue": test_only(lambda v, c: (v[:, shp] == 3.0) & (v[:, oh] >= 0.5)),
        "recomb2range/shape2ohue_flnk": test_only(lambda v, c: (v[:, shp] == 3.0) & (v[:, oh] > 0.25)
                                                  & (v[:, oh] < 0.75)),
        "recomb2range/shape2ohueq": test_only(lambda v, c: (v[:, shp] == 3.0) & (v[:, oh] <= 0.25)),
        "recomb2range/shape2orient": test_only(lambda v, c: (c[:, shp] == 3.0) & (v[:, orient] >= 0)),
        "recomb2element/leave1out": test_only(lambda v, c: (v[:, oh] >= 0.8) & (v[:, wh] >= 0.8) & (v[:, fh] >= 0.8)
                                              & (v[:, scl] >= 1.1) & (v[:, shp] == 1) & (v[:, orient] > 20)),
        "recomb2element/shape2ohue": test_only(lambda v, c: (c[:, shp] == 3.0) & (c[:, oh] == 2)),
    }
    modifiers = {"even_ohues": lambda v, c: (c[:, oh] % 2) == 0, "half_ohues": lambda v, c: c[:, oh] < 5,
                 "even_wnf_hues": wnf_even}
    return splits, modifiers


def mpi3d_study():
    oc, shp, sz, camh, bkg, hx, vx = range(7)

    def test_only(test):
        return complement(test), test

    splits = {
        "extrp/horz_gt20": (lambda v, c: v[:, hx] < 20, lambda v, c: v[:, hx] > 20),
        "extrp/objc_gt3": (lambda v, c: v[:, oc] <= 3, lambda v, c: v[:, oc] > 3),
        "recomb2range/cyl2hx": test_only(lambda v, c: (v[:, hx] < 20) & (v[:, shp] == 2)),
        "recomb2range/cyl2vx": test_only(lambda v, c: (v[:, vx] < 20) & (v[:, shp] == 2)),
        "recomb2range/redoc2hx": test_only(lambda v, c: (v[:, hx] < 20) & (v[:, oc] == 2)),
        "recomb2range/bkg2cyl": test_only(lambda v, c: (v[:, shp] >= 4) & (v[:, bkg] == 2)),
        "recomb2element/leave1out": test_only(lambda v, c: (v[:, oc] == 5) & (v[:, shp] == 2) & (v[:, sz] == 1)
                                              & (v[:, camh] == 1) & (v[:, bkg] == 1) & (v[:, hx] > 35)
                                              & (v[:, vx] > 35)),
    }
    modifiers = {"four_shapes": lambda v, c: ~np.isin(v[:, shp], np.array([0, 3])),
                 "fix_hx": lambda v, c: v[:, hx] == 0, "lhalf_hx": lambda v, c: v[:, hx] < 20,
                 "even_vx": lambda v, c: c[:, vx] % 2 == 1}
    return splits, modifiers


def circles_study(with_shape):
    px, py, shape = 0, 1, 2
    only = (lambda c: c[:, shape] == 1) if with_shape else (lambda c: True)
    mid = (lambda v, c: (v[:, px] >= 0.35) & (v[:, px] <= 0.65) & (v[:, py] >= 0.35) & (v[:, py] <= 0.65)
           & only(c))
    quadrant = lambda v, c: only(c) & (v[:, px] > 0.5) & (v[:, py] > 0.5)
    return {"recomb2range/midpos": (complement(mid), mid),
            "recomb2range/shape2px": (complement(quadrant), quadrant)}, {}


def two_shapes_study():
    o1_px, o1_py, o1_hue, o2_px, o2_py, o2_hue = 0, 1, 3, 4, 5, 7
    hue = lambda v, c: (c[:, o1_hue] < 2) & (c[:, o2_hue] > 2)
    noverlap = (lambda v, c: (np.abs(v[:, o1_px] - v[:, o2_px]) > 0.2)
                & (np.abs(v[:, o1_py] - v[:, o2_py]) > 0.2))
    return {"recomb2range/huecomb": (complement(hue), hue)}, {"noverlap": noverlap}


TWO_SHAPES = TwoShapes(grid=6, hues=5, radius=2.0, image_size=16)
STUDY = {"dsprites": (DSPRITES, dsprites_study), "shapes3d": (SHAPES3D, shapes3d_study),
         "mpi3d": (MPI3D, mpi3d_study),
         "circles": ((Circles().factors.names, Circles().factor_values), lambda: circles_study(False)),
         "simple": ((Simple().factors.names, Simple().factor_values), lambda: circles_study(True)),
         "two_shapes": ((TWO_SHAPES.factors.names, TWO_SHAPES.factor_values), two_shapes_study)}


def study_grid(values):
    """The study's (factor_values, factor_classes) matrices of the full C-order grid (itertools.product order)."""
    mesh = lambda axes: np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    return mesh(values), mesh([np.arange(len(v)) for v in values])


@pytest.fixture(scope="module")
def grids():
    return {dataset: study_grid(table[1]) for dataset, (table, _) in STUDY.items()}


def test_study_grid_is_in_the_study_order():
    values = [np.array([0.5, 1.5]), np.arange(3.0), np.array([7.0, 8.0])]
    np.testing.assert_array_equal(study_grid(values)[0], list(itertools.product(*values)))


def test_every_study_split_and_modifier_is_defined():
    assert list_splits() == sorted(f"{d}/{name}" for d, (_, study) in STUDY.items() for name in study()[0])
    for dataset, (_, study) in STUDY.items():
        assert list_modifiers(dataset) == sorted(study()[1])
    assert list_splits(details=True)["shapes3d/recomb2range/shape2ohueq"] \
        == "Shapes3D.recomb2range['shape2ohueq'] (_Shapes3D.shape_to_objh_quarter)"
    assert list_splits(details=True)["two_shapes/recomb2range/huecomb"] \
        == "TwoShapes.recomb2range['huecomb'] (_TwoShapes.hue_combs)"
    assert list_modifiers("mpi3d", details=True)["four_shapes"] \
        == "MPI3D.modifiers['four_shapes'] (_MPID3D.remove_redundant_shapes)"
    assert list_modifiers("circles") == []


@pytest.mark.parametrize("dataset", sorted(STUDY))
def test_every_split_and_modifier_matches_the_study_on_the_full_grid(grids, dataset):
    (names, values), study = STUDY[dataset]
    splits, modifiers = study()
    v, c = grids[dataset]
    for variant, (train_mask, test_mask) in splits.items():
        train, test = split_masks(f"{dataset}/{variant}", names, values)
        np.testing.assert_array_equal(test, test_mask(v, c), err_msg=f"{variant} test")
        np.testing.assert_array_equal(train, train_mask(v, c), err_msg=f"{variant} train")
        assert test.any() and train.any() and not (train & test).any(), variant
        for modifier, keep in modifiers.items():  # ANDed into both masks
            train, test = split_masks(f"{dataset}/{variant}", names, values, (modifier,))
            np.testing.assert_array_equal(test, test_mask(v, c) & keep(v, c), err_msg=f"{variant} + {modifier}")
            np.testing.assert_array_equal(train, train_mask(v, c) & keep(v, c), err_msg=f"{variant} + {modifier}")
    if len(modifiers) > 1:
        variant, (train_mask, test_mask) = next(iter(splits.items()))
        first, second = list(modifiers)[:2]
        train, test = split_masks(f"{dataset}/{variant}", names, values, (first, second))
        np.testing.assert_array_equal(train, train_mask(v, c) & modifiers[first](v, c) & modifiers[second](v, c))
    for modifier, keep in modifiers.items():  # no condition: the modifier is the training mask, test is everything
        train, test = split_masks(dataset, names, values, (modifier,))
        np.testing.assert_array_equal(train, keep(v, c))
        assert test.all()


@pytest.mark.parametrize("name,grid,test_count", [
    ("shapes3d/recomb2element/leave1out", SHAPES3D, 2 * 2 * 2 * 3 * 3),  # scale classes 5..7, orientation 12..14
    ("shapes3d/recomb2range/shape2ohue", SHAPES3D, 10 * 10 * 5 * 8 * 15),
    ("shapes3d/recomb2range/shape2ohueq", SHAPES3D, 10 * 10 * 3 * 8 * 15),
    ("shapes3d/recomb2range/shape2ohue_flnk", SHAPES3D, 10 * 10 * 5 * 8 * 15),
    ("shapes3d/recomb2range/shape2orient", SHAPES3D, 10 * 10 * 10 * 8 * 8),
    ("shapes3d/interp/odd_ohue", SHAPES3D, 240000),
    ("shapes3d/recomb2range/fhue2whue", SHAPES3D, 2 * 6 * 10 * 8 * 4 * 15),
    ("shapes3d/recomb2element/shape2ohue", SHAPES3D, 10 * 10 * 8 * 15),
    ("dsprites/recomb2range/sqr2tx", DSPRITES, 6 * 40 * 16 * 32),
    ("dsprites/recomb2range/sqr2tx_cent", DSPRITES, 6 * 40 * 16 * 32),  # pos_x classes 8..23
    ("dsprites/recomb2range/sqr2tx_flnk", DSPRITES, 6 * 40 * 16 * 32),
    ("dsprites/recomb2range/sqr2tx_rs", DSPRITES, 6 * 40 * 15 * 32),  # 13..27
    ("dsprites/recomb2range/sqr2tx_ls", DSPRITES, 6 * 40 * 17 * 32),  # ellipse at 0..3 and 19..31
    ("dsprites/recomb2element/leave1out", DSPRITES, 4 * 12 * 11 * 11),  # rotation classes 14..25 only
    ("mpi3d/recomb2range/cyl2hx", MPI3D, 6 * 2 * 3 * 3 * 20 * 40),
    ("mpi3d/extrp/objc_gt3", MPI3D, 2 * 6 * 2 * 3 * 3 * 40 * 40),
])
def test_held_out_counts(name, grid, test_count):
    train, test = split_masks(name, *grid)
    assert len(test) == int(np.prod([len(v) for v in grid[1]]))
    assert test.sum() == test_count
    assert not (train & test).any() and (train | test).all()


def test_decisions_on_the_real_floats():
    names, values = DSPRITES
    # Rotation class 13 is 2pi/3 and class 26 is 4pi/3 to the last bit, so neither is strictly inside.
    assert values[2][13] == 2 * np.pi / 3 and values[2][26] == 4 * np.pi / 3
    _, test = split_masks("dsprites/recomb2element/leave1out", names, values)
    orientation = np.indices([len(v) for v in values]).reshape(5, -1)[2]
    assert set(orientation[test]) == set(range(14, 26))
    # The hue boundaries fall on no value, so k/10, k * 0.1 and float32 labels give the same masks.
    names, values = SHAPES3D
    for hues in (np.linspace(0, 1, 10, endpoint=False), (np.arange(10) / 10).astype(np.float32)):
        for name in list_splits():
            if name.startswith("shapes3d/"):
                np.testing.assert_array_equal(split_masks(name, names, values)[1],
                                              split_masks(name, names, [hues] * 3 + values[3:])[1], err_msg=name)


def test_modifier_semantics():
    names, values = MPI3D
    _, test = split_masks("mpi3d/recomb2range/cyl2hx", names, values, ("even_vx",))
    vx = np.indices([len(v) for v in values]).reshape(7, -1)[6]
    assert set(vx[test]) == set(range(1, 40, 2))  # the study's even_vx keeps the odd classes
    train, test = split_masks("mpi3d/extrp/horz_gt20", names, values)
    assert not (train | test)[np.ravel_multi_index((0, 0, 0, 0, 0, 20, 0), (6, 6, 2, 3, 3, 40, 40))]


def test_split_environments_sample_only_their_combinations():
    env = Circles(grid=8, radius=2, image_size=32)
    train, test = env.split("circles/recomb2range/shape2px")
    quadrant = lambda f: (f[..., 0] >= 4) & (f[..., 1] >= 4)  # positions > 0.5 on linspace(0, 1, 8)
    assert quadrant(test.sample_factors(200, 0)).all()
    traj = train.sample_trajectories(64, 10, 1)
    assert not quadrant(traj.factors.numpy()).any()  # trajectories never enter the held-out quadrant
    assert train.allowed.sum() + test.allowed.sum() == 64 and test.allowed.sum() == 16
    assert traj.obs.shape == (64, 11, 1, 32, 32)


def test_split_reads_the_environment_values():
    env = Circles(grid=21, radius=2, image_size=32)  # linspace(0, 1, 21)[7] is 0.35000000000000003
    train, test = env.split("circles/recomb2range/midpos")
    v, c = study_grid(env.factor_values)
    np.testing.assert_array_equal(test.allowed, circles_study(False)[0]["recomb2range/midpos"][1](v, c))
    assert test.allowed.sum() == 7 * 7  # classes 7..13 on both axes


def test_deprecated_names_warn_and_resolve():
    env = Simple(grid=8, radius=2, image_size=16)
    with pytest.warns(DeprecationWarning, match="'simple/recomb2range/midpos'"):
        train, test = env.split("simple/interp/midpos")
    assert test.name == "simple/recomb2range/midpos"
    np.testing.assert_array_equal(test.allowed, env.split("simple/recomb2range/midpos")[1].allowed)
    assert "simple/interp/midpos" not in list_splits()


def test_two_shapes_world():
    env = TwoShapes(grid=4, hues=4, radius=2.0, image_size=16)
    assert env.factors.names == ("o1_px", "o1_py", "o1_shape", "o1_hue", "o2_px", "o2_py", "o2_shape", "o2_hue")
    obs = env.render(np.array([[0, 0, 0, 0, 3, 3, 1, 2], [0, 0, 0, 0, 0, 0, 1, 2]]))
    assert obs.shape == (2, 3, 16, 16) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[0, :, 2, 2], [255, 0, 0])  # hue 0 = red disc centred at pixel (2, 2)
    np.testing.assert_array_equal(obs[0, :, 13, 13], [0, 255, 255])  # hue 0.5 = cyan square at (13, 13)
    np.testing.assert_array_equal(obs[1, :, 2, 2], [0, 255, 255])  # object 2 occludes object 1
    assert obs[1, 0, 0, 0] == 0 and obs[1, 1, 0, 0] > 0  # the square's corner, outside the disc
    train, test = env.split("two_shapes/recomb2range/huecomb", modifiers=("noverlap",))
    f = test.sample_factors(500, 0)
    assert ((f[:, 3] < 2) & (f[:, 7] > 2)).all()
    assert ((np.abs(f[:, 0] - f[:, 4]) >= 1) & (np.abs(f[:, 1] - f[:, 5]) >= 1)).all()  # > 0.2 apart = 1 step of 1/3
    with pytest.raises(ValueError, match="hues must be"):
        TwoShapes(hues=3)


def test_errors():
    names, values = SHAPES3D
    with pytest.raises(KeyError, match="unknown split 'shapes3d/nope'"):
        split_masks("shapes3d/nope", names, values)
    with pytest.raises(ValueError, match="is for 'shapes3d', not for a 'gridworld' environment"):
        GridWorld().split("shapes3d/recomb2range/shape2ohue")
    with pytest.raises(ValueError, match="needs factor 'shape'"):
        split_masks("simple/recomb2range/midpos", ("pos_x", "pos_y"), [np.linspace(0, 1, 8)] * 2)
    with pytest.raises(ValueError, match=r"unknown modifier\(s\) \['even_vx'\] for 'shapes3d'; its modifiers: "
                                         r"\['even_ohues', 'even_wnf_hues', 'half_ohues'\]"):
        split_masks("shapes3d/interp/odd_ohue", names, values, ("even_vx",))
    with pytest.raises(TypeError, match="modifiers must be a sequence of modifier names, got 'even_ohues'"):
        split_masks("shapes3d/interp/odd_ohue", names, values, "even_ohues")
    with pytest.raises(ValueError, match="'shapes3d' names no condition, so it needs modifiers"):
        split_masks("shapes3d", names, values)
    with pytest.raises(ValueError, match=r"values must be one 1-D array of class values per factor .* got shapes "
                                         r"\[\(\), \(\)\]"):
        split_masks("circles/recomb2range/midpos", ("pos_x", "pos_y"), (8, 8))  # sizes where values belong
    with pytest.raises(ValueError, match="dataset must be one of"):
        list_modifiers("gridworld")
