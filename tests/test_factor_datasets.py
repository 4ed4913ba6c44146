"""Shapes3D and dSprites loaders on small files written in the exact published formats."""
from __future__ import annotations

import functools
import io
import itertools
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import zipfile
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from dynrep import RepresentationLearner, make_env
from dynrep.envs.dsprites import DSprites
from dynrep.envs.mpi3d import MPI3D
import dynrep.envs.factor_images as factor_images
from dynrep.data import download
from dynrep.data.download import DataFileError
from dynrep.data.synthetic import MPI3D_SIZES, write_synthetic
from dynrep.envs.factor_images import grid_classes, npz_member_as_memmap
from dynrep.envs.shapes3d import Shapes3D

# Reduced grids with the real factor values (specs/latent.md section 2).
SHAPES_VALUES = [np.arange(2) / 10, np.arange(3) / 10, np.arange(1) / 10, np.linspace(0.75, 1.25, 8)[:2],
                 np.arange(2.0), np.linspace(-30, 30, 15)[:3]]
SPRITE_SIZES = (3, 2, 4, 3, 2)  # shape, scale, orientation, pos_x, pos_y


def grid(values):
    return np.array(list(itertools.product(*values)), dtype=np.float64)


def index_images(n: int, channels: int | None) -> np.ndarray:
    """Images whose first pixels spell their row number, so every gather can be checked."""
    shape = (n, 64, 64) if channels is None else (n, 64, 64, channels)
    images = np.zeros(shape, dtype=np.uint8)
    images.reshape(n, -1)[:, 0] = np.arange(n) % 256
    images.reshape(n, -1)[:, 1] = np.arange(n) // 256
    return images


def row_of(images: np.ndarray) -> np.ndarray:
    """Row numbers spelled by :func:`index_images`, from observations [N, C, H, W] (C-major flatten)."""
    flat = images.transpose(0, 2, 3, 1).reshape(len(images), -1).astype(np.int64)
    return flat[:, 0] + 256 * flat[:, 1]


def write_shapes3d(path, compressed=False, shuffle=False, chunks=True, mark=0):
    """The published layout (``images`` [N, 64, 64, 3] uint8, ``labels`` [N, 6] float64) on the reduced grid;
    ``compressed``: gzip-chunked images (``chunks=True``: h5py's automatic chunk shape); ``mark`` is written
    into every image's last pixel (tells two versions of the file apart)."""
    labels = grid(SHAPES_VALUES)
    images = index_images(len(labels), 3)
    images[:, -1, -1, -1] = mark
    if shuffle:
        order = np.random.default_rng(0).permutation(len(labels))
        labels, images = labels[order], images[order]
    with h5py.File(path, "w") as f:
        if compressed:
            f.create_dataset("images", data=images, chunks=chunks, compression="gzip")
        else:
            f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
    return path


def bit_images(n: int) -> np.ndarray:
    """{0, 1} images whose first 16 pixels hold the binary digits of the row number."""
    images = np.zeros((n, 64, 64), dtype=np.uint8)
    bits = (np.arange(n)[:, None] >> np.arange(16)) & 1
    images.reshape(n, -1)[:, :16] = bits
    return images


def bit_row_of(obs: np.ndarray) -> np.ndarray:
    bits = obs[:, 0].reshape(len(obs), -1)[:, :16].astype(np.int64) // 255
    return (bits << np.arange(16)).sum(axis=1)


def write_dsprites(path, compressed=True, orientations=None):
    """A reduced grid in the official layout; orientations over [0, 2pi] with both ends, as the official
    linspace(0, 2pi, 40) (its last class repeats the first), unless ``orientations`` are given."""
    classes = np.array(list(itertools.product([0], *[range(s) for s in SPRITE_SIZES])), dtype=np.int64)
    values = classes.astype(np.float64)
    values[:, 2] = np.linspace(0.5, 1, 6)[classes[:, 2]]
    orientations = np.linspace(0, 2 * np.pi, SPRITE_SIZES[2]) if orientations is None else orientations
    values[:, 3] = orientations[classes[:, 3]]
    values[:, 4], values[:, 5] = classes[:, 4] / 31, classes[:, 5] / 31
    metadata = np.array({"latents_sizes": np.array([1, *SPRITE_SIZES]),
                         "latents_names": ("color", "shape", "scale", "orientation", "posX", "posY")}, dtype=object)
    save = np.savez_compressed if compressed else np.savez
    save(path, imgs=bit_images(len(classes)), latents_classes=classes, latents_values=values, metadata=metadata)
    return path


