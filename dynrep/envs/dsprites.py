"""dSprites (DeepMind): 737,280 64x64 binary sprites over five factors (colour is constant)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dynrep.data.download import dataset_path, reading
from dynrep.envs.factor_images import FactorImageEnvironment, grid_classes, npz_member_as_memmap
from dynrep.envs.registry import register_env

NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
#: Shape is categorical (cycled), orientation is an angle in [0, 2pi]; scale and positions clamp.
PERIODIC = (True, False, True, False, False)


@register_env("dsprites")
class DSprites(FactorImageEnvironment):
    """The official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.

    Keys ``imgs`` (N, 64, 64) uint8 in {0, 1} (other values are refused), ``latents_classes`` (N, 6) int64,
    ``latents_values`` (N, 6) float64, ``metadata``. The constant colour column is
    dropped, leaving shape 3, scale 6, orientation 40, pos_x 32, pos_y 32 (pos_y
    fastest); ``factor_values`` come from ``latents_values``. The grid is read from ``latents_classes`` (a reduced file in the same
    format loads) and checked to be complete and in that order. Images are unpacked
    once to ``<cache_dir>/<file stem>.imgs.npy`` and memory-mapped; observations are
    ``[1, 64, 64]`` uint8 in {0, 255}.

    **Orientation is cyclic with a duplicate end.** Its 40 values are ``linspace(0, 2pi, 40)``,
    so class 39 (2pi) is class 0's angle again. The factor keeps the file's 40 classes
    (``sample_factors``, ``factor_values``, metrics and splits see all 40, as in
    disentanglement_lib), but its cyclic group has order 39 (``factors.periods``):
    ``orientation+`` from class 38 goes to class 0, ``orientation-`` from class 0 to class 38,
    and class 39 steps as class 0 does, so stepping never lands on it. A ``factors`` subset
    that keeps classes 0 and 39 must keep them first and last (its cycle then skips 39).

    Args:
        path: the .npz (default: ``$DYNREP_DATA/<official name>``, ``dynrep download dsprites``; a small file in
            this format: :func:`dynrep.data.synthetic.write_synthetic` ``("dsprites", dest)``).
        factors: optional subset ``{name: class indices}``.
        cache_dir: where the unpacked images go (default: beside the .npz).
        progress: show a progress bar while unpacking.
    """

    def __init__(self, path: str | Path | None = None, *, factors: Mapping[str, Sequence[int]] | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True):
        self.path = Path(path) if path is not None else dataset_path("dsprites")
        if not self.path.is_file():
            raise FileNotFoundError(f"no dSprites file at {self.path}; `dynrep download dsprites` fetches it")
        with reading(self.path, "dsprites"), np.load(self.path) as archive:
            held = archive.files
            labels = [archive[key] for key in ("latents_classes", "latents_values") if key in held]
        if len(labels) != 2 or "imgs" not in held:
            raise ValueError(f"{self.path}: not a dSprites file (imgs, latents_classes, latents_values), "
                             f"it holds {held}")
        classes, latent_values = labels
        if classes.ndim != 2 or classes.shape[1] != 6 or len(np.unique(classes[:, 0])) != 1:
            raise ValueError(f"{self.path}: latents_classes must be [N, 6] with a constant colour column, "
                             f"got shape {classes.shape}")
        grid, _ = grid_classes(classes[:, 1:], NAMES, str(self.path))
        # What each class stands for (scale 0.5..1, orientation in radians, positions 0..1).
        values = [latent_values[np.unique(grid[:, k], return_index=True)[1], k + 1] for k in range(len(NAMES))]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.path.parent
        self._subset_arg = {k: list(v) for k, v in (factors or {}).items()}
        images = npz_member_as_memmap(self.path, "imgs", self.cache_dir, progress, name="dsprites")
        # the official orientations are linspace(0, 2pi, 40): the last is the first angle again
        repeats = [k == NAMES.index("orientation") and bool(np.isclose(v[-1] - v[0], 2 * np.pi))
                   for k, v in enumerate(values)]
        super().__init__(images, NAMES, values, PERIODIC, factors, scale=255, repeats=repeats, source=str(self.path))

    def get_config(self) -> dict[str, Any]:
        return {"path": str(self.path), "factors": self._subset_arg or None, "cache_dir": str(self.cache_dir)}
