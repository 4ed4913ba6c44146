"""GIFs (rollout and traversal) and PNG figures."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

import errno
import pathlib

from conftest import fill_disk, png_bytes_ok, tiny_learner
from dynrep import GridWorld
from dynrep.viz.gif import LINE_HEIGHT, PAD, tile, write_gif, write_rollout_gif, write_traversal_gif
from dynrep.viz.plots import plot_history, plot_rotation_angles


@pytest.fixture(scope="module")
def learners():
    out = {}
    for model in ("rotation", "vae"):
        out[model] = tiny_learner(model)
        out[model].train(2, progress=False)
    return out


def read_gif(path):
    return iio.imread(path, index=None)


# -- animate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["rotation", "vae"])
def test_animate_rollout(learners, tmp_path, model):
    path = learners[model].animate(tmp_path / "sub" / "rollout.gif", num_episodes=3, num_frames=6)
    assert path == tmp_path / "sub" / "rollout.gif"
    frames = read_gif(path)
    # 16x16 frames are upscaled to 64; 3 episodes x (truth, prediction) tiles plus a label strip.
    assert frames.shape == (6, 2 * LINE_HEIGHT + 3 * (64 + PAD) + PAD, 2 * (64 + PAD) + PAD, 3)


@pytest.mark.parametrize("model,rows", [("rotation", 4), ("vae", 3)])
def test_animate_traversal(learners, tmp_path, model, rows):
    path = learners[model].animate(tmp_path / "traversal.gif", kind="traversal", num_frames=5)
    frames = read_gif(path)
    # One tile per action (rotation: 4 actions) or per latent dimension (vae: latent_dim=3).
    assert frames.shape == (5, 2 * LINE_HEIGHT + 64 + 2 * PAD, rows * (64 + PAD) + PAD, 3)


def test_animate_is_reproducible(learners, tmp_path):
    a = learners["rotation"].animate(tmp_path / "a.gif", num_episodes=2, num_frames=3)
    b = learners["rotation"].animate(tmp_path / "b.gif", num_episodes=2, num_frames=3)
    assert a.read_bytes() == b.read_bytes()


def test_animate_onehot(tmp_path):
    learner = tiny_learner("rotation", env=GridWorld(size=3, observation="onehot", image_size=15))
    frames = read_gif(learner.animate(tmp_path / "r.gif", num_episodes=2, num_frames=4))
    assert frames.shape[0] == 4


def test_animate_errors(learners, tmp_path):
    with pytest.raises(ValueError, match=r"kind must be one of \('rollout', 'traversal'\), got 'spin'"):
        learners["rotation"].animate(tmp_path / "x.gif", kind="spin")
    with pytest.raises(ValueError, match="num_frames must be >= 2, got 1"):
        learners["rotation"].animate(tmp_path / "x.gif", num_frames=1)
    assert not (tmp_path / "x.gif").exists()


# -- GIF writers -----------------------------------------------------------------------------
def distinct_frames(n, side=8):
    frames = np.zeros((n, side, side, 3), dtype=np.uint8)
    for k in range(n):
        frames[k, k % side, (k // side) % side] = 255
    return frames


def test_write_gif_round_trip(tmp_path):
    frames = distinct_frames(5)
    path = write_gif(tmp_path / "a.gif", frames, fps=10)
    back = read_gif(path)
    assert back.shape == (5, 8, 8, 3)
    assert np.array_equal(back, frames)
    meta = iio.immeta(path)
    assert meta["loop"] == 0 and meta["duration"] == 100


def test_traversal_and_rollout_gifs_keep_repeated_frames(tmp_path):
    """Pillow merges identical consecutive GIF frames; the step caption keeps every frame
    of a traversal or rollout even when the tiles do not change (e.g. a clamped factor)."""
    still = np.repeat(distinct_frames(1)[None], 4, axis=1)  # [1, 4, H, W, 3], all equal
    back = read_gif(write_traversal_gif(tmp_path / "t.gif", np.repeat(still, 2, axis=0), ["a", "b"]))
    assert back.shape[0] == 4
    back = read_gif(write_rollout_gif(tmp_path / "r.gif", still, still))
    assert back.shape[0] == 4


def test_a_failed_gif_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    """``animate`` onto a full disk used to leave a 0-byte GIF under the final name."""
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    path = write_gif(tmp_path / "a.gif", frames)
    before = path.read_bytes()

    def full_disk(target, data):
        with open(target, "wb") as f:
            f.write(data[:6])  # a partial file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_gif(path, frames)
    with pytest.raises(OSError, match="No space left"):
        write_gif(tmp_path / "new.gif", frames)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]


def test_animate_onto_a_full_disk(learners, tiny_disk):
    fill_disk(tiny_disk)
    with pytest.raises(OSError) as err:
        learners["rotation"].animate(tiny_disk / "r.gif", num_frames=3)
    assert err.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        plot_history({"loss": [1.0, 0.5]}, tiny_disk / "h.png")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


def test_write_gif_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match=r"frames must be uint8 \[F, H, W, 3\], got float32"):
        write_gif(tmp_path / "a.gif", np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"frames must be uint8 \[F, H, W, 3\]"):
        write_gif(tmp_path / "a.gif", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"frames must be uint8 \[F, H, W, 3\]"):
        write_gif(tmp_path / "a.gif", np.zeros((2, 8, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="fps must be positive, got 0"):
        write_gif(tmp_path / "a.gif", distinct_frames(2), fps=0)
    assert not (tmp_path / "a.gif").exists()


def test_write_rollout_gif_shape_mismatch(tmp_path):
    a = np.zeros((2, 3, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="true and predicted frames differ in shape"):
        write_rollout_gif(tmp_path / "a.gif", a, a[:, :2])


def test_write_traversal_gif_label_count(tmp_path):
    frames = np.zeros((3, 4, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="need one label per traversal, got 2 labels for 3"):
        write_traversal_gif(tmp_path / "a.gif", frames, ["a", "b"])


def test_tile_layout():
    frames = np.zeros((2, 3, 4, 5, 3), dtype=np.uint8)
    frames[1, 2] = 200
    out = tile(frames, pad=1, background=7)
    assert out.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
    assert (out[6:10, 13:18] == 200).all()
    assert out[0, 0, 0] == 7 and out[5, 0, 0] == 7
    assert (out == 200).sum() == 4 * 5 * 3


# -- PNG figures -----------------------------------------------------------------------------
def test_plot_training(learners, tmp_path):
    path = learners["vae"].plot_training(tmp_path / "plots" / "training.png")
    assert path.is_file() and png_bytes_ok(path)


def test_plot_history_with_negative_values_and_empty(tmp_path):
    path = plot_history({"loss": [1.0, -0.5, 0.2], "kl": [0.1, 0.2, 0.3]}, tmp_path / "h.png")
    assert png_bytes_ok(path)
    with pytest.raises(ValueError, match="history is empty"):
        plot_history({}, tmp_path / "e.png")
    with pytest.raises(ValueError, match="history is empty"):
        tiny_learner("rotation").plot_training(tmp_path / "e.png")
    assert not (tmp_path / "e.png").exists()


def test_plot_representation(learners, tmp_path):
    path = learners["rotation"].plot_representation(tmp_path / "angles.png")
    assert path == tmp_path / "angles.png" and png_bytes_ok(path)
    path = plot_rotation_angles(np.zeros((2, 3)), ["a+", "a-"], 3, tmp_path / "z.png")
    assert png_bytes_ok(path)


def test_plot_representation_on_vae(learners, tmp_path):
    with pytest.raises(ValueError, match="model 'vae' has no action angles to plot"):
        learners["vae"].plot_representation(tmp_path / "angles.png")
    assert not (tmp_path / "angles.png").exists()


def test_plot_metric_matrices(tmp_path):
    from dynrep import metrics
    from dynrep.viz.plots import plot_metric_matrices
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, size=(300, 2))
    codes = factors + 0.1 * rng.normal(size=factors.shape)
    results = {"mig": metrics.mig(codes, factors), "mcc": metrics.mcc(factors.astype(float), codes)}
    path = plot_metric_matrices(results, tmp_path / "m" / "matrices.png", factor_names=["a", "b"])
    assert path.is_file() and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="no matrix to plot"):
        plot_metric_matrices({"sap": {"sap": 0.5}}, tmp_path / "x.png")