@pytest.mark.parametrize("compressed", [False, True], ids=["contiguous-mapped-in-place", "gzip-unpacked-cache"])
def test_shapes3d_grid_and_gather(tmp_path, compressed):
    path = write_shapes3d(tmp_path / "3dshapes.h5", compressed=compressed)
    env = Shapes3D(path)
    assert env.factors.names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert env.factors.sizes == (2, 3, 1, 2, 2, 3)
    # Either way a uint8 memory map: of the .h5 itself, or of the copy unpacked beside it.
    assert isinstance(env._images, np.memmap) and env._images.dtype == np.uint8
    cache = tmp_path / "3dshapes.images.npy"
    assert Path(env._images.filename) == (cache if compressed else path)
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == (["3dshapes.images.npy"] if compressed else [])
    assert env.observation_shape == (3, 64, 64)
    np.testing.assert_allclose(env.factor_values[5], [-30, -25.714286, -21.428571], rtol=1e-6)
    factors = env.sample_factors(50, 0)
    obs = env.render(factors)
    assert obs.dtype == np.uint8 and obs.shape == (50, 3, 64, 64)
    np.testing.assert_array_equal(row_of(obs), env.factors_to_index(factors))
    np.testing.assert_array_equal(env.index_to_factors(env.factors_to_index(factors)), factors)
    rows = np.arange(0, int(np.prod(env.factors.sizes)), 5)  # sorted distinct (the Sampler's): read as they are
    distinct = env.index_to_factors(rows)
    np.testing.assert_array_equal(row_of(env.render(distinct)), rows)
    np.testing.assert_array_equal(env.render(distinct[::-1]), env.render(distinct)[::-1])
    assert env.render(distinct[:1]).shape == (1, 3, 64, 64)
    # Index formula: C order over the grid, orientation fastest.
    assert env.factors_to_index(np.array([[0, 0, 0, 0, 0, 2], [0, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, 0]])).tolist() \
        == [2, 3, 36]


def test_shapes3d_subset_and_dynamics(tmp_path):
    path = write_shapes3d(tmp_path / "3dshapes.h5")
    env = Shapes3D(path, factors={"wall_hue": [2, 0], "orientation": range(2)})
    assert env.factors.sizes == (2, 2, 1, 2, 2, 2)
    np.testing.assert_allclose(env.factor_values[1], [0.2, 0.0])
    # Class 0 of wall_hue in the subset is full class 2.
    assert env.factors_to_index(np.array([[0, 0, 0, 0, 0, 0]])).tolist() == [2 * 12]
    # Actions: +/- per factor with more than one kept value; hue wraps, orientation clamps.
    assert "object_hue+" not in env.actions.names
    up = env.actions.names.index("wall_hue+")
    assert env.step(np.array([[0, 1, 0, 0, 0, 0]]), np.array([up]))[0, 1] == 0
    turn = env.actions.names.index("orientation+")
    assert env.step(np.array([[0, 0, 0, 0, 0, 1]]), np.array([turn]))[0, 5] == 1
    traj = env.sample_trajectories(4, 3, 0)
    assert traj.obs.shape == (4, 4, 3, 64, 64)
    np.testing.assert_array_equal(row_of(traj.obs.flatten(0, 1).numpy()),
                                  env.factors_to_index(traj.factors.flatten(0, 1).numpy()))
    rebuilt = make_env("shapes3d", **env.get_config())
    assert rebuilt.factors == env.factors
    with pytest.raises(ValueError, match=r"factors\['shape'\] must be distinct class indices in \[0, 2\)"):
        Shapes3D(path, factors={"shape": [0, 2]})
    with pytest.raises(ValueError, match=r"unknown factor name\(s\) \['colour'\]"):
        Shapes3D(path, factors={"colour": [0]})


def test_datasets_pickle_as_a_reference_to_their_file(tmp_path):
    env = Shapes3D(write_shapes3d(tmp_path / "3dshapes.h5"), factors={"shape": [1]})
    data = pickle.dumps(env)
    assert len(data) < 2000  # the images are not copied into the pickle
    again = pickle.loads(data)
    factors = env.sample_factors(5, 0)
    np.testing.assert_array_equal(again.render(factors), env.render(factors))
    assert again.factors == env.factors


def test_shapes3d_rejects_a_file_that_is_not_a_grid(tmp_path):
    with pytest.raises(ValueError, match="not a full factor grid in the documented order"):
        Shapes3D(write_shapes3d(tmp_path / "bad.h5", shuffle=True))
    with h5py.File(tmp_path / "nolabels.h5", "w") as f:
        f.create_dataset("images", data=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"missing dataset\(s\) \['labels'\]"):
        Shapes3D(tmp_path / "nolabels.h5")


