"""The tutorial notebooks run top to bottom (with few training steps)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "DYNREP_TUTORIAL_STEPS" in code, "notebooks read their step count from DYNREP_TUTORIAL_STEPS"
    monkeypatch.setenv("DYNREP_TUTORIAL_STEPS", "20")
    monkeypatch.chdir(tmp_path)
    # Outside Jupyter there is no IPython: show images as their paths.
    code = code.replace("from IPython.display import Image", "Image = Path")
    matplotlib.use("Agg")
    namespace: dict = {"Path": Path}
    exec(compile(code, str(path), "exec"), namespace)
    assert namespace["learner"].step == 20 and namespace["again"].step == 120
    assert all((tmp_path / name).is_file() for name in ("rollout.gif", "traversal.gif", "angles.png"))
