"""Cars3D (Reed et al. 2015): 183 car models x 24 azimuths x 4 elevations, resized to 64x64 once."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from dynrep.data.download import dataset_path, reading
from dynrep.envs.factor_images import FactorImageEnvironment, cached_npy
from dynrep.envs.registry import register_env

NAMES = ("elevation", "azimuth", "object")
PERIODIC = (False, True, True)
CACHE_NAME = "cars3d_x64.npy"
SIDE = 64


def build_cache(mat_dir: Path, out: Path, progress: bool = True) -> np.ndarray:
    """Resize every ``*.mat`` rendering in ``mat_dir`` to 64x64, stored once as one uint8 array in ``out``.

    Each .mat holds ``im`` of shape (128, 128, 3, 24 azimuths, 4 elevations). Objects are
    taken in sorted file-name order (the seed code used the unsorted directory listing).
    The result ``[4 * 24 * n_objects, 64, 64, 3]`` is in C order over (elevation,
    azimuth, object). It is built by :func:`~dynrep.envs.factor_images.cached_npy` (under a lock, through a
    temporary file) and rebuilt when any .mat file changes (size or modification time).
    """
    import scipy.io  # here: only building the cache reads .mat files
    files = sorted(Path(mat_dir).glob("*.mat"))
    if not files:
        raise FileNotFoundError(f"no .mat files in {mat_dir}; `dynrep download cars3d` fetches them")

    def fill(flat: np.ndarray, advance) -> None:
        images = flat.reshape(4, 24, len(files), SIDE, SIDE, 3)
        for k, file in enumerate(files):  # one-time preprocessing, a file at a time
            # What truncated or foreign files raise: MatReadError, IndexError, KeyError (no 'im').
            with reading(file, "cars3d", (scipy.io.matlab.MatReadError, IndexError, KeyError)):
                im = scipy.io.loadmat(file)["im"]
            if im.shape[2:] != (3, 24, 4):
                raise ValueError(f"{file}: expected 'im' of shape (H, W, 3, 24, 4), got {im.shape}")
            for az in range(24):
                for el in range(4):
                    frame = Image.fromarray(np.ascontiguousarray(im[:, :, :, az, el]).astype(np.uint8))
                    images[el, az, k] = np.asarray(frame.resize((SIDE, SIDE), Image.Resampling.LANCZOS))
            advance(1)

    return cached_npy(out, files, (4 * 24 * len(files), SIDE, SIDE, 3), np.uint8, fill, total=len(files),
                      unit="car", desc="resizing the Cars3D renderings to 64x64 (once)", progress=progress)


@register_env("cars3d")
class Cars3D(FactorImageEnvironment):
    """The published car renderings (``nips2015-analogy-data.tar.gz``, ``data/cars/*.mat``).

    Factors (grid order, object fastest): elevation 4 (clamped), azimuth 24 (cyclic),
    object 183 (cycled). On first use the renderings are resized to 64x64 (LANCZOS) and
    cached as ``cars3d_x64.npy`` (uint8) in the data directory, then memory-mapped.

    Args:
        path: directory of the .mat files (default: ``$DYNREP_DATA/cars3d``, ``dynrep download cars3d``; a
            small one in this format: :func:`dynrep.data.synthetic.write_synthetic` ``("cars3d", dest)``).
        factors: optional subset ``{name: class indices}``.
        progress: show a progress bar while the cache is built.
    """

    def __init__(self, path: str | Path | None = None, *, factors: Mapping[str, Sequence[int]] | None = None,
                 progress: bool = True):
        self.path = Path(path) if path is not None else dataset_path("cars3d")
        if not self.path.is_dir():
            raise FileNotFoundError(f"no Cars3D directory at {self.path}; `dynrep download cars3d` fetches it")
        cache = self.path / CACHE_NAME
        images = build_cache(self.path, cache, progress)
        objects = len(images) // (4 * 24)
        self._subset_arg = {k: list(v) for k, v in (factors or {}).items()}
        super().__init__(images, NAMES, [np.arange(4), np.arange(24), np.arange(objects)], PERIODIC, factors,
                         source=str(cache))

    def get_config(self) -> dict[str, Any]:
        return {"path": str(self.path), "factors": self._subset_arg or None}
