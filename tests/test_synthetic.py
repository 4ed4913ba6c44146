"""dynrep.data.synthetic: each small copy loads with its environment and has the published file layout
(the facts stated in the loaders' docstrings and /work/shared/specs/latent.md section 2)."""
from __future__ import annotations

import io
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from dynrep import make_env
from dynrep.data import download
from dynrep.data.synthetic import CAUSAL_CIRCUIT_PAIRS, MPI3D_SIZES, write_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def npz_members(path) -> dict[str, int]:
    """Compression type of every array of an .npz."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename.removesuffix(".npy"): info.compress_type for info in archive.infolist()}


def check_factors_show(env) -> None:
    """Rendered images are uint8, not blank, and a change of any one factor changes the picture."""
    obs = env.render(env.sample_factors(16, 0))
    assert obs.dtype == np.uint8 and obs.shape[1:] == env.observation_shape and obs.std() > 20
    base = np.zeros((1, len(env.factors.names)), dtype=np.int64)
    for k, name in enumerate(env.factors.names):
        if env.factors.sizes[k] > 1:
            other = base.copy()
            other[0, k] = 1
            assert not np.array_equal(env.render(base), env.render(other)), name


def test_shapes3d(data):
    path = write_synthetic("shapes3d", data)
    assert path == data / "3dshapes.h5" and path.stat().st_size < 4e6
    with h5py.File(path, "r") as f:  # images (N, 64, 64, 3) uint8 chunked and compressed, labels (N, 6) float64
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
    check_factors_show(env)
    # Deterministic: written again, the same pixels.
    again = write_synthetic("shapes3d", data / "again")
    with h5py.File(path, "r") as a, h5py.File(again, "r") as b:
        np.testing.assert_array_equal(a["images"][()], b["images"][()])


def test_dsprites(data):
    path = write_synthetic("dsprites", data)
    assert path.name == "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz" and path.stat().st_size < 4e6
    members = npz_members(path)
    assert sorted(members) == ["imgs", "latents_classes", "latents_values", "metadata"]
    assert set(members.values()) == {zipfile.ZIP_DEFLATED}  # np.savez_compressed, as published
    with np.load(path, allow_pickle=True, encoding="latin1") as f:
        imgs, classes, values, metadata = f["imgs"], f["latents_classes"], f["latents_values"], f["metadata"][()]
    assert imgs.dtype == np.uint8 and imgs.shape[1:] == (64, 64) and set(np.unique(imgs)) == {0, 1}
    assert classes.dtype == np.int64 and values.dtype == np.float64 and classes.shape == values.shape == (len(imgs), 6)
    assert metadata["latents_names"] == ("color", "shape", "scale", "orientation", "posX", "posY")
    # Real values: shape 1..3, scale in linspace(0.5, 1, 6), orientation in linspace(0, 2pi, 40), pos in [0, 1].
    for k, real in enumerate([np.ones(1), np.arange(1.0, 4.0), np.linspace(0.5, 1, 6), np.linspace(0, 2 * np.pi, 40),
                              np.linspace(0, 1, 32), np.linspace(0, 1, 32)]):
        np.testing.assert_array_equal(values[:, k], real[classes[:, k]])
    env = make_env("dsprites", path=path)
    assert env.factors.names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert env.factors.periods[2] == 3  # orientations 0, 2pi/3, 4pi/3, 2pi: the last repeats the first
    check_factors_show(env)


@pytest.mark.parametrize("variant", ["toy", "realistic", "real"])
def test_mpi3d(data, variant):
    path = write_synthetic(f"mpi3d_{variant}", data)
    assert path.name == f"mpi3d_{variant}.npz" and path.stat().st_size < 4e6
    assert npz_members(path) == {"images": zipfile.ZIP_DEFLATED}
    env = make_env("mpi3d", variant=variant, path=path, sizes=MPI3D_SIZES)
    assert env._images.shape == (int(np.prod(MPI3D_SIZES)), 64, 64, 3) and env._images.dtype == np.uint8
    assert env.factors.names == ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                                 "horizontal_axis", "vertical_axis")
    check_factors_show(env)


def test_cars3d(data):
    path = write_synthetic("cars3d", data)
    files = sorted(p.name for p in path.glob("*.mat"))
    assert path == data / "cars3d" and files[0] == "car_001_mesh.mat"
    mat = scipy.io.loadmat(path / files[0])
    assert mat["im"].dtype == np.uint8 and mat["im"].shape == (128, 128, 3, 24, 4)
    assert mat["mask"].shape == (128, 128, 24, 4)
    env = make_env("cars3d", path=path, progress=False)
    assert env.factors.names == ("elevation", "azimuth", "object") and env.factors.sizes == (4, 24, len(files))
    check_factors_show(env)


def test_causal_circuit(data):
    path = write_synthetic("causal_circuit", data)
    assert path == data / "causal_circuit"
    assert sorted(p.name for p in path.iterdir()) == sorted(download.CAUSAL_CIRCUIT_FILES)
    with np.load(path / "test.npz") as f:  # no pickled objects: loads without allow_pickle
        imgs, latents = f["imgs"], f["original_latents"]
        assert sorted(f.files) == ["epsilon", "imgs", "intervention_labels", "intervention_masks",
                                   "original_latents", "pressed"]
        assert f["intervention_masks"].dtype == bool and f["pressed"].shape == (CAUSAL_CIRCUIT_PAIRS, 2, 3)
    assert imgs.dtype.kind == "S" and imgs.shape == (CAUSAL_CIRCUIT_PAIRS, 2)
    assert latents.dtype == np.float64 and latents.shape == (CAUSAL_CIRCUIT_PAIRS, 2, 4)
    assert latents.min() >= 0 and latents.max() <= 1
    assert Image.open(io.BytesIO(imgs[0, 0])).format == "JPEG"
    env = make_env("causal_circuit", path=path, image_size=32, progress=False)
    assert env.factors.names == ("arm", "blue", "green", "red")
    assert len(env) > CAUSAL_CIRCUIT_PAIRS * 10  # most frames fall in ICM-VAE's three regimes
    obs = env.render(env.sample_factors(8, 0))
    assert obs.shape == (8, 3, 32, 32) and obs.std() > 20
    # The lights follow the graph: before an intervention, green (and so red) is on when the arm is over the
    # green button (arm position 0.25), blue (and so red) over the blue one (0.85).
    before = latents[:, 0]
    green, blue = np.abs(before[:, 3] - 0.25) < 0.15, np.abs(before[:, 3] - 0.85) < 0.15
    assert green.any() and blue.any()
    assert (before[green, 1] > 0.4).all() and (before[blue, 2] > 0.4).all() and (before[green | blue, 0] > 0.5).all()
    assert (before[~green, 1] < 0.2).all() and (before[~blue, 2] < 0.2).all()


def test_unknown_names(data):
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        write_synthetic("nope", data)


def test_progress_false_unpacks_silently(tmp_path, capsys):
    from dynrep import DSprites, MPI3D
    from dynrep.data.synthetic import MPI3D_SIZES, write_synthetic
    DSprites(write_synthetic("dsprites", tmp_path / "d"), progress=False)
    MPI3D("toy", write_synthetic("mpi3d_toy", tmp_path / "m"), sizes=MPI3D_SIZES, progress=False)
    assert capsys.readouterr().err == ""
