"""Trainer: NaN/inf guard, history, step and time budgets, callbacks, periodic checkpoints."""
from __future__ import annotations

import json
import math
import os
import signal
from types import SimpleNamespace

import pytest
import torch

from conftest import assert_same_params, params_of
from dynrep.models.base import LossOutput
from dynrep.training import Callback, NonFiniteLossError, TrainingInterrupted, load_checkpoint
from dynrep.schedules import linear_ramp


def poison_loss(monkeypatch, learner, at_step: int, term: str, value: float, into_total: bool = True):
    """Make ``learner.model.loss`` report ``value`` for ``term`` at optimiser step ``at_step``.

    Returns a dict that receives a copy of the parameters as they were when that loss was computed.
    """
    original = learner.model.loss
    seen = {}

    def loss(batch, step, generator=None):
        out = original(batch, step, generator)
        if step != at_step:
            return out
        seen["params"] = params_of(learner.model)
        bad = out.terms[term] * value if math.isnan(value) else out.terms[term] + value
        total = out.total - out.terms[term] + bad if into_total else out.total
        return LossOutput(total, {**out.terms, term: bad})

    monkeypatch.setattr(learner.model, "loss", loss)
    return seen


# -- NaN / inf guard -------------------------------------------------------------------------
def test_nan_guard_names_step_and_term_and_keeps_parameters(make_learner, monkeypatch):
    learner = make_learner("rotation")
    seen = poison_loss(monkeypatch, learner, at_step=3, term="reconstruction", value=float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"at step 3") as info:
        learner.train(10, progress=False)
    message = str(info.value)
    assert "'reconstruction': nan" in message
    assert isinstance(info.value, FloatingPointError)
    # The failing step did not update anything.
    assert learner.step == 3
    assert_same_params(seen["params"], params_of(learner.model))
    assert all(float(s["step"]) == 3 for s in learner.trainer.optimizer.state_dict()["state"].values())
    assert {k: len(v) for k, v in learner.history.items()} == {"loss": 3, "reconstruction": 3, "entanglement": 3}


def test_inf_guard_names_the_logged_term(make_learner, monkeypatch):
    """A non-finite logged term stops training even when the total it is not part of stays finite."""
    learner = make_learner("vae")
    poison_loss(monkeypatch, learner, at_step=0, term="kl", value=float("inf"), into_total=False)
    before = params_of(learner.model)
    with pytest.raises(NonFiniteLossError, match=r"loss term 'kl' is inf at step 0"):
        learner.train(2, progress=False)
    assert learner.step == 0 and learner.history == {}
    assert_same_params(before, params_of(learner.model))


def test_nan_guard_stops_before_checkpointing_the_bad_step(make_learner, monkeypatch, tmp_path):
    learner = make_learner("rotation")
    poison_loss(monkeypatch, learner, at_step=2, term="entanglement", value=float("nan"))
    with pytest.raises(NonFiniteLossError, match="step 2"):
        learner.train(5, progress=False, checkpoint_dir=tmp_path / "ck", checkpoint_every=1)
    config, state = load_checkpoint(tmp_path / "ck")
    assert config["step"] == 2 and state["step"] == 2


def test_a_nan_stop_saves_the_last_good_state(make_learner, monkeypatch, tmp_path):
    """Without periodic checkpoints, a non-finite loss still leaves the last finite state on disk."""
    learner = make_learner("rotation")
    seen = poison_loss(monkeypatch, learner, at_step=3, term="reconstruction", value=float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"at step 3.*; the checkpoint in .*ck holds that state$"):
        learner.train(10, progress=False, checkpoint_dir=tmp_path / "ck")
    config, state = load_checkpoint(tmp_path / "ck")
    assert config["step"] == 3
    assert_same_params(seen["params"], state["model"])


# -- history and step budget -----------------------------------------------------------------
@pytest.mark.parametrize("model,terms", [("rotation", {"loss", "reconstruction", "entanglement"}),
                                         ("vae", {"loss", "reconstruction", "kl"})])
def test_history_has_one_entry_per_step_for_every_term(make_learner, model, terms):
    learner = make_learner(model)
    history = learner.train(4, progress=False)
    assert history is learner.history
    assert set(history) == terms
    assert all(len(v) == 4 for v in history.values())
    assert all(isinstance(x, float) and math.isfinite(x) for v in history.values() for x in v)
    learner.train(3, progress=False)
    assert all(len(v) == 7 for v in learner.history.values())
    assert learner.step == 7


def test_history_total_matches_terms(make_learner):
    learner = make_learner("rotation", reg_weight=0.5)
    h = learner.train(3, progress=False)
    for k in range(3):
        assert h["loss"][k] == pytest.approx(h["reconstruction"][k] + 0.5 * h["entanglement"][k], rel=1e-5)


