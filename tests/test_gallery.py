"""The gallery script regenerates the pictures the README shows, and every picture the README shows exists."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio

REPO = Path(__file__).resolve().parents[1]


def test_every_picture_the_readme_shows_is_in_the_gallery():
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (REPO / "README.md").read_text())
    assert "docs/gallery/gridworld_rollout.gif" in shown
    assert all((REPO / path).is_file() for path in shown), shown


def test_make_gallery_writes_the_readme_gif(tmp_path):
    env = {**os.environ, "DYNREP_TUTORIAL_STEPS": "2", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "make_gallery.py"), "--only", "gridworld",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gridworld_rollout.gif", "gridworld_traversal.gif"]
    frames = iio.imread(tmp_path / "gridworld_rollout.gif", index=None)
    assert frames.shape[0] == 20 and frames.shape[-1] == 3  # learner.animate's default 20 frames
