"""Host syncs (``sync_every``): the loss terms stay on the device between syncs and every result is bitwise
the same as syncing each step: history, parameters, Adam state, generators, checkpoints, logs, and the stop
at a non-finite loss (its step, message and state) with the resume after it."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from conftest import assert_same_params, params_of, tiny_learner
from dynrep import RepresentationLearner, cli
from dynrep.runs import TrainerConfig, load_run_config, save_run_config
from dynrep.training import (BestValidation, Callback, Checkpoint, NonFiniteLossError, PeriodicEvaluation,
                             TensorBoardLogger, load_checkpoint)
from dynrep.training.optim import EagerAdam
from dynrep.training.trainer import default_sync_every
from test_training import poison_loss


def trainer_state(learner) -> dict:
    """Everything a checkpoint holds, the step and the history."""
    return learner.trainer.state_dict()


def assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["history"] == b["history"] and a["numpy_rng"] == b["numpy_rng"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert_same_params(a["model"], b["model"])
    ao, bo = a["optimizer"], b["optimizer"]
    assert ao["param_groups"] == bo["param_groups"] and ao["state"].keys() == bo["state"].keys()
    for key in ao["state"]:
        assert_same_params(ao["state"][key], bo["state"][key])


@pytest.mark.parametrize("model", ["rotation", "vae"])
def test_every_sync_cadence_trains_bitwise_alike(model, tmp_path, one_thread):
    states, files = [], []
    for sync_every in (1, 7):
        learner = tiny_learner(model, lr_decay_steps=4, lr_decay_rate=0.5)
        learner.train(10, progress=False, sync_every=sync_every)
        learner.train(5, progress=False, sync_every=sync_every, checkpoint_dir=tmp_path / f"ck{sync_every}")
        assert all(len(values) == 15 for values in learner.history.values())
        states.append(trainer_state(learner))
        files.append((tmp_path / f"ck{sync_every}" / "state.pt").read_bytes())
    assert_same_state(*states)
    assert files[0] == files[1]


def count_syncs(monkeypatch) -> dict[str, int]:
    """Counts every ``Tensor.tolist`` and ``Tensor.item`` call (the host waiting for the device)."""
    calls = {"tolist": 0, "item": 0}
    for name in calls:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("model,sync_every,progress,logged,syncs", [
    ("rotation", 5, False, False, 4), ("vae", 5, False, False, 4), ("rotation", 10, True, True, 2),
    ("rotation", None, False, False, 20)])
def test_one_host_sync_per_sync_every_steps(monkeypatch, tmp_path, one_thread, model, sync_every, progress, logged,
                                            syncs):
    """None on CPU: every step (a sync costs nothing there). The progress bar and the metrics.jsonl read every
    10th step's terms, a step synced already."""
    learner = tiny_learner(model)
    calls = count_syncs(monkeypatch)
    learner.train(20, progress=progress, sync_every=sync_every, checkpoint_dir=tmp_path / "ck" if logged else None)
    assert calls == {"tolist": syncs, "item": 0}
    assert all(len(values) == 20 for values in learner.history.values())


def test_the_default_cadence_is_every_step_on_cpu_and_every_10th_on_a_gpu():
    assert default_sync_every(torch.device("cpu")) == 1
    assert default_sync_every(torch.device("cuda", 1)) == default_sync_every(torch.device("mps")) == 10


def test_callbacks_that_do_not_promise_lazy_logs_or_a_plain_adam_sync_every_step(monkeypatch, one_thread):
    class Watch(Callback):
        def on_step_end(self, trainer, logs):
            pass

    class Finish(Callback):  # no step hooks: no need to sync
        def on_train_end(self, trainer, reason):
            pass

    learner = tiny_learner()
    calls = count_syncs(monkeypatch)
    learner.train(6, progress=False, sync_every=3, callbacks=[Finish()])
    assert calls["tolist"] == 2
    learner.train(6, progress=False, sync_every=3, callbacks=[Watch()])
    assert calls["tolist"] == 2 + 6
    trainer = learner.trainer
    trainer.optimizer = EagerAdam(trainer.optimizer.param_groups, fused=False)  # cannot skip an update
    learner.train(6, progress=False, sync_every=3)
    assert calls["tolist"] == 2 + 6 + 6


def test_logs_read_lazily_are_the_history(one_thread):
    seen = {}

    class Every3(Callback):
        lazy_logs = True

        def on_step_end(self, trainer, logs):
            assert sorted(logs) == ["entanglement", "loss", "reconstruction"] and "loss" in logs
            if trainer.step % 3 == 0:
                seen[trainer.step] = dict(logs)

    learner = tiny_learner()
    learner.train(9, progress=False, sync_every=4, callbacks=[Every3()])
    assert seen == {step: {name: values[step - 1] for name, values in learner.history.items()}
                    for step in (3, 6, 9)}


