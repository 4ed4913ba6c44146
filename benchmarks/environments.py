"""Environment throughput: 64x64 frames per second of batched trajectory sampling, one core.

Prints, measured in this process:
  1. frames/s of ``sample_trajectories(256, 10)`` for GridWorld, Flatland, Circles
     (procedural, target >= 20,000) and Shapes3D read from an on-disk file in the
     published h5 format (target >= 10,000 from page cache);
  2. for Shapes3D, the same batch read image by image through h5py (what a plain
     h5 loader does) in the same process, and the ratio;
  3. resident memory held after opening the Shapes3D file (it must not be loaded);
  4. Shapes3D from a gzip-chunked file of the same scenes (the published file is compressed;
     its chunk shape is not documented, see ``GZIP_CHUNKS``): frames/s read through h5py (the
     path before the unpacked cache), the one-time unpack to the ``.npy`` cache, then frames/s
     of the unpacked memory map against the uncompressed file's (medians of interleaved batches);
  5. toy-nn (mechanism sparsity): seconds and samples/s to generate the full 800,000-row
     train subset of ``action_sparsity_non_trivial`` and ``temporal_sparsity_non_trivial``
     (the reference's default size), then episodes/s of batched ``sample_trajectories(1024, 1)``.

    python benchmarks/environments.py            # reduced Shapes3D grid (64,000 images, 0.8 GB files)
    python benchmarks/environments.py --full     # the real size: 480,000 images, 2 x 5.9 GB written to --dir
    python benchmarks/environments.py --only shapes3d
    python benchmarks/environments.py --only toy_nn
"""
from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from dynrep import Circles, Flatland, Flow, GridWorld, Pendulum, Shapes3D
from dynrep.envs.factor_images import FactorImageEnvironment
from dynrep.envs.shapes3d import NAMES, PERIODIC
from dynrep.envs.toy_nn import ToyNN

BATCH, LENGTH = 256, 10
#: toy-nn batches: the reference's batch size, one transition per episode.
TOY_BATCH = 1024


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def batch_seconds(env, rng: np.random.Generator) -> float:
    """Seconds of one ``sample_trajectories(BATCH, LENGTH)`` call."""
    start = time.perf_counter()
    env.sample_trajectories(BATCH, LENGTH, rng)
    return time.perf_counter() - start


def frames_per_second(env, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    env.sample_trajectories(BATCH, LENGTH, rng)  # warm-up: caches, page cache
    return BATCH * (LENGTH + 1) / min(batch_seconds(env, rng) for _ in range(repeats))


def interleaved_frames_per_second(envs: dict[str, object], repeats: int) -> dict[str, float]:
    """Median frames/s per environment, the environments taking turns batch by batch (after one warm-up each)."""
    rngs = {name: np.random.default_rng(0) for name in envs}
    for name, env in envs.items():
        env.sample_trajectories(BATCH, LENGTH, rngs[name])
    seconds = {name: [] for name in envs}
    for _ in range(repeats):
        for name, env in envs.items():
            seconds[name].append(batch_seconds(env, rngs[name]))
    return {name: BATCH * (LENGTH + 1) / statistics.median(times) for name, times in seconds.items()}


def toy_nn_rows() -> None:
    """Generation time of the full train subsets, then batched sampling from the cached arrays."""
    print("\ntoy-nn, train subset of the default num_samples = 1,000,000 (800,000 rows)")
    for dataset in ("action_sparsity_non_trivial", "temporal_sparsity_non_trivial"):
        env = ToyNN(dataset)
        start = time.perf_counter()
        env.observations  # generates and caches every array of the subset
        seconds = time.perf_counter() - start
        frames = env.observations.shape[0] * env.observations.shape[1]
        print(f"{dataset:32s} generate {seconds:5.2f} s  {env.num_rows / seconds:12,.0f} samples/s "
              f"({frames / seconds:,.0f} frames/s)")
        rng = np.random.default_rng(0)
        env.sample_trajectories(TOY_BATCH, 1, rng)
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter()
            env.sample_trajectories(TOY_BATCH, 1, rng)
            best = min(best, time.perf_counter() - start)
        print(f"{'':32s} sample_trajectories({TOY_BATCH}, 1) {TOY_BATCH / best:12,.0f} episodes/s")


def shapes3d_labels(full: bool) -> np.ndarray:
    """Labels ``[N, 6]`` of the published grid (``full``) or of the reduced one (2 orientations: 64,000 images)."""
    sizes = (10, 10, 10, 8, 4, 15) if full else (10, 10, 10, 8, 4, 2)
    values = [np.arange(10) / 10] * 3 + [np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30, 30, 15)]
    return np.array(list(itertools.product(*[v[:s] for v, s in zip(values, sizes)])))


