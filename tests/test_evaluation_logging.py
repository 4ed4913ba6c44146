"""Periodic evaluation (PeriodicEvaluation, trainer.eval_every, --eval-every) reaching every logger; the
traversal image; Weights & Biases in offline mode; loggers that do nothing before training."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_same_params, params_of, tiny_learner
from dynrep import RepresentationLearner
from dynrep.training import JsonlLogger, PeriodicEvaluation, TensorBoardLogger, WandbLogger, metrics_path
from dynrep.training.callbacks import Callback
from dynrep.viz.gif import traversal_frames, traversal_grid


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def evaluations(path: Path) -> list[tuple[int, dict]]:
    return [(r["step"], r["evaluation"]) for r in read_jsonl(path) if "evaluation" in r]


def accumulator(log_dir: Path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_evaluations_reach_the_jsonl_and_tensorboard(tmp_path, one_thread):
    learner = tiny_learner()
    periodic = PeriodicEvaluation(partial(learner.evaluate, metrics=["mig"], num_train=60, num_test=30), every=4)
    learner.train(10, checkpoint_dir=tmp_path / "ck", log_every=5, progress=False,
                  callbacks=[periodic, TensorBoardLogger(tmp_path / "tb", every=5, images_every=None)])
    # every 4th step and the last one (at_end)
    assert [step for step, _ in periodic.history] == [4, 8, 10]
    assert evaluations(metrics_path(tmp_path / "ck")) == periodic.history
    # the last evaluation is the learner's evaluation of the trained weights
    assert periodic.history[-1][1] == learner.evaluate(metrics=["mig"], num_train=60, num_test=30)
    scores = periodic.history[0][1]
    assert {"reconstruction_error", "prediction_error/1", "mig"} <= set(scores)
    events = accumulator(tmp_path / "tb")
    assert {f"eval/{name}" for name in scores} <= set(events.Tags()["scalars"])
    for name in scores:
        logged = events.Scalars(f"eval/{name}")
        assert [e.step for e in logged] == [4, 8, 10]
        assert [e.value for e in logged] == pytest.approx([s[name] for _, s in periodic.history], rel=1e-6)
    assert [e.step for e in events.Scalars("loss/loss")] == [5, 10]


def test_training_with_and_without_evaluation_is_bitwise_identical(tmp_path, one_thread):
    plain, watched = tiny_learner(), tiny_learner()
    plain.train(6, progress=False)
    evaluate = partial(watched.evaluate, metrics=["mig"], num_train=60, num_test=30)
    watched.train(6, progress=False, checkpoint_dir=tmp_path / "ck", log_every=1, callbacks=[
        PeriodicEvaluation(evaluate, every=2),
        TensorBoardLogger(tmp_path / "tb", every=1, images_every=2, num_frames=3)])
    assert plain.history == watched.history
    assert_same_params(params_of(plain.model), params_of(watched.model))
    for a, b in zip(plain.trainer.optimizer.state_dict()["state"].values(),
                    watched.trainer.optimizer.state_dict()["state"].values()):
        assert all(torch.equal(a[key], b[key]) for key in a)
    assert plain.trainer.rng.bit_generator.state == watched.trainer.rng.bit_generator.state
    assert torch.equal(plain.trainer.generator.get_state(), watched.trainer.generator.get_state())


class _Probe(Callback):
    """Records the model's mode after each step's other callbacks."""

    def __init__(self):
        self.modes = []

    def on_step_end(self, trainer, logs):
        self.modes.append(trainer.model.training)


def test_an_evaluation_runs_in_eval_mode_without_grad_and_keeps_the_global_generator(one_thread):
    learner = tiny_learner()
    seen = []

    def evaluate():
        seen.append((learner.model.training, torch.is_grad_enabled()))
        return {"noise": float(torch.rand(()))}  # draws from the global generator

    probe = _Probe()
    state = torch.random.get_rng_state()
    learner.train(3, progress=False, callbacks=[PeriodicEvaluation(evaluate, every=1), probe])
    assert seen == [(False, False)] * 3
    assert probe.modes == [True] * 3  # back in training mode for the next step
    assert torch.equal(torch.random.get_rng_state(), state)


class _Slow:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self) -> dict[str, float]:
        time.sleep(self.seconds)
        return {"score": 1.0}


def test_time_spent_evaluating_is_left_out_of_steps_per_s(tmp_path, one_thread):
    learner = tiny_learner()
    learner.train(6, checkpoint_dir=tmp_path / "ck", log_every=2, progress=False,
                  callbacks=[PeriodicEvaluation(_Slow(0.3), every=1)])
    records = read_jsonl(metrics_path(tmp_path / "ck"))
    rates = [r["steps_per_s"] for r in records if "terms" in r]
    # with the two 0.3 s evaluations counted, a rate would be below 2 / 0.6 steps/s
    assert len(rates) == 3 and min(rates) > 10, rates
    assert [r["seconds"] for r in records if "evaluation" in r] == [pytest.approx(0.3, abs=0.2)] * 6


def test_no_evaluation_at_the_end_of_an_early_stop_or_with_at_end_false(one_thread):
    learner = tiny_learner()
    periodic = PeriodicEvaluation(_Slow(0), every=4, at_end=False)
    learner.train(6, progress=False, callbacks=[periodic])
    assert [step for step, _ in periodic.history] == [4]
    periodic = PeriodicEvaluation(_Slow(0), every=100)
    learner.train(50, progress=False, time_limit=1e-9, callbacks=[periodic])
    assert periodic.history == []


def test_resume_keeps_evaluation_lines_up_to_the_checkpoint(tmp_path, one_thread):
    learner = tiny_learner()
    evaluate = partial(learner.evaluate, metrics=[])
    learner.train(6, checkpoint_dir=tmp_path / "ck", log_every=3, progress=False,
                  callbacks=[PeriodicEvaluation(evaluate, every=4)])
    path = metrics_path(tmp_path / "ck")
    # killed after its checkpoint: an evaluation line of a step the resumed run redoes, then a torn line
    with path.open("a") as f:
        f.write(json.dumps({"step": 8, "evaluation": {"reconstruction_error": -1.0}}) + "\n" + '{"step": 9, "ev')
    resumed = RepresentationLearner.load(tmp_path / "ck")
    periodic = PeriodicEvaluation(partial(resumed.evaluate, metrics=[]), every=4)
    resumed.train(4, checkpoint_dir=tmp_path / "ck", log_every=3, progress=False, callbacks=[periodic])
    records = read_jsonl(path)
    kinds = [(r["step"], "evaluation" if "evaluation" in r else "terms") for r in records]
    assert sorted(kinds) == [(3, "terms"), (4, "evaluation"), (6, "evaluation"), (6, "terms"),
                             (8, "evaluation"), (9, "terms"), (10, "evaluation"), (10, "terms")]
    assert evaluations(path)[2:] == periodic.history
    assert all(score >= 0 for _, scores in evaluations(path) for score in scores.values())


def test_the_traversal_image_is_the_traversal_gifs_frames(tmp_path, one_thread):
    learner = tiny_learner()
    logger = TensorBoardLogger(tmp_path / "tb", every=4, images_every=4, num_frames=5)
    learner.train(8, progress=False, callbacks=[logger])
    events = accumulator(tmp_path / "tb")
    assert {"reconstructions", "traversal"} <= set(events.Tags()["images"])
    images = events.Images("traversal")
    assert [e.step for e in images] == [4, 8]
    frames, labels = traversal_frames(learner.model, learner.env, logger.episodes.obs[:1, 0], 5)
    assert frames.shape == (len(labels), 5, 16, 16, 3) and labels == list(learner.model.action_names)
    expected = traversal_grid(frames, labels)  # the last image is of the trained model
    # 16-pixel frames are drawn at 64 as in the GIF, with a 2-pixel gap, under two text lines
    assert expected.shape == (2 * 12 + 5 * 66 + 2, len(labels) * 66 + 2, 3)
    for f in range(5):  # frame f of traversal r, drawn 4x, at row f, column r, below the text lines
        for r in range(len(labels)):
            top, left = 2 * 12 + 2 + f * 66, 2 + r * 66
            np.testing.assert_array_equal(expected[top:top + 64, left:left + 64],
                                          frames[r, f].repeat(4, axis=0).repeat(4, axis=1))
    from PIL import Image
    logged = np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    np.testing.assert_array_equal(logged, expected)


def test_num_frames_none_logs_no_traversal(tmp_path, one_thread):
    learner = tiny_learner()
    learner.train(2, progress=False, callbacks=[TensorBoardLogger(tmp_path / "tb", every=1, images_every=1,
                                                                  num_frames=None)])
    assert accumulator(tmp_path / "tb").Tags()["images"] == ["reconstructions"]
    with pytest.raises(ValueError, match="num_frames must be >= 2, got 1"):
        TensorBoardLogger(tmp_path / "tb", num_frames=1)


def test_animate_traversal_still_writes_the_same_frames(tmp_path, one_thread):
    import imageio.v3 as iio
    learner = tiny_learner()
    path = learner.animate(tmp_path / "t.gif", kind="traversal", num_frames=3)
    assert iio.imread(path, index=None).shape[0] == 3


def test_loggers_do_nothing_before_training(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    JsonlLogger(tmp_path / "m.jsonl")
    TensorBoardLogger(tmp_path / "tb")
    WandbLogger(tmp_path / "wb", mode="offline")
    assert list(tmp_path.iterdir()) == []


def test_missing_wandb_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install dynrep\[wandb\]"):
        WandbLogger(tmp_path / "wb")


def test_bad_eval_every_is_named(tmp_path, capsys):
    from dynrep import cli
    from dynrep.runs import RunConfig, apply_overrides
    with pytest.raises(ValueError, match=r"trainer.eval_every must be >= 1, got 0"):
        apply_overrides(RunConfig(), ["trainer.eval_every=0"])
    assert cli.main(["train", "--steps", "1", "--out", str(tmp_path / "x"), "--eval-every", "0"]) == 2
    assert capsys.readouterr().err.strip() == "dynrep train: error: --eval-every must be >= 1, got 0"
    with pytest.raises(ValueError, match="eval_every must be >= 1, got 0"):
        PeriodicEvaluation(_Slow(0), every=0)


TINY_RUN = ["trainer.steps=6", "trainer.log_every=3", "trainer.device=cpu", "model.config.latent_dim=4",
            "model.config.channels=[4,8]", "model.config.hidden=32", "model.config.batch_size=2",
            "model.config.episode_length=2", "env.args.size=3", "env.args.image_size=16",
            "evaluation.metrics=[mig]", "evaluation.num_train=60", "evaluation.num_test=30"]


def test_a_run_evaluates_its_last_step_once(tmp_path, monkeypatch, one_thread):
    from dynrep.runs import RunConfig, apply_overrides, run
    calls = []
    evaluate = RepresentationLearner.evaluate

    def counted(self, *args, **kwargs):
        calls.append(self.step)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(RepresentationLearner, "evaluate", counted)
    config = apply_overrides(RunConfig(), [*TINY_RUN, "trainer.eval_every=4"])
    _, scores = run(config, tmp_path / "r")
    assert calls == [4, 6]
    logged = evaluations(tmp_path / "r" / "checkpoint.metrics.jsonl")
    assert [step for step, _ in logged] == [4, 6] and logged[-1][1] == scores
    calls.clear()
    run(apply_overrides(config, ["trainer.eval_every=null"]), tmp_path / "plain")
    assert calls == [6]
    assert evaluations(tmp_path / "plain" / "checkpoint.metrics.jsonl") == []


TINY_FLAGS = ["--quiet", "--device", "cpu", "--set", "channels=[4,8]", "--set", "hidden=32", "--set", "batch_size=2",
              "--set", "episode_length=2", "--env-arg", "size=3", "--env-arg", "image_size=16"]


def test_cli_flags_eval_every_and_both_loggers(tmp_path, monkeypatch, one_thread):
    pytest.importorskip("wandb")
    from dynrep import cli
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    evaluate = RepresentationLearner.evaluate
    # the flags' evaluation is `dynrep evaluate`'s (all default metrics at full size): made small here
    monkeypatch.setattr(RepresentationLearner, "evaluate", lambda self: evaluate(self, metrics=[]))
    out = tmp_path / "runs" / "gw"
    assert cli.main(["train", "--steps", "5", "--out", str(out), "--eval-every", "2", "--logger",
                     "tensorboard,wandb", *TINY_FLAGS]) == 0
    assert [step for step, _ in evaluations(metrics_path(out))] == [2, 4, 5]
    assert [e.step for e in accumulator(tmp_path / "runs" / "gw.tensorboard").Scalars("eval/reconstruction_error")] \
        == [2, 4, 5]
    (run_dir,) = (tmp_path / "runs" / "wandb").glob("offline-run-*")  # wandb's own folder beside the checkpoint
    records = wandb_records(run_dir)
    assert [r["run"]["display_name"] for r in records if r["type"] == "run"] == ["gw"]


def wandb_records(run_dir: Path) -> list[dict]:
    """The records of an offline wandb run, read back with wandb's own reader (``wandb leet inspect``)."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(run_dir)], capture_output=True,
                         text=True, check=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_run_config_eval_every_with_tensorboard_and_wandb_offline(tmp_path, monkeypatch, one_thread):
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    from dynrep import cli
    from dynrep.runs import RunConfig, save_run_config
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = tmp_path / "run.yaml"
    save_run_config(RunConfig(), config)
    run = tmp_path / "r"
    assert cli.main(["train", str(config), *TINY_RUN, "trainer.logger=tensorboard,wandb", "--eval-every", "4",
                     "--out", str(run), "--quiet"]) == 0
    assert "eval_every: 4" in (run / "run.yaml").read_text()
    evals = evaluations(run / "checkpoint.metrics.jsonl")
    assert [step for step, _ in evals] == [4, 6]  # the last one is scores.json's: not evaluated twice
    saved = json.loads((run / "scores.json").read_text())
    assert (saved["step"], saved["scores"]) == (6, evals[-1][1])
    assert [e.step for e in accumulator(run / "tensorboard").Scalars("eval/mig")] == [4, 6]

    history = RepresentationLearner.load(run / "checkpoint").history
    (run_dir,) = (run / "wandb").glob("offline-run-*")
    records = wandb_records(run_dir)
    rows = {r["history"]["step"]["num"]: r["history"]["item"] for r in records if r["type"] == "history"}
    assert sorted(rows) == [3, 4, 6]
    for step in (3, 6):
        for name, values in history.items():
            assert rows[step][f"loss/{name}"] == pytest.approx(values[step - 1], rel=1e-6)
        assert rows[step]["perf/steps_per_s"] > 0 and "lr/group0" in rows[step]
    for step, scores in evals:
        for name, value in scores.items():
            assert rows[step][f"eval/{name}"] == pytest.approx(value, rel=1e-6)
    (run_record,) = [r["run"] for r in records if r["type"] == "run"]
    assert run_record["display_name"] == "r" and run_record["project"] == "dynrep"
    assert run_record["config"]["update"]["model"]["name"] == "rotation"
    assert run_record["config"]["update"]["trainer"]["eval_every"] == 4
    # a resumed run folder with a wandb folder in it is still a run folder
    assert cli.main(["resume", str(run), "--steps", "2", "--quiet"]) == 0
    resumed = sorted((run / "wandb").glob("offline-run-*"))
    assert len(resumed) == 2  # in the run folder, not in $WANDB_DIR
    assert not list((tmp_path / "wandb-home").rglob("offline-run-*"))
    run_id = RepresentationLearner.load(run / "checkpoint").run_id
    # one wandb run, which `wandb sync` joins (two calls within one second get folders ...-ID and ...-ID-1)
    assert all(f"-{run_id}" in folder.name for folder in resumed)
    assert {r["run"]["run_id"] for folder in resumed for r in wandb_records(folder) if r["type"] == "run"} == {run_id}


