"""Optimiser settings from the model config: L2 weight decay on weights, staircase learning-rate decay."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_learner
from dynrep import Circles, RepresentationLearner
from dynrep.models.base import ModelConfig
from dynrep.schedules import staircase_decay
from dynrep.training.trainer import decayed_groups
from dynrep.training.validation import BestValidation


def test_staircase_decay():
    assert [staircase_decay(step, 0.3, 5) for step in (0, 4, 5, 9, 10)] == pytest.approx([1, 1, 0.3, 0.3, 0.09])
    assert staircase_decay(10**6, 0.3, None) == 1.0


@pytest.mark.parametrize("overrides,message", [
    ({"weight_decay": -1e-5}, r"weight_decay must be a float >= 0, got -1e-05"),
    ({"weight_decay": True}, r"weight_decay must be a float >= 0, got True"),
    ({"lr_decay_rate": 0.0}, r"lr_decay_rate must be a float in \(0, 1\], got 0.0"),
    ({"lr_decay_rate": 1.5}, r"lr_decay_rate must be a float in \(0, 1\], got 1.5"),
    ({"lr_decay_steps": 0}, r"lr_decay_steps must be None or an integer >= 1, got 0"),
    ({"lr_decay_steps": 2.5}, r"lr_decay_steps must be None or an integer >= 1, got 2.5"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)


def test_decayed_groups_split_weights_from_biases():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Conv1d(4, 2, 1))
    groups = [{"params": list(net.parameters()), "lr": 0.1, "betas": (0.5, 0.9)}]
    assert decayed_groups(groups, 0.0) is groups
    split = decayed_groups(groups, 1e-3)
    assert [(g["weight_decay"], [tuple(p.shape) for p in g["params"]]) for g in split] == [
        (1e-3, [(4, 3), (2, 4, 1)]), (0.0, [(4,), (2,)])]
    assert all(g["lr"] == 0.1 and g["betas"] == (0.5, 0.9) for g in split)


def test_defaults_leave_the_optimiser_as_it_was():
    learner = tiny_learner("vae")
    learner.train(steps=3, progress=False)
    groups = learner.trainer.optimizer.param_groups
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0 and groups[0]["lr"] == learner.model.config.lr


def test_weight_decay_changes_the_update_of_weights_only():
    learners = [tiny_learner("vae", weight_decay=wd, lr=1e-2) for wd in (0.0, 0.5)]
    for learner in learners:
        learner.train(steps=1, progress=False)  # one step: same gradients, so only the decay differs
    plain, decayed = (dict(learner.model.named_parameters()) for learner in learners)
    for name, p in plain.items():
        assert torch.equal(p, decayed[name]) != (p.ndim >= 2), name


def test_every_group_follows_the_step_decay():
    env = Circles(grid=8, radius=3.0, image_size=16)
    learner = RepresentationLearner(env, model="factor_vae", seed=0, latent_dim=3, batch_size=8, channels=(4, 8),
                                    hidden=16, discriminator_hidden=8, discriminator_layers=2, lr=1e-3,
                                    discriminator_lr=2e-4, lr_decay_rate=0.5, lr_decay_steps=2)
    rates = []
    for _ in range(5):
        learner.train(steps=1, progress=False)
        rates.append([g["lr"] for g in learner.trainer.optimizer.param_groups])
    factors = [1, 1, 0.5, 0.5, 0.25]  # the rate used by steps 0..4
    assert rates == [pytest.approx([1e-3 * f, 2e-4 * f]) for f in factors]


def test_best_validation_refuses_a_second_schedule():
    learner = tiny_learner("vae", lr_decay_steps=10)
    valid = learner.env.sample_trajectories(4, 1, 0)
    with pytest.raises(ValueError, match="lr_patience=3 would fight the model's step decay"):
        learner.train(steps=1, progress=False, callbacks=[BestValidation(valid, every=1, lr_patience=3)])
