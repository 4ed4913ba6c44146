"""Lost-in-Latent-Space holdouts: exact held-out sets on the full-size factor grids."""
from __future__ import annotations

import numpy as np
import pytest

from dynrep import Circles, GridWorld
from dynrep.envs.splits import list_splits, split_masks

SHAPES3D = (("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"), (10, 10, 10, 8, 4, 15))
DSPRITES = (("shape", "scale", "orientation", "pos_x", "pos_y"), (3, 6, 40, 32, 32))
MPI3D = (("object_color", "object_shape", "object_size", "camera_height", "background_color", "horizontal_axis",
          "vertical_axis"), (6, 6, 2, 3, 3, 40, 40))


def index(sizes, *classes):
    return int(np.ravel_multi_index(classes, sizes))


@pytest.mark.parametrize("name,grid,test_count", [
    ("shapes3d/recomb2range/shape2ohue", SHAPES3D, 10 * 10 * 5 * 8 * 15),
    ("shapes3d/interp/odd_ohue", SHAPES3D, 240000),
    ("shapes3d/recomb2range/fhue2whue", SHAPES3D, 2 * 6 * 10 * 8 * 4 * 15),
    ("shapes3d/recomb2element/shape2ohue", SHAPES3D, 10 * 10 * 8 * 15),
    ("dsprites/recomb2range/sqr2tx", DSPRITES, 6 * 40 * 16 * 32),
    ("dsprites/recomb2element/leave1out", DSPRITES, 4 * 12 * 11 * 11),
    ("mpi3d/recomb2range/cyl2hx", MPI3D, 6 * 2 * 3 * 3 * 20 * 40),
    ("mpi3d/extrp/objc_gt3", MPI3D, 2 * 6 * 2 * 3 * 3 * 40 * 40),
])
def test_held_out_counts_and_complement(name, grid, test_count):
    train, test = split_masks(name, *grid)
    assert len(test) == int(np.prod(grid[1]))
    assert test.sum() == test_count
    assert not (train & test).any() and (train | test).all()


def test_named_members():
    names, sizes = SHAPES3D
    train, test = split_masks("shapes3d/recomb2range/shape2ohue", names, sizes)
    assert test[index(sizes, 0, 0, 5, 0, 3, 0)] and train[index(sizes, 0, 0, 4, 0, 3, 0)]
    assert train[index(sizes, 9, 9, 9, 7, 2, 14)]  # a sphere of any hue is seen
    names, sizes = DSPRITES
    train, test = split_masks("dsprites/recomb2range/sqr2tx", names, sizes)
    assert test[index(sizes, 0, 0, 0, 16, 0)] and train[index(sizes, 0, 0, 0, 15, 0)]
    assert train[index(sizes, 1, 0, 0, 31, 0)]  # ellipses on the right are kept


def test_gap_split_leaves_hx_20_out():
    train, test = split_masks("mpi3d/extrp/horz_gt20", *MPI3D)
    assert test.sum() == 6 * 6 * 2 * 3 * 3 * 19 * 40 and train.sum() == 6 * 6 * 2 * 3 * 3 * 20 * 40
    assert not (train | test)[index(MPI3D[1], 0, 0, 0, 0, 0, 20, 0)]


def test_split_environments_sample_only_their_combinations():
    env = Circles(grid=8, radius=2, image_size=32)
    train, test = env.split("circles/recomb2range/shape2px")
    quadrant = lambda f: (f[..., 0] >= 4) & (f[..., 1] >= 4)  # positions > 0.5 on linspace(0, 1, 8)
    assert quadrant(test.sample_factors(200, 0)).all()
    traj = train.sample_trajectories(64, 10, 1)
    assert not quadrant(traj.factors.numpy()).any()  # trajectories never enter the held-out quadrant
    assert train.allowed.sum() + test.allowed.sum() == 64 and test.allowed.sum() == 16
    assert traj.obs.shape == (64, 11, 1, 32, 32)


def test_errors():
    with pytest.raises(KeyError, match="unknown split 'shapes3d/nope'"):
        split_masks("shapes3d/nope", *SHAPES3D)
    with pytest.raises(ValueError, match="is for 'shapes3d', not for a 'gridworld' environment"):
        GridWorld().split("shapes3d/recomb2range/shape2ohue")
    with pytest.raises(ValueError, match="needs factor 'shape'"):
        split_masks("simple/interp/midpos", ("pos_x", "pos_y"), (8, 8))
    assert "shapes3d/recomb2range/shape2ohue" in list_splits()
