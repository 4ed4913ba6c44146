"""CausalCircuit on tiny files written in the published format, and its multi-file download.

The files have the published keys, dtypes and encoding (``imgs``: fixed-width bytes ``(N, 2)`` of JPEGs;
``original_latents``: float64 ``(N, 2, 4)`` in [red, green, blue, arm] order; ``epsilon``, ``pressed``,
``intervention_labels``, ``intervention_masks``), with fewer pairs and 32x32 instead of 512x512 images. Every
frame's picture spells its own identity (file, pair, side) in flat colour quadrants, so each gather, lookup and
resize can be checked.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynrep import cli
from dynrep.data import download as dl
from dynrep.data.download import DATASETS, DataFileError, DownloadError, dataset_path, download
from dynrep.envs.causal_circuit import CausalCircuit, icm_vae_regime, select_frames
from dynrep.envs.registry import make_env

REPO = Path(__file__).resolve().parents[1]
SIDE = 32  # the published renderings are 512x512
PAIRS = 6  # pairs per generated file (train-1..9, val, test)
LEVELS = np.array([15, 95, 175, 255])  # colour value of each base-4 digit; far apart enough for JPEG noise

# Hand-made frames (red, green, blue, arm) and ICM-VAE's regime for each, worked out by hand from the
# published thresholds (strict inequalities, on the float64 values). They fill train-0 as consecutive pairs.
F32_TENTH = float(np.float32(0.1))  # 0.10000000149...: above 0.1 in float64, equal to it in float32
HAND = [
    ((0.9, 0.6, 0.1, 0.25), 1),
    ((0.9, 0.1, 0.1, 0.55), 2),
    ((0.9, 0.1, 0.6, 0.85), 3),
    ((0.9, 0.6, 0.1, 0.4), 0),   # arm = 0.4: not < 0.4 (regime 1) and green too high for regime 2
    ((0.9, 0.1, 0.1, 0.4), 0),   # arm = 0.4: not > 0.4 (regime 2)
    ((0.9, 0.1, 0.1, 0.7), 0),   # arm = 0.7: not < 0.7 (regime 2)
    ((0.9, 0.1, 0.6, 0.7), 0),   # arm = 0.7: not > 0.7 (regime 3)
    ((0.9, 0.1, 0.6, 1.0), 0),   # arm = 1: not < 1
    ((0.5, 0.6, 0.1, 0.25), 0),  # red = 0.5: not > 0.5
    ((0.9, 0.4, 0.1, 0.25), 0),  # green = 0.4: not > 0.4
    ((0.9, 0.6, 0.2, 0.25), 0),  # blue = 0.2: not < 0.2
    ((0.9, 0.1, 0.4, 0.85), 0),  # blue = 0.4: not > 0.4
    ((0.9, 0.2, 0.6, 0.85), 0),  # green = 0.2: not < 0.2
    ((0.9, 0.6, 0.1, 0.1), 0),   # arm = 0.1: not > 0.1
    ((0.9, 0.6, 0.1, F32_TENTH), 1),  # judged in float64
    ((float(np.nextafter(0.5, 1)), 0.6, 0.1, float(np.nextafter(0.4, 0))), 1),
    ((0.8, 0.05, 0.15, 0.6), 2),
    ((0.55, 0.9, 0.0, 0.3), 1),
]


def identity(file: int, pair: int, side: int) -> int:
    return (file * 1000 + pair) * 2 + side


def picture(ident: int) -> bytes:
    """A SIDE x SIDE JPEG whose four flat quadrants x three channels spell ``ident`` in base 4."""
    digits = (ident // 4 ** np.arange(12)) % 4
    image = np.empty((SIDE, SIDE, 3), dtype=np.uint8)
    half = SIDE // 2
    for q, (y, x) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        image[y * half:(y + 1) * half, x * half:(x + 1) * half] = LEVELS[digits[3 * q:3 * q + 3]]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def identities(obs: np.ndarray) -> np.ndarray:
    """The identities spelled by frames ``[M, 3, S, S]`` (read at the quadrant centres)."""
    s = obs.shape[-1]
    digits = []
    for y, x in [(s // 4, s // 4), (s // 4, 3 * s // 4), (3 * s // 4, s // 4), (3 * s // 4, 3 * s // 4)]:
        values = obs[:, :, y, x].astype(np.int64)  # [M, 3]
        digits.append(np.abs(values[:, :, None] - LEVELS).argmin(axis=-1))
    digits = np.concatenate(digits, axis=1)  # [M, 12]
    return (digits * 4 ** np.arange(12)).sum(axis=1)


def write_file(path: Path, file_number: int, latents: np.ndarray, compressed: bool = False) -> Path:
    """One .npz in the published layout; ``latents [P, 2, 4]`` in file order (red, green, blue, arm)."""
    pairs = len(latents)
    rng = np.random.default_rng(file_number)
    imgs = np.array([[picture(identity(file_number, p, s)) for s in range(2)] for p in range(pairs)], dtype=bytes)
    assert imgs.dtype.kind == "S" and imgs.shape == (pairs, 2)
    arrays = dict(imgs=imgs, original_latents=latents.astype(np.float64),
                  epsilon=rng.normal(size=(pairs, 2, 4)), pressed=rng.uniform(size=(pairs, 2, 3)),
                  intervention_labels=rng.integers(0, 5, size=pairs),
                  intervention_masks=rng.uniform(size=(pairs, 4)) < 0.25)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def random_latents(seed: int, pairs: int = PAIRS) -> np.ndarray:
    """Latents that hit each regime often: red high, arm uniform, green/blue near 0 or 1."""
    rng = np.random.default_rng(100 + seed)
    latents = np.empty((pairs, 2, 4))
    latents[..., 0] = rng.uniform(0.3, 1.0, size=(pairs, 2))
    latents[..., 1:3] = rng.choice([0.05, 0.1, 0.5, 0.9], size=(pairs, 2, 2))
    latents[..., 3] = rng.uniform(0.0, 1.0, size=(pairs, 2))
    return latents


def hand_latents() -> np.ndarray:
    return np.array([frame for frame, _ in HAND], dtype=np.float64).reshape(-1, 2, 4)


def write_dataset(directory: Path, compressed: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_file(directory / "train-0.npz", 0, hand_latents(), compressed)
    for i in range(1, 10):
        write_file(directory / f"train-{i}.npz", i, random_latents(i), compressed)
    write_file(directory / "val.npz", 10, random_latents(10), compressed)
    write_file(directory / "test.npz", 11, random_latents(11), compressed)
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("circuit"))


@pytest.fixture
def fresh(tmp_path) -> Path:
    """A private copy of the dataset (tests that write caches or change files)."""
    return write_dataset(tmp_path / "circuit")


def file_latents(directory: Path, name: str) -> np.ndarray:
    with np.load(directory / name) as archive:
        return archive["original_latents"]


# ------------------------------------------------------------------------------------------- regimes, labels

def test_regime_filter_matches_the_hand_computed_selection(data):
    frames = np.array([frame for frame, _ in HAND])
    assert icm_vae_regime(frames).tolist() == [regime for _, regime in HAND]
    # ICM-VAE's candidate order: every before-frame, then every after-frame; kept frames grouped by regime.
    pairs = len(HAND) // 2
    candidates = [(p, 0) for p in range(pairs)] + [(p, 1) for p in range(pairs)]
    expected = [c for r in (1, 2, 3) for c in candidates if HAND[2 * c[0] + c[1]][1] == r]
    assert select_frames(hand_latents(), "icm_vae").tolist() == [list(c) for c in expected]
    env = CausalCircuit(data, image_size=8, progress=False)
    in_first_file = env.sources[env.sources[:, 0] == 0]
    assert in_first_file[:, 1:].tolist() == [list(c) for c in expected]
    # Every other file: exactly the frames icm_vae_regime keeps, in order.
    total = 0
    for number, name in enumerate(env.files):
        latents = file_latents(data, name)
        regime = icm_vae_regime(np.concatenate([latents[:, 0], latents[:, 1]]))
        total += int((regime > 0).sum())
    assert env.num_rows == len(env) == total
    assert set(env.sources[:, 0].tolist()) <= set(range(10))
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        icm_vae_regime(np.zeros((3, 3)))


def test_all_regimes_keeps_every_frame_before_then_after(data):
    env = CausalCircuit(data, subset="test", regimes="all", image_size=8, progress=False)
    assert env.files == ("test.npz",) and env.num_rows == 2 * PAIRS
    assert env.sources.tolist() == [[0, p, s] for s in (0, 1) for p in range(PAIRS)]
    assert CausalCircuit(data, subset="val", regimes="all", image_size=8, progress=False).num_rows == 2 * PAIRS


def test_factors_are_the_permuted_float32_labels_and_the_graph(data):
    env = CausalCircuit(data, subset="train", image_size=8, progress=False)
    assert env.factors.names == env.variables == ("arm", "blue", "green", "red")
    assert env.factors.sizes == (None,) * 4 and env.factors.periodic == (False,) * 4
    raw = np.stack([file_latents(data, env.files[f])[p, s] for f, p, s in env.sources])  # [red, green, blue, arm]
    latents = env.latents()
    assert latents.dtype == np.float32 and latents.shape == (env.num_rows, 4)
    np.testing.assert_array_equal(latents, raw[:, [3, 2, 1, 0]].astype(np.float32))
    assert latents.min() >= 0 and latents.max() <= 1
    expected = np.zeros((4, 4), dtype=np.int64)  # rows = children
    for child, parent in [("blue", "arm"), ("green", "arm"), ("red", "arm"), ("red", "blue"), ("red", "green")]:
        expected[env.variables.index(child), env.variables.index(parent)] = 1
    assert env.graph.dtype == np.int64
    np.testing.assert_array_equal(env.graph, expected)
    # ICM-VAE's C[j, i] = 1 iff j -> i over [arm, blue, green, red] is the transpose.
    np.testing.assert_array_equal(env.graph.T, [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert env.parents == {"blue": ("arm",), "green": ("arm",), "red": ("arm", "blue", "green")}
    assert env.actions.dim == 0 and not env.actions.discrete
    assert env.observation_shape == (3, 8, 8) and env.observation_dtype == np.uint8
    np.testing.assert_array_equal(env.standardize(latents[:3]), latents[:3])


# ------------------------------------------------------------------------------------- frames, sampling, render

@pytest.mark.parametrize("size", [8, SIDE, 64], ids=["shrink", "native", "enlarge"])
def test_every_frame_shows_its_own_picture(data, size):
    env = CausalCircuit(data, image_size=size, progress=False)
    frames = env.trajectories()
    assert frames.obs.shape == (env.num_rows, 1, 3, size, size) and frames.obs.dtype == torch_uint8()
    expected = [identity(f, p, s) for f, p, s in env.sources]
    assert identities(frames.obs[:, 0].numpy()).tolist() == expected


def test_compressed_files_decode_the_same(tmp_path, data):
    packed = write_dataset(tmp_path / "packed", compressed=True)
    a = CausalCircuit(packed, subset="test", regimes="all", image_size=8, progress=False)
    b = CausalCircuit(data, subset="test", regimes="all", image_size=8, progress=False)
    np.testing.assert_array_equal(a.images(np.arange(a.num_rows)), b.images(np.arange(b.num_rows)))
    np.testing.assert_array_equal(a.latents(), b.latents())


def test_resize_is_pil_bilinear_of_the_decoded_jpeg(data):
    env = CausalCircuit(data, subset="test", regimes="all", image_size=12, progress=False)
    f, p, s = env.sources[5]
    with np.load(data / "test.npz") as archive:
        jpeg = archive["imgs"][p, s]
    reference = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB").resize((12, 12), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(env.images(np.array([5]))[0], reference.transpose(2, 0, 1))


def test_sampling_is_deterministic_and_static(data):
    env = CausalCircuit(data, image_size=8, progress=False)
    a, b = env.sample_trajectories(7, 0, rng=3), env.sample_trajectories(7, 0, rng=np.random.default_rng(3))
    assert a.obs.shape == (7, 1, 3, 8, 8) and a.obs.dtype == torch_uint8()
    assert a.actions.shape == (7, 0, 0) and str(a.actions.dtype) == "torch.float32"
    assert a.factors.shape == (7, 1, 4) and str(a.factors.dtype) == "torch.float32"
    for x, y in [(a.obs, b.obs), (a.actions, b.actions), (a.factors, b.factors)]:
        assert (x == y).all()
    # Each sampled frame is the frame of its factors.
    rows = env.frame_index(a.factors[:, 0].numpy())
    assert identities(a.obs[:, 0].numpy()).tolist() == [identity(*env.sources[r]) for r in rows]
    factors = env.sample_factors(20, 5)
    assert factors.dtype == np.float32 and factors.shape == (20, 4)
    np.testing.assert_array_equal(factors, env.sample_factors(20, 5))
    assert not np.array_equal(factors, env.sample_factors(20, 6))
    assert env.sample_trajectories(2).length == 0
    with pytest.raises(ValueError, match="no actions.*length must be 0, got 1"):
        env.sample_trajectories(4, 1, rng=0)
    with pytest.raises(ValueError, match="max_magnitude must be 1"):
        env.sample_trajectories(4, 0, rng=0, max_magnitude=2)
    with pytest.raises(ValueError, match="no actions"):
        env.step(factors[:1], np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="batch must be >= 1"):
        env.sample_trajectories(0, 0)


def test_render_looks_frames_up_by_their_exact_latents(data):
    env = CausalCircuit(data, image_size=8, progress=False)
    rows = np.array([4, 0, 4, env.num_rows - 1])
    factors = env.latents()[rows]
    obs = env.render(factors)
    assert obs.shape == (4, 3, 8, 8) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, env.images(rows))
    assert identities(obs).tolist() == [identity(*env.sources[r]) for r in rows]
    np.testing.assert_array_equal(env.render(factors.astype(np.float64)), obs)  # float64 copies of the values
    np.testing.assert_array_equal(env.images_from_factors(factors), obs)
    assert env.render(np.zeros((0, 4))).shape == (0, 3, 8, 8)
    moved = factors.copy()
    moved[2, 1] = np.nextafter(moved[2, 1], np.float32(2))
    with pytest.raises(ValueError, match=r"recorded dataset.*row 2 \{'arm'"):
        env.render(moved)
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        env.render(factors[:, :3])
    with pytest.raises(ValueError, match=r"index must hold frame rows in \[0, "):
        env.images(np.array([env.num_rows]))


def test_duplicate_latents_resolve_to_the_first_frame(tmp_path):
    latents = random_latents(0, pairs=3)
    latents[1, 1] = latents[1, 0]  # a pair without intervention: both frames share their latents
    directory = tmp_path / "dup"
    directory.mkdir()
    write_file(directory / "test.npz", 0, latents)
    env = CausalCircuit(directory, subset="test", regimes="all", image_size=8, progress=False)
    first = env.sources.tolist().index([0, 1, 0])
    second = env.sources.tolist().index([0, 1, 1])
    assert env.frame_index(env.latents()[[second]]).tolist() == [first]


# --------------------------------------------------------------------------------------------------- caching

def test_cache_is_reused_and_rebuilt_when_it_does_not_match(fresh, monkeypatch, tmp_path):
    env = CausalCircuit(fresh, subset="test", regimes="all", image_size=8, progress=False)
    cache = env.cache_path
    assert cache.parent == fresh and cache.name.startswith("causal_circuit_test_all_x8_") and cache.is_file()
    assert not [p for p in fresh.iterdir() if p.name.endswith(".tmp")]
    reference = env.images(np.arange(env.num_rows))

    def no_build(*args, **kwargs):
        raise AssertionError("the cache should have been reused")
    with monkeypatch.context() as m:
        m.setattr(CausalCircuit, "_decode_frames", no_build)
        again = CausalCircuit(fresh, subset="test", regimes="all", image_size=8, progress=False)
        assert again.cache_path == cache and isinstance(again._images, np.memmap)

    # A truncated cache (e.g. an interrupted copy) is rebuilt, not trusted.
    cache.write_bytes(cache.read_bytes()[:200])
    rebuilt = CausalCircuit(fresh, subset="test", regimes="all", image_size=8, progress=False)
    np.testing.assert_array_equal(rebuilt.images(np.arange(rebuilt.num_rows)), reference)
    # A cache of the right name but the wrong shape is rebuilt too.
    np.save(cache, np.zeros((3, 3, 8, 8), dtype=np.uint8))
    rebuilt = CausalCircuit(fresh, subset="test", regimes="all", image_size=8, progress=False)
    np.testing.assert_array_equal(rebuilt.images(np.arange(rebuilt.num_rows)), reference)

    # Other settings have their own cache; changed data changes the key: rebuilt, the stale cache removed.
    other = CausalCircuit(fresh, subset="test", regimes="all", image_size=16, progress=False)
    assert other.cache_path != cache and cache.is_file()
    latents = random_latents(11)
    latents[0, 0, 0] = 0.123
    write_file(fresh / "test.npz", 11, latents)
    changed = CausalCircuit(fresh, subset="test", regimes="all", image_size=8, progress=False)
    assert changed.cache_path != cache and not cache.exists() and changed.cache_path.is_file()
    assert changed.latents()[0, 3] == np.float32(0.123)

    # cache_dir puts it elsewhere (a read-only data directory) and is part of the config.
    elsewhere = CausalCircuit(fresh, subset="test", image_size=8, cache_dir=tmp_path / "cache", progress=False)
    assert elsewhere.cache_path.parent == tmp_path / "cache"
    assert elsewhere.get_config()["cache_dir"] == str(tmp_path / "cache")


def test_cache_is_rebuilt_when_a_file_is_replaced_by_one_of_the_same_size_and_latents(fresh):
    env = CausalCircuit(fresh, subset="test", regimes="all", image_size=8, progress=False)
    path = fresh / "test.npz"
    before = path.stat().st_size
    with np.load(path) as archive:
        arrays = dict(archive)
    np.savez(path, **{**arrays, "imgs": arrays["imgs"][:, ::-1]})  # each pair's two frames swapped
    assert path.stat().st_size == before
    again = CausalCircuit(fresh, subset="test", regimes="all", image_size=8, progress=False)
    assert again.cache_path == env.cache_path  # same settings, sizes and latents: the same cache file...
    pair, side = again.sources[:, 1], again.sources[:, 2]
    np.testing.assert_array_equal(identities(again.images(np.arange(again.num_rows))), identity(11, pair, 1 - side))
    assert not [p.name for p in fresh.iterdir() if p.name.endswith(".tmp")]  # ...rebuilt from the new file


# ------------------------------------------------------------------------------------ errors, registry, pickle

def test_missing_data_and_bad_arguments(tmp_path, monkeypatch, data):
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"causal_circuit not found.*dynrep download causal_circuit --url"):
        CausalCircuit()
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ["train-0.npz", "train-1.npz", "test.npz"]:
        shutil.copy(data / name, partial / name)
    with pytest.raises(FileNotFoundError, match=r"train files missing in .*partial: train-2.npz, .*train-9.npz"):
        CausalCircuit(partial)
    assert CausalCircuit(partial, subset="test", image_size=8, progress=False).files == ("test.npz",)
    with pytest.raises(FileNotFoundError, match="no CausalCircuit directory"):
        CausalCircuit(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"subset must be one of \('train', 'val', 'test'\), got 'dev'"):
        CausalCircuit(data, subset="dev")
    with pytest.raises(ValueError, match=r"regimes must be one of \('icm_vae', 'all'\).*got 'some'"):
        CausalCircuit(data, regimes="some")
    with pytest.raises(ValueError, match="image_size must be >= 4"):
        CausalCircuit(data, image_size=2)
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "test.npz", imgs=np.zeros((2, 2), dtype=np.uint8), original_latents=np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=r"expected imgs of shape \(2, 2\) holding JPEG bytes"):
        CausalCircuit(bad, subset="test")
    np.savez(bad / "test.npz", imgs=np.zeros((2, 2), dtype="S4"))
    with pytest.raises(ValueError, match="no array 'original_latents'"):
        CausalCircuit(bad, subset="test")
    np.savez(bad / "test.npz", imgs=np.zeros((1, 2), dtype="S4"), original_latents=np.full((1, 2, 4), 0.9))
    with pytest.raises(ValueError, match="falls in ICM-VAE's regimes"):
        CausalCircuit(bad, subset="test")
    with pytest.raises(DataFileError, match=r"test.npz is damaged \(imgs\[0, 0\] is not a decodable image: .*\); "
                                            r"download it again with `dynrep download causal_circuit --url DIR "
                                            r"--force`$"):
        CausalCircuit(bad, subset="test", regimes="all", progress=False)


def test_make_env_config_and_pickle(data, monkeypatch, tmp_path):
    env = make_env("causal_circuit", path=data, subset="test", image_size=8, progress=False)
    assert isinstance(env, CausalCircuit)
    config = env.get_config()
    assert config == {"path": str(data), "subset": "test", "regimes": "icm_vae", "image_size": 8}
    assert "CausalCircuit(path=" in repr(env)
    blob = pickle.dumps(env)
    assert len(blob) < 2000  # a reference to the files, not the frames
    copy = pickle.loads(blob)
    np.testing.assert_array_equal(copy.latents(), env.latents())
    np.testing.assert_array_equal(copy.images(np.arange(copy.num_rows)), env.images(np.arange(env.num_rows)))
    # The default path is the downloaded dataset once every file is there.
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path))
    (tmp_path / "causal_circuit").symlink_to(data, target_is_directory=True)
    default = CausalCircuit(subset="test", image_size=8, progress=False)
    assert default.path == tmp_path / "causal_circuit" and default.num_rows == env.num_rows


def torch_uint8():
    import torch
    return torch.uint8


# ------------------------------------------------------------------------------------------- multi-file download

@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path / "home"))
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.setattr(dl, "TIMEOUT", 5.0)
    return tmp_path / "home"


@pytest.fixture
def server(tmp_path):
    """Serves a directory over HTTP on 127.0.0.1; records the requested paths."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            file = root / self.path.lstrip("/")
            if not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


