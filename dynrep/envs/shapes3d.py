"""Shapes3D (DeepMind 3dshapes.h5): 480,000 64x64x3 images over six factors."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from dynrep.data.download import dataset_path, reading
from dynrep.envs.factor_images import FactorImageEnvironment, grid_classes, h5_dataset_as_array
from dynrep.envs.registry import register_env

NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
SIZES = (10, 10, 10, 8, 4, 15)
#: Hues are angles on the colour wheel, shape is categorical (cycled, as the seed code does);
#: scale and orientation (-30..30 degrees) are clamped.
PERIODIC = (True, True, True, False, True, False)


@register_env("shapes3d")
class Shapes3D(FactorImageEnvironment):
    """The 3dshapes.h5 file: datasets ``images`` (N, 64, 64, 3) uint8 and ``labels`` (N, 6) float64.

    Factors (grid order, orientation fastest): floor_hue 10, wall_hue 10, object_hue 10,
    scale 8, shape 4, orientation 15. The grid is read from ``labels``, so a reduced
    file in the same format loads too; rows that are not a full grid in this order
    raise ValueError. Images are read through a uint8 memory map: of the file itself when
    ``images`` is stored contiguous and uncompressed, else (the published file is chunked
    and compressed: 267 MB for 5.9 GB of pixels) of ``<cache_dir>/<file stem>.images.npy``,
    unpacked once with a progress bar (about 5.9 GB for the full file) and rebuilt only when
    the .h5 changes (see :func:`~dynrep.envs.factor_images.cached_npy`).

    Args:
        path: the .h5 file (default: ``$DYNREP_DATA/3dshapes.h5``, fetched by
            ``dynrep download shapes3d``; a small file in this format:
            :func:`dynrep.data.synthetic.write_synthetic` ``("shapes3d", dest)``).
        factors: optional subset ``{name: class indices}``, e.g. ``{"shape": [0, 1]}``.
        cache_dir: where the unpacked images go (default: beside the .h5); must be writable
            the first time, unless it already holds the unpacked copy.
        progress: show a progress bar while unpacking.
    """

    def __init__(self, path: str | Path | None = None, *, factors: Mapping[str, Sequence[int]] | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True):
        self.path = Path(path) if path is not None else dataset_path("shapes3d")
        if not self.path.is_file():
            raise FileNotFoundError(f"no Shapes3D file at {self.path}; `dynrep download shapes3d` fetches it")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.path.parent
        import h5py  # here: `import dynrep` does not load HDF5 (~11 MB) for worlds that do not read it
        with reading(self.path, "shapes3d"):
            file = h5py.File(self.path, "r")
        with file:
            missing = [k for k in ("images", "labels") if k not in file]
            if missing:
                raise ValueError(f"{self.path}: not a 3dshapes file, missing dataset(s) {missing}")
            with reading(self.path, "shapes3d"):
                labels = file["labels"][()]
            _, values = grid_classes(labels, NAMES, str(self.path))
            images = h5_dataset_as_array(file["images"], self.cache_dir, progress, name="shapes3d")
        self._subset_arg = {k: list(v) for k, v in (factors or {}).items()}
        super().__init__(images, NAMES, values, PERIODIC, factors, source=str(self.path))

    def get_config(self) -> dict[str, Any]:
        return {"path": str(self.path), "factors": self._subset_arg or None, "cache_dir": str(self.cache_dir)}
