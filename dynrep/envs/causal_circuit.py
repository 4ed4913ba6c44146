"""CausalCircuit (Brehmer et al., NeurIPS 2022): a robot arm, three buttons and three lights, as ICM-VAE uses it.

What the published files hold, and where each fact comes from:

* Files: ``train-0.npz`` ... ``train-9.npz``, ``val.npz``, ``test.npz``. The Qualcomm dataset page
  (``https://www.qualcomm.com/developer/software/causal-circuit-dataset``; the reference READMEs link the same
  text at ``developer.qualcomm.com/software/ai-datasets/causalcircuit``) describes train/val/test with N = 100,000 /
  10,000 / 10,000 pairs; the reference loaders open the training split as ten files ``train-{i}.npz``
  (Qualcomm-AI-research/weakly-supervised-causal-representation-learning, ``experiments/causalcircuit_reduce_dim.py``
  ``get_dataloader``; Akomand/ICM-VAE ``utils.py`` ``CausalCircuitSimplified``), so each presumably holds 10,000
  pairs (not stated anywhere). No direct file URL, size or checksum is known: the page text available offline
  has none and no public code downloads the files (see :mod:`dynrep.data.download`).
* Arrays (dataset page, and the arrays the Brehmer et al. loader reads):
  ``original_latents`` ``(N, 2, 4)`` float64, the causal variables before / after an intervention in the column
  order [red light, green light, blue light, arm position], values in [0, 1];
  ``imgs`` ``(N, 2)`` "bytes": the JPEG encoding of the 512x512 MuJoCo rendering before / after. The loaders read
  it with ``np.load`` without ``allow_pickle`` and ICM-VAE gathers elements with ``np.take``, so it is a
  fixed-width bytes array (numpy dtype ``S<max length>``, each element one JPEG, zero-padded), not an object
  array; the Brehmer et al. loader decodes it with ``PIL.Image.open`` (its variable is called ``jpeg``).
  Also ``epsilon`` ``(N, 2, 4)`` float64 (noise / noise encodings), ``pressed`` ``(N, 2, 3)`` float64 (page),
  ``intervention_labels`` ``(N,)`` (0 = no intervention, k = variable k-1; integer dtype not documented) and
  ``intervention_masks`` ``(N, 4)`` (boolean per the loader's ``BoolTensor``). Only ``imgs`` and
  ``original_latents`` are read here.
* ICM-VAE's "simplified" loader (``CausalCircuitSimplified``, used by ``experiments/train_circuit.py``), followed
  exactly by ``regimes="icm_vae"``: per file, the before-frames of all pairs then the after-frames
  (``np.concatenate((latents[:, 0], latents[:, 1]))``), each frame judged on its own float64 latents (pairs are
  not kept together), with strict inequalities on the file columns [red, green, blue, arm]:

  1. ``0.1 < arm < 0.4`` and ``red > 0.5`` and ``green > 0.4`` and ``blue < 0.2``;
  2. ``0.4 < arm < 0.7`` and ``red > 0.5`` and ``blue < 0.2`` and ``green < 0.2``;
  3. ``0.7 < arm < 1`` and ``red > 0.5`` and ``blue > 0.4`` and ``green < 0.2``.

  Kept frames are ordered regime 1, 2, 3 within each file, files in order; the regimes are disjoint. Labels are
  permuted with ``[3, 2, 1, 0]`` to [arm, blue, green, red] and cast to float32; images go through
  ``transforms.Resize(128)`` (PIL bilinear, which is anti-aliased when shrinking) then ``ToTensor``. ICM-VAE's
  ``experiments/test_circuit.py`` sizes its buffers for 35527 train and 3608 test images (also in a comment of
  ``utils.py``); not re-counted here (the files are not available offline).
* Cost of the one-time decode here: about 6 ms per 512x512 JPEG on one CPU core (~4 min for the 35527 ICM-VAE
  train frames, ~20 min for all 200,000 train frames); the cache takes N x 3 x S x S bytes (1.7 GB for the
  ICM-VAE train frames at 128, 9.8 GB for every train frame). An uncompressed ``.npz`` is read through a memory
  map; a compressed one has its whole ``imgs`` array loaded while its frames are decoded.
* Graph (ICM-VAE ``train_circuit.py``: ``C[j, i] = 1`` iff j -> i over [arm, blue, green, red]): arm -> blue,
  arm -> green, arm -> red, blue -> red, green -> red. dynrep stores it transposed (rows = children).

Design: frames are decoded once, resized, and cached as a uint8 ``.npy`` ``[N, 3, S, S]`` (memory-mapped), whose
file name carries a hash of everything that determines it (files and sizes, selection, kept latents, size,
resampling); a missing, truncated or mismatching cache is rebuilt, written to a temporary file and renamed. The
dataset has no actions: the pairs are before/after *random* interventions whose new values are not a function of
the old state and a chosen action, and ICM-VAE's regime filter separates the frames of a pair anyway, so
trajectories are single frames (``length = 0``); :attr:`CausalCircuit.sources` records each frame's file, pair
and side for whoever wants the pairs.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from dynrep.checks import as_generator, check_int
from dynrep.data.download import damaged, dataset_path, reading
from dynrep.data.trajectory import Trajectory
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.causal import CausalVariables
from dynrep.envs.factor_images import cached_npy, npz_member_as_memmap, read_npy_header
from dynrep.envs.registry import register_env

#: Name of the dataset in :data:`~dynrep.data.download.DATASETS` (for the command that downloads a damaged file again).
DATASET = "causal_circuit"
#: Factor (= causal variable) names, in ICM-VAE's label order.
NAMES = ("arm", "blue", "green", "red")
#: Column of ``original_latents`` (file order [red, green, blue, arm]) of each factor: ICM-VAE's ``perm``.
LABEL_ORDER = (3, 2, 1, 0)
#: Parents of every non-root variable, in a topological order (ICM-VAE's circuit graph).
PARENTS = {"blue": ("arm",), "green": ("arm",), "red": ("arm", "blue", "green")}
SUBSETS = ("train", "val", "test")
REGIMES = ("icm_vae", "all")
#: Files of each subset, in the order the reference loaders read them.
SUBSET_FILES = {"train": tuple(f"train-{i}.npz" for i in range(10)), "val": ("val.npz",), "test": ("test.npz",)}
#: Resampling of the one-time resize: what torchvision's ``Resize`` does to a PIL image (ICM-VAE).
RESAMPLE = Image.Resampling.BILINEAR
#: Bumped whenever the cache layout or decoding changes (old caches then no longer match).
CACHE_VERSION = 1
#: Side of the published renderings (Qualcomm dataset page).
SOURCE_SIDE = 512


def icm_vae_regime(latents: np.ndarray) -> np.ndarray:
    """ICM-VAE's regime of each frame: ``[N]`` int64, 1, 2 or 3, and 0 for frames it drops.

    Args:
        latents: ``[N, 4]`` in the file's column order [red, green, blue, arm] (float64 as stored).
    """
    latents = np.asarray(latents)
    if latents.ndim != 2 or latents.shape[1] != 4:
        raise ValueError(f"latents must have shape [N, 4] (columns red, green, blue, arm), got {latents.shape}")
    red, green, blue, arm = latents.T
    one = (arm > 0.1) & (arm < 0.4) & (red > 0.5) & (green > 0.4) & (blue < 0.2)
    two = (arm > 0.4) & (arm < 0.7) & (red > 0.5) & (blue < 0.2) & (green < 0.2)
    three = (arm > 0.7) & (arm < 1) & (red > 0.5) & (blue > 0.4) & (green < 0.2)
    return np.select([one, two, three], [1, 2, 3], default=0).astype(np.int64)


def select_frames(pair_latents: np.ndarray, regimes: str) -> np.ndarray:
    """The frames of one file that a CausalCircuit keeps, in ICM-VAE's order.

    Args:
        pair_latents: ``original_latents`` of the file, ``[P, 2, 4]``.
        regimes: ``"icm_vae"`` (regime 1 frames, then 2, then 3) or ``"all"`` (every frame).

    Returns:
        ``[M, 2]`` int64 rows ``(pair, side)``, side 0 = before and 1 = after the intervention. The candidate
        order is all before-frames then all after-frames, as ICM-VAE concatenates them.
    """
    if regimes not in REGIMES:
        raise ValueError(f"regimes must be one of {REGIMES}, got {regimes!r}")
    pairs = len(pair_latents)
    frames = np.concatenate([pair_latents[:, 0], pair_latents[:, 1]])
    if regimes == "all":
        order = np.arange(2 * pairs)
    else:
        regime = icm_vae_regime(frames)
        order = np.concatenate([np.flatnonzero(regime == r) for r in (1, 2, 3)])
    return np.stack([order % pairs, order // pairs], axis=1).astype(np.int64)


def _rebuild(cls: type, config: dict) -> "CausalCircuit":
    return cls(**config)


def _npz_array_header(file: Path, key: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    """``(shape, dtype, stored uncompressed)`` of array ``key`` of an ``.npz`` without reading the array."""
    member = f"{key}.npy"
    with reading(file, DATASET), zipfile.ZipFile(file) as archive:
        names = archive.namelist()
        if member in names:
            stored = archive.getinfo(member).compress_type == zipfile.ZIP_STORED
            with archive.open(member) as f:
                shape, _, dtype = read_npy_header(f)
    if member not in names:
        held = sorted(name.removesuffix(".npy") for name in names)
        raise ValueError(f"{file}: no array {key!r}; it holds {held} (is this a CausalCircuit file?)")
    return tuple(shape), np.dtype(dtype), stored


@register_env("causal_circuit")
class CausalCircuit(CausalVariables, Environment):
    """The recorded CausalCircuit frames, with their four causal variables as continuous factors.

    Factors (float32, in [0, 1]) in ICM-VAE's label order: ``arm`` (arm position along its arc), ``blue``,
    ``green``, ``red`` (light intensities). ``graph[i, j] = 1`` iff ``variables[j] -> variables[i]``.
    Observations are RGB ``[3, S, S]`` uint8 frames. There are no actions (``ActionSpace(dim=0)``): trajectories
    are single frames, and :meth:`render` looks frames up by their exact latents (a recorded dataset, not a
    simulator).

    Args:
        path: directory holding the ``.npz`` files (default ``$DYNREP_DATA/causal_circuit``, installed by
            ``dynrep download causal_circuit``). Only the chosen subset's files are needed. A small directory in
            this format: :func:`dynrep.data.synthetic.write_synthetic` ``("causal_circuit", dest)``.
        subset: ``"train"`` (``train-0.npz`` ... ``train-9.npz``), ``"val"`` (``val.npz``) or ``"test"``
            (``test.npz``).
        regimes: ``"icm_vae"`` keeps only the frames in ICM-VAE's three regimes (see the module docstring);
            ``"all"`` keeps every frame (before-frames then after-frames of each file).
        image_size: side S of the square observations (ICM-VAE: 128; the renderings are 512).
        cache_dir: where the decoded-frame cache is written (default: ``path``).
        progress: show a progress bar while frames are decoded (first use only).

    Attributes:
        variables: the factor names. ``parents``: ``{child: parents}``. ``graph``: ``[4, 4]`` int64.
        label_scale: ``[4, 2]`` (centre, scale) = (0, 1) for every label, as in ICM-VAE.
        sources: ``[N, 3]`` int64 ``(file, pair, side)`` of each frame: index into :attr:`files`, pair row of
            that file, 0 = before / 1 = after the intervention.
        files: the subset's file names.
    """

    variables = NAMES
    parents = PARENTS
    label_scale = np.tile(np.array([0.0, 1.0]), (len(NAMES), 1))

    def __init__(self, path: str | Path | None = None, *, subset: str = "train", regimes: str = "icm_vae",
                 image_size: int = 128, cache_dir: str | Path | None = None, progress: bool = True):
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
        if regimes not in REGIMES:
            raise ValueError(f"regimes must be one of {REGIMES} ('icm_vae': ICM-VAE's three regimes, "
                             f"'all': every frame), got {regimes!r}")
        self.subset, self.regimes = subset, regimes
        self.image_size = check_int("image_size", image_size, 4, 4 * SOURCE_SIDE)
        self.path = Path(path).expanduser() if path is not None else dataset_path("causal_circuit")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.files = SUBSET_FILES[subset]
        if not self.path.is_dir():
            raise FileNotFoundError(f"no CausalCircuit directory at {self.path}; `dynrep download causal_circuit "
                                    f"--url DIR` installs the files fetched from Qualcomm")
        missing = [name for name in self.files if not (self.path / name).is_file()]
        if missing:
            raise FileNotFoundError(f"CausalCircuit {subset} files missing in {self.path}: {', '.join(missing)}; "
                                    f"`dynrep download causal_circuit --url DIR` installs them")

        k = len(NAMES)
        self.factors = FactorSpace(NAMES, (None,) * k, (False,) * k)
        self.actions = ActionSpace(dim=0)
        self.observation_shape = (3, self.image_size, self.image_size)
        self.observation_dtype = np.dtype(np.uint8)

        raw, sources = [], []
        for number, name in enumerate(self.files):
            pair_latents = self._read_latents(self.path / name)
            chosen = select_frames(pair_latents, regimes)
            raw.append(pair_latents[chosen[:, 0], chosen[:, 1]])
            sources.append(np.column_stack([np.full(len(chosen), number, dtype=np.int64), chosen]))
        raw_latents = np.concatenate(raw)
        self.sources = np.concatenate(sources)
        if len(self.sources) == 0:
            raise ValueError(f"no frame of CausalCircuit {subset} in {self.path} falls in ICM-VAE's regimes; "
                             f"use regimes='all' to keep every frame")
        #: Float32 factors ``[N, 4]`` of every kept frame, in factor order.
        self._latents = raw_latents[:, list(LABEL_ORDER)].astype(np.float32)
        self._latents += np.float32(0.0)  # -0.0 -> 0.0, so equal values have equal bytes for the lookup
        self._lookup: dict[bytes, int] | None = None
        self._images = self._open_cache(raw_latents, progress)

    # ------------------------------------------------------------------------------------- reading and caching

    @staticmethod
    def _read_latents(file: Path) -> np.ndarray:
        """``original_latents [P, 2, 4]`` float64 of one file, after checking it matches its ``imgs [P, 2]``."""
        shape, dtype, _ = _npz_array_header(file, "imgs")
        with reading(file, DATASET), np.load(file, allow_pickle=False) as archive:
            held = archive.files
            latents = archive["original_latents"] if "original_latents" in held else None
        if latents is None:
            raise ValueError(f"{file}: no array 'original_latents'; it holds {sorted(held)}")
        if latents.ndim != 3 or latents.shape[1:] != (2, 4):
            raise ValueError(f"{file}: expected original_latents of shape (N, 2, 4), got {latents.shape}")
        if shape != (len(latents), 2) or dtype.kind != "S":
            raise ValueError(f"{file}: expected imgs of shape ({len(latents)}, 2) holding JPEG bytes (dtype S), "
                             f"got shape {shape} dtype {dtype}")
        return latents.astype(np.float64, copy=False)

    def _cache_key(self, raw_latents: np.ndarray) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps({
            "version": CACHE_VERSION, "subset": self.subset, "regimes": self.regimes, "size": self.image_size,
            "resample": RESAMPLE.name, "files": [[name, (self.path / name).stat().st_size] for name in self.files],
        }, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(self.sources, dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(raw_latents, dtype="<f8").tobytes())
        return digest.hexdigest()[:16]

    @property
    def cache_path(self) -> Path:
        """The decoded-frame cache this environment reads."""
        return self._cache_path

    def _open_cache(self, raw_latents: np.ndarray, progress: bool) -> np.ndarray:
        """The decoded-frame cache (see :func:`~dynrep.envs.factor_images.cached_npy`: built once under a lock,
        rebuilt when a file's size or modification time changes), built by :meth:`_decode_frames`."""
        directory = self.cache_dir if self.cache_dir is not None else self.path
        prefix = f"causal_circuit_{self.subset}_{self.regimes}_x{self.image_size}_"
        self._cache_path = cache = directory / f"{prefix}{self._cache_key(raw_latents)}.npy"

        def fill(out: np.ndarray, advance: Callable[[int], object]) -> None:
            for stale in directory.glob(f"{prefix}*.npy"):  # caches of an earlier version of the files or code
                if stale != cache:
                    stale.unlink(missing_ok=True)
            self._decode_frames(out, advance)

        side, files = self.image_size, [self.path / name for name in self.files]
        return cached_npy(cache, files, (len(self.sources), *self.observation_shape), np.uint8, fill,
                          total=len(self.sources), unit="frame", progress=progress,
                          desc=f"CausalCircuit {self.subset}: decoding to {side}x{side} (once)")

    def _decode_frames(self, out: np.ndarray, advance: Callable[[int], object]) -> None:
        """Decode every kept frame once, resized, into ``out`` ``[N, 3, S, S]``, calling ``advance(1)`` per frame."""
        for number, name in enumerate(self.files):
            rows = np.flatnonzero(self.sources[:, 0] == number)
            if not len(rows):
                continue
            file = self.path / name
            _, _, stored = _npz_array_header(file, "imgs")
            if stored:  # mapped in place: only the kept frames are read
                images = npz_member_as_memmap(file, "imgs", self.path, name=DATASET)
            else:
                with reading(file, DATASET), np.load(file, allow_pickle=False) as archive:
                    images = archive["imgs"]
            for row in rows:
                pair, side_index = self.sources[row, 1:]
                out[row] = self._decode(images[pair, side_index], file, pair, side_index)
                advance(1)
            del images

    def _decode(self, data: bytes, file: Path, pair: int, side: int) -> np.ndarray:
        """One JPEG -> ``[3, S, S]`` uint8 (RGB, resized with :data:`RESAMPLE` when its size differs)."""
        try:
            with Image.open(io.BytesIO(bytes(data))) as image:
                image = image.convert("RGB")
        except Exception as err:  # PIL raises several types for undecodable bytes
            raise damaged(file, f"imgs[{pair}, {side}] is not a decodable image: {err}", DATASET) from err
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), RESAMPLE)
        return np.asarray(image).transpose(2, 0, 1)

    # ------------------------------------------------------------------------------------ the dataset

    @property
    def num_rows(self) -> int:
        """Number of kept frames N."""
        return len(self._latents)

    def __len__(self) -> int:
        return self.num_rows

    def latents(self) -> np.ndarray:
        """Factors ``[N, 4]`` float32 of every kept frame, in frame order (a copy)."""
        return self._latents.copy()

    def images(self, index: np.ndarray) -> np.ndarray:
        """Frames ``[M, 3, S, S]`` uint8 of frame rows ``index [M]``."""
        rows = self._check_index(index)
        unique, inverse = np.unique(rows, return_inverse=True)  # sorted reads of the memory map
        return np.ascontiguousarray(np.asarray(self._images[unique])[inverse.reshape(-1)])

    def _check_index(self, index: np.ndarray) -> np.ndarray:
        rows = np.asarray(index)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(f"index must be a 1-D array of frame rows, got shape {rows.shape} dtype {rows.dtype}")
        rows = rows.astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise ValueError(f"index must hold frame rows in [0, {self.num_rows}), got values in "
                             f"[{rows.min()}, {rows.max()}]")
        return rows

    def frame_index(self, factors: np.ndarray) -> np.ndarray:
        """Row ``[M]`` of the frame whose float32 factors equal each row of ``factors [M, 4]`` exactly.

        Where several frames share latents (e.g. both frames of a pair without intervention), the first in
        frame order is returned. Raises ValueError for a row that is not in this dataset.
        """
        values = np.asarray(factors)
        if values.ndim != 2 or values.shape[1] != len(NAMES):
            raise ValueError(f"factors must have shape [N, {len(NAMES)}] (columns {list(NAMES)}), got {values.shape}")
        if values.size and not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
            raise ValueError(f"factors must be numbers, got dtype {values.dtype}")
        keys = np.ascontiguousarray(values.astype(np.float32)) + np.float32(0.0)
        if self._lookup is None:
            table = {}
            for row in range(self.num_rows - 1, -1, -1):  # backwards, so the first frame wins
                table[self._latents[row].tobytes()] = row
            self._lookup = table
        rows = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            row = self._lookup.get(key.tobytes())
            if row is None:
                raise ValueError(f"CausalCircuit is a recorded dataset: it can only render latents of its own "
                                 f"frames (use sample_factors), but row {i} {dict(zip(NAMES, key.tolist()))} "
                                 f"matches no frame of the {self.subset} subset ({self.regimes} regimes)")
            rows[i] = row
        return rows

    # ----------------------------------------------------------------------------- the Environment contract

    def get_config(self) -> dict[str, Any]:
        config = {"path": str(self.path), "subset": self.subset, "regimes": self.regimes,
                  "image_size": self.image_size}
        if self.cache_dir is not None:
            config["cache_dir"] = str(self.cache_dir)
        return config

    def __reduce__(self):
        # Pickle as "reopen the files" (DataLoader workers, DDP): never the frames.
        return _rebuild, (type(self), self.get_config())

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Factors ``[n, 4]`` float32 of ``n`` uniformly random frames (with replacement)."""
        n = check_int("n", n, 0)
        return self._latents[as_generator(rng).integers(0, self.num_rows, size=n)]

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Frames ``[M, 3, S, S]`` uint8 of dataset latents ``factors [M, 4]`` (exact lookup: :meth:`frame_index`)."""
        return self.images(self.frame_index(factors))

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """Same as :meth:`render`."""
        return self.render(factors)

    def step(self, factors: np.ndarray, actions: np.ndarray, magnitudes: np.ndarray | None = None) -> np.ndarray:
        raise ValueError("CausalCircuit has no actions (ActionSpace(dim=0)): its frames are static samples")

    def sample_trajectories(self, batch: int, length: int = 0, rng: np.random.Generator | int | None = None,
                            max_magnitude: int = 1) -> Trajectory:
        """``batch`` uniformly random frames as a static :class:`Trajectory`: ``obs [B, 1, 3, S, S]`` uint8,
        ``actions [B, 0, 0]`` float32, ``factors [B, 1, 4]`` float32. ``length`` must be 0."""
        batch = check_int("batch", batch, 1)
        length = check_int("length", length, 0)
        if length != 0:
            raise ValueError(f"CausalCircuit has no actions, so trajectories are single frames: length must be 0, "
                             f"got {length}")
        if check_int("max_magnitude", max_magnitude, 1) != 1:
            raise ValueError(f"CausalCircuit has no actions: max_magnitude must be 1, got {max_magnitude}")
        rows = as_generator(rng).integers(0, self.num_rows, size=batch)
        return self._static(rows)

    def trajectories(self, index: np.ndarray | None = None) -> Trajectory:
        """Frames ``index`` (default: all N, in frame order) as a static :class:`Trajectory`, shapes as in
        :meth:`sample_trajectories`."""
        rows = np.arange(self.num_rows) if index is None else self._check_index(index)
        return self._static(rows)

    def _static(self, rows: np.ndarray) -> Trajectory:
        return Trajectory(obs=torch.from_numpy(self.images(rows)[:, None]),
                          actions=torch.zeros((len(rows), 0, 0), dtype=torch.float32),
                          factors=torch.from_numpy(self._latents[rows][:, None].copy()))
