"""CascadeVAE: cascade schedule, exact balanced assignment, loss terms, traversal, save/load."""
import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynrep import Circles, RepresentationLearner
from dynrep.models.cascade_vae import CascadeVAE, balanced_assignment, cascade_weights, released_dims

TINY = dict(channels=(4, 8), hidden=16, latent_dim=3, num_categories=2, batch_size=16)


def tiny_env():
    return Circles(grid=8, radius=3.0, image_size=16)


def test_cascade_weights_release_one_dimension_per_period():
    assert cascade_weights(0, 4, 10, 0.1, 10.0, 1000).tolist() == [0.1, 10.0, 10.0, 10.0]
    assert cascade_weights(9, 4, 10, 0.1, 10.0, 1000).tolist() == [0.1, 10.0, 10.0, 10.0]
    assert cascade_weights(10, 4, 10, 0.1, 10.0, 1000).tolist() == [0.1, 0.1, 10.0, 10.0]
    assert cascade_weights(1000, 4, 10, 0.1, 10.0, 1000).tolist() == [0.1] * 4


def test_jeong_song_schedule_holds_one_stage_when_the_discrete_stage_starts():
    # the reference's run_batch: idx = min(stage + 1, L) before stage ntime = 4, min(stage, L) from then on
    period, start = 20_000, 80_000
    released = [released_dims(step, 6, period, start) for step in range(0, 200_000, period)]
    assert released == [1, 2, 3, 4, 4, 5, 6, 6, 6, 6]
    assert released_dims(start - 1, 6, period, start) == 4 and released_dims(start, 6, period, start) == 4
    assert released_dims(0, 6, period, 0) == 0  # discrete from the start: every dimension at beta_high first


def test_lils_schedule_releases_dimension_i_after_i_plus_one_periods():
    # the study's InfoCascadeLoss: all at beta_high, beta[i] = beta_low after step (i + 1) * 20k - 1 completes
    for i in range(6):
        before = cascade_weights((i + 1) * 20_000 - 1, 6, 20_000, 2.0, 10.0, 80_000, "lils")
        after = cascade_weights((i + 1) * 20_000, 6, 20_000, 2.0, 10.0, 80_000, "lils")
        assert before.tolist() == [2.0] * i + [10.0] * (6 - i)
        assert after.tolist() == [2.0] * (i + 1) + [10.0] * (5 - i)
    assert cascade_weights(0, 6, 20_000, 2.0, 10.0, 80_000, "lils").tolist() == [10.0] * 6
    assert released_dims(10**6, 6, 20_000, 80_000, "lils") == 6
    with pytest.raises(ValueError, match=r"cascade_schedule must be one of \('jeong_song', 'lils'\), got 'x'"):
        released_dims(0, 6, 20_000, 80_000, "x")


def test_published_defaults_and_validation():
    c = CascadeVAE.Config()
    assert (c.latent_dim, c.num_categories, c.batch_size, c.lr, c.beta_low, c.beta_high) == (6, 3, 64, 1e-4, 0.1, 10.0)
    assert (c.cascade_period, c.discrete_start, c.balance, c.cascade_schedule) == (20_000, 80_000, 1e-3, "jeong_song")
    assert (c.weight_decay, c.lr_decay_rate, c.lr_decay_steps) == (4e-5, 0.3, 50_000)
    with pytest.raises(ValueError, match="discrete_start must be a multiple of cascade_period .* got "
                                         "discrete_start=30, cascade_period=20"):
        CascadeVAE.Config(discrete_start=30, cascade_period=20)
    assert CascadeVAE.Config(discrete_start=30, cascade_period=20, cascade_schedule="lils").discrete_start == 30
    with pytest.raises(ValueError, match="cascade_schedule must be one of"):
        CascadeVAE.Config(cascade_schedule="original")


def test_optimiser_decays_weights_and_steps_the_learning_rate(tmp_path):
    learner = RepresentationLearner(tiny_env(), model="cascade_vae", seed=0, discrete_start=0, cascade_period=5,
                                    lr_decay_steps=3, **TINY)
    groups = learner.trainer.optimizer.param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] == 4e-5 for p in g["params"]}
    for name, p in learner.model.named_parameters():  # the reference's slim.l2_regularizer: weights, not biases
        assert (id(p) in decayed) == (p.ndim >= 2), name
    learner.train(steps=4, progress=False)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4 * 0.3] * len(groups))  # step 3 used 0.3 ** (3 // 3)
    learner.save(tmp_path / "ck")
    loaded = RepresentationLearner.load(tmp_path / "ck")
    learner.train(steps=3, progress=False)
    loaded.train(steps=3, progress=False)
    assert learner.history["loss"] == loaded.history["loss"]
    assert [g["lr"] for g in loaded.trainer.optimizer.param_groups] == pytest.approx([1e-4 * 0.09] * len(groups))