def test_wandb_logger_offline_images_and_config(tmp_path, monkeypatch, one_thread):
    pytest.importorskip("wandb")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    learner = tiny_learner()
    logger = WandbLogger(tmp_path / "out", every=3, images_every=3, project="p", name="n", mode="offline",
                         num_frames=3, config={"hello": [1, 2]})
    learner.train(6, progress=False, callbacks=[logger])
    (run_dir,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    records = wandb_records(run_dir)
    rows = {r["history"]["step"]["num"]: r["history"]["item"] for r in records if r["type"] == "history"}
    assert sorted(rows) == [3, 6]
    labels = learner.model.action_names
    for row in rows.values():
        assert row["reconstructions._type"] == "image-file" and row["traversal._type"] == "image-file"
        assert (row["traversal.height"], row["traversal.width"]) == (2 * 12 + 3 * 66 + 2, len(labels) * 66 + 2)
        c = learner.model.config
        assert (row["reconstructions.height"], row["reconstructions.width"]) == \
            (4 * 2 * 16, (c.episode_length + 1) * 16)
        assert (run_dir / "files" / row["traversal.path"]).is_file()
    assert rows[6]["loss/loss"] == pytest.approx(learner.history["loss"][5], rel=1e-6)
    (run_record,) = [r["run"] for r in records if r["type"] == "run"]
    assert (run_record["project"], run_record["display_name"]) == ("p", "n")
    assert run_record["config"]["update"]["hello"] == [1, 2]
    assert any(r["type"] == "exit" and r["exit"].get("exit_code", 0) == 0 for r in records)
