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

import functools
import itertools
from pathlib import Path

import numpy as np

from dynrep.data.download import DATASETS

__all__ = ["CARS3D_OBJECTS", "CAUSAL_CIRCUIT_PAIRS", "CAUSAL_CIRCUIT_SIDE", "DSPRITES_GRID", "MPI3D_SIZES",
           "SHAPES3D_GRID", "write_synthetic"]

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

@functools.lru_cache(maxsize=None)
def _shapes3d_room(floor: float, wall: float, angle: float) -> np.ndarray:
    """Floor and back walls ``[64, 64, 3]`` in [0, 1] seen from ``angle`` degrees (the camera turns about the
    object: the corner of the two walls moves)."""
    x, y = _grid_xy()
    horizon, corner = 34.0, 32 - 0.9 * angle
    wall_shade = np.where(x < corner, 0.75, 0.95) - 0.004 * np.abs(x - corner)
    floor_shade = 0.55 + 0.45 * (y - horizon) / (SIDE - horizon)
    room = np.where((y < horizon)[..., None], _hue_rgb(wall, wall_shade), _hue_rgb(floor, floor_shade))
    return room


@functools.lru_cache(maxsize=None)
def _shapes3d_object(hue: float, scale: float, shape: int, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The object standing on the floor: its mask ``[64, 64]``, its colours ``[64, 64, 3]`` and the mask of its
    shadow on the floor ``[64, 64]``; a cube (0), cylinder (1), sphere (2) or capsule (3) of half-width
    ``9 scale`` pixels, turned by ``angle`` degrees."""
    x, y = _grid_xy()
    w, cx, base = 9.0 * scale, 32.0 + 0.15 * angle, 50.0
    turn = np.deg2rad(angle)
    dx, dy = x - cx, y - (base - w)
    if shape == 0:  # cube: a front face and a lighter top face (a parallelogram) whose shear shows the turn
        front = (np.abs(dx) <= w) & (np.abs(dy) <= w)
        top_y = dy + w  # 0 at the front face's top edge, negative above
        top = (top_y < 0) & (top_y >= -0.6 * w) & (np.abs(dx + top_y * (1 + 0.6 * np.sin(turn))) <= w)
        mask, light = front | top, np.where(top, 1.0, 0.8 - 0.15 * np.sin(turn) * np.sign(dx))
    elif shape == 1:  # cylinder: a rectangle with an elliptic top
        body = (np.abs(dx) <= w) & (np.abs(dy) <= w)
        cap = (dx / w) ** 2 + ((dy + w) / (0.35 * w)) ** 2 <= 1
        mask, light = body | cap, np.where(cap & ~(dy > -w), 1.0, 0.85 - 0.3 * (dx / w) ** 2)
    elif shape == 2:  # sphere: a shaded disc
        mask = (dx / w) ** 2 + (dy / w) ** 2 <= 1
        light = 1.0 - 0.45 * np.clip((dx / w + 0.4) ** 2 + (dy / w + 0.4) ** 2, 0, 1)
    else:  # capsule: a stadium lying along the turned horizontal axis
        length, half = w * (0.5 + 0.5 * abs(np.cos(turn))), 0.7 * w
        mask = (dx - np.clip(dx, -length, length)) ** 2 + (dy - 0.3 * w) ** 2 <= half ** 2
        light = 0.95 - 0.4 * ((dy - 0.3 * w) / half) ** 2
    shadow = (((x - cx) / (1.2 * w)) ** 2 + ((y - base) / (0.25 * w)) ** 2 <= 1) & (y >= 34.0)
    return mask, _hue_rgb(hue, np.clip(light, 0.3, 1.0)), shadow


def _shapes3d_image(floor: float, wall: float, obj: float, scale: float, shape: int, angle: float) -> np.ndarray:
    """One 64x64x3 uint8 scene: the room (:func:`_shapes3d_room`) and the object (:func:`_shapes3d_object`)."""
    mask, colours, shadow = _shapes3d_object(obj, scale, shape, angle)
    room = _shapes3d_room(floor, wall, angle)
    image = np.where(mask[..., None], colours, np.where(shadow[..., None], room * 0.7, room))
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _write_shapes3d(path: Path) -> None:
    """``3dshapes.h5``: ``images`` [N, 64, 64, 3] uint8 (gzip-compressed, chunked), ``labels`` [N, 6] float64."""
    import h5py

    real = [np.arange(10) / 10, np.arange(10) / 10, np.arange(10) / 10, np.linspace(0.75, 1.25, 8),
            np.arange(4.0), np.linspace(-30, 30, 15)]
    labels = _product(*[values[list(keep)] for values, keep in zip(real, SHAPES3D_GRID)])
    images = np.stack([_shapes3d_image(f, w, o, s, int(sh), a) for f, w, o, s, sh, a in labels])
    _shapes3d_room.cache_clear()
    _shapes3d_object.cache_clear()
    with h5py.File(path, "w") as file:
        file.create_dataset("images", data=images, chunks=True, compression="gzip")
        file.create_dataset("labels", data=labels)


# ---------------------------------------------------------------------------------------------------- dSprites

#: Kept class indices of each dSprites latent (of color 1, shape 3, scale 6, orientation 40, posX 32, posY 32):
#: 1 x 3 x 3 x 4 x 8 x 8 = 2,304 images. Orientations 0, 13, 26, 39 are 0, 2pi/3, 4pi/3 and 2pi: like the real
#: file's, the last class is the first angle again.
DSPRITES_GRID = ((0,), (0, 1, 2), (0, 2, 5), (0, 13, 26, 39), (0, 4, 9, 13, 18, 22, 27, 31),
                 (0, 4, 9, 13, 18, 22, 27, 31))


def _sprite(shape: int, scale: float, angle: float, px: float, py: float) -> np.ndarray:
    """One 64x64 {0, 1} uint8 sprite: square (1), ellipse (2) or heart (3), of half-size ``10 scale`` pixels,
    turned by ``angle`` radians, centred at ``(8 + 48 px, 8 + 48 py)``."""
    x, y = _grid_xy()
    half = 10.0 * scale
    dx, dy = (x - (8 + 48 * px)) / half, (y - (8 + 48 * py)) / half
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # the sprite's own axes
    if shape == 1:
        mask = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    elif shape == 2:
        mask = u ** 2 + (v / 0.5) ** 2 <= 1
    else:  # heart, pointing down in its own frame: (x^2 + y^2 - 1)^3 <= x^2 y^3 with y up
        hx, hy = u * 1.15, -v * 1.15 + 0.1
        mask = (hx ** 2 + hy ** 2 - 1) ** 3 - hx ** 2 * hy ** 3 <= 0
    return mask.astype(np.uint8)


def _write_dsprites(path: Path) -> None:
    """``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (compressed, as published): ``imgs`` [N, 64, 64] uint8
    in {0, 1}, ``latents_classes`` [N, 6] int64, ``latents_values`` [N, 6] float64, ``metadata`` (0-d object array
    holding a dict)."""
    real = [np.ones(1), np.arange(1.0, 4.0), np.linspace(0.5, 1, 6), np.linspace(0, 2 * np.pi, 40),
            np.linspace(0, 1, 32), np.linspace(0, 1, 32)]
    classes = _product(*DSPRITES_GRID).astype(np.int64)
    values = np.stack([real[k][classes[:, k]] for k in range(6)], axis=1)
    imgs = np.stack([_sprite(int(row[1]), *row[2:]) for row in values])
    names = ("color", "shape", "scale", "orientation", "posX", "posY")
    metadata = {"date": "synthetic", "description": "small synthetic copy written by dynrep.data.synthetic",
                "version": 1, "title": "dSprites (synthetic)", "author": "dynrep",
                "latents_names": names, "latents_sizes": np.array([len(keep) for keep in DSPRITES_GRID]),
                "latents_possible_values": {n: real[k][list(keep)] for k, (n, keep)
                                            in enumerate(zip(names, DSPRITES_GRID))}}
    np.savez_compressed(path, imgs=imgs, latents_classes=classes, latents_values=values,
                        metadata=np.array(metadata, dtype=object))


# ------------------------------------------------------------------------------------------------------ MPI3D

#: Grid sizes of the synthetic MPI3D files (pass as ``sizes=``; the public release's are 6, 6, 2, 3, 3, 40, 40):
#: object_color, object_shape, object_size, camera_height, background_color, horizontal_axis, vertical_axis.
MPI3D_SIZES = (3, 3, 2, 2, 3, 4, 4)
#: Object colours (white, green, red, as the first three of the release) and backgrounds (purple, sea green,
#: salmon), RGB in [0, 1].
_MPI3D_COLOURS = np.array([[0.95, 0.95, 0.95], [0.2, 0.7, 0.25], [0.85, 0.15, 0.15]])
_MPI3D_BACKGROUNDS = np.array([[0.45, 0.3, 0.55], [0.3, 0.6, 0.5], [0.95, 0.6, 0.5]])


def _mpi3d_image(colour: int, shape: int, size: int, camera: int, background: int, horizontal: float,
                 vertical: float) -> np.ndarray:
    """One 64x64x3 uint8 frame: a grey arm from its base to a tip set by the two axes (each in [0, 1]), holding
    an object (cone, cube or cylinder: the first three shapes of the release), over a coloured background
    whose floor line moves with the camera height."""
    x, y = _grid_xy()
    floor = 44 - 8 * camera
    image = np.where((y < floor)[..., None], _MPI3D_BACKGROUNDS[background], _MPI3D_BACKGROUNDS[background] * 0.7)
    base = np.array([32.0, 62.0 - 4 * camera])
    tip = np.array([12 + 40 * horizontal, 12 + 28 * vertical + 4 * camera])
    seg = tip - base
    t = np.clip(((x - base[0]) * seg[0] + (y - base[1]) * seg[1]) / (seg @ seg), 0, 1)
    arm = (x - base[0] - t * seg[0]) ** 2 + (y - base[1] - t * seg[1]) ** 2 <= 2.5 ** 2
    image = np.where(arm[..., None], 0.5, image)
    r = 4.0 + 3.0 * size
    dx, dy = x - tip[0], y - tip[1]
    if shape == 0:  # cone: a triangle
        mask = (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    elif shape == 1:  # cube
        mask = (np.abs(dx) <= r) & (np.abs(dy) <= r)
    else:  # cylinder: a rectangle with rounded ends
        mask = (np.abs(dx) <= 0.7 * r) & (np.abs(dy) <= r) | ((dx / (0.7 * r)) ** 2 + ((np.abs(dy) - r) / 2) ** 2 <= 1)
    shade = 0.75 + 0.25 * np.clip(-dx / r, -1, 1)
    image = np.where(mask[..., None], _MPI3D_COLOURS[colour] * shade[..., None], image)
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _write_mpi3d(path: Path) -> None:
    """``mpi3d_<variant>.npz``: one array ``images`` [N, 64, 64, 3] uint8 in C order over :data:`MPI3D_SIZES`
    (no labels, as published), written compressed (``np.savez_compressed``)."""
    classes = _product(*[range(n) for n in MPI3D_SIZES]).astype(np.int64)
    axes = np.array(MPI3D_SIZES[5:], dtype=np.float64) - 1
    images = np.stack([_mpi3d_image(*row[:5], *(row[5:] / axes)) for row in classes])
    np.savez_compressed(path, images=images)


# ----------------------------------------------------------------------------------------------------- Cars3D

#: Number of synthetic cars (the release has 183), each a ``car_XXX_mesh.mat`` of 128x128 renderings.
CARS3D_OBJECTS = 4
_CAR_SIDE = 128
#: Elevations of the four camera rings, degrees (assumed: the release does not state them).
_CAR_ELEVATIONS = (0.0, 10.0, 20.0, 30.0)
# Unit cube corners and its faces (corner indices, counter-clockwise seen from outside) with their outward normals.
_CORNERS = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=np.float64)
_FACES = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))
_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)


def _car_boxes(car: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Boxes ``(centre [3], half-sizes [3], colour [3])`` of car ``car``: body, cabin and four wheels, with
    proportions and colour varying per car (x = length, y = up, z = width)."""
    rng = np.random.default_rng(1000 + car)
    length, height, width = rng.uniform(0.85, 1.1), rng.uniform(0.22, 0.32), rng.uniform(0.38, 0.48)
    paint = _hue_rgb(rng.uniform(), 0.9, 0.7)
    cabin = rng.uniform(0.4, 0.6) * length
    boxes = [(np.array([0, 0.05 + height, 0]), np.array([length, height, width]), paint),
             (np.array([rng.uniform(-0.25, 0.1), 0.05 + 2 * height + 0.14, 0]),
              np.array([cabin, 0.14, 0.9 * width]), paint * 0.8 + 0.15)]
    for sx, sz in itertools.product((-0.65, 0.65), (-1, 1)):
        boxes.append((np.array([sx * length, 0.1, sz * width]), np.array([0.16, 0.1, 0.06]), np.full(3, 0.1)))
    return boxes


def _fill_convex(image: np.ndarray, polygon: np.ndarray, colour: np.ndarray) -> None:
    """Paint the convex ``polygon`` ``[4, 2]`` (pixel coordinates, either orientation) on ``image`` in place."""
    low = np.clip(np.floor(polygon.min(axis=0)).astype(int), 0, image.shape[1])
    high = np.clip(np.ceil(polygon.max(axis=0)).astype(int) + 1, 0, image.shape[1])
    y, x = np.mgrid[low[1]:high[1], low[0]:high[0]] + 0.5
    edges = np.roll(polygon, -1, axis=0) - polygon
    cross = (edges[:, 0, None, None] * (y - polygon[:, 1, None, None])
             - edges[:, 1, None, None] * (x - polygon[:, 0, None, None]))
    inside = (cross >= 0).all(axis=0) | (cross <= 0).all(axis=0)
    image[low[1]:high[1], low[0]:high[0]][inside] = colour


def _car_views(car: int) -> np.ndarray:
    """``im`` of one car: ``[128, 128, 3, 24, 4]`` uint8 (rows, columns, RGB, azimuth, elevation), boxes drawn
    far to near with Lambert shading on a white background, orthographic camera."""
    light = np.array([0.4, 0.8, 0.45]) / np.linalg.norm([0.4, 0.8, 0.45])
    out = np.empty((_CAR_SIDE, _CAR_SIDE, 3, 24, len(_CAR_ELEVATIONS)), dtype=np.uint8)
    boxes = _car_boxes(car)
    for a, e in itertools.product(range(24), range(len(_CAR_ELEVATIONS))):
        az, el = np.deg2rad(15.0 * a), np.deg2rad(_CAR_ELEVATIONS[e])
        turn = np.array([[np.cos(az), 0, np.sin(az)], [0, 1, 0], [-np.sin(az), 0, np.cos(az)]])
        tilt = np.array([[1, 0, 0], [0, np.cos(el), -np.sin(el)], [0, np.sin(el), np.cos(el)]])
        view = tilt @ turn  # world -> camera (x right, y up, z towards the viewer)
        faces = []
        for centre, half, colour in boxes:
            corners = (_CORNERS * half + centre - [0, 0.3, 0]) @ view.T
            for face, normal in zip(_FACES, _NORMALS):
                n = view @ normal
                if n[2] > 1e-6:  # facing the camera
                    shade = 0.35 + 0.65 * max(0.0, float(n @ (view @ light)))
                    faces.append((corners[list(face), 2].mean(), corners[list(face), :2], colour * shade))
        image = np.ones((_CAR_SIDE, _CAR_SIDE, 3))
        for _, corners, colour in sorted(faces, key=lambda f: f[0]):
            _fill_convex(image, _CAR_SIDE / 2 + corners * [48, -48], colour)
        out[:, :, :, a, e] = np.rint(np.clip(image, 0, 1) * 255)
    return out


def _write_cars3d(directory: Path) -> None:
    """``car_001_mesh.mat`` ... (MATLAB 5, compressed): ``im`` [128, 128, 3, 24, 4] uint8 and ``mask``
    [128, 128, 24, 4] uint8 (1 on the car), one file per car."""
    import scipy.io

    directory.mkdir(parents=True, exist_ok=True)
    for car in range(CARS3D_OBJECTS):
        im = _car_views(car)
        mask = (im != 255).any(axis=2).astype(np.uint8)
        scipy.io.savemat(directory / f"car_{car + 1:03d}_mesh.mat", {"im": im, "mask": mask}, do_compression=True)


# ------------------------------------------------------------------------------------------------ CausalCircuit

#: Pairs per file of the synthetic CausalCircuit (each train-i, val and test file).
CAUSAL_CIRCUIT_PAIRS = 40
#: Side of the synthetic JPEG frames (the published renderings are 512x512).
CAUSAL_CIRCUIT_SIDE = 64
#: Arm position of each button (green, red, blue): ICM-VAE's regimes 1, 2, 3 hold the arm over one of them.
_BUTTONS = {"green": 0.25, "red": 0.55, "blue": 0.85}


def _circuit_mechanisms(latents: np.ndarray, noise: np.ndarray, fixed: np.ndarray) -> None:
    """Fill ``latents [P, 4]`` (file order red, green, blue, arm) in causal order, in place, keeping the
    columns where ``fixed [P, 4]`` is set: arm -> green, blue (their button is pressed when the arm is within
    0.15 of it) -> red (on when its own button is pressed or the green or blue light is on)."""
    red, green, blue, arm = range(4)
    latents[:, arm] = np.where(fixed[:, arm], latents[:, arm], noise[:, arm])
    for k, button in ((green, "green"), (blue, "blue")):
        on = np.abs(latents[:, arm] - _BUTTONS[button]) < 0.15
        latents[:, k] = np.where(fixed[:, k], latents[:, k], np.where(on, 0.6 + 0.35 * noise[:, k], 0.1 * noise[:, k]))
    on = (np.abs(latents[:, arm] - _BUTTONS["red"]) < 0.15) | (latents[:, green] > 0.4) | (latents[:, blue] > 0.4)
    latents[:, red] = np.where(fixed[:, red], latents[:, red], np.where(on, 0.6 + 0.35 * noise[:, red],
                                                                        0.1 * noise[:, red]))


def _circuit_frame(red: float, green: float, blue: float, arm: float) -> bytes:
    """One JPEG: a grey arm swinging over three buttons (green, red, blue along its arc) from a pivot at the
    bottom, and three lights at the top glowing with the intensities."""
    import io

    from PIL import Image

    side = CAUSAL_CIRCUIT_SIDE
    x, y = _grid_xy(side)
    x, y = x / side, y / side
    image = np.broadcast_to(np.array([0.25, 0.22, 0.2]), (side, side, 3)).copy()
    pivot = np.array([0.5, 0.95])

    def at(position: float, radius: float) -> np.ndarray:
        angle = np.deg2rad(-70 + 140 * position)
        return pivot + radius * np.array([np.sin(angle), -np.cos(angle)])

    for name, colour in (("green", [0.1, 0.6, 0.1]), ("red", [0.6, 0.1, 0.1]), ("blue", [0.1, 0.1, 0.6])):
        cx, cy = at(_BUTTONS[name], 0.55)
        image[(x - cx) ** 2 + (y - cy) ** 2 <= 0.05 ** 2] = colour
    tip = at(arm, 0.55)
    seg = tip - pivot
    t = np.clip(((x - pivot[0]) * seg[0] + (y - pivot[1]) * seg[1]) / (seg @ seg), 0, 1)
    image[(x - pivot[0] - t * seg[0]) ** 2 + (y - pivot[1] - t * seg[1]) ** 2 <= 0.03 ** 2] = 0.75
    for cx, value, colour in ((0.25, red, [1, 0.1, 0.1]), (0.5, green, [0.1, 1, 0.1]), (0.75, blue, [0.2, 0.3, 1])):
        glow = np.array([0.15, 0.15, 0.15]) + value * (np.array(colour) - 0.15)
        image[(x - cx) ** 2 + (y - 0.15) ** 2 <= 0.09 ** 2] = glow
    buffer = io.BytesIO()
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _write_circuit_file(path: Path, seed: int) -> None:
    """One ``.npz`` (uncompressed) of :data:`CAUSAL_CIRCUIT_PAIRS` pairs: before a random intervention and after."""
    rng = np.random.default_rng(seed)
    pairs = CAUSAL_CIRCUIT_PAIRS
    latents, epsilon = np.zeros((pairs, 2, 4)), rng.uniform(size=(pairs, 2, 4))
    _circuit_mechanisms(latents[:, 0], epsilon[:, 0], np.zeros((pairs, 4), dtype=bool))
    labels = rng.integers(0, 5, size=pairs)  # 0: no intervention, k: on variable k - 1 (red, green, blue, arm)
    masks = labels[:, None] == np.arange(1, 5)
    latents[:, 1] = np.where(masks, rng.uniform(size=(pairs, 4)), latents[:, 0])
    # After the intervention: the intervened variable keeps its new value, its descendants follow, the rest stay.
    descendants = {0: [0], 1: [1, 0], 2: [2, 0], 3: [3, 1, 2, 0]}
    redo = np.zeros((pairs, 4), dtype=bool)
    for k, columns in descendants.items():
        redo[np.ix_(labels == k + 1, columns)] = True
    epsilon[:, 1] = np.where(redo & ~masks, epsilon[:, 1], epsilon[:, 0])
    _circuit_mechanisms(latents[:, 1], epsilon[:, 1], masks | ~redo)
    imgs = np.array([[_circuit_frame(*frame) for frame in pair] for pair in latents], dtype=bytes)
    pressed = np.stack([(np.abs(latents[..., 3] - _BUTTONS[b]) < 0.15) for b in ("red", "green", "blue")], axis=-1)
    np.savez(path, imgs=imgs, original_latents=latents, epsilon=epsilon, pressed=pressed.astype(np.float64),
             intervention_labels=labels, intervention_masks=masks)


def _write_causal_circuit(directory: Path) -> None:
    """Every file of :data:`~dynrep.data.download.CAUSAL_CIRCUIT_FILES` in ``directory``."""
    from dynrep.data.download import CAUSAL_CIRCUIT_FILES

    directory.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(CAUSAL_CIRCUIT_FILES):
        _write_circuit_file(directory / name, seed)


_WRITERS = {"shapes3d": _write_shapes3d, "dsprites": _write_dsprites, "mpi3d_toy": _write_mpi3d,
            "mpi3d_realistic": _write_mpi3d, "mpi3d_real": _write_mpi3d, "cars3d": _write_cars3d,
            "causal_circuit": _write_causal_circuit}


def write_synthetic(name: str, dest: str | Path) -> Path:
    """Write a small copy of dataset ``name`` (a :data:`~dynrep.data.download.DATASETS` key) into ``dest``.

    It goes where ``dynrep download NAME --dest DEST`` would put the real one (``dest/<official file name>``,
    or ``dest/cars3d/`` of ``.mat`` files for Cars3D, ``dest/causal_circuit/`` for CausalCircuit), in the
    published layout: same keys, dtypes, compression and grid order as the real file, on a reduced grid of the
    real label values. An existing copy is overwritten.

    * ``shapes3d``: ``3dshapes.h5``, ``images`` ``[2304, 64, 64, 3]`` uint8 gzip-compressed in chunks (h5py's
      automatic chunk shape; the published file is chunked and compressed too), ``labels`` ``[2304, 6]`` float64
      over the classes :data:`SHAPES3D_GRID` of the six factors (1.2 MB).
    * ``dsprites``: ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (``np.savez_compressed``): ``imgs``
      ``[2304, 64, 64]`` uint8 in {0, 1}, ``latents_classes`` ``[2304, 6]`` int64 (the real class indices
      :data:`DSPRITES_GRID`), ``latents_values`` ``[2304, 6]`` float64, ``metadata`` (a pickled dict) (60 kB).
    * ``mpi3d_toy`` / ``mpi3d_realistic`` / ``mpi3d_real`` (the same pictures): ``mpi3d_<variant>.npz``
      (``np.savez_compressed``) with ``images`` ``[1728, 64, 64, 3]`` uint8 over the grid :data:`MPI3D_SIZES`
      (no labels, as published): open it with ``sizes=MPI3D_SIZES`` (180 kB).
    * ``cars3d``: ``cars3d/car_001_mesh.mat`` ... ``car_004_mesh.mat`` (:data:`CARS3D_OBJECTS`; MATLAB 5,
      compressed), each ``im`` ``[128, 128, 3, 24, 4]`` uint8 (24 azimuths, 4 elevations) and ``mask``
      ``[128, 128, 24, 4]`` uint8 of a box-built car (320 kB; the release's ``list.txt`` is not written).
    * ``causal_circuit``: ``causal_circuit/train-0.npz`` ... ``train-9.npz``, ``val.npz``, ``test.npz``
      (``np.savez``), each :data:`CAUSAL_CIRCUIT_PAIRS` pairs: ``imgs`` ``[P, 2]`` fixed-width bytes (one
      :data:`CAUSAL_CIRCUIT_SIDE`-pixel JPEG each), ``original_latents`` ``[P, 2, 4]`` float64 (red, green, blue,
      arm in [0, 1]: arm -> green, blue -> red), ``epsilon`` ``[P, 2, 4]``, ``pressed`` ``[P, 2, 3]`` float64,
      ``intervention_labels`` ``[P]`` int64 (0: none, k: variable k - 1), ``intervention_masks`` ``[P, 4]`` bool
      (1.7 MB).

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
