"""PCL: the regression functions and the contrastive loss by hand, generator-driven negatives, training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dynrep.models.pcl  # noqa: F401  (registers "pcl")
from conftest import seeded_model
from dynrep import RepresentationLearner
from dynrep.data.trajectory import Trajectory
from dynrep.envs.toy_nn import ToyNN
from dynrep.models.base import Posterior
from dynrep.models.nets import ParallelLinear
from dynrep.models.pcl import PCL

TINY = {"mlp_hidden": (32, 32), "psi_hidden": (32,), "batch_size": 64}


@pytest.fixture(scope="module")
def temporal_env() -> ToyNN:
    return ToyNN("temporal_sparsity_trivial", num_samples=2000)


def tiny_model(env, **overrides) -> PCL:
    return seeded_model("pcl", env, **{**TINY, **overrides})


def hand_abs_model(env) -> PCL:
    """latent_dim 2, r_func "abs" with hand-set parameters, encoder h = the first two coordinates of x."""
    model = tiny_model(env, latent_dim=2, r_func="abs")
    with torch.no_grad():
        model.w1.copy_(torch.tensor([1.0, 2.0]))
        model.w2.copy_(torch.tensor([-1.0, 0.5]))
        model.b.copy_(torch.tensor([0.0, -1.0]))
        model.c.fill_(0.25)
    model.encode = lambda obs: Posterior(obs[..., :2].float())  # h chosen by hand
    return model


def hand_r(h_t, h_prev) -> float:
    w1, w2, b, c = (1.0, 2.0), (-1.0, 0.5), (0.0, -1.0), 0.25
    q = sum(abs(w1[i] * h_t[i] + w2[i] * h_prev[i] + b[i]) for i in range(2))
    return -q + sum(v * v for v in h_t) + c


def hand_batch(h_prev, h_t) -> Trajectory:
    b = len(h_prev)
    obs = torch.zeros(b, 2, 20)
    obs[:, 0, :2], obs[:, 1, :2] = torch.tensor(h_prev), torch.tensor(h_t)
    return Trajectory(obs=obs, actions=torch.zeros(b, 1, 0), factors=torch.zeros(b, 2, 10))


def test_published_defaults_and_no_decoder(temporal_env):
    c = PCL.Config()
    assert (c.latent_dim, c.batch_size, c.episode_length, c.lr, c.r_func) == (10, 1024, 1, 1e-4, "mlp")
    assert c.mlp_hidden == (512,) * 6 and c.mlp_activation == "leaky_relu" and c.psi_hidden == (512,) * 5
    model = tiny_model(temporal_env)
    assert not model.has_decoder and model.decoder is None
    with pytest.raises(ValueError, match="has no decoder"):
        model.decode_logits(torch.zeros(1, 10))


@pytest.mark.parametrize("overrides,message", [
    ({"episode_length": 0}, r"episode_length must be >= 1: .* got 0"),
    ({"r_func": "default"}, r"r_func must be one of \('mlp', 'abs'\), got 'default'"),
    ({"psi_hidden": (0,)}, r"psi_hidden must be a sequence of positive ints, got \(0,\)"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        PCL.Config(**overrides)


def test_abs_regression_by_hand(temporal_env):
    model = hand_abs_model(temporal_env)
    h_t, h_prev = [[0.5, -1.0], [2.0, 0.3]], [[1.5, 0.2], [-0.4, 0.0]]
    got = model.regression(torch.tensor(h_t), torch.tensor(h_prev))
    expected = [hand_r(h_t[i], h_prev[i]) for i in range(2)]
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    # initial parameters: w1 = 1, w2 = -1, b = 0, c = 0 -> -|h_t - h_prev|_1 + |h_t|^2
    fresh = tiny_model(temporal_env, latent_dim=2, r_func="abs")
    r = fresh.regression(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 3.0]]))
    assert r.item() == pytest.approx(-(1 + 1) + (1 + 4))


def test_mlp_regression_is_a_sum_of_per_latent_mlps(temporal_env):
    model = tiny_model(temporal_env, latent_dim=3)
    g = torch.Generator().manual_seed(0)
    h_t, h_prev = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    expected = torch.zeros(4)
    for i in range(3):
        x = torch.stack([h_t[:, i], h_prev[:, i]], dim=-1)  # psi_i(h_i^t, h_i^{t-1})
        for layer in model.psi:
            if isinstance(layer, ParallelLinear):
                x = x @ layer.weight[i].T + (0.0 if layer.bias is None else layer.bias[i])
            else:
                x = layer(x)
        expected += x[:, 0]
    assert torch.allclose(model.regression(h_t, h_prev), expected, atol=1e-6)
    assert not torch.allclose(model.regression(h_prev, h_t), expected)  # the input order matters


def test_psi_hidden_layers_are_bias_free_and_the_output_is_biased(temporal_env):
    # the reference's ParallelMLP: hidden ParallelLinear(..., bias=False), output ParallelLinear with a bias
    model = tiny_model(temporal_env, latent_dim=3, psi_hidden=(8, 8))
    linears = [layer for layer in model.psi if isinstance(layer, ParallelLinear)]
    assert [layer.bias is None for layer in linears] == [True, True, False]
    assert linears[-1].bias.shape == (3, 1)
    assert sum(p.numel() for p in model.psi.parameters()) == 3 * (2 * 8 + 8 * 8 + 8 * 1 + 1)
    assert [type(m).__name__ for m in model.psi if not isinstance(m, ParallelLinear)] == ["LeakyReLU"] * 2
    elu = tiny_model(temporal_env, latent_dim=3, psi_hidden=(8,), mlp_activation="elu")
    assert [type(m).__name__ for m in elu.psi] == ["ParallelLinear", "ELU", "ParallelLinear"]


def test_loss_by_hand(temporal_env):
    model = hand_abs_model(temporal_env)
    h_prev = [[0.1, 0.2], [1.0, -1.0], [-0.5, 0.7], [2.0, 0.0]]
    h_t = [[0.3, -0.2], [0.9, -0.8], [-0.1, 1.5], [1.0, 0.4]]
    out = model.loss(hand_batch(h_prev, h_t), 0, torch.Generator().manual_seed(7))
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(7)).tolist()
    logits = [hand_r(h_t[i], h_prev[i]) for i in range(4)] + [hand_r(h_t[i], h_prev[perm[i]]) for i in range(4)]
    labels = [1] * 4 + [0] * 4
    bce = np.mean([math.log1p(math.exp(-v)) if y else math.log1p(math.exp(v)) for v, y in zip(logits, labels)])
    accuracy = np.mean([(v > 0) == bool(y) for v, y in zip(logits, labels)])
    assert out.total.item() == pytest.approx(bce, rel=1e-6)
    assert out.terms["bce"].item() == pytest.approx(bce, rel=1e-6)
    assert out.terms["accuracy"].item() == pytest.approx(accuracy)


def test_longer_windows_use_every_consecutive_pair(temporal_env):
    model = hand_abs_model(temporal_env)
    frames = torch.tensor([[[0.1, 0.2], [0.3, -0.2], [1.0, 0.5]], [[1.0, -1.0], [0.9, -0.8], [-0.4, 0.1]]])
    obs = torch.zeros(2, 3, 20)
    obs[..., :2] = frames
    batch = Trajectory(obs=obs, actions=torch.zeros(2, 2, 0), factors=torch.zeros(2, 3, 10))
    out = model.loss(batch, 0, torch.Generator().manual_seed(3))
    pairs = [(frames[b, t + 1].tolist(), frames[b, t].tolist()) for b in range(2) for t in range(2)]  # (h^t, h^t-1)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(3)).tolist()
    logits = [hand_r(h_t, h_prev) for h_t, h_prev in pairs] + [hand_r(pairs[i][0], pairs[perm[i]][1]) for i in range(4)]
    labels = [1] * 4 + [0] * 4
    bce = np.mean([math.log1p(math.exp(-v)) if y else math.log1p(math.exp(v)) for v, y in zip(logits, labels)])
    assert out.total.item() == pytest.approx(bce, rel=1e-6)


def test_negatives_come_from_the_generator(temporal_env):
    model = tiny_model(temporal_env, r_func="abs")
    batch = temporal_env.sample_trajectories(16, 1, rng=0)
    torch.manual_seed(123)
    a = model.loss(batch, 0, torch.Generator().manual_seed(1)).total
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))  # the global RNG was not used
    b = model.loss(batch, 0, torch.Generator().manual_seed(1)).total
    c = model.loss(batch, 0, torch.Generator().manual_seed(2)).total
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_static_frames_are_refused(temporal_env):
    with pytest.raises(ValueError, match="pcl needs windows of at least two frames"):
        tiny_model(temporal_env).loss(temporal_env.sample_trajectories(4, 0, rng=0), 0)


def test_training_separates_real_from_shuffled_pairs(temporal_env):
    learner = RepresentationLearner(temporal_env, "pcl", seed=0, device="cpu", lr=1e-3, **TINY)
    history = learner.train(steps=200, progress=False)
    loss, accuracy = np.asarray(history["loss"]), np.asarray(history["accuracy"])
    assert np.isfinite(loss).all()
    assert loss[-20:].mean() < 0.7 * loss[:20].mean()
    assert accuracy[-20:].mean() > 0.75


@pytest.mark.parametrize("r_func", ["mlp", "abs"])
def test_save_load_round_trip(temporal_env, tmp_path, r_func):
    learner = RepresentationLearner(temporal_env, "pcl", seed=2, device="cpu", r_func=r_func, **TINY)
    learner.train(steps=3, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config
    obs = temporal_env.sample_trajectories(8, 1, rng=5).obs[:, 1]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    assert learner.train(steps=2, progress=False)["loss"][-2:] == loaded.train(steps=2, progress=False)["loss"][-2:]