FILES = tuple(f"train-{i}.npz" for i in range(10)) + ("val.npz", "test.npz")


def test_table_entry_lists_the_files():
    entry = DATASETS["causal_circuit"]
    assert tuple(part.file for part in entry.parts) == FILES
    assert all(part.url == "" and part.checksum is None and part.arrays == ("imgs", "original_latents")
               for part in entry.parts)
    assert "qualcomm.com" in entry.homepage and entry.script == "scripts/download_causal_circuit.sh"


def test_without_a_url_the_error_says_where_to_get_the_files(data_home):
    with pytest.raises(DownloadError, match=r"no direct download URL is known for causal_circuit: it is "
                                            r"distributed from https://www\.qualcomm\.com/.*--url DIR"):
        download("causal_circuit", progress=False)
    assert not (data_home / "causal_circuit").exists()
    with pytest.raises(FileNotFoundError, match=r"causal_circuit not found at .*home/causal_circuit; fetch it with "
                                                r"`dynrep download causal_circuit --url DIR`"):
        dataset_path("causal_circuit")


def test_download_all_files_from_a_directory(data, data_home):
    path = download("causal_circuit", url=str(data), progress=False)
    assert path == data_home / "causal_circuit" == dataset_path("causal_circuit")
    for name in FILES:
        assert (path / name).read_bytes() == (data / name).read_bytes()
    assert not [p.name for p in path.iterdir() if p.name.endswith((".part", ".tmp"))]
    env = CausalCircuit(subset="test", image_size=8, progress=False)
    assert env.path == path
    # Present: nothing is fetched again, even from a source that no longer exists.
    assert download("causal_circuit", url=str(data.parent / "gone"), progress=False) == path


