"""CascadeVAE: cascade schedule, exact balanced assignment, loss terms, traversal, save/load."""
import itertools

import numpy as np
import pytest
import torch

from dynrep import Circles, RepresentationLearner
from dynrep.models.cascade_vae import balanced_assignment, cascade_weights

TINY = dict(channels=(4, 8), hidden=16, latent_dim=3, num_categories=2, batch_size=16)


def tiny_env():
    return Circles(grid=8, radius=3.0, image_size=16)


def test_cascade_weights_release_one_dimension_per_period():
    assert cascade_weights(0, 4, 10, 0.1, 10.0).tolist() == [0.1, 10.0, 10.0, 10.0]
    assert cascade_weights(9, 4, 10, 0.1, 10.0).tolist() == [0.1, 10.0, 10.0, 10.0]
    assert cascade_weights(10, 4, 10, 0.1, 10.0).tolist() == [0.1, 0.1, 10.0, 10.0]
    assert cascade_weights(1000, 4, 10, 0.1, 10.0).tolist() == [0.1] * 4


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
    assert out.terms["released_dims"].item() == 2  # step 7 // period 5 + 1
    assert torch.isfinite(out.total)
    with pytest.raises(ValueError, match="num_categories must be >= 2"):
        RepresentationLearner(tiny_env(), model="cascade_vae", num_categories=1)


def test_training_lowers_the_loss_and_round_trips(tmp_path):
    learner = RepresentationLearner(tiny_env(), model="cascade_vae", seed=0, discrete_start=60, cascade_period=40,
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