def brute_force(costs, balance):
    best = np.inf
    for assignment in itertools.product(range(costs.shape[1]), repeat=costs.shape[0]):
        counts = np.bincount(assignment, minlength=costs.shape[1])
        value = costs[np.arange(len(costs)), assignment].sum() + balance * (counts * (counts - 1) / 2).sum()
        best = min(best, value)
    return best


@pytest.mark.parametrize("balance", [0.0, 0.3, 5.0])
def test_balanced_assignment_matches_brute_force(balance):
    rng = np.random.default_rng(int(balance * 10))
    for _ in range(5):
        costs = rng.normal(size=(6, 3))
        chosen = balanced_assignment(costs, balance)
        counts = np.bincount(chosen, minlength=3)
        value = costs[np.arange(6), chosen].sum() + balance * (counts * (counts - 1) / 2).sum()
        assert value == pytest.approx(brute_force(costs, balance), abs=1e-9)
    if balance == 5.0:  # a large penalty spreads identical rows evenly
        assert sorted(np.bincount(balanced_assignment(np.zeros((6, 3)), balance), minlength=3)) == [2, 2, 2]
    with pytest.raises(ValueError, match="balance must be >= 0"):
        balanced_assignment(costs, -1.0)


def test_balanced_assignment_by_hand_and_bad_shapes():
    # n_0 rows at cost 0, the rest at cost 1: n_1 + 0.4 * (C(n_0, 2) + C(n_1, 2)) is lowest at n_0 = 3 (2.2)
    costs = np.array([[0.0, 1.0]] * 4)
    assert np.bincount(balanced_assignment(costs, 0.4), minlength=2).tolist() == [3, 1]
    assert balanced_assignment(np.zeros((3, 1)), 1.0).tolist() == [0, 0, 0]  # one category takes every row
    for bad in (np.zeros(3), np.zeros((0, 2)), np.zeros((2, 0))):
        message = r"costs must have shape \[B, S\] with B, S >= 1, got " + re.escape(str(bad.shape))
        with pytest.raises(ValueError, match=message):
            balanced_assignment(bad, 0.1)


