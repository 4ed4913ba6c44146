"""Every tutorial notebook is stored clean and CI-ready.

CI executes the notebooks with a real kernel (``pytest --nbmake notebooks/``); this file checks what
holds for every one of them without running it: valid nbformat 4, no stored outputs, the step count read
from ``DYNREP_TUTORIAL_STEPS`` and an Open-in-Colab badge that points at the notebook itself.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/dynrep/dynrep/blob/main/notebooks/"


def cells(path: Path, kind: str) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == kind]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_valid_nbformat_4(path):
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert notebook.nbformat == 4
    nbformat.validate(notebook)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    for k, cell in enumerate(cells(path, "code")):
        assert cell["outputs"] == [] and cell["execution_count"] is None, \
            f"{path.name}: code cell {k} has stored outputs; strip them (e.g. jupyter nbconvert --clear-output)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_reads_the_tutorial_step_count(path):
    code = "\n".join(source(c) for c in cells(path, "code"))
    assert 'os.environ.get("DYNREP_TUTORIAL_STEPS"' in code, \
        f"{path.name}: training must read its step count from DYNREP_TUTORIAL_STEPS (CI runs it small)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_opens_with_a_colab_badge_and_a_colab_only_install(path):
    first = source(cells(path, "markdown")[0])
    assert "colab-badge.svg" in first and f"({COLAB}{path.name})" in first, \
        f"{path.name}: the first markdown cell needs the Open-in-Colab badge linking {COLAB}{path.name}"
    install = source(cells(path, "code")[0])
    assert 'if "google.colab" in sys.modules:' in install and "%pip install" in install, \
        f"{path.name}: the first code cell installs dynrep on Colab only"