@pytest.mark.parametrize("model,at_step", [("rotation", 0), ("rotation", 3), ("vae", 3), ("rotation", 6),
                                           ("vae", 8)])
def test_a_non_finite_step_found_at_a_later_sync_is_undone(monkeypatch, tmp_path, one_thread, model, at_step):
    """sync_every=7 over 12 steps syncs before the updates of steps 6 and 11: a NaN at step 3 is found 3
    steps later, one at 6 at once, one at 8 at the sync of step 11; the state then is sync_every=1's (the vae
    draws noise from the torch generator)."""
    results = []
    for sync_every in (1, 7):
        learner = tiny_learner(model, lr_decay_steps=2, lr_decay_rate=0.5)
        learner.train(2, progress=False)  # some Adam state before the NaN
        with monkeypatch.context() as patch:
            seen = poison_loss(patch, learner, at_step=2 + at_step, term="reconstruction", value=float("nan"))
            with pytest.raises(NonFiniteLossError) as info:
                learner.train(12, progress=False, sync_every=sync_every, checkpoint_dir=tmp_path / f"ck{sync_every}")
        assert learner.step == 2 + at_step
        assert_same_params(seen["params"], params_of(learner.model))
        results.append((str(info.value).replace(f"ck{sync_every}", "ck"), trainer_state(learner),
                        load_checkpoint(tmp_path / f"ck{sync_every}")[1]))
    (message, state, saved), (message7, state7, saved7) = results
    assert message7 == message and f"at step {2 + at_step}" in message
    assert learner.trainer.optimizer.found_inf is None  # what fit skips, a step outside it does not
    assert_same_state(state, state7)
    assert_same_state(saved, saved7)
    assert_same_state(state, saved)
    resumed = [RepresentationLearner.load(tmp_path / f"ck{sync_every}", device="cpu") for sync_every in (1, 7)]
    for learner, sync_every in zip(resumed, (1, 7)):
        learner.train(5, progress=False, sync_every=sync_every)
    assert_same_state(*map(trainer_state, resumed))


def test_a_non_finite_first_step_leaves_no_adam_state(monkeypatch, one_thread):
    learner = tiny_learner("vae")
    poison_loss(monkeypatch, learner, at_step=0, term="kl", value=float("inf"), into_total=False)
    with pytest.raises(NonFiniteLossError, match=r"loss term 'kl' is inf at step 0"):
        learner.train(9, progress=False, sync_every=4)
    assert learner.step == 0 and learner.history == {} and learner.trainer.optimizer.state_dict()["state"] == {}


def test_buffers_changed_by_later_steps_are_rewound(monkeypatch, one_thread):
    """A model that changes a buffer in its forward pass (rgrvae's running statistics) keeps the value of
    the non-finite step's forward pass, as when it is caught at once."""
    counts = []
    for sync_every in (1, 5):
        learner = tiny_learner()
        learner.model.register_buffer("forwards", torch.zeros(()))
        with monkeypatch.context() as patch:
            poison_loss(patch, learner, at_step=1, term="reconstruction", value=float("nan"))
            poisoned = learner.model.loss

            def loss(batch, step, generator=None):
                learner.model.forwards += 1
                return poisoned(batch, step, generator)

            patch.setattr(learner.model, "loss", loss)
            with pytest.raises(NonFiniteLossError, match="at step 1"):
                learner.train(8, progress=False, sync_every=sync_every)
        counts.append(float(learner.model.forwards))
    assert counts == [2.0, 2.0]


def test_logs_progress_and_evaluations_at_a_non_finite_stop_are_those_of_sync_every_1(
        monkeypatch, tmp_path, one_thread, capsys):
    outputs = []
    for sync_every in (1, 7):
        learner = tiny_learner()
        periodic = PeriodicEvaluation(lambda: {"x": 1.0}, every=4)
        with monkeypatch.context() as patch:
            poison_loss(patch, learner, at_step=5, term="reconstruction", value=float("nan"))
            with pytest.raises(NonFiniteLossError, match="at step 5"):
                learner.train(12, checkpoint_dir=tmp_path / f"ck{sync_every}", log_every=2, sync_every=sync_every,
                              callbacks=[periodic])
        lines = [json.loads(line) for line in (tmp_path / f"ck{sync_every}.metrics.jsonl").read_text().splitlines()]
        terms = [(r["step"], r.get("terms"), r.get("lr"), r.get("evaluation")) for r in lines]
        printed = capsys.readouterr()
        outputs.append((terms, periodic.history, re.findall(r"(\d+)/12", printed.err)[-1], printed.out))
    assert outputs[0] == outputs[1]
    terms, evaluations, count, message = outputs[0]
    # sync_every=7 finds the NaN of step 5 when the logger reads step 6: the bar has counted 6 steps by then
    assert [step for step, *_ in terms] == [2, 4, 4, 5] and [s for s, _ in evaluations] == [4]
    assert all(math.isfinite(v) for _, t, _, _ in terms if t for v in t.values())
    assert count == "5" and message == "stopped by a non-finite loss at step 5\n"