def test_missing_file_names_the_download_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="dynrep download shapes3d"):
        Shapes3D(tmp_path / "absent.h5")
    with pytest.raises(FileNotFoundError, match="dynrep download dsprites"):
        DSprites(tmp_path / "absent.npz")


def images_member(path: Path) -> tuple[int, int]:
    """Where the (compressed) bytes of the largest member (the images) of .npz ``path`` start, and how many."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, "rb") as raw:
        raw.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.compress_size


def damage(path: Path, offset: int, length: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + length] = bytes(b ^ 0xFF for b in data[offset:offset + length])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def corrupt_member(path: Path) -> None:
    start, size = images_member(path)
    damage(path, start + size // 2)


def corrupt_npy_header(path: Path) -> None:
    start, _ = images_member(path)
    damage(path, start, 6)  # the .npy magic of a member stored uncompressed


def shorten_images_member(path: Path) -> None:
    """Rewrite ``imgs.npy`` with a header announcing one image more than its data holds (a consistent zip)."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path) as archive, archive.open("imgs.npy") as f:
        shape, _, _ = factor_images.read_npy_header(f)
        data = f.read()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (shape[0] + 1, *shape[1:])})
    members["imgs.npy"] = header.getvalue() + data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def corrupt_h5_chunk(path: Path) -> None:
    with h5py.File(path, "r") as f:
        chunk = f["images"].id.get_chunk_info(1)
    damage(path, chunk.byte_offset + chunk.size // 2)


def open_dsprites(path, cache):
    return DSprites(path, cache_dir=cache)


def open_shapes3d(path, cache):
    return Shapes3D(path, cache_dir=cache, progress=False)


def open_mpi3d(path, cache):
    return MPI3D("toy", path, sizes=MPI3D_SIZES, cache_dir=cache)


@functools.lru_cache(maxsize=None)
def synthetic_copy(name: str) -> Path:
    """The small real-format copy of dataset ``name`` (:mod:`dynrep.data.synthetic`), written once per session."""
    import atexit
    import tempfile
    directory = tempfile.mkdtemp(prefix=f"dynrep-{name}-")
    atexit.register(shutil.rmtree, directory, True)
    return write_synthetic(name, directory)


def synthetic(name: str, first_mat: bool = False):
    """Copies :func:`synthetic_copy` into the test's directory; ``first_mat``: returns its first .mat (Cars3D)."""
    def write(directory: Path) -> Path:
        source = synthetic_copy(name)
        path = directory / source.name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, path)
        return sorted(path.glob("*.mat"))[0] if first_mat else path
    return write


def open_cars3d(path, cache):
    from dynrep.envs.cars3d import Cars3D
    return Cars3D(path.parent)


@pytest.mark.parametrize("name,write,harm,open_env", [
    ("dsprites", synthetic("dsprites"), truncate, open_dsprites),
    ("dsprites", synthetic("dsprites"), corrupt_member, open_dsprites),
    ("dsprites", lambda d: write_dsprites(d / "d.npz", compressed=False), corrupt_npy_header, open_dsprites),
    ("dsprites", synthetic("dsprites"), shorten_images_member, open_dsprites),
    ("shapes3d", synthetic("shapes3d"), truncate, open_shapes3d),
    ("shapes3d", synthetic("shapes3d"), corrupt_h5_chunk, open_shapes3d),
    ("mpi3d_toy", synthetic("mpi3d_toy"), corrupt_member, open_mpi3d),
    ("cars3d", synthetic("cars3d", first_mat=True), truncate, open_cars3d),
], ids=["dsprites-truncated", "dsprites-corrupt-member", "dsprites-corrupt-header", "dsprites-short-member",
        "shapes3d-truncated",
        "shapes3d-corrupt-chunk", "mpi3d-corrupt-member", "cars3d-truncated-mat"])
def test_a_damaged_file_is_one_error_naming_it_and_the_redownload(tmp_path, name, write, harm, open_env):
    path = write(tmp_path)
    harm(path)
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError) as err:
        open_env(path, cache)
    message = str(err.value)
    assert message.startswith(f"{path} is damaged (") and "\n" not in message
    # The official file names, outside the data directory: the command names the directory (--dest).
    assert message.endswith(f"download it again with `{download.redownload_command(name, path)}`")
    assert download.redownload_command(name, path).startswith(f"dynrep download {name} --force")
    assert isinstance(err.value, download.DownloadError)
    leftovers = [p.name for d in {tmp_path, path.parent, cache} if d.exists() for p in d.iterdir() if p.suffix in (".tmp", ".npy")]
    assert leftovers == []  # no half-written copy, temporary or final


