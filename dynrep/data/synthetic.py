"""Small synthetic copies of the downloadable datasets, in their exact published layouts.

:func:`write_synthetic` writes a reduced factor grid of a dataset of :data:`~dynrep.data.download.DATASETS` under
the official file name, with the official arrays, keys and dtypes, so that the dataset's loader reads it unchanged
(``make_env(name, path=write_synthetic(name, dest))``). The label values are those of the real dataset (a subset of
each factor's published values); the images are rendered with numpy: a simple picture of the same scene (a 2.5-D
room with an object for Shapes3D, binary sprites for dSprites, ...), so a model trained on it learns something,
but they are not the published images. Everything is deterministic (no randomness, or a fixed seed), a few MB
and written in a few seconds. Use it to try the tutorials, examples and tests where the real files are absent.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from dynrep.data.download import DATASETS

__all__ = ["SHAPES3D_GRID", "write_synthetic"]

SIDE = 64
#: Kept class indices of each Shapes3D factor (of floor_hue 10, wall_hue 10, object_hue 10, scale 8, shape 4,
#: orientation 15): 4 x 4 x 4 x 3 x 4 x 3 = 2,304 images.
SHAPES3D_GRID = ((0, 2, 5, 7), (1, 3, 6, 8), (0, 3, 5, 8), (0, 4, 7), (0, 1, 2, 3), (0, 7, 14))


def _product(*axes) -> np.ndarray:
    """Rows of the cartesian product of ``axes`` in C order (last fastest): ``[prod(len), len(axes)]``."""
    return np.array(list(itertools.product(*axes)), dtype=np.float64)


def _hue_rgb(hue: np.ndarray | float, value: np.ndarray | float = 1.0, saturation: float = 0.85) -> np.ndarray:
    """RGB in [0, 1] ``[..., 3]`` of hues in [0, 1) (HSV with the given saturation and value)."""
    hue, value = np.asarray(hue, dtype=np.float64), np.asarray(value, dtype=np.float64)
    k = (np.array([5.0, 3.0, 1.0]) + 6 * hue[..., None]) % 6
    ramp = np.clip(np.minimum(k, 4 - k), 0, 1)
    return value[..., None] * (1 - saturation * ramp)


def _grid_xy(side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each ``[side, side]``, in pixels."""
    y, x = np.mgrid[0:side, 0:side] + 0.5
    return x, y


# ---------------------------------------------------------------------------------------------------- Shapes3D

def _shapes3d_image(floor: float, wall: float, obj: float, scale: float, shape: int, angle: float) -> np.ndarray:
    """One 64x64x3 uint8 scene: floor and back walls, an object standing on the floor, seen from ``angle``
    degrees (the camera turns about the object: the corner of the walls moves, the object turns)."""
    x, y = _grid_xy()
    horizon = 34.0
    corner = 32 - 0.9 * angle  # the corner of the two back walls moves as the camera turns
    left = x < corner
    wall_shade = np.where(left, 0.75, 0.95) - 0.004 * np.abs(x - corner)
    floor_shade = 0.55 + 0.45 * (y - horizon) / (SIDE - horizon)
    image = np.where((y < horizon)[..., None], _hue_rgb(wall, wall_shade), _hue_rgb(floor, floor_shade))
    # The object: centred at (32, base - half height), half-width w.
    w = 9.0 * scale
    cx, base = 32.0 + 0.15 * angle, 50.0
    turn = np.deg2rad(angle)
    dx, dy = x - cx, y - (base - w)
    if shape == 0:  # cube: a front face and a lighter top face (a parallelogram) whose shear shows the turn
        shear = 0.6 * np.sin(turn)
        front = (np.abs(dx) <= w) & (np.abs(dy) <= w)
        top_y = dy + w  # 0 at the front face's top edge, negative above
        top = (top_y < 0) & (top_y >= -0.6 * w) & (np.abs(dx + top_y * (1 + shear)) <= w)
        mask, light = front | top, np.where(top, 1.0, 0.8 - 0.15 * np.sin(turn) * np.sign(dx))
    elif shape == 1:  # cylinder: a rectangle with an elliptic top
        body = (np.abs(dx) <= w) & (np.abs(dy) <= w)
        cap = (dx / w) ** 2 + ((dy + w) / (0.35 * w)) ** 2 <= 1
        mask, light = body | cap, np.where(cap & ~(dy > -w), 1.0, 0.85 - 0.3 * (dx / w) ** 2)
    elif shape == 2:  # sphere: a shaded disc
        r2 = (dx / w) ** 2 + (dy / w) ** 2
        mask, light = r2 <= 1, 1.0 - 0.45 * np.clip((dx / w + 0.4) ** 2 + (dy / w + 0.4) ** 2, 0, 1)
    else:  # capsule: a stadium lying along the turned horizontal axis
        length = w * (0.5 + 0.5 * abs(np.cos(turn)))
        half = 0.7 * w
        along = np.clip(dx, -length, length)
        mask = (dx - along) ** 2 + (dy - 0.3 * w) ** 2 <= half ** 2
        light = 0.95 - 0.4 * ((dy - 0.3 * w) / half) ** 2
    shadow = ((x - cx) / (1.2 * w)) ** 2 + ((y - base) / (0.25 * w)) ** 2 <= 1
    image = np.where((shadow & (y >= horizon))[..., None], image * 0.7, image)
    image = np.where(mask[..., None], _hue_rgb(obj, np.clip(light, 0.3, 1.0)), image)
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _write_shapes3d(path: Path) -> None:
    """``3dshapes.h5``: ``images`` [N, 64, 64, 3] uint8 (gzip-compressed, chunked), ``labels`` [N, 6] float64."""
    import h5py

    real = [np.arange(10) / 10, np.arange(10) / 10, np.arange(10) / 10, np.linspace(0.75, 1.25, 8),
            np.arange(4.0), np.linspace(-30, 30, 15)]
    labels = _product(*[values[list(keep)] for values, keep in zip(real, SHAPES3D_GRID)])
    images = np.stack([_shapes3d_image(f, w, o, s, int(sh), a) for f, w, o, s, sh, a in labels])
    with h5py.File(path, "w") as file:
        file.create_dataset("images", data=images, chunks=True, compression="gzip")
        file.create_dataset("labels", data=labels)


_WRITERS = {"shapes3d": _write_shapes3d}


def write_synthetic(name: str, dest: str | Path) -> Path:
    """Write a small copy of dataset ``name`` (a :data:`~dynrep.data.download.DATASETS` key) into ``dest``.

    It goes where ``dynrep download NAME --dest DEST`` would put the real one (``dest/<official file name>``,
    or ``dest/cars3d/`` of ``.mat`` files for Cars3D, ``dest/causal_circuit/`` for CausalCircuit), in the
    published layout: same keys, dtypes, compression and grid order as the real file, on a reduced grid of the
    real label values. An existing copy is overwritten.

    * ``shapes3d``: ``3dshapes.h5``, ``images`` ``[2304, 64, 64, 3]`` uint8 gzip-chunked, ``labels``
      ``[2304, 6]`` float64 over the classes :data:`SHAPES3D_GRID` of the six factors (about 1 MB).

    Returns:
        What the environment's ``path=`` takes: the file, or the directory for Cars3D and CausalCircuit.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if name not in _WRITERS:
        raise ValueError(f"no synthetic copy of {name!r}; available: {', '.join(_WRITERS)}")
    entry = DATASETS[name]
    target = Path(dest) / (entry.extract_to or entry.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    _WRITERS[name](target)
    return target
