"""FactorImageEnvironment: a full factor grid over a uint8 image store.

A static factor dataset (Shapes3D, dSprites, MPI3D...) is a world whose state is a
factor vector and whose actions shift one factor by ±1 (cyclic or clamped per
factor). Images are read on demand from a uint8 memory map (of the file itself, or of
an uncompressed copy unpacked once from a compressed one), never copied whole into
memory, and never converted to float here.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from dynrep.data.download import file_lock, reading
from dynrep.envs.base import ActionSpace, Environment, FactorSpace

#: Bytes read at a time when a compressed .npz member or h5 dataset is unpacked to a .npy cache.
_CHUNK_BYTES = 64 * 2**20


def grid_classes(labels: np.ndarray, names: Sequence[str], where: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Check that per-image labels ``[N, K]`` form a full factor grid in C order (last factor fastest).

    Returns the class index of every image ``[N, K]`` and the sorted distinct values of
    each factor. Raises ValueError naming the file (``where``) when the rows are not
    the full cartesian product in the documented order.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(names):
        raise ValueError(f"{where}: expected labels of shape [N, {len(names)}] for factors {list(names)}, "
                         f"got {labels.shape}")
    values = [np.unique(labels[:, k]) for k in range(len(names))]
    classes = np.stack([np.searchsorted(v, labels[:, k]) for k, v in enumerate(values)], axis=1)
    sizes = tuple(len(v) for v in values)
    expected = int(np.prod(sizes))
    if len(labels) != expected or not np.array_equal(np.ravel_multi_index(tuple(classes.T), sizes),
                                                     np.arange(len(labels))):
        raise ValueError(f"{where}: the images are not a full factor grid in the documented order "
                         f"({', '.join(f'{n}={s}' for n, s in zip(names, sizes))}, last factor fastest): "
                         f"{len(labels)} rows for {expected} combinations")
    return classes, values


def read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an open .npy stream positioned at its start."""
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"unsupported .npy format version {version}")
    return readers[version](f)


def cached_npy(cache: Path, source: Path | Sequence[Path], shape: Sequence[int], dtype: np.dtype,
               fill: Callable[[np.ndarray, Callable[[int], object]], None], *, total: int, unit: str, desc: str,
               fortran_order: bool = False, progress: bool = True) -> np.ndarray:
    """Read-only memory map of ``cache``: an uncompressed ``.npy`` copy, ``shape`` and ``dtype``, of an array held
    (compressed) in the file ``source`` (or decoded from several files: a sequence of them), written once by
    ``fill(out, advance)``.

    ``fill`` writes every element of the writable map ``out`` and calls ``advance(n)`` as it goes (``n`` of
    ``total`` ``unit``s, for the tqdm bar). The cache is written under a lock to a temporary file and only then
    renamed into place, so an interrupted or killed unpack never leaves a file under the cache's name. Beside it,
    ``.<cache name>.source`` records the size and modification time each source had when the copy was read. An
    existing cache is used only if it is a readable ``.npy`` of this shape and dtype whose record matches
    ``source`` now; otherwise (a cache of an earlier version of the source, even one with the same modification
    time, a truncated or foreign file) it is rebuilt. Reading a complete cache writes nothing, so a read-only
    directory holding one works; building one where nothing can be written raises PermissionError naming the
    directory (pass the loader's ``cache_dir=`` a writable one), and OSError when its disk has too little space.
    """
    cache, shape, dtype = Path(cache), tuple(shape), np.dtype(dtype)
    sources = [Path(source)] if isinstance(source, (str, os.PathLike)) else [Path(s) for s in source]
    of = sources[0] if len(sources) == 1 else f"{len(sources)} files in {sources[0].parent}"
    if (ready := _complete_cache(cache, sources, shape, dtype)) is not None:
        return ready
    with ExitStack() as stack:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(file_lock(cache.with_name(f".{cache.name}.lock")))
        except OSError as err:
            raise PermissionError(f"cannot write the unpacked copy {cache.name} of {of} in {cache.parent} "
                                  f"({err}); pass cache_dir= a writable directory") from err
        if (ready := _complete_cache(cache, sources, shape, dtype)) is not None:  # built while we waited
            return ready
        for stale in cache.parent.glob(f".{cache.name}.*.tmp"):  # left by a killed unpack (we hold the lock)
            stale.unlink(missing_ok=True)
        # Writes through a memory map cannot report a full disk (the process gets SIGBUS): check first.
        needed, free = int(np.prod(shape)) * dtype.itemsize, shutil.disk_usage(cache.parent).free
        if free < needed:
            raise OSError(f"not enough disk space in {cache.parent} for the unpacked copy {cache.name} of {of}: "
                          f"need {needed / 2**30:.2f} GiB, {free / 2**30:.2f} GiB free; pass cache_dir= another disk")
        key = _source_key(sources)  # before reading: a source changed meanwhile fails the check later
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        from tqdm.auto import tqdm
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape, fortran_order=fortran_order)
            with tqdm(total=total, unit=unit, unit_scale=True, desc=desc, disable=not progress) as bar:
                fill(out, bar.update)
            out.flush()
            del out
            _record(cache).unlink(missing_ok=True)  # no moment where the new copy carries the old record
            os.replace(tmp, cache)
            _record(cache).write_text(json.dumps(key))
        finally:
            tmp.unlink(missing_ok=True)
    return np.load(cache, mmap_mode="r")


