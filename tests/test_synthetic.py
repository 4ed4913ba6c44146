"""dynrep.data.synthetic: each small copy loads with its environment and has the published file layout."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from dynrep import make_env
from dynrep.data.synthetic import write_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def test_shapes3d(data):
    path = write_synthetic("shapes3d", data)
    assert path == data / "3dshapes.h5" and path.stat().st_size < 4e6
    with h5py.File(path, "r") as f:  # the published layout (dynrep/envs/shapes3d.py docstring)
        assert sorted(f) == ["images", "labels"]
        images, labels = f["images"], f["labels"]
        assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
        assert images.compression == "gzip" and images.chunks is not None
        assert labels.dtype == np.float64 and labels.shape == (len(images), 6)
        values = [np.unique(labels[:, k]) for k in range(6)]
    # Values of the real kind: hues k/10, scale in linspace(0.75, 1.25, 8), shape 0..3, orientation -30..30.
    assert all(np.isin(values[k], np.arange(10) / 10).all() for k in range(3))
    assert np.isin(values[3], np.linspace(0.75, 1.25, 8)).all() and values[4].tolist() == [0, 1, 2, 3]
    assert np.isin(values[5], np.linspace(-30, 30, 15)).all()
    env = make_env("shapes3d", path=path, progress=False)
    assert env.factors.names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    obs = env.render(env.sample_factors(16, 0))
    assert obs.shape == (16, 3, 64, 64) and obs.dtype == np.uint8 and obs.std() > 20
    # Every factor changes the picture.
    base = np.zeros((1, 6), dtype=np.int64)
    for k in range(6):
        other = base.copy()
        other[0, k] = 1
        assert not np.array_equal(env.render(base), env.render(other)), env.factors.names[k]
    # Deterministic: written again, the same bytes.
    again = write_synthetic("shapes3d", data / "again")
    with h5py.File(path, "r") as a, h5py.File(again, "r") as b:
        np.testing.assert_array_equal(a["images"][()], b["images"][()])