def test_the_redownload_command_names_a_data_directory_other_than_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path / "data"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_dsprites(elsewhere / download.DATASETS["dsprites"].file)
    truncate(path)
    with pytest.raises(DataFileError, match=f"`dynrep download dsprites --force --dest {elsewhere}`$"):
        DSprites(path)
    assert download.redownload_command("dsprites", tmp_path / "data" / path.name) == "dynrep download dsprites --force"
    assert download.redownload_command("causal_circuit", elsewhere / "causal_circuit" / "test.npz") \
        == f"dynrep download causal_circuit --url DIR --force --dest {elsewhere}"
    assert download.redownload_command("cars3d", elsewhere / "cars3d" / "car_001_mesh.mat") \
        == f"dynrep download cars3d --force --dest {elsewhere}"


def write_shapes3d_images(path: Path, images: np.ndarray) -> Path:
    """The 3dshapes layout on the reduced grid, with the given ``images`` dataset."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=grid(SHAPES_VALUES))
    return path


def test_a_channels_first_images_array_is_refused(tmp_path):
    pixels = index_images(len(grid(SHAPES_VALUES)), 3)
    path = write_shapes3d_images(tmp_path / "3dshapes.h5", pixels.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=rf"^{path}: images of shape \[72, 3, 64, 64\]; expected \[N, H, W\] or "
                                         rf"channels-last \[N, H, W, C\] with C = 1 or 3 \(a channels-first store "
                                         rf"\[N, C, H, W\] must be transposed\)$"):
        Shapes3D(path)
    with pytest.raises(ValueError, match=r"images of shape \[72, 64, 64, 2\]; expected"):
        Shapes3D(write_shapes3d_images(tmp_path / "two.h5", pixels[..., :2]))
    assert Shapes3D(write_shapes3d_images(tmp_path / "grey.h5", pixels[..., :1])).observation_shape == (1, 64, 64)


def last_pixel(images: np.ndarray, value) -> np.ndarray:
    images = images.copy()
    images[-1, -1, -1, -1] = value  # in the last block of the chunked min/max pass
    return images


PIXELS = index_images(len(grid(SHAPES_VALUES)), 3)


@pytest.mark.parametrize("images,problem", [
    (last_pixel(PIXELS.astype(np.float32), 255), r"images hold float32 values in 0.0..255.0; expected float "
                                                 r"intensities in \[0, 1\]$"),
    (last_pixel(PIXELS.astype(np.float64) / 255, np.nan), r"images hold float64 values in nan..nan; expected float"),
    (last_pixel(PIXELS.astype(np.int16), -3), r"images hold int16 values in -3..71; expected integer pixels in "
                                              r"0\.\.255$"),
    (last_pixel(PIXELS.astype(np.uint16), 256), r"images hold uint16 values in 0..256; expected integer pixels"),
], ids=["float-0-255", "float-nan", "negative-int", "int-above-255"])
def test_images_out_of_range_are_refused_at_load(tmp_path, monkeypatch, images, problem):
    monkeypatch.setattr(factor_images, "_CHUNK_BYTES", 10 * 64 * 64 * 3 * images.dtype.itemsize)  # 8 blocks
    path = write_shapes3d_images(tmp_path / "3dshapes.h5", images)
    with pytest.raises(ValueError, match=f"^{path}: {problem}"):
        Shapes3D(path)


@pytest.mark.parametrize("images", [PIXELS.astype(np.int64), PIXELS.astype(np.float32) / 255],
                         ids=["int64-pixels", "float-intensities"])
def test_other_pixel_dtypes_render_as_their_uint8_pixels(tmp_path, images):
    env = Shapes3D(write_shapes3d_images(tmp_path / "3dshapes.h5", images))
    reference = Shapes3D(write_shapes3d_images(tmp_path / "uint8.h5", PIXELS))
    factors = reference.sample_factors(30, 0)
    obs = env.render(factors)
    assert obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, reference.render(factors))


def test_dsprites_pixels_other_than_0_and_1_are_refused(tmp_path):
    path = write_dsprites(tmp_path / "d.npz")
    with np.load(path, allow_pickle=True) as archive:
        arrays = dict(archive)
    np.savez_compressed(path, **{**arrays, "imgs": arrays["imgs"] * np.uint8(200)})  # 200 * 255 wraps in uint8
    with pytest.raises(ValueError, match=rf"^{path}: images hold uint8 values in 0..200; expected integers in 0..1 "
                                         rf"\(multiplied by 255 to pixels in 0..255\)$"):
        DSprites(path)


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed-cached", "stored-mapped"])
def test_dsprites(tmp_path, compressed):
    path = write_dsprites(tmp_path / "dsprites.npz", compressed=compressed)
    env = DSprites(path, cache_dir=tmp_path / "cache")
    assert env.factors.names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert env.factors.sizes == SPRITE_SIZES and env.observation_shape == (1, 64, 64)
    assert (tmp_path / "cache" / "dsprites.imgs.npy").exists() == compressed
    factors = env.sample_factors(40, 1)
    obs = env.render(factors)
    assert set(np.unique(obs)) <= {0, 255}
    np.testing.assert_array_equal(bit_row_of(obs), env.factors_to_index(factors))
    np.testing.assert_allclose(env.factor_values[1], [0.5, 0.6])
    # Orientation wraps (past the repeated angle, see test_dsprites_orientation_skips_its_duplicate_end), position
    # clamps.
    turn, right = env.actions.names.index("orientation-"), env.actions.names.index("pos_x+")
    assert env.step(np.array([[0, 0, 0, 0, 0]]), np.array([turn]))[0, 2] == 2
    assert env.step(np.array([[0, 0, 0, 2, 0]]), np.array([right]))[0, 3] == 2
    again = DSprites(path, cache_dir=tmp_path / "cache")  # reuses the cache
    np.testing.assert_array_equal(again.render(factors), obs)
    assert env.observation_to_image(obs[:2]).shape == (2, 64, 64, 3)


def test_dsprites_orientation_skips_its_duplicate_end(tmp_path):
    path = write_dsprites(tmp_path / "dsprites.npz")  # orientations 0, 2pi/3, 4pi/3, 2pi: class 3 is class 0
    env = DSprites(path, cache_dir=tmp_path)
    # what metrics, factor values and splits see is the file's grid, duplicate included
    assert env.factors.sizes == SPRITE_SIZES and env.factors.num_states == 144
    np.testing.assert_allclose(env.factor_values[2], np.linspace(0, 2 * np.pi, 4))
    assert set(env.sample_factors(200, 0)[:, 2]) == {0, 1, 2, 3}
    # the cyclic group of the orientation has order 3: 0 -> 1 -> 2 -> 0, and class 3 moves as class 0
    assert env.factors.periods == (None, None, 3, None, None)
    up, down = env.actions.names.index("orientation+"), env.actions.names.index("orientation-")
    start = np.zeros((8, 5), dtype=np.int64)
    start[:, 2] = [0, 1, 2, 3, 0, 1, 2, 3]
    moved = env.step(start, np.array([up] * 4 + [down] * 4))[:, 2]
    assert moved.tolist() == [1, 2, 0, 1, 2, 0, 1, 2]
    assert env.step(start[:4], np.array([up] * 4), magnitudes=np.array([3, 4, 5, 6]))[:, 2].tolist() == [0, 2, 1, 0]
    traj = env.sample_trajectories(64, 12, 0)
    turned = (traj.actions == up) | (traj.actions == down)
    assert turned.sum() > 50 and (traj.factors[:, 1:, 2][turned] < 3).all()
    # subsets: both ends kept first and last -> period len - 1; one end only -> a plain cycle
    assert DSprites(path, cache_dir=tmp_path, factors={"orientation": [0, 2, 3]}).factors.cycles[2] == 2
    assert DSprites(path, cache_dir=tmp_path, factors={"orientation": [1, 2, 3]}).factors.cycles[2] == 3
    with pytest.raises(ValueError, match=r"factors\['orientation'\]: classes 0 and 3 show the same value; keep them "
                                         r"as the first and the last of the cycle, or only one of them; got \[3, 0\]"):
        DSprites(path, cache_dir=tmp_path, factors={"orientation": [3, 0]})
    # a reduced file without the 2pi end (the official first four angles) has no duplicate
    other = DSprites(write_dsprites(tmp_path / "d4.npz", orientations=np.linspace(0, 2 * np.pi, 40)[:4]),
                     cache_dir=tmp_path)
    assert other.factors.periods is None and other.factors.cycles == SPRITE_SIZES
    assert other.step(start[3:4], np.array([up]))[0, 2] == 0


def test_npz_cache_is_written_atomically(tmp_path, monkeypatch):
    path = write_dsprites(tmp_path / "d.npz")
    import dynrep.envs.factor_images as fi
    monkeypatch.setattr(fi, "_CHUNK_BYTES", 1000)
    calls = {"n": 0}
    real_replace = fi.os.replace

    def failing_replace(src, dst):
        calls["n"] += 1
        raise OSError("disk full")
    monkeypatch.setattr(fi.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        npz_member_as_memmap(path, "imgs", tmp_path / "cache", name="dsprites")
    assert not (tmp_path / "cache" / "d.imgs.npy").exists()
    monkeypatch.setattr(fi.os, "replace", real_replace)
    images = npz_member_as_memmap(path, "imgs", tmp_path / "cache", name="dsprites")
    with np.load(path) as archive:
        np.testing.assert_array_equal(images, archive["imgs"])
    with pytest.raises(ValueError, match=r"no array 'images'"):
        npz_member_as_memmap(path, "images", tmp_path / "cache", name="dsprites")


def test_npz_cache_is_rebuilt_when_the_npz_changes(tmp_path):
    path = write_dsprites(tmp_path / "d.npz")
    first = np.array(npz_member_as_memmap(path, "imgs", tmp_path, name="dsprites"))
    with np.load(path, allow_pickle=True) as archive:  # our own file (its metadata is a pickled dict)
        arrays = dict(archive)
    arrays["imgs"] = 1 - arrays["imgs"]  # same shape and dtype, other pixels, newer file
    np.savez_compressed(path, **arrays)
    stamp = os.stat(path).st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))
    np.testing.assert_array_equal(npz_member_as_memmap(path, "imgs", tmp_path, name="dsprites"), 1 - first)


def test_npz_cache_is_rebuilt_when_the_npz_is_replaced_keeping_its_modification_time(tmp_path):
    """A copy that keeps the old file's time (``cp -p``, ``rsync -t``, ``tar x``): the size tells them apart."""
    path = write_dsprites(tmp_path / "d.npz")
    first = np.array(npz_member_as_memmap(path, "imgs", tmp_path, name="dsprites"))
    before = os.stat(path)
    with np.load(path, allow_pickle=True) as archive:
        arrays = dict(archive)
    np.savez_compressed(path, **{**arrays, "imgs": 1 - arrays["imgs"], "extra": np.arange(100)})
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns and os.stat(path).st_size != before.st_size
    np.testing.assert_array_equal(npz_member_as_memmap(path, "imgs", tmp_path, name="dsprites"), 1 - first)