def test_representation_shape_and_loss_terms():
    learner = RepresentationLearner(tiny_env(), model="cascade_vae", seed=0, discrete_start=0, cascade_period=5,
                                    **TINY)
    model = learner.model
    obs = torch.from_numpy(learner.env.render(learner.env.sample_factors(5, 0)))
    codes = model.representation(obs)
    assert codes.shape == (5, 5)
    assert torch.all(codes[:, 3:].sum(1) == 1)  # one category each
    batch = learner.env.sample_trajectories(8, 0, 0)
    out = model.loss(batch, step=7, generator=torch.Generator().manual_seed(0))
    post = model.encode(batch.obs.flatten(0, 1))
    kl = (0.5 * (post.mean ** 2 + post.logvar.exp() - 1 - post.logvar)).mean(0).sum()
    assert out.terms["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert out.terms["released_dims"].item() == 1  # step 7 // period 5, the discrete stage holding one stage
    assert torch.isfinite(out.total)
    with pytest.raises(ValueError, match="num_categories must be >= 2"):
        RepresentationLearner(tiny_env(), model="cascade_vae", num_categories=1)


def test_training_lowers_the_loss_and_round_trips(tmp_path):
    learner = RepresentationLearner(tiny_env(), model="cascade_vae", seed=0, discrete_start=80, cascade_period=40,
                                    lr=3e-3, **TINY)
    learner.train(steps=150, progress=False)
    totals = learner.history["reconstruction"]
    assert np.mean(totals[-20:]) < np.mean(totals[:20])
    frames, labels = learner.model.traverse(torch.from_numpy(learner.env.render(learner.env.sample_factors(1, 0))), 4)
    assert frames.shape == (4, 4, 1, 16, 16) and labels == ["z0", "z1", "z2", "category"]
    learner.save(tmp_path / "ck")
    loaded = RepresentationLearner.load(tmp_path / "ck")
    obs = torch.from_numpy(learner.env.render(learner.env.sample_factors(6, 1)))
    assert torch.equal(loaded.model.representation(obs), learner.model.representation(obs))
    assert learner.animate(tmp_path / "t.gif", kind="traversal", num_frames=3).is_file()


def nll_per_sample(logits, target):
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def hand_model(**overrides):
    config = {**TINY, "latent_dim": 3, "num_categories": 3, "cascade_period": 20, "discrete_start": 40,
              "beta_low": 0.5, "beta_high": 3.0, "balance": 0.5, **overrides}
    return RepresentationLearner(tiny_env(), model="cascade_vae", seed=0, **config).model


@pytest.mark.parametrize("step", [30, 40])  # the cascade alone; the discrete stage (both: 2 of 3 dims released)
def test_loss_by_hand(step):
    model = hand_model()
    batch = tiny_env().sample_trajectories(12, 0, 1)
    out = model.loss(batch, step, torch.Generator().manual_seed(3))
    target, post, z = model.sample_posterior(batch, torch.Generator().manual_seed(3))
    kl = (0.5 * (post.mean ** 2 + post.logvar.exp() - 1 - post.logvar)).mean(0)
    categories = torch.eye(3)
    with torch.no_grad():
        costs = torch.stack([nll_per_sample(model.decode_logits(torch.cat([z, categories[j].expand(12, 3)], 1)),
                                            target) for j in range(3)], 1)
        none = nll_per_sample(model.decode_logits(torch.cat([z, torch.zeros(12, 3)], 1)), target).mean()
    if step >= 40:
        chosen = balanced_assignment(costs.numpy(), 0.5)
        reconstruction = costs[torch.arange(12), torch.as_tensor(chosen)].mean()
        assert abs(reconstruction.item() - none.item()) > 1e-3  # the category does change the reconstruction
    else:
        reconstruction = none
    assert out.terms["reconstruction"].item() == pytest.approx(reconstruction.item(), rel=1e-5)
    assert out.terms["kl"].item() == pytest.approx(kl.sum().item(), rel=1e-5)
    weighted = (0.5 * kl[0] + 0.5 * kl[1] + 3.0 * kl[2]).item()
    assert abs(weighted - kl.sum().item()) > 1e-3  # the per-dimension weights matter here
    assert (out.total - out.terms["reconstruction"]).item() == pytest.approx(weighted, abs=1e-4)


def test_representation_picks_the_category_that_reconstructs_best():
    model = hand_model()
    env = tiny_env()
    obs = torch.from_numpy(env.render(env.sample_factors(10, 2)))
    codes = model.representation(obs)
    mean, x = model.encode(obs).mean, obs.float() / 255
    with torch.no_grad():
        costs = torch.stack([nll_per_sample(model.decode_logits(torch.cat([mean, torch.eye(3)[j].expand(10, 3)], 1)),
                                            x) for j in range(3)], 1)
    assert (costs.argmin(1) != costs.argmax(1)).all()  # no ties: the lowest and highest cost differ
    assert torch.equal(codes[:, :3], mean)
    assert torch.equal(codes[:, 3:], F.one_hot(costs.argmin(1), 3).float())


def test_lils_schedule_reaches_the_loss():
    model = hand_model(cascade_schedule="lils", discrete_start=50)
    batch = tiny_env().sample_trajectories(6, 0, 1)
    out = model.loss(batch, 30, torch.Generator().manual_seed(0))
    post = model.encode(batch.obs.flatten(0, 1))
    kl = (0.5 * (post.mean ** 2 + post.logvar.exp() - 1 - post.logvar)).mean(0)
    assert out.terms["released_dims"].item() == 1  # jeong_song would have released 2 by step 30
    weighted = (0.5 * kl[0] + 3.0 * kl[1] + 3.0 * kl[2]).item()
    assert (out.total - out.terms["reconstruction"]).item() == pytest.approx(weighted, abs=1e-4)


def test_one_frame_takes_its_best_category():
    # alone in the batch the balance term vanishes: the sample takes its cheapest category, whichever it is
    model = hand_model()
    env = tiny_env()
    for seed in range(4):
        batch = env.sample_trajectories(1, 0, seed)
        out = model.loss(batch, 40, torch.Generator().manual_seed(seed))
        target, _, z = model.sample_posterior(batch, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            costs = torch.stack([nll_per_sample(model.decode_logits(torch.cat([z, torch.eye(3)[j:j + 1]], 1)),
                                                target) for j in range(3)], 1)
        assert out.terms["reconstruction"].item() == pytest.approx(costs.min().item(), rel=1e-5)