def test_a_checkpoint_never_saves_a_step_after_a_non_finite_one(monkeypatch, one_thread):
    learner = tiny_learner()
    saved = []
    poison_loss(monkeypatch, learner, at_step=3, term="reconstruction", value=float("nan"))
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        learner.train(12, progress=False, sync_every=7,
                      callbacks=[Checkpoint(lambda: saved.append(learner.trainer.step), every=5)])
    assert saved == [3]


@pytest.mark.parametrize("pictures_first", [True, False])
def test_validation_and_pictures_never_see_a_step_after_a_non_finite_one(monkeypatch, tmp_path, one_thread,
                                                                         pictures_first):
    learner = tiny_learner()
    validation = BestValidation(learner.env.sample_trajectories(8, 3, np.random.default_rng(1)), every=2)
    pictures = TensorBoardLogger(tmp_path / "tb", every=100, images_every=2)
    pictured = []
    monkeypatch.setattr(pictures, "write_images", lambda trainer: pictured.append(trainer.step))
    poison_loss(monkeypatch, learner, at_step=3, term="reconstruction", value=float("nan"))
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        callbacks = [pictures, validation] if pictures_first else [validation, pictures]
        learner.train(12, progress=False, sync_every=7, callbacks=callbacks)
    assert [step for step, _ in validation.history] == [2] and pictured == [2]


def test_validation_reads_no_loss_terms(monkeypatch, one_thread):
    learner = tiny_learner()
    validation = BestValidation(learner.env.sample_trajectories(8, 3, np.random.default_rng(1)), every=5)
    calls = count_syncs(monkeypatch)
    learner.train(10, progress=False, sync_every=5, callbacks=[validation])
    assert calls["tolist"] == 2 and len(validation.history) == 2


@pytest.mark.parametrize("value", [0, 2.5, "3"])
def test_a_bad_sync_every_is_named(value):
    learner = tiny_learner()
    with pytest.raises(ValueError, match="sync_every must be"):
        learner.train(2, progress=False, sync_every=value)
    with pytest.raises(ValueError, match="trainer.sync_every must be"):
        TrainerConfig(sync_every=value)
    assert learner.step == 0


def test_the_command_line_flag(monkeypatch, tmp_path, one_thread, capsys):
    from test_cli import TINY_ENV, TINY_SET
    from test_runs import tiny_config
    calls = count_syncs(monkeypatch)
    assert cli.main(["train", "--steps", "4", "--out", str(tmp_path / "flag"), "--quiet", "--device", "cpu",
                     "--sync-every", "2", *TINY_SET, *TINY_ENV]) == 0
    assert calls["tolist"] == 2
    save_run_config(tiny_config(steps=2), tmp_path / "run.yaml")
    assert cli.main(["train", str(tmp_path / "run.yaml"), "--sync-every", "3", "--out", str(tmp_path / "r"),
                     "--quiet"]) == 0
    assert load_run_config(tmp_path / "r" / "run.yaml").trainer.sync_every == 3
    assert cli.main(["train", "--steps", "4", "--out", str(tmp_path / "bad"), "--quiet", "--device", "cpu",
                     "--sync-every", "0", *TINY_SET, *TINY_ENV]) == 2
    assert "sync_every must be >= 1, got 0" in capsys.readouterr().err


def test_a_read_before_the_update_finds_an_earlier_non_finite_step(monkeypatch, one_thread):
    class ReadBeforeUpdate(Callback):
        lazy_logs = True

        def on_loss(self, trainer, logs):
            if trainer.step == 4:
                dict(logs)

    states = []
    for sync_every in (1, 7):
        learner = tiny_learner("vae")
        with monkeypatch.context() as patch:
            poison_loss(patch, learner, at_step=2, term="kl", value=float("nan"))
            with pytest.raises(NonFiniteLossError, match="'kl' is nan at step 2"):
                learner.train(12, progress=False, sync_every=sync_every, callbacks=[ReadBeforeUpdate()])
        states.append(trainer_state(learner))
    assert_same_state(*states)