def stored_images(path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["images"][()]


def test_compressed_shapes3d_is_unpacked_once_then_memory_mapped(tmp_path, monkeypatch):
    # Chunks of 5 images (the last one partial), read 10 at a time: whole chunks per block.
    path = write_shapes3d(tmp_path / "3dshapes.h5", compressed=True, chunks=(5, 64, 64, 3))
    monkeypatch.setattr(factor_images, "_CHUNK_BYTES", 12 * 64 * 64 * 3)
    reads = []
    real_read = h5py.Dataset.read_direct

    def counted(self, dest, source_sel=None, dest_sel=None):
        reads.append(source_sel)
        return real_read(self, dest, source_sel, dest_sel)
    monkeypatch.setattr(h5py.Dataset, "read_direct", counted)
    env = Shapes3D(path)
    assert [(s.start, s.stop) for s in reads] == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60),
                                                 (60, 70), (70, 72)]
    cache = tmp_path / "3dshapes.images.npy"
    assert isinstance(env._images, np.memmap) and Path(env._images.filename) == cache
    assert not env._images.flags.writeable
    np.testing.assert_array_equal(env._images, stored_images(path))  # every pixel, bit for bit
    before = cache.stat()
    reads.clear()
    again = Shapes3D(path)  # second open: the cache is taken as it is, nothing is decompressed
    assert reads == [] and cache.stat().st_ino == before.st_ino and cache.stat().st_mtime_ns == before.st_mtime_ns
    factors = env.sample_factors(40, 0)
    np.testing.assert_array_equal(again.render(factors), env.render(factors))
    np.testing.assert_array_equal(row_of(again.render(factors)), env.factors_to_index(factors))
    assert len(pickle.dumps(again)) < 2000 and pickle.loads(pickle.dumps(again)).get_config() == again.get_config()
    assert reads == []