def _complete_cache(cache: Path, sources: list[Path], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The memory-mapped ``cache`` if it is a finished copy of ``sources`` (see :func:`cached_npy`), else None."""
    try:
        if json.loads(_record(cache).read_text()) != _source_key(sources):
            return None
        array = np.load(cache, mmap_mode="r")
    except (OSError, ValueError, EOFError):  # absent, truncated (shorter than its header says) or not an .npy
        return None
    return array if array.shape == shape and array.dtype == dtype else None


def _record(cache: Path) -> Path:
    """Where :func:`cached_npy` records which version of the source ``cache`` was unpacked from."""
    return cache.with_name(f".{cache.name}.source")


def _source_key(sources: list[Path]) -> list[dict[str, int]]:
    """What identifies a version of the files ``sources`` without reading them: their sizes and modification
    times."""
    return [{"size": stat.st_size, "mtime_ns": stat.st_mtime_ns} for stat in map(os.stat, sources)]


def npz_member_as_memmap(npz_path: Path, key: str, cache_dir: Path, progress: bool = True, *,
                         name: str) -> np.ndarray:
    """Read-only memory map of array ``key`` of an .npz file of dataset ``name``
    (a :data:`~dynrep.data.download.DATASETS` key, for the re-download command).

    An uncompressed member is mapped in place; a compressed one is unpacked once, streamed in
    chunks, to ``cache_dir/<npz stem>.<key>.npy`` (see :func:`cached_npy`). A truncated or corrupt
    file raises :class:`~dynrep.data.download.DataFileError` (the command that downloads it again)
    and leaves no partial copy.
    """
    member = f"{key}.npy"
    with reading(npz_path, name), zipfile.ZipFile(npz_path) as archive:
        names = archive.namelist()
        if member in names:
            info = archive.getinfo(member)
            with archive.open(member) as f:
                shape, fortran, dtype = read_npy_header(f)
                header = f.tell()
    if member not in names:
        raise ValueError(f"{npz_path}: no array {key!r}; it holds {[n[:-4] for n in names]}")
    if info.compress_type == zipfile.ZIP_STORED:
        # The member's data start: local file header (30 bytes + name + extra) + npy header.
        with open(npz_path, "rb") as raw:
            raw.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
        offset = info.header_offset + 30 + int(name_len) + int(extra_len) + header
        return np.memmap(npz_path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")

    def fill(out: np.ndarray, advance: Callable[[int], object]) -> None:
        flat = out.reshape(-1, order="A").view(np.uint8)
        pos = 0
        with reading(npz_path, name), zipfile.ZipFile(npz_path) as archive, archive.open(member) as f:
            read_npy_header(f)
            while chunk := f.read(_CHUNK_BYTES):
                flat[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                pos += len(chunk)
                advance(len(chunk))
            if pos != flat.size:
                raise EOFError(f"array {key!r} is truncated: {pos} of {flat.size} bytes")

    cache = Path(cache_dir) / f"{Path(npz_path).stem}.{key}.npy"
    nbytes = int(np.prod(shape)) * dtype.itemsize
    return cached_npy(cache, npz_path, shape, dtype, fill, total=nbytes, unit="B", fortran_order=fortran,
                      desc=f"unpacking {Path(npz_path).name}:{key} (once)", progress=progress)


def h5_dataset_as_array(dataset, cache_dir: Path, progress: bool = True, *, name: str) -> np.ndarray:
    """Read-only memory map of an h5py dataset (``[N, ...]``) of the file of dataset ``name``
    (a :data:`~dynrep.data.download.DATASETS` key, for the re-download command).

    A contiguous, uncompressed dataset is mapped in place. Any other (chunked and compressed, as in the
    published 3dshapes.h5) is unpacked once, in blocks of whole chunks along axis 0, to
    ``cache_dir/<file stem>.<dataset name>.npy`` (see :func:`cached_npy`), so random reads never decompress.
    A chunk that cannot be decompressed raises :class:`~dynrep.data.download.DataFileError` and leaves no
    partial copy.
    """
    offset = dataset.id.get_offset()
    if offset is not None and dataset.chunks is None:
        return np.memmap(dataset.file.filename, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape)
    source = Path(dataset.file.filename)
    rows = dataset.shape[0]
    row_bytes = max(1, int(np.prod(dataset.shape[1:])) * dataset.dtype.itemsize)
    per_chunk = dataset.chunks[0] if dataset.chunks is not None else 1
    # Whole chunks per read: a chunk cut by two reads would be decompressed twice.
    block = max(per_chunk, _CHUNK_BYTES // row_bytes // per_chunk * per_chunk)

    def fill(out: np.ndarray, advance: Callable[[int], object]) -> None:
        for start in range(0, rows, block):
            stop = min(start + block, rows)
            with reading(source, name):
                dataset.read_direct(out, np.s_[start:stop], np.s_[start:stop])
            advance(stop - start)

    key = dataset.name.strip("/").replace("/", ".")
    return cached_npy(Path(cache_dir) / f"{source.stem}.{key}.npy", source, dataset.shape, dataset.dtype, fill,
                      total=rows, unit="image", desc=f"unpacking {source.name}:{key} (once)", progress=progress)


def check_images(images, where: str, scale: int = 1) -> None:
    """Check that an image store holds images a :class:`FactorImageEnvironment` can show.

    The layout must be ``[N, H, W]`` or channels-last ``[N, H, W, C]`` with C = 1 or 3, and the values integer
    pixels in 0..255 (with ``scale``, integers in ``0..255 // scale``, which are multiplied by it) or float
    intensities in [0, 1]. Only the shape is looked at for uint8 without a scale; otherwise the values' minimum
    and maximum are taken in one pass of blocks of about ``_CHUNK_BYTES`` (a multi-GB memory map is never copied).
    Raises ValueError naming ``where`` (the file), what it holds and what is expected.
    """
    shape, dtype = tuple(images.shape), np.dtype(images.dtype)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
        hint = " (a channels-first store [N, C, H, W] must be transposed)" if len(shape) == 4 and shape[1] in (1, 3) \
            else ""
        raise ValueError(f"{where}: images of shape {list(shape)}; expected [N, H, W] or channels-last "
                         f"[N, H, W, C] with C = 1 or 3{hint}")
    if dtype.kind not in "uif":
        raise ValueError(f"{where}: images of dtype {dtype}; expected integer pixels (uint8, 0..255) or float "
                         f"intensities in [0, 1]")
    if (dtype == np.uint8 and scale == 1) or shape[0] == 0:
        return
    rows = max(1, _CHUNK_BYTES // max(1, int(np.prod(shape[1:])) * dtype.itemsize))
    lows, highs = [], []
    for start in range(0, shape[0], rows):  # one block in memory at a time (an h5py dataset reads it)
        block = np.asarray(images[start:start + rows])
        lows.append(block.min())
        highs.append(block.max())
    low, high = np.min(lows), np.max(highs)
    limit = 1 if dtype.kind == "f" else 255 // scale
    if not (low >= 0 and high <= limit):  # NaN fails too
        expected = ("float intensities in [0, 1]" if dtype.kind == "f" else "integer pixels in 0..255" if scale == 1
                    else f"integers in 0..{limit} (multiplied by {scale} to pixels in 0..255)")
        raise ValueError(f"{where}: images hold {dtype} values in {low}..{high}; expected {expected}")


def _rebuild(cls: type, config: dict) -> "FactorImageEnvironment":
    return cls(**config)


class FactorImageEnvironment(Environment):
    """Factor-indexed images as a dynamical world.

    Args:
        images: store indexable on axis 0 (numpy array, memmap or h5py dataset) of
            ``[N, H, W]`` or channels-last ``[N, H, W, C]`` (C = 1 or 3) images, in C order over the
            full factor grid (last factor fastest): integer pixels in 0..255 (uint8 as published; other
            integer dtypes are cast when rendered) or float intensities in [0, 1] (rendered as
            ``round(255 x)``), checked by :func:`check_images`.
        names: factor names, grid order.
        values: per factor, the sorted values its classes stand for (``len`` = grid size).
        periodic: per factor, whether ±1 shifts wrap around.
        factors: optional subset, ``{name: class indices to keep}``; kept classes are
            renumbered ``0..len-1`` in the given order.
        scale: multiplier bringing stored integers to 0..255 (dSprites stores {0, 1}: 255).
        repeats: per factor, whether its last class shows its first class's value again (an angle sampled
            over [0, 2pi] with both ends); a periodic one then cycles over the other classes (its
            period is one less), so ±1 from the last distinct class wraps to the first, never to the repeat.
        source: the file the images come from, named in errors.

    The environment's factor vectors index the kept classes; ``factors_to_index`` maps
    them to rows of the full store.
    """

    def __init__(self, images, names: Sequence[str], values: Sequence[np.ndarray], periodic: Sequence[bool],
                 factors: Mapping[str, Sequence[int]] | None = None, scale: int = 1,
                 repeats: Sequence[bool] | None = None, source: str = "images"):
        check_images(images, source, scale)
        sizes = [len(v) for v in values]
        if images.shape[0] != int(np.prod(sizes)):
            raise ValueError(f"the image store has {images.shape[0]} images; the factor grid "
                             f"{dict(zip(names, sizes))} needs {int(np.prod(sizes))}")
        self._images, self._grid_sizes, self._scale = images, tuple(sizes), scale
        self.subset = self._parse_subset(names, sizes, factors or {})
        self.factor_values = [np.asarray(v)[keep] for v, keep in zip(values, self.subset)]
        periods = self._periods(names, sizes, self.subset, periodic, repeats or (False,) * len(names))
        self.factors = FactorSpace(tuple(names), tuple(len(k) for k in self.subset), tuple(periodic), periods)
        self.actions = ActionSpace.factor_shifts(self.factors)
        h, w = images.shape[1:3]
        channels = images.shape[3] if len(images.shape) == 4 else 1
        self.observation_shape = (channels, h, w)
        self.observation_dtype = np.dtype(np.uint8)

    @staticmethod
    def _parse_subset(names: Sequence[str], sizes: Sequence[int],
                      factors: Mapping[str, Sequence[int]]) -> list[np.ndarray]:
        unknown = sorted(set(factors) - set(names))
        if unknown:
            raise ValueError(f"factors: unknown factor name(s) {unknown}; factors are {list(names)}")
        subset = []
        for name, size in zip(names, sizes):
            given = factors.get(name, range(size))
            given = list(given) if isinstance(given, Iterable) and not isinstance(given, (str, bytes)) else given
            if not isinstance(given, list) or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                                                      for k in given):
                raise ValueError(f"factors[{name!r}] must be a list of integer class indices in [0, {size}), "
                                 f"got {given!r}")
            keep = np.asarray(given, dtype=np.int64)
            if keep.size == 0 or keep.min() < 0 or keep.max() >= size or len(np.unique(keep)) != keep.size:
                raise ValueError(f"factors[{name!r}] must be distinct class indices in [0, {size}), "
                                 f"at least one; got {keep.tolist()}")
            subset.append(keep)
        return subset

    @staticmethod
    def _periods(names: Sequence[str], sizes: Sequence[int], subset: Sequence[np.ndarray], periodic: Sequence[bool],
                 repeats: Sequence[bool]) -> tuple[int | None, ...] | None:
        """Per factor, the period of a kept cycle whose last class repeats its first (None: no repeat kept;
        None for all: no factor has one)."""
        periods = []
        for name, size, keep, cyclic, repeat in zip(names, sizes, subset, periodic, repeats):
            both = cyclic and repeat and size > 1 and 0 in keep and size - 1 in keep
            if both and not (keep[0] == 0 and keep[-1] == size - 1):
                raise ValueError(f"factors[{name!r}]: classes 0 and {size - 1} show the same value; keep them as "
                                 f"the first and the last of the cycle, or only one of them; got {keep.tolist()}")
            periods.append(len(keep) - 1 if both else None)
        return tuple(periods) if any(p is not None for p in periods) else None

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Row of the full image store ``[N]`` for environment factor vectors ``[N, K]``."""
        factors = self.factors.validate(factors)
        classes = tuple(keep[factors[:, k]] for k, keep in enumerate(self.subset))
        return np.ravel_multi_index(classes, self._grid_sizes)

    def index_to_factors(self, index: np.ndarray) -> np.ndarray:
        """Environment factor vectors ``[N, K]`` of store rows ``[N]`` (rows outside the subset raise)."""
        classes = np.unravel_index(np.asarray(index, dtype=np.int64), self._grid_sizes)
        out = []
        for k, (keep, c) in enumerate(zip(self.subset, classes)):
            lookup = np.full(self._grid_sizes[k], -1, dtype=np.int64)
            lookup[keep] = np.arange(len(keep))
            if (lookup[c] < 0).any():
                raise ValueError(f"index includes images outside the kept values of factor {self.factors.names[k]!r}")
            out.append(lookup[c])
        return np.stack(out, axis=-1)

    def __reduce__(self):
        # Pickle as "reopen the file" (DataLoader workers, DDP): never the memory map's contents.
        return _rebuild, (type(self), self.get_config())

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """Images ``[N, C, H, W]`` uint8 of factor vectors ``[N, K]`` (same as :meth:`render`)."""
        return self.render(factors)

    def render(self, factors: np.ndarray) -> np.ndarray:
        index = self.factors_to_index(factors)
        if (np.diff(index) > 0).all():  # sorted distinct already (the metrics' Sampler): no unique, no gather
            images = np.asarray(self._images[index])
        else:  # sorted reads: h5py needs them, disks like them
            rows, inverse = np.unique(index, return_inverse=True)
            images = np.asarray(self._images[rows])[inverse]
        if images.ndim == 3:
            images = images[..., None]
        images = images.transpose(0, 3, 1, 2)
        if images.dtype.kind == "f":
            images = np.rint(images * 255)
        elif self._scale != 1:
            images = images * np.uint8(self._scale)  # checked at load: the products stay within 0..255
        # [N, C, H, W] over the store's [N, H, W, C] memory (channels-last strides), not copied to C order: the
        # conv coders run channels-last and take it as it is.
        return images.astype(np.uint8, copy=False)
