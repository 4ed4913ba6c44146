"""Logging callbacks: metrics.jsonl beside the checkpoint, tensorboard event files, the missing-package error."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_learner
from dynrep import RepresentationLearner
from dynrep.training.logging import JsonlLogger, TensorBoardLogger, image_grid, metrics_path

KEYS = {"step", "terms", "lr", "steps_per_s", "elapsed_s", "time"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_matches_history(records: list[dict], history: dict[str, list[float]]) -> None:
    for record in records:
        assert set(record) == KEYS
        assert record["terms"].keys() == history.keys()
        for name, value in record["terms"].items():
            assert value == history[name][record["step"] - 1], (name, record["step"])
        assert record["steps_per_s"] > 0 and record["elapsed_s"] >= 0


def test_metrics_path_is_beside_the_checkpoint(tmp_path):
    assert metrics_path(tmp_path / "runs" / "gw") == tmp_path / "runs" / "gw.metrics.jsonl"


def test_learner_writes_one_line_per_logged_step_beside_the_checkpoint(tmp_path, one_thread):
    learner = tiny_learner(lr_decay_steps=3, lr_decay_rate=0.5)
    learner.train(10, checkpoint_dir=tmp_path / "ck", log_every=4, progress=False)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "state.pt"]
    records = read_jsonl(tmp_path / "ck.metrics.jsonl")
    assert [r["step"] for r in records] == [4, 8, 10]  # every 4th step and the last one
    assert_matches_history(records, learner.history)
    # The rate each group had for the update of that step, halved every 3 updates (step s is update s - 1).
    for record in records:
        expected = [base * 0.5 ** ((record["step"] - 1) // 3) for base in learner.trainer.base_lrs]
        assert record["lr"] == pytest.approx(expected)


def test_resume_appends_and_drops_steps_after_the_checkpoint(tmp_path, one_thread):
    learner = tiny_learner()
    learner.train(6, checkpoint_dir=tmp_path / "ck", log_every=3, progress=False)
    path = metrics_path(tmp_path / "ck")
    # A run killed after its checkpoint logged steps the resumed run will redo, then died mid-line.
    with path.open("a") as f:
        f.write(json.dumps({"step": 9, "terms": {"loss": -1.0}}) + "\n" + '{"step": 1')
    resumed = RepresentationLearner.load(tmp_path / "ck")
    resumed.train(3, checkpoint_dir=tmp_path / "ck", log_every=3, progress=False)
    records = read_jsonl(path)
    assert [r["step"] for r in records] == [3, 6, 9]
    assert_matches_history(records, resumed.history)


def test_log_every_none_writes_nothing_and_a_bad_value_is_named(tmp_path, one_thread):
    learner = tiny_learner()
    learner.train(2, checkpoint_dir=tmp_path / "ck", log_every=None, progress=False)
    assert not metrics_path(tmp_path / "ck").exists()
    with pytest.raises(ValueError, match="log_every.*0"):
        learner.train(2, checkpoint_dir=tmp_path / "ck", log_every=0, progress=False)


KILLED_RUN = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from conftest import tiny_learner
    from dynrep.training.logging import JsonlLogger
    torch.set_num_threads(1)
    tiny_learner().train(100000, progress=False, callbacks=[JsonlLogger({path!r}, every=1)])
""")


def test_a_killed_process_leaves_whole_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), path=str(path))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (path.exists() and path.read_bytes().count(b"\n") >= 30):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run logged too few steps in time"
            time.sleep(0.05)
        time.sleep(0.123)  # then kill at a moment unrelated to the child's line boundaries
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    data = path.read_bytes()
    assert data.endswith(b"\n")
    steps = [json.loads(line)["step"] for line in data.decode().splitlines()]
    assert steps == list(range(1, len(steps) + 1))


def test_image_grid_puts_each_episode_above_its_prediction():
    true = torch.zeros(2, 3, 1, 2, 2, dtype=torch.uint8)
    true[1, 2] = 255
    predicted = torch.full((2, 3, 1, 2, 2), 0.5)
    grid = image_grid(true, predicted)
    assert grid.shape == (1, 2 * 2 * 2, 3 * 2)
    assert torch.equal(grid[:, 0:2], torch.zeros(1, 2, 6))               # episode 0, true
    assert torch.equal(grid[:, 2:4], torch.full((1, 2, 6), 0.5))         # episode 0, predicted
    assert torch.equal(grid[:, 4:6, 4:6], torch.ones(1, 2, 2))           # episode 1, true, last frame
    assert torch.equal(grid[:, 4:6, 0:4], torch.zeros(1, 2, 4))