def test_stale_truncated_or_foreign_cache_is_rebuilt(tmp_path):
    path = write_shapes3d(tmp_path / "3dshapes.h5", compressed=True)
    cache = tmp_path / "3dshapes.images.npy"
    Shapes3D(path)
    full = cache.stat().st_size
    with open(cache, "r+b") as f:  # truncated: shorter than its header says
        f.truncate(full // 2)
    np.testing.assert_array_equal(Shapes3D(path)._images, stored_images(path))
    assert cache.stat().st_size == full
    cache.write_bytes(b"not an npy file")
    np.testing.assert_array_equal(Shapes3D(path)._images, stored_images(path))
    # A new version of the .h5 (same shape and dtype, other pixels): the old copy is stale.
    write_shapes3d(path, compressed=True, mark=7)
    stamp = os.stat(path).st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))
    env = Shapes3D(path)
    assert (env._images[:, -1, -1, -1] == 7).all()
    np.testing.assert_array_equal(env._images, stored_images(path))
    record = json.loads((tmp_path / ".3dshapes.images.npy.source").read_text())
    assert record == [{"size": path.stat().st_size, "mtime_ns": stamp}]  # which version of the .h5 the copy is of


def unpack_then_die(path) -> None:
    """In a forked child: start unpacking ``path`` and SIGKILL ourselves after the second block is written."""
    factor_images._CHUNK_BYTES = 8 * 64 * 64 * 3
    real_read = h5py.Dataset.read_direct

    def read_then_die(self, dest, source_sel=None, dest_sel=None):
        real_read(self, dest, source_sel, dest_sel)
        if source_sel.start > 0:
            os.kill(os.getpid(), signal.SIGKILL)
    h5py.Dataset.read_direct = read_then_die
    Shapes3D(path, progress=False)


