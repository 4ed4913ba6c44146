"""The README's walkthrough, run as written: copy a preset, sweep three seeds with tensorboard, kill the sweep
(Ctrl-C to its process group, as a terminal sends it), rerun the same command to resume, and run the same
config under ``torchrun --nproc_per_node 2``. The one edit between the steps is the one the README invites:
the copied preset is shortened (fewer steps, smaller evaluation) so that the test runs in a few minutes."""
from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynrep import presets, runs

ROOT = Path(__file__).parents[1]
STEPS = 200  # the shortened preset's trainer.steps; the README's sweep checkpoints every 100


def walkthrough() -> list[str]:
    """The commands of the README block after ``<!-- walkthrough -->`` (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- walkthrough -->\n```bash\n", 1)[1].split("\n```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def shell(command: str, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def checkpoint_step(point: Path) -> int:
    try:
        return json.loads((point / "checkpoint" / "config.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="Ctrl-C is sent to a process group")
def test_the_readme_walkthrough_runs_as_written(tmp_path):
    commands = walkthrough()
    assert [c.split()[0] for c in commands] == ["dynrep", "dynrep", "tensorboard", "dynrep", "torchrun"], commands
    copy, sweep, watch, again, torchrun = commands
    assert again == sweep  # "run the same command again"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    # 1. copy a preset, then edit it (shorter, a smaller evaluation)
    done = shell(copy, tmp_path, env)
    assert done.returncode == 0, done.stderr
    gw = tmp_path / "gw.yaml"
    name = copy.split("--show ")[1].split()[0]
    assert runs.load_run_config(gw) == presets.load_preset(name)
    edited = runs.apply_overrides(runs.load_run_config(gw), [
        f"trainer.steps={STEPS}", "evaluation.metrics=[mig,dci]", "evaluation.num_train=300", "evaluation.num_test=150"])
    runs.save_run_config(edited, gw)

    # 2. the sweep, killed by Ctrl-C once a point has checkpointed half way
    out = tmp_path / "runs" / "seeds"
    proc = subprocess.Popen(shlex.split(sweep), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        if any(0 < checkpoint_step(p) < STEPS for p in out.glob("seed=*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGINT)
    first = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, first
    points = sorted(out.glob("seed=*"))
    unfinished = [p for p in points if not (p / "scores.json").exists()]
    assert unfinished, first
    stopped_at = {p.name: checkpoint_step(p) for p in unfinished}

    # 3. tensorboard reads every point's event files, with the loss terms
    done = shell(f"{watch} --inspect", tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "loss/reconstruction" in done.stdout, done.stdout
    assert f"{points[0].relative_to(tmp_path)}/tensorboard" in done.stdout, done.stdout

    # 4. the same command again: the killed points resume, all three finish, the summary is written
    done = shell(again, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    for point, step in stopped_at.items():
        if step > 0:
            assert f"resumed  runs/seeds/{point} (from step {step})" in done.stdout, done.stdout
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert sorted(r["trainer.seed"] for r in rows) == ["0", "1", "2"]
    assert all(r["status"] == "finished" and int(r["step"]) == STEPS and r["mig"] for r in rows), rows
    assert (out / "summary.png").stat().st_size > 0

    # 5. the same config on two processes
    done = shell(torchrun, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    scores = json.loads((tmp_path / "runs" / "gw-ddp" / "scores.json").read_text())
    assert scores["step"] == STEPS and "mig" in scores["scores"]
    assert done.stdout.count("trained ") == 1  # rank 0 alone reports