def test_download_over_http_resumes_missing_files_and_rejects_corrupt_ones(data, data_home, server):
    root, base, requests = server
    for name in FILES[:-1]:  # test.npz missing on the server
        shutil.copy(data / name, root / name)
    with pytest.raises(DownloadError, match=r"could not download causal_circuit \(test\.npz\)"):
        download("causal_circuit", url=base, progress=False)
    target = data_home / "causal_circuit"
    assert sorted(p.name for p in target.glob("*.npz")) == sorted(FILES[:-1])
    with pytest.raises(FileNotFoundError, match=r"incomplete \(missing test\.npz\)"):
        dataset_path("causal_circuit")

    # A truncated test.npz (not a complete zip) is rejected; the verified files stay.
    (root / "test.npz").write_bytes((data / "test.npz").read_bytes()[:5000])
    requests.clear()
    with pytest.raises(DownloadError, match=r"test\.npz.*not a complete \.npz archive"):
        download("causal_circuit", url=base + "/", progress=False)
    assert requests == ["/test.npz"]  # only the missing file was requested
    assert not (target / "test.npz").exists() and not (target / "test.npz.part").exists()
    # A zip that is not a CausalCircuit file is rejected too.
    np.savez(root / "test.npz", something=np.zeros(3))
    with pytest.raises(DownloadError, match=r"lacks array\(s\) \['imgs', 'original_latents'\]"):
        download("causal_circuit", url=base, progress=False)

    shutil.copy(data / "test.npz", root / "test.npz")
    assert download("causal_circuit", url=base, progress=False) == target == dataset_path("causal_circuit")
    assert (target / "test.npz").read_bytes() == (data / "test.npz").read_bytes()


