"""MPI3D (toy / realistic / real): 1,036,800 64x64x3 images of a robot arm over seven factors."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dynrep.data.download import dataset_path
from dynrep.envs.factor_images import FactorImageEnvironment, npz_member_as_memmap
from dynrep.envs.registry import register_env

NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color",
         "horizontal_axis", "vertical_axis")
SIZES = (6, 6, 2, 3, 3, 40, 40)
#: Colours and shapes are categorical (cycled); size, camera height and the arm's axes clamp.
PERIODIC = (True, True, False, False, True, False, False)
VARIANTS = ("toy", "realistic", "real")


@register_env("mpi3d")
class MPI3D(FactorImageEnvironment):
    """The public ``mpi3d_{toy,realistic,real}.npz`` files: key ``images`` (N, 64, 64, 3) uint8.

    The files hold no labels: the factors are implied by the row index, C order over
    object_color 6, object_shape 6, object_size 2, camera_height 3, background_color 3,
    horizontal_axis 40, vertical_axis 40 (vertical fastest). The loader checks that the
    number of images is that grid's size (pass ``sizes`` for another release, e.g.
    mpi3d_complex's 4, 4, 2, 3, 3, 40, 40). Images are memory-mapped from the .npz when
    stored uncompressed, else unpacked once to ``cache_dir``.

    Args:
        variant: ``"toy"``, ``"realistic"`` or ``"real"`` (picks the default file).
        path: the .npz (default: ``$DYNREP_DATA/mpi3d_<variant>.npz``, ``dynrep download mpi3d_<variant>``; a
            small file in this format: :func:`dynrep.data.synthetic.write_synthetic` ``("mpi3d_toy", dest)``, with
            ``sizes=`` :data:`dynrep.data.synthetic.MPI3D_SIZES`).
        factors: optional subset ``{name: class indices}``.
        sizes: grid sizes in the order above (default: the public release's).
        cache_dir: where an unpacked copy goes if the .npz is compressed (default: beside it).
        progress: show a progress bar while unpacking.
    """

    def __init__(self, variant: str = "real", path: str | Path | None = None, *,
                 factors: Mapping[str, Sequence[int]] | None = None, sizes: Sequence[int] = SIZES,
                 cache_dir: str | Path | None = None, progress: bool = True):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if len(sizes) != len(NAMES) or any(int(s) < 1 for s in sizes):
            raise ValueError(f"sizes must be {len(NAMES)} positive ints for {NAMES}, got {list(sizes)}")
        self.variant, self.sizes = variant, tuple(int(s) for s in sizes)
        self.path = Path(path) if path is not None else dataset_path(f"mpi3d_{variant}")
        if not self.path.is_file():
            raise FileNotFoundError(f"no MPI3D file at {self.path}; `dynrep download mpi3d_{variant}` fetches it")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.path.parent
        images = npz_member_as_memmap(self.path, "images", self.cache_dir, progress, name=f"mpi3d_{variant}")
        if images.ndim != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
            raise ValueError(f"{self.path}: images must be uint8 [N, 64, 64, 3], got {images.dtype} {images.shape}")
        if len(images) != int(np.prod(self.sizes)):
            raise ValueError(f"{self.path}: {len(images)} images do not form the documented factor grid "
                             f"{dict(zip(NAMES, self.sizes))} ({int(np.prod(self.sizes))} images)")
        self._subset_arg = {k: list(v) for k, v in (factors or {}).items()}
        super().__init__(images, NAMES, [np.arange(s) for s in self.sizes], PERIODIC, factors, source=str(self.path))

    def get_config(self) -> dict[str, Any]:
        return {"variant": self.variant, "path": str(self.path), "factors": self._subset_arg or None,
                "sizes": list(self.sizes), "cache_dir": str(self.cache_dir)}