def test_training_changes_parameters_and_zero_steps_does_not(make_learner):
    learner = make_learner("rotation")
    before = params_of(learner.model)
    learner.train(0, progress=False)
    assert_same_params(before, params_of(learner.model))
    assert learner.step == 0 and learner.history == {}
    learner.train(1, progress=False)
    after = params_of(learner.model)
    assert not torch.equal(before["angles"], after["angles"])
    assert not learner.model.training  # back in eval mode after training


@pytest.mark.parametrize("steps,message", [(-1, r"steps must be >= 0, got -1"),
                                           (2.5, r"steps must be an integer, got 2\.5")])
def test_bad_steps(make_learner, steps, message):
    learner = make_learner("rotation")
    with pytest.raises(ValueError, match=message):
        learner.train(steps, progress=False)
    assert learner.step == 0


@pytest.mark.parametrize("limit", [0, -1.0, "5", True, float("nan"), float("inf"), [5]])
def test_bad_time_limit(make_learner, limit):
    learner = make_learner("rotation")
    with pytest.raises(ValueError, match=r"time_limit must be a positive finite number of seconds or None, got"):
        learner.train(3, time_limit=limit, progress=False)
    assert learner.step == 0


# -- time budget -----------------------------------------------------------------------------
def fake_clock(monkeypatch):
    """Replace the trainer's clock by one that advances one second per reading."""
    ticks = iter(range(10**6))
    monkeypatch.setattr("dynrep.training.trainer.time", SimpleNamespace(monotonic=lambda: float(next(ticks))))


def test_time_limit_stops_cleanly_with_checkpoint(make_learner, monkeypatch, tmp_path, capsys):
    learner = make_learner("rotation")
    fake_clock(monkeypatch)
    ends = []

    class Record(Callback):
        def on_train_end(self, trainer, reason):
            ends.append(reason)

    # Clock: start=0, checks at 1, 2, 3 (< 3.5: train) and 4 (stop) -> 3 steps.
    learner.train(100, time_limit=3.5, checkpoint_dir=tmp_path / "ck", callbacks=[Record()])
    assert learner.step == 3
    assert ends == ["time_limit"]
    assert "time limit reached at step 3" in capsys.readouterr().out
    config, state = load_checkpoint(tmp_path / "ck")
    assert config["step"] == 3 and state["step"] == 3
    assert len(state["history"]["loss"]) == 3


def test_tiny_time_limit_writes_checkpoint_at_step_zero(make_learner, tmp_path):
    learner = make_learner("rotation")
    learner.train(50, time_limit=1e-9, progress=False, checkpoint_dir=tmp_path / "ck")
    assert learner.step == 0
    config, _ = load_checkpoint(tmp_path / "ck")
    assert config["step"] == 0


@pytest.mark.parametrize("start_step", [0, 4])
def test_time_limit_with_checkpoint_every_still_writes_a_checkpoint(make_learner, tmp_path, start_step):
    """The final checkpoint must be written when training stops, even when no step ran in this call
    (e.g. a resumed run whose budget is already spent, at a step that is a multiple of checkpoint_every)."""
    learner = make_learner("rotation")
    learner.train(start_step, progress=False)
    learner.train(50, time_limit=1e-9, progress=False, checkpoint_dir=tmp_path / "ck", checkpoint_every=2)
    assert learner.step == start_step
    written = (tmp_path / "ck" / "config.json").is_file()
    assert written, f"no checkpoint written when the time limit stopped training at step {start_step}"
    assert load_checkpoint(tmp_path / "ck")[0]["step"] == start_step


def test_steps_reason_without_time_limit(make_learner):
    ends = []

    class Record(Callback):
        def on_train_end(self, trainer, reason):
            ends.append((reason, trainer.step))

    make_learner("vae").train(2, time_limit=1e6, progress=False, callbacks=[Record()])
    assert ends == [("steps", 2)]


# -- callbacks -------------------------------------------------------------------------------
def test_callback_hooks_order_and_arguments(make_learner):
    calls = []

    class Record(Callback):
        def on_train_begin(self, trainer, steps):
            calls.append(("begin", steps, trainer.step))

        def on_loss(self, trainer, logs):
            calls.append(("loss", trainer.step, sorted(logs)))

        def on_step_end(self, trainer, logs):
            calls.append(("end", trainer.step, sorted(logs)))

        def on_train_end(self, trainer, reason):
            calls.append(("done", reason, trainer.step))

    make_learner("rotation").train(2, progress=False, callbacks=[Record()])
    keys = ["entanglement", "loss", "reconstruction"]
    assert calls == [("begin", 2, 0), ("loss", 0, keys), ("end", 1, keys), ("loss", 1, keys), ("end", 2, keys),
                     ("done", "steps", 2)]