def test_killed_or_failed_unpack_never_leaves_a_cache(tmp_path, monkeypatch):
    path = write_shapes3d(tmp_path / "3dshapes.h5", compressed=True, chunks=(4, 64, 64, 3))
    cache = tmp_path / "3dshapes.images.npy"
    child = multiprocessing.get_context("fork").Process(target=unpack_then_die, args=(path,))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert not cache.exists()
    leftovers = list(tmp_path.glob(".3dshapes.images.npy.*.tmp"))
    assert len(leftovers) == 1  # the killed process's half-written copy, under a temporary name only

    def fail(self, *args):
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(h5py.Dataset, "read_direct", fail)
        with pytest.raises(KeyboardInterrupt):
            Shapes3D(path)
    assert not cache.exists() and not list(tmp_path.glob("*.tmp"))  # our own temporary file is removed too
    np.testing.assert_array_equal(Shapes3D(path)._images, stored_images(path))
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_in_a_read_only_or_full_directory(tmp_path, monkeypatch):
    path = write_shapes3d(tmp_path / "3dshapes.h5", compressed=True)

    def read_only(lock_path):
        raise PermissionError(13, "Permission denied", str(lock_path))
    with monkeypatch.context() as patch:
        patch.setattr(factor_images, "file_lock", read_only)
        with pytest.raises(PermissionError, match=r"cannot write the unpacked copy 3dshapes.images.npy of .*3dshapes.h5 "
                                                  r"in .*Permission denied.*pass cache_dir= a writable directory"):
            Shapes3D(path)
        assert not list(tmp_path.glob("*.npy"))
    elsewhere = Shapes3D(path, cache_dir=tmp_path / "writable")
    assert Path(elsewhere._images.filename) == tmp_path / "writable" / "3dshapes.images.npy"
    assert make_env("shapes3d", **elsewhere.get_config())._images.filename == elsewhere._images.filename
    with monkeypatch.context() as patch:
        real_usage = shutil.disk_usage
        patch.setattr(shutil, "disk_usage", lambda where: real_usage(where)._replace(free=1000))
        with pytest.raises(OSError, match=r"not enough disk space in .* for the unpacked copy 3dshapes.images.npy"):
            Shapes3D(path)
    Shapes3D(path)  # a complete copy beside the file: from then on nothing is written there
    with monkeypatch.context() as patch:
        patch.setattr(factor_images, "file_lock", read_only)
        np.testing.assert_array_equal(Shapes3D(path)._images, stored_images(path))


