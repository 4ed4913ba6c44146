"""Environment throughput: 64x64 frames per second of batched trajectory sampling, one core.

Prints, measured in this process:
  1. frames/s of ``sample_trajectories(256, 10)`` for GridWorld, Flatland, Circles
     (procedural, target >= 20,000) and Shapes3D read from an on-disk file in the
     published h5 format (target >= 10,000 from page cache);
  2. for Shapes3D, the same batch read image by image through h5py (what a plain
     h5 loader does) in the same process, and the ratio;
  3. resident memory held after opening the Shapes3D file (it must not be loaded);
  4. toy-nn (mechanism sparsity): seconds and samples/s to generate the full 800,000-row
     train subset of ``action_sparsity_non_trivial`` and ``temporal_sparsity_non_trivial``
     (the reference's default size), then episodes/s of batched ``sample_trajectories(1024, 1)``.

    python benchmarks/environments.py            # reduced Shapes3D grid (64,000 images, 0.8 GB file)
    python benchmarks/environments.py --full     # the real size: 480,000 images, 5.9 GB written to --dir
    python benchmarks/environments.py --only toy_nn
"""
from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from dynrep import Circles, Flatland, Flow, GridWorld, Pendulum, Shapes3D
from dynrep.envs.toy_nn import ToyNN

BATCH, LENGTH = 256, 10
#: toy-nn batches: the reference's batch size, one transition per episode.
TOY_BATCH = 1024


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def frames_per_second(env, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    env.sample_trajectories(BATCH, LENGTH, rng)  # warm-up: caches, page cache
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        env.sample_trajectories(BATCH, LENGTH, rng)
        best = min(best, time.perf_counter() - start)
    return BATCH * (LENGTH + 1) / best


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


def write_shapes3d(path: Path, full: bool) -> None:
    sizes = (10, 10, 10, 8, 4, 15) if full else (10, 10, 10, 8, 4, 2)
    values = [np.arange(10) / 10] * 3 + [np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30, 30, 15)]
    labels = np.array(list(itertools.product(*[v[:s] for v, s in zip(values, sizes)])))
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", shape=(len(labels), 64, 64, 3), dtype=np.uint8)
        chunk = 8192
        rng = np.random.default_rng(0)
        for start in range(0, len(labels), chunk):
            n = min(chunk, len(labels) - start)
            images[start:start + n] = rng.integers(0, 255, size=(n, 64, 64, 3), dtype=np.uint8)
        f.create_dataset("labels", data=labels)


def procedural_rows() -> None:
    for name, env in [("GridWorld 5x5, 64x64x3", GridWorld(size=5)), ("Flatland 10, 64x64x1", Flatland()),
                      ("Circles 32x32, 64x64x1", Circles()), ("Pendulum, 64x64x3", Pendulum(image_size=64)),
                      ("Pendulum, 96x96x3 (published)", Pendulum()), ("Flow, 96x96x3 (published)", Flow())]:
        print(f"{name:28s}{frames_per_second(env):12,.0f} frames/s")


def shapes3d_rows(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "3dshapes.h5"
        start = time.perf_counter()
        write_shapes3d(path, args.full)
        print(f"\nShapes3D-format file: {path.stat().st_size / 2**30:.2f} GiB, written in "
              f"{time.perf_counter() - start:.0f} s")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="write and read a full-size Shapes3D file")
    parser.add_argument("--dir", default=None, help="where to write the Shapes3D-format file (default: a temp dir)")
    parser.add_argument("--only", choices=("all", "procedural", "shapes3d", "toy_nn"), default="all",
                        help="run only one group of rows")
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