def shapes3d_like_images(labels: np.ndarray) -> np.ndarray:
    """``[n, 64, 64, 3]`` uint8 scenes drawn from the labels: wall and floor of their hues and a square object of
    its hue and scale, each smoothly shaded. In :data:`GZIP_CHUNKS` they compress about as much as the published
    file's renders (30x on the reduced grid; 5.9 GB of pixels in 267 MB is 22x)."""
    def rgb(hue: np.ndarray) -> np.ndarray:  # fully saturated hue in [0, 1) -> [n, 3] in [0, 1]
        return np.clip(np.abs((hue[:, None] * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    row, col = np.arange(64)[:, None] / 63, np.arange(64)[None, :] / 63
    wall = row < 40 / 63
    shade = np.where(wall, 0.55 + 0.35 * col + 0.1 * row, 0.5 + 0.3 * row + 0.8 * (col - 0.5) ** 2)[..., None]
    images = np.where(wall[None, ..., None], rgb(labels[:, 1])[:, None, None], rgb(labels[:, 0])[:, None, None])
    images = images * shade
    half = np.round(8 * labels[:, 3]).astype(int)  # 6..10 pixels
    centre = np.abs(np.arange(64) - 32)
    inside = (centre[None, :, None] < half[:, None, None]) & (centre[None, None, :] < half[:, None, None])
    lit = rgb(labels[:, 2])[:, None, None] * (0.6 + 0.4 * col[None, ..., None])
    return (np.where(inside[..., None], lit, images) * 255).astype(np.uint8)


#: Chunk shape of the gzip-compressed images. The published file's is not documented; 64-image chunks give the
#: synthetic renders above about its compression (h5py's automatic chunks, thousands of images by a few pixels,
#: compress them ~300x: far more than the real file, so far less would be decompressed per image).
GZIP_CHUNKS = (64, 64, 64, 3)


def write_shapes3d(path: Path, labels: np.ndarray, compressed: bool) -> None:
    """The published layout: ``images`` [N, 64, 64, 3] uint8 (contiguous, or gzip level 4 in :data:`GZIP_CHUNKS`),
    ``labels`` [N, 6] float64."""
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", shape=(len(labels), 64, 64, 3), dtype=np.uint8,
                                  **({"compression": "gzip", "chunks": GZIP_CHUNKS} if compressed else {}))
        for start in range(0, len(labels), 8192):  # whole chunks per write: each is compressed once
            images[start:start + 8192] = shapes3d_like_images(labels[start:start + 8192])
        f.create_dataset("labels", data=labels)


class H5pyShapes3D(FactorImageEnvironment):
    """Shapes3D images read through an h5py dataset: what the loader did before the unpacked cache."""

    def get_config(self) -> dict:
        return {}


def procedural_rows() -> None:
    for name, env in [("GridWorld 5x5, 64x64x3", GridWorld(size=5)), ("Flatland 10, 64x64x1", Flatland()),
                      ("Circles 32x32, 64x64x1", Circles()), ("Pendulum, 64x64x3", Pendulum(image_size=64)),
                      ("Pendulum, 96x96x3 (published)", Pendulum()), ("Flow, 96x96x3 (published)", Flow())]:
        print(f"{name:28s}{frames_per_second(env):12,.0f} frames/s")


def shapes3d_rows(args: argparse.Namespace) -> None:
    labels = shapes3d_labels(args.full)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path, packed = Path(tmp) / "3dshapes.h5", Path(tmp) / "gzip" / "3dshapes.h5"
        packed.parent.mkdir()
        for name, file, compressed in (("uncompressed", path, False), ("gzip-chunked", packed, True)):
            start = time.perf_counter()
            write_shapes3d(file, labels, compressed)
            print(f"\nShapes3D-format file, {name}: {file.stat().st_size / 2**30:.3f} GiB, written in "
                  f"{time.perf_counter() - start:.0f} s", end="")
        with h5py.File(packed, "r") as f:
            chunks, raw = f["images"].chunks, f["images"].nbytes
        print(f" (chunks {chunks}, {raw / packed.stat().st_size:.0f}x smaller than its pixels)")
        before = rss_mb()
        env = Shapes3D(path)
        opened = rss_mb()
        fps = frames_per_second(env)
        print(f"{'Shapes3D (memory map)':28s}{fps:12,.0f} frames/s")
        index = env.factors_to_index(env.sample_factors(BATCH * (LENGTH + 1), 1))
        with h5py.File(path, "r") as f:
            images = f["images"]
            start = time.perf_counter()
            for i in index:
                images[int(i)]
            per_image = (time.perf_counter() - start) / len(index)
        print(f"{'Shapes3D (h5py, per image)':28s}{1 / per_image:12,.0f} frames/s   "
              f"(memory map {fps * per_image:.1f}x faster)")
        print(f"resident memory held after opening (RSS after - before): {opened - before:.0f} MiB "
              f"(the uint8 images are {env._images.nbytes / 2**20:,.0f} MiB, as float32 "
              f"{4 * env._images.nbytes / 2**20:,.0f} MiB)")

        print("\ngzip-chunked file")
        with h5py.File(packed, "r") as f:  # the path before the unpacked cache: chunks decompressed per batch
            direct = H5pyShapes3D(f["images"], NAMES, env.factor_values, PERIODIC)
            rng = np.random.default_rng(0)
            seconds = statistics.median(batch_seconds(direct, rng) for _ in range(args.h5py_batches))
            print(f"{'read through h5py':28s}{BATCH * (LENGTH + 1) / seconds:12,.0f} frames/s   "
                  f"({seconds:.2f} s per batch, median of {args.h5py_batches})")
        before = rss_mb()
        start = time.perf_counter()
        unpacked = Shapes3D(packed, progress=False)
        unpack = time.perf_counter() - start
        print(f"{'one-time unpack to .npy':28s}{unpack:12.1f} s         "
              f"({len(labels) / unpack:,.0f} images/s, RSS after - before {rss_mb() - before:.0f} MiB)")
        start = time.perf_counter()
        Shapes3D(packed)
        print(f"{'reopen (cache reused)':28s}{time.perf_counter() - start:12.3f} s")
        rates = interleaved_frames_per_second({"uncompressed": env, "unpacked": unpacked}, args.repeats)
        print(f"{'unpacked memory map':28s}{rates['unpacked']:12,.0f} frames/s")
        print(f"{'uncompressed memory map':28s}{rates['uncompressed']:12,.0f} frames/s   (unpacked / uncompressed "
              f"{rates['unpacked'] / rates['uncompressed']:.2f}; medians of {args.repeats} interleaved batches)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="write and read a full-size Shapes3D file")
    parser.add_argument("--dir", default=None, help="where to write the Shapes3D-format file (default: a temp dir)")
    parser.add_argument("--only", choices=("all", "procedural", "shapes3d", "toy_nn"), default="all",
                        help="run only one group of rows")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved batches per Shapes3D memory map")
    parser.add_argument("--h5py-batches", type=int, default=3,
                        help="batches read through h5py from the gzip-chunked file (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.only in ("all", "procedural", "shapes3d"):
        print(f"one core; batches of {BATCH} episodes x {LENGTH + 1} frames\n")
    if args.only in ("all", "procedural"):
        procedural_rows()
    if args.only in ("all", "shapes3d"):
        shapes3d_rows(args)
    if args.only in ("all", "toy_nn"):
        if args.only == "toy_nn":
            print("one core", end="")
        toy_nn_rows()


if __name__ == "__main__":
    main()
