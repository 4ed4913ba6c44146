"""Rollout and traversal GIFs written with imageio."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageDraw

from dynrep.viz.files import replaced_atomically

PAD = 2  # pixels between tiles
LINE_HEIGHT = 12


def _upscale(frames: np.ndarray, min_side: int = 64) -> np.ndarray:
    """Nearest-neighbour upscaling of ``[..., H, W, C]`` so small frames stay visible."""
    factor = max(1, -(-min_side // frames.shape[-2]))
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2) if factor > 1 else frames


def tile(frames: np.ndarray, pad: int = PAD, background: int = 128) -> np.ndarray:
    """Grid image ``[R*(H+pad)+pad, C*(W+pad)+pad, 3]`` of tiles ``[R, C, H, W, 3]`` uint8."""
    rows, cols, h, w, c = frames.shape
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), background, dtype=np.uint8)
    for r in range(rows):
        for k in range(cols):
            out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = \
                frames[r, k]
    return out


def _with_labels(image: np.ndarray, caption: str, labels: Sequence[str], tile_width: int) -> np.ndarray:
    """``image`` under a strip with a caption line and a line naming each column of tiles.

    The caption (the step number) also keeps consecutive frames distinct: Pillow merges
    identical consecutive GIF frames, which would change the frame count.
    """
    strip = Image.new("RGB", (image.shape[1], 2 * LINE_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    draw.text((PAD, 0), caption, fill=(0, 0, 0))
    for k, label in enumerate(labels):
        draw.text((PAD + k * (tile_width + PAD), LINE_HEIGHT), label, fill=(0, 0, 0))
    return np.concatenate([np.asarray(strip), image], axis=0)


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 4.0) -> Path:
    """Write ``frames [F, H, W, 3]`` uint8 as a looping GIF (replacing ``path`` only once it is complete);
    returns the path.

    Pillow stores identical consecutive frames as one longer frame; the rollout and
    traversal GIFs caption every frame with its step, so they keep all their frames.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    data = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000.0 / fps, loop=0)  # encoded in memory:
    with replaced_atomically(path) as tmp:  # a failing disk write then closes its file cleanly
        tmp.write_bytes(data)
    return path


def write_rollout_gif(path: str | Path, true_frames: np.ndarray, predicted_frames: np.ndarray,
                      fps: float = 4.0) -> Path:
    """GIF of episodes ``[N, T+1, H, W, 3]``: per step, one row per episode, truth left, prediction right."""
    if true_frames.shape != predicted_frames.shape:
        raise ValueError(f"true and predicted frames differ in shape: {true_frames.shape} vs "
                         f"{predicted_frames.shape}")
    pairs = _upscale(np.stack([true_frames, predicted_frames], axis=2))  # [N, T+1, 2, H, W, 3]
    width = pairs.shape[-2]
    steps = pairs.shape[1]
    frames = [_with_labels(tile(pairs[:, t]), f"step {t}/{steps - 1}", ["truth", "predicted"], width)
              for t in range(steps)]
    return write_gif(path, np.stack(frames), fps)


def traversal_frames(model, env, start: torch.Tensor, num_frames: int) -> tuple[np.ndarray, list[str]]:
    """What a traversal GIF shows: ``model.traverse(start, num_frames)`` from one observation ``start``
    ``[1, *obs_shape]`` (on the model's device) as displayable frames ``[R, num_frames, H, W, 3]`` uint8 (one
    row per action, or per latent dimension, or per causal variable, as the model traverses), with the rows'
    labels. ``learner.animate(path, "traversal")`` writes these; the loggers draw them with
    :func:`traversal_grid`."""
    with torch.no_grad():
        frames, labels = model.traverse(start, num_frames)
    frames = frames.cpu().numpy()
    images = env.observation_to_image(frames.reshape(-1, *frames.shape[2:]))
    return images.reshape(*frames.shape[:2], *images.shape[1:]), list(labels)


def _check_labels(frames: np.ndarray, labels: Sequence[str]) -> None:
    if len(labels) != frames.shape[0]:
        raise ValueError(f"need one label per traversal, got {len(labels)} labels for {frames.shape[0]}")


def write_traversal_gif(path: str | Path, frames: np.ndarray, labels: Sequence[str], fps: float = 4.0) -> Path:
    """GIF of traversals ``[R, F, H, W, 3]``: frame ``f`` shows step ``f`` of every row side by side."""
    _check_labels(frames, labels)
    frames = _upscale(frames)
    width = frames.shape[-2]
    out = [_with_labels(tile(frames[None, :, f]), f"frame {f}/{frames.shape[1] - 1}", labels, width)
           for f in range(frames.shape[1])]
    return write_gif(path, np.stack(out), fps)


def traversal_grid(frames: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Every frame of the traversal GIF of ``frames [R, F, H, W, 3]`` in one picture
    ``[2 * LINE_HEIGHT + F * (H' + PAD) + PAD, R * (W' + PAD) + PAD, 3]`` uint8: the GIF's frame ``f`` is row
    ``f`` (top to bottom), traversal ``r`` column ``r`` (labelled on top); ``H'``, ``W'`` are the frames' sides
    upscaled as in the GIF (to at least 64 pixels)."""
    _check_labels(frames, labels)
    frames = _upscale(frames)
    return _with_labels(tile(frames.swapaxes(0, 1)), f"frames 0-{frames.shape[1] - 1}, top to bottom", labels,
                        frames.shape[-2])
