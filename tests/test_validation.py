"""BestValidation: deterministic validation loss, best-weight restoring, LR reduction on plateaus, arguments."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import dynrep.models.mechanism_sparsity  # noqa: F401  (registers "mechanism_sparsity")
from dynrep import RepresentationLearner
from dynrep.envs.toy_nn import ToyNN
from dynrep.models.base import LossOutput
from dynrep.training.callbacks import Callback
from dynrep.training.validation import BestValidation

TINY = {"mlp_hidden": (16,), "transition_hidden": 8, "transition_layers": 1, "batch_size": 32}

pytestmark = pytest.mark.usefixtures("one_thread")


def envs():
    return (ToyNN("action_sparsity_trivial", num_samples=1000),
            ToyNN("action_sparsity_trivial", subset="valid", num_samples=1000))


class Corrupt(Callback):
    """Scales every parameter by 50 at one step (after the validation of that step)."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, trainer, logs):
        if trainer.step == self.at:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.mul_(50.0)


def test_validation_loss_is_deterministic_and_restores_train_mode():
    train, valid = envs()
    learner = RepresentationLearner(train, "mechanism_sparsity", seed=0, device="cpu", **TINY)
    cb = BestValidation(valid, every=1, batch_size=30)
    assert cb.data.batch_size == 100  # the whole valid subset, in chunks of 30 (the last one 10)
    trainer = learner.trainer
    learner.model.train()
    first, second = cb.evaluate(trainer), cb.evaluate(trainer)
    assert first == second and np.isfinite(first)
    assert learner.model.training
    learner.model.eval()
    assert cb.evaluate(trainer) == first and not learner.model.training
    # the validation loss is the size-weighted mean of the model's chunk losses with a fixed generator
    g, total = torch.Generator().manual_seed(0), 0.0
    with torch.no_grad():
        for start in range(0, 100, 30):
            rows = np.arange(start, min(start + 30, 100))
            total += learner.model.loss(valid.trajectories(rows), 0, g).total.item() * len(rows)
    assert first == pytest.approx(total / 100, rel=1e-6)


def test_restores_the_best_weights():
    train, valid = envs()
    learner = RepresentationLearner(train, "mechanism_sparsity", seed=0, device="cpu", **TINY)
    cb = BestValidation(valid, every=5, num_samples=50)
    learner.train(30, progress=False, callbacks=[cb, Corrupt(at=15)])
    assert [step for step, _ in cb.history] == [5, 10, 15, 20, 25, 30]
    losses = dict(cb.history)
    assert losses[20] > losses[15]  # corrupted after the step-15 evaluation
    assert cb.best_step <= 15 and cb.best_loss == min(losses.values())
    assert cb.evaluate(learner.trainer) == cb.best_loss
    for name, value in learner.model.state_dict().items():
        assert torch.equal(value, cb.best_state[name]), name
    # without restoring, the corrupted weights stay
    learner2 = RepresentationLearner(train, "mechanism_sparsity", seed=0, device="cpu", **TINY)
    cb2 = BestValidation(valid, every=5, num_samples=50, restore_best=False)
    learner2.train(30, progress=False, callbacks=[cb2, Corrupt(at=15)])
    assert cb2.evaluate(learner2.trainer) == pytest.approx(cb2.history[-1][1])
    assert cb2.evaluate(learner2.trainer) > cb2.best_loss


class ConstantModel(nn.Module):
    """A model whose loss never improves."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def loss(self, batch, step, generator=None):
        return LossOutput(self.w.sum() + 1.0)


def test_learning_rate_reduced_after_patience_evaluations():
    model = ConstantModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    trainer = SimpleNamespace(model=model, optimizer=optimizer, step=0, device=torch.device("cpu"),
                              sync=lambda: None)
    _, valid = envs()
    cb = BestValidation(valid, every=2, lr_patience=2, num_samples=8)
    cb.on_train_begin(trainer, 100)
    lrs = []
    for step in range(1, 11):
        trainer.step = step
        cb.on_step_end(trainer, {})
        lrs.append(optimizer.param_groups[0]["lr"])
    # evaluations at steps 2 (best), 4, 6 (2 bad: patience), 8 (3 bad -> x0.1), 10 (1 bad)
    assert lrs[:7] == [1e-2] * 7
    assert lrs[7] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-3)
    assert len(cb.history) == 5 and cb.best_step == 2
    no_schedule = BestValidation(valid, every=1, num_samples=8)
    no_schedule.on_train_begin(trainer, 10)
    for step in range(5):
        trainer.step = step + 1
        no_schedule.on_step_end(trainer, {})
    assert no_schedule.scheduler is None and optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_trajectory_data_and_num_samples():
    _, valid = envs()
    data = valid.trajectories(np.arange(40))
    cb = BestValidation(data, num_samples=10)
    assert cb.data.batch_size == 10
    assert torch.equal(cb.data.obs, data.obs[:10])
    assert BestValidation(valid, num_samples=10_000).data.batch_size == 100


@pytest.mark.parametrize("kwargs, message", [
    ({"every": 0}, "every must be >= 1, got 0"),
    ({"batch_size": 1.5}, "batch_size must be an integer"),
    ({"num_samples": 0}, "num_samples must be >= 1, got 0"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"restore_best": "yes"}, "restore_best must be True or False"),
    ({"lr_patience": -1}, "lr_patience must be >= 0"),
    ({"lr_factor": 1.0}, r"lr_factor must be in \(0, 1\), got 1.0"),
    ({"lr_threshold": -0.1}, r"lr_threshold must be in \[0, 1\)"),
])
def test_argument_errors(kwargs, message):
    _, valid = envs()
    with pytest.raises(ValueError, match=message):
        BestValidation(valid, **kwargs)
    with pytest.raises(ValueError, match="data must be a Trajectory or an environment with trajectories"):
        BestValidation([1, 2, 3])