def test_known_checksums_are_enforced_and_force_keeps_good_files(data, data_home, monkeypatch, tmp_path):
    entry = DATASETS["causal_circuit"]
    parts = tuple(dataclasses.replace(part, sha256=hashlib.sha256((data / part.file).read_bytes()).hexdigest())
                  for part in entry.parts)
    monkeypatch.setitem(DATASETS, "causal_circuit", dataclasses.replace(entry, parts=parts))
    path = download("causal_circuit", url=data.as_uri(), progress=False)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(data, corrupt, ignore=shutil.ignore_patterns("*.npy"))
    write_file(corrupt / "val.npz", 10, random_latents(99))  # a valid .npz, but not the published bytes
    with pytest.raises(DownloadError, match=r"val\.npz.*sha256 mismatch"):
        download("causal_circuit", url=str(corrupt), progress=False, force=True)
    assert (path / "val.npz").read_bytes() == (data / "val.npz").read_bytes()  # the good file was kept
    assert not (path / "val.npz.part").exists()


def test_mirror_layout_and_cli(data, data_home, tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    shutil.copytree(data, mirror / "causal_circuit", ignore=shutil.ignore_patterns("*.npy"))
    monkeypatch.setenv(dl.MIRROR_ENV, str(mirror))  # a copy of a data directory: <mirror>/causal_circuit/<file>
    assert download("causal_circuit", progress=False, dest=tmp_path / "a") == tmp_path / "a" / "causal_circuit"
    monkeypatch.delenv(dl.MIRROR_ENV)
    dest = tmp_path / "b"
    assert cli.main(["download", "causal_circuit", "--url", str(data), "--dest", str(dest), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(dest / "causal_circuit")
    assert cli.main(["download", "causal_circuit", "--dest", str(tmp_path / "c"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dynrep download: error: no direct download URL") and "\n" not in err


def test_script_runs_the_cli_with_the_repo_venv(tmp_path):
    (tmp_path / "scripts").mkdir()
    for name in ("download_causal_circuit.sh", "download.sh"):
        shutil.copy(REPO / "scripts" / name, tmp_path / "scripts" / name)
    stub = tmp_path / ".venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    stub.write_text('#!/bin/sh\necho "$@"\n')
    stub.chmod(0o755)
    assert os.access(REPO / "scripts" / "download_causal_circuit.sh", os.X_OK)
    out = subprocess.run(["bash", str(tmp_path / "scripts" / "download_causal_circuit.sh"), "--url", "d"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    assert out.strip() == "-m dynrep.cli download causal_circuit --url d"
