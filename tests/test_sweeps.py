"""Sweeps: value parsing and grid expansion, a 2x2 sweep with --jobs 2 whose killed point resumes bitwise
equal to an uninterrupted run, the summary (CSV values and the figure's panels), submitit's local executor,
and every user error as one line with its exit code."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, one_line, png_bytes_ok
from dynrep import RepresentationLearner, cli, runs, sweeps
from dynrep.runs import EnvConfig, EvalConfig, ModelConfig, RunConfig, TrainerConfig

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def tiny_config(steps: int = 4, model: str = "vae", **trainer) -> RunConfig:
    """A tiny learner of conftest on a 3x3, 16x16 GridWorld, one thread, model scores only (the VAE's: one
    metric, so that the summary figures draw fast)."""
    return RunConfig(env=EnvConfig("gridworld", {"size": 3, "image_size": 16}),
                     model=ModelConfig(model, dict(TINY_MODEL[model])),
                     trainer=TrainerConfig(steps=steps, device="cpu", threads=1, seed=3, **trainer),
                     evaluation=EvalConfig(metrics=[]))


@pytest.fixture
def run_yaml(tmp_path) -> Path:
    return runs.save_run_config(tiny_config(), tmp_path / "run.yaml")


def assert_same_run(a: RepresentationLearner, b: RepresentationLearner) -> None:
    assert a.step == b.step and a.history == b.history
    state = b.model.state_dict()
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, state[name]), name


def checkpoint(point: Path) -> RepresentationLearner:
    return RepresentationLearner.load(point / "checkpoint", device="cpu")


# -- values and grids ------------------------------------------------------------------------
@pytest.mark.parametrize("text, parts", [
    ("0,1,2", ["0", "1", "2"]),
    ("[8,8],[16,16]", ["[8,8]", "[16,16]"]),
    ("[8,8]", ["[8,8]"]),
    ("{a: 1, b: [2,3]},{a: 2}", ["{a: 1, b: [2,3]}", "{a: 2}"]),
    ("'a,b',c", ["'a,b'", "c"]),
    ('"x,[y",z', ['"x,[y"', "z"]),
    ("1e-3,1e-4", ["1e-3", "1e-4"]),
])
def test_values_split_at_top_level_commas_only(text, parts):
    assert sweeps.split_values(text) == parts


def test_swept_and_fixed_overrides_are_parsed_like_run_overrides():
    grid, fixed = sweeps.parse_sweep(["seed=0,1,2", "model.config.channels=[8,8],[16,16]", "trainer.steps=3",
                                      "model.config.lr=1e-3,1e-4", "model.config.mlp_hidden=[8]", "env.args.size=4"])
    assert grid == {"trainer.seed": [0, 1, 2], "model.config.channels": [[8, 8], [16, 16]],
                    "model.config.lr": [0.001, 0.0001]}
    assert fixed == ["trainer.steps=3", "model.config.mlp_hidden=[8]", "env.args.size=4"]
    assert sweeps.parse_sweep(["seed=5"]) == ({}, ["trainer.seed=5"])


def test_the_grid_is_the_cartesian_product_with_readable_unique_names():
    grid = {"trainer.seed": [0, 1], "model.config.channels": [[8, 8], [16, 16]], "model.config.beta": [1, 4.5]}
    points = sweeps.grid_points(grid)
    assert len(points) == 8 and points[0] == {"trainer.seed": 0, "model.config.channels": [8, 8],
                                              "model.config.beta": 1}
    assert points[1]["model.config.beta"] == 4.5 and points[4]["trainer.seed"] == 1
    names = sweeps.point_names(grid)
    assert names[:3] == ["seed=0,channels=8-8,beta=1", "seed=0,channels=8-8,beta=4.5", "seed=0,channels=16-16,beta=1"]
    # the same last part twice: full keys; values that sanitise alike: numbered
    assert sweeps.point_names({"a.lr": [1, 2], "b.lr": ["x y", "x/y"]}) == [
        "a.lr=1,b.lr=x_y", "a.lr=1,b.lr=x_y-2", "a.lr=2,b.lr=x_y", "a.lr=2,b.lr=x_y-2"]


@pytest.mark.parametrize("args, message", [
    (["seed=0,1", "model.config.bta=1,2"], "unknown key 'model.config.bta' in override 'model.config.bta=1': "
                                           "model.config has no 'bta'; allowed: latent_dim, "),
    (["model.config.lr=0.1,abc"], "override model.config.lr='abc': model.config ('vae' model) option lr must be "
                                  "of type float, got 'abc'"),
    (["model.config.channels=[4,8],[4,8"], "override model.config.channels: value '[4,8' is not a YAML value ("),
    (["trainer.stepz=3", "seed=0,1"], "unknown key 'trainer.stepz' in override 'trainer.stepz=3'"),
    (["seed=0,1", "seed=2,3"], "sweep key trainer.seed is given twice; give all its values at once"),
    (["seed=0,1", "trainer.seed=2"], "sweep key trainer.seed is both swept and fixed; give it once"),
    (["seed=0,0"], "sweep key trainer.seed repeats a value: 0,0"),
    (["trainer.steps=3"], "a sweep needs at least one KEY=V1,V2,... with two or more values (e.g. seed=0,1,2)"),
    (["trainer.steps"], "override 'trainer.steps' is not KEY=VALUE with a dotted KEY"),
    (["seed=0,1", "--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["seed=0,1", "--slurm", "partition=gpu"], "--slurm and --cluster need --launcher submitit"),
    (["seed=0,1", "--launcher", "submitit", "--slurm", "partitoin=gpu"],
     "--slurm 'partitoin=gpu': expected KEY=VALUE with KEY one of "),
])
def test_every_bad_point_is_one_line_exit_2_and_nothing_is_written(capsys, tmp_path, run_yaml, args, message):
    code, err = one_line(capsys, "sweep", run_yaml, *args, "--out", tmp_path / "sweep")
    assert code == 2
    assert err.startswith(f"dynrep sweep: error: {message}"), err
    assert not (tmp_path / "sweep").exists()


def test_missing_submitit_is_one_line_exit_1(capsys, tmp_path, run_yaml, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit now raises ImportError
    code, err = one_line(capsys, "sweep", run_yaml, "seed=0,1", "--out", tmp_path / "sweep", "--launcher", "submitit")
    assert (code, err) == (1, "dynrep sweep: error: --launcher submitit needs the submitit package: pip install "
                              "dynrep[submitit] (or pip install submitit)")
    assert not (tmp_path / "sweep").exists()


def test_summarize_a_folder_that_is_not_a_sweep(capsys, tmp_path):
    code, err = one_line(capsys, "summarize", tmp_path)
    assert (code, err) == (1, f"dynrep summarize: error: {tmp_path} is not a sweep folder: it has no sweep.yaml "
                              "(sweep folders are written by `dynrep sweep RUN.yaml KEY=V1,V2 ... --out DIR`)")


def test_a_folder_of_other_files_is_refused(capsys, tmp_path, run_yaml):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code, err = one_line(capsys, "sweep", run_yaml, "seed=0,1", "--out", tmp_path / "mine")
    assert (code, err) == (1, f"dynrep sweep: error: {tmp_path / 'mine'} is not empty and holds no sweep.yaml: "
                              "refusing to write a sweep into it; choose a new or empty directory")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


# -- a sweep in this process: the summary ----------------------------------------------------
def test_a_sweep_writes_one_run_folder_per_point_and_its_summary(capsys, tmp_path, run_yaml, one_thread):
    out = tmp_path / "sweep"
    argv = ["sweep", str(run_yaml), "seed=0,1", "model.config.lr=0.01,0.02", "model.config.channels=[4,8],[8,8]",
            "trainer.steps=3", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"sweep {out}: 8 points (8 to train, 0 to resume, 0 finished); in this process")
    assert printed.count(" started  ") == 8 and printed.count(" finished ") == 8
    spec = sweeps.load(out)
    assert list(spec.grid) == ["trainer.seed", "model.config.lr", "model.config.channels"]
    assert spec.base == runs.apply_overrides(tiny_config(), ["trainer.steps=3"])
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [row["point"] for row in rows] == list(spec.points) == sweeps.point_names(spec.grid)
    assert rows[0]["point"] == "seed=0,lr=0.01,channels=4-8"
    for row, (name, values) in zip(rows, spec.points.items()):
        recorded = runs.load_run_config(out / name / "run.yaml")
        assert (recorded.trainer.seed, recorded.model.config["lr"], recorded.model.config["channels"],
                recorded.trainer.steps) == (values["trainer.seed"], values["model.config.lr"],
                                            values["model.config.channels"], 3)
        scores = json.loads((out / name / "scores.json").read_text())
        assert row["status"] == "finished" and int(row["step"]) == scores["step"] == 3
        assert float(row["wall_time_s"]) == scores["wall_time_s"] > 0
        assert (row["trainer.seed"], row["model.config.lr"], row["model.config.channels"]) == (
            str(values["trainer.seed"]), str(values["model.config.lr"]), json.dumps(values["model.config.channels"]))
        assert {key: float(row[key]) for key in scores["scores"]} == scores["scores"]
        assert list(row) == ["point", "status", *spec.grid, "step", "wall_time_s", *scores["scores"]]
    assert png_bytes_ok(out / "summary.png")

    # the figure: a panel per (metric, non-seed key); seeds averaged, sd as error bars; lists as categories
    metrics = list(json.loads((out / rows[0]["point"] / "scores.json").read_text())["scores"])
    fig = sweeps.summary_figure(sweeps.summary_rows(out), spec.grid)
    assert len(fig.axes) == 2 * len(metrics)
    lr_panel, channels_panel = fig.axes[0], fig.axes[1]
    assert (lr_panel.get_xlabel(), lr_panel.get_ylabel()) == ("model.config.lr", metrics[0])
    assert [t.get_text() for t in channels_panel.get_xticklabels()] == ["[4, 8]", "[8, 8]"]
    first = [[float(r[metrics[0]]) for r in rows if r["model.config.lr"] == lr and r["model.config.channels"] ==
              "[4, 8]"] for lr in ("0.01", "0.02")]  # each: the two seeds
    line = lr_panel.lines[0]  # hue channels=[4, 8]
    assert list(line.get_xdata()) == [0.01, 0.02]
    np.testing.assert_allclose(line.get_ydata(), np.mean(first, axis=1))
    bars = lr_panel.collections[0].get_segments()  # mean ± sd (ddof 1) over the seeds
    np.testing.assert_allclose([seg[:, 1] for seg in bars], [[np.mean(v) - np.std(v, ddof=1),
                                                             np.mean(v) + np.std(v, ddof=1)] for v in first])

    # rerun: every point is skipped; summarize rebuilds both files
    (out / "summary.png").unlink()
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count(" skipped  ") == 8
    (out / "summary.csv").unlink()
    (out / "summary.png").unlink()
    assert cli.main(["summarize", str(out)]) == 0
    assert list(csv.DictReader(open(out / "summary.csv"))) == rows and png_bytes_ok(out / "summary.png")


def test_another_grid_into_the_same_folder_is_refused_unless_overwrite(capsys, tmp_path, run_yaml, one_thread):
    out = tmp_path / "sweep"
    assert cli.main(["sweep", str(run_yaml), "seed=0,1", "trainer.steps=2", "--out", str(out)]) == 0
    capsys.readouterr()
    code, err = one_line(capsys, "sweep", run_yaml, "seed=0,2", "trainer.steps=2", "--out", out)
    assert (code, err) == (2, f"dynrep sweep: error: {out} holds another sweep: trainer.seed is [0, 1] there and "
                              "[0, 2] here; rerun with the same grid to continue it, choose another --out, or pass "
                              "--overwrite to replace it")
    code, err = one_line(capsys, "sweep", run_yaml, "seed=0,1", "--out", out)
    assert (code, err[:90]) == (2, f"dynrep sweep: error: {out} holds another sweep: its base config has "
                                   "trainer.steps=2, this command 4"[:90])
    assert cli.main(["sweep", str(run_yaml), "seed=1,0", "trainer.steps=2", "--out", str(out)]) == 0  # same grid
    assert capsys.readouterr().out.count(" skipped  ") == 2
    assert cli.main(["sweep", str(run_yaml), "model.config.lr=0.1,0.2", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lr=0.1", "lr=0.2", "summary.csv", "summary.png", "sweep.yaml"]


def test_unfinished_points_are_in_the_csv_without_metrics(tmp_path, one_thread):
    sweep = sweeps.prepare(tiny_config(steps=2), ["seed=0,1,2"], tmp_path / "sweep")
    sweeps.run_point(str(sweep.out), "seed=0")
    runs.save_run_config(sweep.config("seed=1"), sweep.out / "seed=1" / "run.yaml")  # started, no checkpoint
    rows = sweeps.summary_rows(sweep.out)
    assert [(r["status"], r["step"]) for r in rows] == [("finished", 2), ("unfinished", None), ("not started", None)]
    csv_path, png_path = sweeps.summarize(sweep.out)
    lines = list(csv.DictReader(open(csv_path)))
    assert [(r["status"], r["step"], r["wall_time_s"], r["reconstruction_error"] == "") for r in lines] == [
        ("finished", "2", lines[0]["wall_time_s"], False), ("unfinished", "", "", True), ("not started", "", "", True)]
    assert png_path is not None and len(sweeps.summary_figure(rows, sweep.grid).axes) == len(rows[0]) - 5
    assert sweeps.point_state(sweep.out / "seed=1", 2) == ("new", None)  # run.yaml alone: starts over
    assert sweeps.run_point(str(sweep.out), "seed=1")["state"] == "new"
    assert sweeps.run_point(str(sweep.out), "seed=1") == {"name": "seed=1", "state": "finished", "step": 2}
    # scores at fewer steps than trainer.steps (a time limit): partial, and a rerun continues it
    scores = json.loads((sweep.out / "seed=1" / "scores.json").read_text())
    (sweep.out / "seed=1" / "scores.json").write_text(json.dumps({**scores, "step": 1}))
    assert sweeps.summary_rows(sweep.out)[1]["status"] == "partial"
    assert sweeps.point_state(sweep.out / "seed=1", 2) == ("resume", 2)
    # killed after its last step, before its scores: evaluated only, from the checkpoint
    before = checkpoint(sweep.out / "seed=0")
    (sweep.out / "seed=0" / "scores.json").unlink()
    assert sweeps.point_state(sweep.out / "seed=0", 2) == ("resume", 2)
    assert sweeps.run_point(str(sweep.out), "seed=0") == {"name": "seed=0", "state": "resume", "step": 2}
    assert json.loads((sweep.out / "seed=0" / "scores.json").read_text())["scores"] == {
        "reconstruction_error": float(lines[0]["reconstruction_error"])}
    assert_same_run(checkpoint(sweep.out / "seed=0"), before)


# -- wall time -------------------------------------------------------------------------------
def test_wall_time_adds_up_over_resumes_and_killed_calls(tmp_path, one_thread):
    runs.run(tiny_config(steps=4, model="rotation"), tmp_path / "r")
    first = json.loads((tmp_path / "r" / "scores.json").read_text())["wall_time_s"]
    logged = [json.loads(line) for line in open(tmp_path / "r" / "checkpoint.metrics.jsonl")]
    runs.resume(tmp_path / "r", steps=3)
    second = json.loads((tmp_path / "r" / "scores.json").read_text())["wall_time_s"]
    assert second > logged[-1]["elapsed_s"] and second < first + 60
    # two calls, the second killed after step 30 (lines beyond the checkpoint's step 20 do not count)
    lines = [{"step": 10, "elapsed_s": 1.0, "time": 101.0}, {"step": 20, "elapsed_s": 2.0, "time": 102.0},
             {"step": 20, "elapsed_s": 0.5, "time": 200.5}, {"step": 30, "elapsed_s": 4.0, "time": 204.0}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 3')
    assert runs._logged_seconds(path, 30) == 6.0
    assert runs._logged_seconds(path, 20) == 2.5
    assert runs._logged_seconds(tmp_path / "none.jsonl", 5) == 0.0


# -- parallel processes, a SIGKILLed point, the rerun -----------------------------------------
def point_pids(out: Path, name: str) -> list[int]:
    """The worker processes (``python -m dynrep.sweeps OUT NAME``) of point ``name``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if b"dynrep.sweeps" in argv and str(out).encode() in argv and name.encode() in argv:
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the point's process in /proc")
def test_a_killed_point_resumes_bitwise_and_finished_points_are_skipped(capsys, tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])
    runs.save_run_config(tiny_config(steps=60, checkpoint_every=4, log_every=2), tmp_path / "run.yaml")
    out = tmp_path / "sweep"
    argv = ["sweep", str(tmp_path / "run.yaml"), "seed=0,1", "model.config.lr=0.01,0.02", "--out", str(out),
            "--jobs", "2"]
    codes = []
    sweep = threading.Thread(target=lambda: codes.append(cli.main(argv)))  # its points are processes
    sweep.start()
    last, killed, deadline = "seed=1,lr=0.02", None, time.monotonic() + 240
    while time.monotonic() < deadline and sweep.is_alive() and killed is None:
        state = sweeps.point_state(out / last, 60)
        if state[0] == "resume" and state[1] >= 4:
            for pid in point_pids(out, last):
                os.kill(pid, signal.SIGKILL)
                killed = state[1]
        time.sleep(0.01)
    sweep.join(timeout=240)
    first = capsys.readouterr().out
    assert killed is not None and codes == [1], first
    assert f"[4/4] failed   {out / last} (killed by SIGKILL (exit -9; log {out / 'logs' / last}.log))" in first
    assert first.count(" finished ") == 3 and first.rstrip().endswith(
        f"1 of 4 points failed: {last}; rerun the same command to retry them")
    rows = {row["point"]: row for row in csv.DictReader(open(out / "summary.csv"))}
    assert rows[last]["status"] == "unfinished" and rows[last]["reconstruction_error"] == ""
    assert int(rows[last]["step"]) >= killed and [r["status"] for r in rows.values()].count("finished") == 3
    finished = {name: (out / name / "scores.json").read_text() for name in rows if name != last}
    killed_call = runs._logged_seconds(out / last / "checkpoint.metrics.jsonl", int(rows[last]["step"]))
    assert killed_call > 0  # lines every 2 steps, up to the checkpoint's step

    # the rerun (--jobs is not part of the grid: here in this process): three skipped, the killed one resumed
    assert cli.main([*argv[:-2], "--jobs", "1"]) == 0
    again = capsys.readouterr().out
    assert again.count(" skipped  ") == 3 and f"[4/4] resumed  {out / last} (from step " in again
    assert f"[4/4] finished {out / last}" in again
    assert {name: (out / name / "scores.json").read_text() for name in finished} == finished
    recorded = runs.load_run_config(out / last / "run.yaml")
    assert recorded == runs.resolved(sweeps.load(out).config(last), runs.build_learner(recorded))
    straight, _ = runs.run(recorded, tmp_path / "straight")
    assert_same_run(checkpoint(out / last), straight)
    scores = json.loads((out / last / "scores.json").read_text())
    resumed_call = [json.loads(line) for line in open(out / f"{last}/checkpoint.metrics.jsonl")][-1]["elapsed_s"]
    assert scores["step"] == 60 and scores["wall_time_s"] > killed_call + resumed_call  # the killed call counts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="points follow their sweep on Linux")
