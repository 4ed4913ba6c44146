"""Every example runs at tiny settings and writes its picture; together they cover every world and model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dynrep

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
#: Example -> (world, model, picture it writes, needs downloaded data: run with --synthetic).
COVERAGE = {
    "gridworld_rotation": ("gridworld", "rotation", "gridworld.gif", False),
    "gridworld_vae": ("gridworld", "vae", "gridworld_vae_traversal.gif", False),
    "resume_with_time_limit": ("gridworld", "rotation", "resume_training.png", False),
    "flatland_forward_vae": ("flatland", "forward_vae", "flatland_forward_vae.gif", False),
    "flatland_rgrvae": ("flatland", "rgrvae", "flatland_rgrvae.gif", False),
    "shapes3d_beta_vae": ("shapes3d", "beta_vae", "shapes3d_beta_vae.gif", True),
    "dsprites_beta_tcvae": ("dsprites", "beta_tcvae", "dsprites_beta_tcvae.gif", True),
    "mpi3d_factor_vae": ("mpi3d", "factor_vae", "mpi3d_factor_vae.gif", True),
    "cars3d_wae": ("cars3d", "wae", "cars3d_wae.gif", True),
    "circles_cascade_vae": ("circles", "cascade_vae", "circles_cascade_vae.gif", False),
    "simple_composition_net": ("simple", "composition_net", "simple_composition_net.gif", False),
    "two_shapes_liegroup_vae": ("two_shapes", "liegroup_vae", "two_shapes_liegroup_vae.gif", False),
    "toy_nn_mechanism_sparsity": ("toy_nn", "mechanism_sparsity", "toy_nn_graphs.png", False),
    "toy_nn_ivae": ("toy_nn", "ivae", "toy_nn_ivae_training.png", False),
    "toy_nn_slowvae": ("toy_nn", "slowvae", "toy_nn_slowvae_training.png", False),
    "toy_nn_pcl": ("toy_nn", "pcl", "toy_nn_pcl_training.png", False),
    "pendulum_icm_vae": ("pendulum", "icm_vae", "pendulum_interventions.gif", False),
    "flow_icm_vae": ("flow", "icm_vae", "flow_interventions.gif", False),
    "causal_circuit_icm_vae": ("causal_circuit", "icm_vae", "causal_circuit_interventions.gif", True),
}
#: The model families every example set must cover (issue 16), each a list of registered model names.
FAMILIES = {
    "rotation": ["rotation"],
    "vae": ["vae", "beta_vae", "beta_tcvae", "factor_vae", "wae", "cascade_vae"],
    "symmetry": ["forward_vae", "rgrvae", "liegroup_vae"],
    "nonlinear_ica": ["mechanism_sparsity", "ivae", "slowvae", "pcl"],
    "causal": ["icm_vae"],
    "combinatorial_generalisation": ["composition_net"],
}


def environ(**extra: str) -> dict[str, str]:
    """The examples' environment: tiny step counts, no display, this checkout first on the path."""
    return {**os.environ, "DYNREP_TUTORIAL_STEPS": "2", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def run_examples(directory: str, names: list[str]) -> None:
    """Run each example as ``__main__`` in ``directory/<name>`` (its own working directory and ``sys.argv``,
    ``--synthetic`` where it needs data) and write ``directory/<name>/result.json``: exit status, error."""
    import runpy
    import traceback
    sys.path.insert(0, str(EXAMPLES))  # what `python examples/NAME.py` puts first: `_common` is importable
    for name in names:
        cwd = Path(directory) / name
        cwd.mkdir()
        os.chdir(cwd)
        script = str(EXAMPLES / f"{name}.py")
        sys.argv = [script, *(["--synthetic"] if COVERAGE[name][3] else [])]
        status, error, start = 0, "", time.perf_counter()
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exit:
            status, error = exit.code if isinstance(exit.code, int) else 1, str(exit.code)
        except BaseException:
            status, error = 1, traceback.format_exc()
        result = {"status": status, "error": error, "seconds": time.perf_counter() - start}
        (cwd / "result.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """Every example run once, one after the other, in ONE subprocess (torch and dynrep are imported once:
    importing them costs seconds per process)."""
    directory = tmp_path_factory.mktemp("examples")
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_examples as t; " \
           f"t.run_examples({str(directory)!r}, {list(COVERAGE)!r})"
    subprocess.run([sys.executable, "-c", code], env=environ(), capture_output=True, text=True, timeout=900)
    return directory


def test_every_world_and_model_has_an_example():
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(COVERAGE)
    assert {world for world, *_ in COVERAGE.values()} == set(dynrep.list_envs())
    models = {model for _, model, *_ in COVERAGE.values()}
    assert models == {m for family in FAMILIES.values() for m in family} == set(dynrep.list_models())
    for name, (world, model, _, _) in COVERAGE.items():  # the table says what the script does
        source = (EXAMPLES / f"{name}.py").read_text()
        assert f'"{model}"' in source and "steps(" in source, name


@pytest.mark.parametrize("name", list(COVERAGE))
def test_example_runs_and_writes_its_picture(name, ran):
    *_, picture, needs_data = COVERAGE[name]
    record = ran / name / "result.json"
    assert record.is_file(), f"{name} did not run (the runner stopped before it)"
    result = json.loads(record.read_text())
    assert result["status"] == 0, result["error"][-3000:]
    assert (ran / name / picture).stat().st_size > 0
    if needs_data:  # --synthetic wrote the small copy here
        assert any((ran / name / "data-synthetic").iterdir())


def test_a_dataset_example_without_its_data_says_how_to_fetch_it(tmp_path):
    """`python examples/NAME.py` exits 1 with the download command and the ``--synthetic`` hint when the data is
    absent (with ``--synthetic`` it runs: the runner above)."""
    absent = subprocess.run([sys.executable, str(EXAMPLES / "dsprites_beta_tcvae.py")], cwd=tmp_path,
                            env=environ(DYNREP_DATA=str(tmp_path / "empty")), capture_output=True, text=True,
                            timeout=300)
    assert absent.returncode == 1
    assert "dynrep download dsprites" in absent.stderr and "--synthetic" in absent.stderr
    assert not (tmp_path / "dsprites_beta_tcvae.gif").exists()
