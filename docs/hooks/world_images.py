"""mkdocs hook: a picture of every procedural world, rendered by dynrep at build time (nothing committed).

``worlds/images/NAME.png``: the top row shows six random states of the world with its default arguments; for
the factor-shift worlds a second row shows a trajectory, the first state then one frame after each of five
random actions (seed 0). (Pendulum's and Flow's actions move a label by one unit, too little to see.) The
worlds whose data must be downloaded have no picture.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from mkdocs.structure.files import File

#: The pictured worlds (built with their default arguments) and whether a trajectory row is drawn.
WORLDS = {"gridworld": True, "flatland": True, "circles": True, "simple": True, "two_shapes": True,
          "pendulum": False, "flow": False}
FRAMES, GAP = 6, 2
_OUT = Path(tempfile.mkdtemp(prefix="dynrep-docs-images-"))


def _row(frames: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` uint8 frames side by side, ``GAP`` white pixels apart: ``[H, N*W + (N-1)*GAP, 3]``."""
    frames = np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
    n, h, w, _ = frames.shape
    row = np.full((h, n * w + (n - 1) * GAP, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        row[:, i * (w + GAP): i * (w + GAP) + w] = frame
    return row


def picture(name: str) -> np.ndarray:
    """The picture of world ``name`` as ``[H, W, 3]`` uint8."""
    from dynrep import make_env
    env = make_env(name)
    rng = np.random.default_rng(0)
    rows = [_row(env.observation_to_image(env.render(env.sample_factors(FRAMES, rng))))]
    if WORLDS[name]:
        obs = env.sample_trajectories(batch=1, length=FRAMES - 1, rng=rng).obs[0].numpy()
        rows.append(_row(env.observation_to_image(obs)))
    gap = np.full((GAP * 2, rows[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([rows[0], *(part for row in rows[1:] for part in (gap, row))])


def on_files(files, config):
    from PIL import Image
    (_OUT / "worlds" / "images").mkdir(parents=True, exist_ok=True)
    for name in WORLDS:
        path = f"worlds/images/{name}.png"
        Image.fromarray(picture(name)).save(_OUT / path)
        files.append(File(path, str(_OUT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_shutdown():
    shutil.rmtree(_OUT, ignore_errors=True)