def test_a_killed_sweep_stops_its_points_and_they_save(tmp_path):
    runs.save_run_config(tiny_config(steps=1_000_000, checkpoint_every=4), tmp_path / "run.yaml")
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "dynrep", "sweep", str(tmp_path / "run.yaml"), "seed=0,1", "--out",
                             str(out), "--jobs", "2"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    names, deadline = ["seed=0", "seed=1"], time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if all((sweeps.point_state(out / name, 10**6)[1] or 0) >= 4 for name in names):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1]
    proc.kill()  # SIGKILL: the sweep cannot pass anything on; its points stop by themselves
    proc.communicate()
    while time.monotonic() < deadline and any(point_pids(out, name) for name in names):
        time.sleep(0.05)
    for name in names:
        assert not point_pids(out, name)
        line = (out / "logs" / f"{name}.log").read_text().strip().splitlines()[-1]
        assert line.startswith(f"dynrep sweep: {name}: interrupted: ") and "SIGTERM" in line, line
        step = checkpoint(out / name).step
        assert step >= 4 and f"step-{step} state" in line


# -- submitit --------------------------------------------------------------------------------
def test_submitit_local_executor_runs_the_same_points(capsys, tmp_path, run_yaml, monkeypatch, one_thread):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "sweep"
    assert cli.main(["sweep", str(run_yaml), "model.config.lr=0.01,1e30", "--out", str(out), "--launcher", "submitit",
                     "--cluster", "local", "--slurm", "timeout_min=5", "--slurm", "partition=debug"]) == 1
    printed = capsys.readouterr().out
    assert "submitit, 2 array tasks at once" in printed and printed.count("(local job ") == 2
    assert f"[1/2] finished {out / 'lr=0.01'}" in printed
    failed = printed.split(f"[2/2] failed   {out / 'lr=1e+30'} (", 1)[1].splitlines()[0]
    assert failed.startswith("dynrep.training.callbacks.NonFiniteLossError: loss term 'reconstruction' is nan at "
                             "step 1") and failed.endswith(f"(logs {out / 'submitit'}))"), failed
    assert printed.rstrip().endswith("1 of 2 points failed: lr=1e+30; rerun the same command to retry them")
    spec = sweeps.load(out)
    straight, _ = runs.run(spec.config("lr=0.01"), tmp_path / "straight")
    assert_same_run(checkpoint(out / "lr=0.01"), straight)
    assert [row["status"] for row in csv.DictReader(open(out / "summary.csv"))] == ["finished", "unfinished"]


