"""What every model of the zoo must do through the facade: train with no configuration, test, evaluate,
animate. Model-specific behaviour is in tests/test_models_<name>.py."""
import numpy as np
import torch
import pytest

from dynrep import Circles, Flatland, RepresentationLearner, make_env

ZOO = ["beta_vae", "beta_tcvae", "wae", "cascade_vae", "liegroup_vae", "forward_vae", "factor_vae", "rgrvae",
       "composition_net"]
TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16}


@pytest.mark.parametrize("name", ZOO)
def test_default_learner_trains_without_configuration(name):
    learner = RepresentationLearner(make_env("circles"), model=name)  # 64x64 Circles, published defaults
    learner.train(steps=30, progress=False)
    assert len(learner.history["loss"]) == 30 and np.isfinite(learner.history["loss"]).all()


@pytest.mark.parametrize("name", ZOO)
def test_learner_test_evaluate_animate(name, tmp_path):
    learner = RepresentationLearner(Circles(grid=8, radius=3.0, image_size=16), name, seed=0, device="cpu", **TINY)
    learner.train(steps=3, progress=False)
    result = learner.test(num_episodes=2, episode_length=3)
    assert result.predicted_frames.shape == result.true_frames.shape
    scores = learner.evaluate(["mig"], num_train=100, num_episodes=4, episode_length=2)
    assert np.isfinite(scores["reconstruction_error"]) and 0 <= scores["mig"] <= 1
    assert learner.animate(tmp_path / "t.gif", "traversal", num_frames=3).read_bytes()[:3] == b"GIF"


@pytest.mark.parametrize("name", ["vae", "rotation"] + ZOO)
def test_loss_uses_only_the_given_generator(name):
    env = Flatland(period=5, image_size=16, radius=15.0)
    model = RepresentationLearner(env, name, seed=0, device="cpu", **TINY).model
    batch = env.sample_trajectories(4, 1, rng=0)
    torch.manual_seed(123)
    a = model.loss(batch, 0, torch.Generator().manual_seed(1))
    global_draw = torch.rand(1)
    torch.manual_seed(456)
    b = model.loss(batch, 0, torch.Generator().manual_seed(1))
    c = model.loss(batch, 0, torch.Generator().manual_seed(2))
    assert all(torch.equal(a.terms[k], b.terms[k]) for k in a.terms) and torch.equal(a.total, b.total)
    if name != "rotation":  # the rotation model is deterministic
        assert not torch.equal(a.total, c.total)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), global_draw)  # the global RNG was not drawn from