def test_checkpoint_every_writes_periodic_checkpoints(make_learner, monkeypatch, tmp_path):
    learner = make_learner("rotation")
    saved_at = []
    original = learner.save
    monkeypatch.setattr(learner, "save", lambda path, **kw: (saved_at.append(learner.step), original(path, **kw))[1])
    learner.train(5, progress=False, checkpoint_dir=tmp_path / "ck", checkpoint_every=2)
    assert saved_at == [2, 4, 5]
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["step"] == 5
    saved_at.clear()
    learner.train(3, progress=False, checkpoint_dir=tmp_path / "ck", checkpoint_every=2)
    assert saved_at == [6, 8]  # the final step was just saved: no duplicate write


def test_checkpoint_argument_errors(make_learner, tmp_path):
    learner = make_learner("rotation")
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint_dir"):
        learner.train(2, progress=False, checkpoint_every=1)
    for every, problem in ((0, ">= 1, got 0"), (2.5, "an integer, got 2.5"), ("2", "an integer, got '2'")):
        with pytest.raises(ValueError, match=f"checkpoint_every must be {problem}"):
            learner.train(2, progress=False, checkpoint_dir=tmp_path / "ck", checkpoint_every=every)
    assert learner.step == 0


def test_progress_false_prints_nothing(make_learner, capsys):
    make_learner("rotation").train(3, progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_bar_is_shown_by_default(make_learner, capsys):
    make_learner("rotation").train(3)
    err = capsys.readouterr().err
    assert "train rotation" in err and "3/3" in err


# -- trainer state and schedules -------------------------------------------------------------
def test_trainer_state_dict_contents(make_learner):
    learner = make_learner("rotation")
    learner.train(2, progress=False)
    state = learner.trainer.state_dict()
    assert set(state) == {"model", "optimizer", "step", "numpy_rng", "torch_rng", "history"}
    assert state["step"] == 2
    assert state["history"] == learner.history
    assert state["torch_rng"].dtype == torch.uint8


def test_trainer_uses_the_model_parameter_groups(make_learner):
    learner = make_learner("rotation", lr=1e-3, lr_angles=0.25)
    groups = learner.trainer.optimizer.param_groups
    assert [g["lr"] for g in groups] == [1e-3, 0.25]
    assert groups[1]["params"][0] is learner.model.angles


def test_linear_ramp():
    assert linear_ramp(0, 0.0, 2.0, 10) == 0.0
    assert linear_ramp(5, 0.0, 2.0, 10) == 1.0
    assert linear_ramp(10, 0.0, 2.0, 10) == 2.0
    assert linear_ramp(99, 0.0, 2.0, 10) == 2.0
    assert linear_ramp(0, 1.0, 3.0, 0) == 3.0
    assert linear_ramp(3, 1.0, 3.0, 4) == 2.5


# -- SIGINT / SIGTERM ------------------------------------------------------------------------
class SignalAt(Callback):
    """Sends this process ``signum`` after step ``step`` (as Ctrl-C or a scheduler's SIGTERM would)."""

    def __init__(self, step: int, signum: int, times: int = 1):
        self.step, self.signum, self.times = step, signum, times

    def on_step_end(self, trainer, logs):
        if trainer.step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_the_step_boundary_and_saves(make_learner, tmp_path, signum):
    learner = make_learner("rotation")
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=rf"^training stopped by {signum.name} at step 2; the checkpoint "
                                                  rf"in .*ck holds its step-2 state$") as info:
        learner.train(50, progress=False, checkpoint_dir=tmp_path / "ck", callbacks=[SignalAt(2, signum)])
    assert isinstance(info.value, KeyboardInterrupt) and info.value.signal_name == signum.name
    assert info.value.step == learner.step == 2
    assert load_checkpoint(tmp_path / "ck")[0]["step"] == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored


def test_ctrl_c_without_a_checkpoint_dir_keeps_the_state_in_memory(make_learner):
    learner = make_learner("rotation")
    with pytest.raises(TrainingInterrupted, match=r"at step 1; nothing was saved \(no checkpoint_dir\), the "
                                                  r"learner keeps its step-1 state"):
        learner.train(50, progress=False, callbacks=[SignalAt(1, signal.SIGINT)])
    assert learner.step == 1 and len(learner.history["loss"]) == 1


def test_a_second_ctrl_c_interrupts_at_once(make_learner):
    """The first Ctrl-C asks for a clean stop; a second one (an impatient user) is a plain KeyboardInterrupt."""
    learner = make_learner("rotation")
    with pytest.raises(KeyboardInterrupt) as info:
        learner.train(50, progress=False, callbacks=[SignalAt(1, signal.SIGINT, times=2)])
    assert not isinstance(info.value, TrainingInterrupted)