def test_tensorboard_event_files_hold_every_term_rate_config_and_images(tmp_path, one_thread):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    learner = tiny_learner()
    learner.train(9, progress=False, callbacks=[TensorBoardLogger(tmp_path / "tb", every=3, images_every=4)])
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0,
                                                                                   "tensors": 0})
    events.Reload()
    tags = events.Tags()
    groups = len(learner.trainer.optimizer.param_groups)
    assert set(tags["scalars"]) == ({f"loss/{name}" for name in learner.history} | {"perf/steps_per_s"}
                                    | {f"lr/group{i}" for i in range(groups)})
    for name, values in learner.history.items():
        logged = events.Scalars(f"loss/{name}")
        assert [e.step for e in logged] == [3, 6, 9]
        assert [e.value for e in logged] == pytest.approx([values[2], values[5], values[8]])
    assert [e.value for e in events.Scalars("lr/group0")] == pytest.approx([learner.model.config.lr] * 3)
    images = events.Images("reconstructions")
    assert [e.step for e in images] == [4, 8]
    c = learner.model.config
    assert (images[0].height, images[0].width) == (4 * 2 * 16, (c.episode_length + 1) * 16)
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"name": "rotation"' in text and '"latent_dim": 4' in text


def test_tensorboard_on_a_vector_world_logs_scalars_and_no_images(tmp_path, onehot_env, one_thread):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    learner = tiny_learner(env=onehot_env)
    learner.train(4, progress=False, callbacks=[TensorBoardLogger(tmp_path / "tb", every=2, images_every=1)])
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["images"] == []
    assert [e.step for e in events.Scalars("loss/loss")] == [2, 4]


def test_tensorboard_images_leave_training_unchanged(tmp_path, one_thread):
    pytest.importorskip("tensorboard")
    plain, watched = tiny_learner(), tiny_learner()
    plain.train(4, progress=False)
    watched.train(4, progress=False, callbacks=[TensorBoardLogger(tmp_path / "tb", every=1, images_every=1)])
    assert plain.history == watched.history


def test_missing_tensorboard_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install dynrep\[tensorboard\]"):
        TensorBoardLogger(tmp_path / "tb")


def test_every_is_checked(tmp_path):
    with pytest.raises(ValueError, match="every"):
        JsonlLogger(tmp_path / "m.jsonl", every=0)


TINY_CLI = ["--quiet", "--device", "cpu", "--set", "channels=[4,8]", "--set", "hidden=32", "--set", "batch_size=2",
            "--set", "episode_length=2", "--env-arg", "size=3", "--env-arg", "image_size=16"]


def loss_steps(log_dir: Path) -> list[int]:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = event_accumulator.EventAccumulator(str(log_dir))
    events.Reload()
    return [e.step for e in events.Scalars("loss/loss")]


def test_cli_logger_tensorboard_beside_a_checkpoint(tmp_path, one_thread):
    from dynrep import cli
    out = tmp_path / "gw"
    assert cli.main(["train", "--steps", "20", "--out", str(out), "--logger", "tensorboard", *TINY_CLI]) == 0
    assert loss_steps(tmp_path / "gw.tensorboard") == [10, 20]
    assert [r["step"] for r in read_jsonl(metrics_path(out))] == [10, 20]


def test_run_config_logger_tensorboard_in_the_run_folder(tmp_path, one_thread):
    from dynrep import cli
    from dynrep.runs import RunConfig, save_run_config
    config = tmp_path / "run.yaml"
    save_run_config(RunConfig(), config)
    overrides = ["trainer.steps=6", "trainer.log_every=3", "trainer.device=cpu", "model.config.latent_dim=4",
                 "model.config.channels=[4,8]", "model.config.hidden=32", "model.config.batch_size=2",
                 "model.config.episode_length=2", "env.args.size=3", "env.args.image_size=16", "evaluation.metrics=[]"]
    assert cli.main(["train", str(config), *overrides, "--logger", "tensorboard", "--out", str(tmp_path / "r"),
                     "--quiet"]) == 0
    assert loss_steps(tmp_path / "r" / "tensorboard") == [3, 6]
    assert "logger: tensorboard" in (tmp_path / "r" / "run.yaml").read_text()


def test_a_bad_logger_is_named(tmp_path, capsys):
    from dynrep import cli
    from dynrep.runs import RunConfig, apply_overrides
    for value in ("wandbb", "tensorboard,tensorboard", "tensorboard,"):
        with pytest.raises(ValueError, match=r"trainer.logger must name one or more of tensorboard, wandb, "
                                             r"separated by commas \(e.g. tensorboard,wandb\), got "):
            apply_overrides(RunConfig(), [f"trainer.logger={value}"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--steps", "1", "--out", str(tmp_path / "x"), "--logger", "tb"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --logger: --logger must name one or more of tensorboard, wandb, separated by commas" in err
    assert not (tmp_path / "x").exists()