def test_a_failed_point_does_not_stop_the_others(capsys, tmp_path, run_yaml, one_thread):
    out = tmp_path / "sweep"
    assert cli.main(["sweep", str(run_yaml), "model.config.lr=1e30,0.01", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    failed = printed.split(f"[1/2] failed   {out / 'lr=1e+30'} (error: ", 1)[1].splitlines()[0]
    assert "is nan at step 1" in failed and f"[2/2] finished {out / 'lr=0.01'}" in printed
    assert printed.rstrip().endswith("1 of 2 points failed: lr=1e+30; rerun the same command to retry them")


def test_the_readme_sweep_is_a_valid_grid(tmp_path):
    readme = (ROOT / "README.md").read_text()
    (tmp_path / "gw.yaml").write_text(readme.split("```yaml\n# gw.yaml\n", 1)[1].split("```", 1)[0])
    command = readme.split("### Sweeps\n\n```bash\n", 1)[1].splitlines()[0].split()
    assert command[:3] == ["dynrep", "sweep", "gw.yaml"] and command[-4:] == ["--out", "runs/sweep", "--jobs", "2"]
    sweep = sweeps.prepare(tmp_path / "gw.yaml", command[3:-4], tmp_path / "sweep")
    assert list(sweep.points) == [f"seed={seed},lr={lr}" for seed in range(3) for lr in ("0.001", "0.0001")]
    assert sweep.base.trainer.steps == 2000 and sweep.config("seed=2,lr=0.0001").model.config["lr"] == 1e-4
    assert (tmp_path / "sweep" / "sweep.yaml").is_file()
    preset = readme.split("### Sweeps\n\n```bash\n", 1)[1].splitlines()[2].split("#")[0].split()
    assert preset[:3] == ["dynrep", "sweep", "preset:quessard-gridworld-small"] and preset[-4] == "--out"
    sweep = sweeps.prepare(preset[2], preset[3:-4], tmp_path / "seeds")
    assert list(sweep.points) == ["seed=0", "seed=1", "seed=2"] and sweep.base.model.name == "rotation"


def test_points_stopped_by_their_time_limit_are_partial_and_continue(capsys, tmp_path, run_yaml, one_thread):
    out = tmp_path / "sweep"
    argv = ["sweep", str(run_yaml), "seed=0,1", "trainer.steps=1000000", "trainer.time_limit=0.05", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count(" stopped  ") == 2 and "of 1000000 by trainer.time_limit; rerun to go on)" in printed
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [row["status"] for row in rows] == ["partial", "partial"] and png_bytes_ok(out / "summary.png")
    steps = [int(row["step"]) for row in rows]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count(" resumed  ") == 2
    assert all(int(row["step"]) > step for row, step in zip(csv.DictReader(open(out / "summary.csv")), steps))