def test_cache_follows_the_data_directory(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("DYNREP_DATA", str(data))
    # The reduced test file is not the published size: accept any size for this test.
    monkeypatch.setitem(download.DATASETS, "shapes3d", replace(download.DATASETS["shapes3d"], size=None))
    write_shapes3d(data / "3dshapes.h5", compressed=True)
    env = Shapes3D()
    assert Path(env._images.filename) == data / "3dshapes.images.npy"
    assert env.get_config()["cache_dir"] == str(data)


def test_grid_classes_reads_the_grid_from_labels():
    labels = grid([[0.5, 0.1], [3.0, 1.0, 2.0]])  # unsorted values are sorted into classes
    with pytest.raises(ValueError, match="not a full factor grid"):
        grid_classes(labels, ["a", "b"], "f")
    labels = grid([[0.1, 0.5], [1.0, 2.0, 3.0]])
    classes, values = grid_classes(labels, ["a", "b"], "f")
    assert classes.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    with pytest.raises(ValueError, match="f: expected labels of shape"):
        grid_classes(labels, ["a"], "f")


def test_learner_trains_on_shapes3d(tmp_path):
    env = Shapes3D(write_shapes3d(tmp_path / "3dshapes.h5"))
    learner = RepresentationLearner(env, "vae", latent_dim=3, batch_size=4, channels=(4, 8), hidden=16, seed=0)
    history = learner.train(3, progress=False)
    assert len(history["loss"]) == 3 and np.isfinite(history["loss"]).all()
    learner.save(tmp_path / "ck")
    again = RepresentationLearner.load(tmp_path / "ck")
    assert again.env.factors == env.factors


def test_mpi3d_reduced_release(tmp_path):
    from dynrep.envs.mpi3d import MPI3D
    sizes = (2, 1, 2, 1, 1, 3, 2)
    path = tmp_path / "mpi3d_real.npz"
    np.savez(path, images=index_images(int(np.prod(sizes)), 3))
    env = MPI3D("real", path, sizes=sizes, factors={"horizontal_axis": [2, 1]})
    assert env.factors.names[-2:] == ("horizontal_axis", "vertical_axis")
    assert env.factors.sizes == (2, 1, 2, 1, 1, 2, 2)
    assert isinstance(env._images, np.memmap)  # stored npz: mapped in place, no copy
    factors = env.sample_factors(30, 0)
    np.testing.assert_array_equal(row_of(env.render(factors)), env.factors_to_index(factors))
    assert env.factors_to_index(np.array([[0, 0, 0, 0, 0, 0, 1]])).tolist() == [2 * 2 + 1]
    with pytest.raises(ValueError, match="do not form the documented factor grid"):
        MPI3D("real", path)
    with pytest.raises(ValueError, match="variant must be one of"):
        MPI3D("fake", path)
    with pytest.raises(FileNotFoundError, match="dynrep download mpi3d_toy"):
        MPI3D("toy", tmp_path / "none.npz", sizes=sizes)


def test_cars3d_resizes_once_and_caches(tmp_path):
    import scipy.io
    from dynrep.envs.cars3d import CACHE_NAME, Cars3D
    for k in (2, 1):  # written out of order: objects are taken in sorted file-name order
        im = np.zeros((128, 128, 3, 24, 4), dtype=np.uint8)
        im[...] = (np.arange(24)[:, None] * 10 + np.arange(4)[None, :])  # value = 10*azimuth + elevation
        im[..., 0, :, :] = k
        scipy.io.savemat(tmp_path / f"car_{k:03d}_mesh.mat", {"im": im})
    env = Cars3D(tmp_path)
    assert env.factors.names == ("elevation", "azimuth", "object") and env.factors.sizes == (4, 24, 2)
    assert (tmp_path / CACHE_NAME).exists()
    obs = env.render(np.array([[3, 5, 0], [1, 23, 1]]))
    assert obs.shape == (2, 3, 64, 64)
    assert obs[0, 1, 10, 10] == 53 and obs[1, 1, 10, 10] == 231  # 10*az + el survives the resize
    assert obs[0, 0, 10, 10] == 1 and obs[1, 0, 10, 10] == 2  # car_001 first
    again = Cars3D(tmp_path)
    assert isinstance(again._images, np.memmap)
    np.testing.assert_array_equal(again.render(np.array([[3, 5, 0]])), obs[:1])


def test_cars3d_cache_is_rebuilt_when_a_rendering_changes(tmp_path):
    import os
    import scipy.io
    from dynrep.envs.cars3d import Cars3D
    path = tmp_path / "car_001_mesh.mat"
    scipy.io.savemat(path, {"im": np.full((16, 16, 3, 24, 4), 7, np.uint8)})
    assert Cars3D(tmp_path, progress=False).render(np.array([[0, 0, 0]]))[0, 0, 5, 5] == 7
    stat = path.stat()
    scipy.io.savemat(path, {"im": np.full((16, 16, 3, 24, 4), 9, np.uint8)})  # a new copy, same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert Cars3D(tmp_path, progress=False).render(np.array([[0, 0, 0]]))[0, 0, 5, 5] == 9


def test_a_cars3d_file_without_renderings_is_a_data_file_error(tmp_path):
    import scipy.io
    from dynrep.data.download import DataFileError
    from dynrep.envs.cars3d import Cars3D
    scipy.io.savemat(tmp_path / "car_001_mesh.mat", {"other": np.zeros(3)})
    with pytest.raises(DataFileError, match=r"car_001_mesh\.mat is damaged \(KeyError: 'im'\); download it again "
                                            r"with `dynrep download cars3d"):
        Cars3D(tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["car_001_mesh.mat"]
