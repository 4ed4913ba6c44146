"""Mechanism-sparsity VAE: parallel transition prior, loss by hand, masks, graphs, config, training, persistence."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import dynrep.models.mechanism_sparsity  # noqa: F401  (registers "mechanism_sparsity")
from conftest import seeded_model
from dynrep import RepresentationLearner
from dynrep.data.trajectory import Trajectory
from dynrep.envs.gridworld import GridWorld
from dynrep.envs.toy_nn import ToyNN
from dynrep.models.mechanism_sparsity import MaskedTransitionPrior, MechanismSparsityVAE, normal_kl
from dynrep.models.nets import ParallelLinear

TINY = {"mlp_hidden": (16, 16), "transition_hidden": 8, "transition_layers": 2, "batch_size": 32}


def action_env() -> ToyNN:
    return ToyNN("action_sparsity_trivial", num_samples=2000)


def temporal_env() -> ToyNN:
    return ToyNN("temporal_sparsity_non_trivial", num_samples=2000)


def model(env, **overrides) -> MechanismSparsityVAE:
    return seeded_model("mechanism_sparsity", env, **{**TINY, **overrides})


def batch_of(env, n: int = 6) -> Trajectory:
    return env.trajectories(np.arange(n))


# -- configuration -------------------------------------------------------------------------
def test_published_defaults():
    c = MechanismSparsityVAE.Config()
    assert (c.latent_dim, c.batch_size, c.episode_length, c.lr) == (10, 1024, 1, 5e-4)
    assert c.mlp_hidden == (512,) * 6 and c.mlp_activation == "leaky_relu"
    assert (c.reconstruction, c.learn_decoder_var, c.decoder_logvar_init, c.beta) == ("normal", False, 0.0, 1.0)
    assert (c.transition_hidden, c.transition_layers, c.gumbel_temperature, c.hard_masks) == (512, 5, 1.0, False)
    assert (c.mask_samples, c.reg_z, c.reg_a, c.mask_init) == ("per_example", 0.0, 0.0, 5.0)
    assert (c.freeze_graph_z, c.freeze_graph_a, c.n_lag, c.full_seq, c.transition_var) == \
        (False, False, None, False, "independent")
    assert c.lr_masks is None


def test_lr_masks_gives_the_mask_logits_their_own_learning_rate():
    m = model(action_env(), n_lag=1, lr=1e-3, lr_masks=0.05)
    rest, logits = m.parameter_groups()
    assert logits["lr"] == 0.05 and rest["lr"] == 1e-3
    assert [p is q for p, q in zip(logits["params"], (m.graph_z.alpha, m.graph_a.alpha))] == [True, True]
    assert len(rest["params"]) + 2 == len(list(m.parameters()))
    assert all(p is not m.graph_z.alpha and p is not m.graph_a.alpha for p in rest["params"])
    default = model(action_env(), n_lag=1, lr=1e-3).parameter_groups()
    assert len(default) == 1 and default[0]["lr"] == 1e-3


@pytest.mark.parametrize("overrides, message", [
    ({"episode_length": 2}, "episode_length must be 1"),
    ({"mask_samples": "once"}, r"mask_samples must be one of \('per_example', 'per_batch'\), got 'once'"),
    ({"transition_var": "dependent"}, "transition_var must be one of"),
    ({"n_lag": 2}, "n_lag must be >= 0 and <= 1, got 2"),
    ({"n_lag": 0, "full_seq": True}, "full_seq=True needs n_lag=1"),
    ({"reg_z": -1.0}, "reg_z must be a finite number >= 0.0, got -1.0"),
    ({"reg_a": float("inf")}, "reg_a must be a finite number"),
    ({"gumbel_temperature": 0.0}, "gumbel_temperature must be a finite number > 0.0"),
    ({"transition_layers": 0}, "transition_layers must be >= 1, got 0"),
    ({"transition_hidden": 2.5}, "transition_hidden must be an integer"),
    ({"hard_masks": 1}, "hard_masks must be True or False, got 1"),
    ({"mask_init": "high"}, "mask_init must be a finite number"),
    ({"lr_masks": 0.0}, "lr_masks must be a finite number > 0.0, got 0.0"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        MechanismSparsityVAE.Config(**overrides)


def test_environment_errors():
    with pytest.raises(ValueError, match="needs actions or a temporal prior"):
        model(temporal_env(), n_lag=0)
    with pytest.raises(ValueError, match="full_seq=True needs n_lag=1, but ToyNN gives n_lag=0"):
        model(action_env(), full_seq=True)
    m = model(temporal_env())
    with pytest.raises(ValueError, match="windows of two frames"):
        env = temporal_env()
        m.loss(env.sample_trajectories(4, 0, 0), 0)


def test_masks_follow_the_environment():
    a = model(action_env())
    assert a.n_lag == 0 and a.graph_z is None and a.graph_a.shape == (10, 10)
    t = model(temporal_env())
    assert t.n_lag == 1 and t.graph_a is None and t.graph_z.shape == (10, 10)
    both = model(action_env(), n_lag=1)
    assert both.graph_z.shape == (10, 10) and both.graph_a.shape == (10, 10)
    grid = GridWorld(size=3, observation="onehot")  # no n_lag attribute: defaults to 1; 4 discrete actions
    g = model(grid, latent_dim=3)
    assert g.n_lag == 1 and g.graph_a.shape == (3, grid.actions.n)
    batch = grid.sample_trajectories(5, 1, 0)
    torch.testing.assert_close(g.action_inputs(batch), F.one_hot(batch.actions[:, 0], grid.actions.n).float())
    assert torch.isfinite(g.loss(batch, 0, torch.Generator().manual_seed(0)).total)


def test_encoder_variance_is_softplus_plus_floor():
    m = model(action_env())
    x = batch_of(action_env()).obs[:, 1]
    mean, s = m.encoder(x).chunk(2, dim=-1)
    post = m.encode(x)
    torch.testing.assert_close(post.mean, mean)
    torch.testing.assert_close(post.logvar.exp(), F.softplus(s) + 1e-4)


# -- the transition prior ------------------------------------------------------------------
def loop_prior(prior: MaskedTransitionPrior, z, a, mask_z, mask_a) -> torch.Tensor:
    """The same prior computed one latent at a time with explicit matrix products."""
    means = []
    for i in range(prior.input_bias.shape[0]):
        h = prior.input_bias[i] + (mask_z[:, i] * z) @ prior.linear_z.weight[i].T \
            + (mask_a[:, i] * a) @ prior.linear_a.weight[i].T
        for layer in prior.body:
            if isinstance(layer, ParallelLinear):
                h = h @ layer.weight[i].T + (0 if layer.bias is None else layer.bias[i])
            else:
                h = F.leaky_relu(h, 0.2)
        means.append(h[:, 0])
    return torch.stack(means, dim=1)


def test_parallel_prior_equals_a_loop_over_latents():
    torch.manual_seed(0)
    prior = MaskedTransitionPrior(4, 3, True, hidden=8, layers=3)
    with torch.no_grad():
        prior.input_bias.normal_()
    z, a = torch.randn(5, 4), torch.randn(5, 3)
    mask_z, mask_a = torch.rand(5, 4, 4), torch.rand(5, 4, 3)
    mean, var = prior(z, a, mask_z, mask_a)
    assert mean.shape == (5, 4) and var.shape == (4,)
    torch.testing.assert_close(mean, loop_prior(prior, z, a, mask_z, mask_a))
    # one mask sample for the whole batch broadcasts
    mean1, _ = prior(z, a, mask_z[:1], mask_a[:1])
    expanded = mask_z[:1].expand(5, -1, -1), mask_a[:1].expand(5, -1, -1)
    torch.testing.assert_close(mean1, loop_prior(prior, z, a, *expanded))
    # hidden layers are bias-free, the output layer has a bias; the variance starts at 1e-4
    linears = [layer for layer in prior.body if isinstance(layer, ParallelLinear)]
    assert [layer.bias is None for layer in linears] == [True, True, False]
    torch.testing.assert_close(var, torch.full((4,), 1e-4 + 1e-6))


def test_masked_out_parent_does_not_change_the_child():
    torch.manual_seed(1)
    prior = MaskedTransitionPrior(4, 3, True, hidden=8, layers=2)
    z, a = torch.randn(5, 4), torch.randn(5, 3)
    mask_z, mask_a = torch.ones(1, 4, 4), torch.ones(1, 4, 3)
    mask_z[0, 2, 1] = 0.0  # z_1 is not a parent of z_2
    mask_a[0, 3, 0] = 0.0  # a_0 is not a parent of z_3
    z2, a2 = z.clone(), a.clone()
    z2[:, 1] += 5.0
    a2[:, 0] -= 3.0
    base = prior(z, a, mask_z, mask_a)[0]
    moved_z, moved_a = prior(z2, a, mask_z, mask_a)[0], prior(z, a2, mask_z, mask_a)[0]
    torch.testing.assert_close(moved_z[:, 2], base[:, 2])
    torch.testing.assert_close(moved_a[:, 3], base[:, 3])
    assert (moved_z[:, 0] - base[:, 0]).abs().max() > 1e-4  # z_1 -> z_0 is an edge
    assert (moved_a[:, 0] - base[:, 0]).abs().max() > 1e-4


def test_prior_reads_only_what_it_has():
    action_only = MaskedTransitionPrior(3, 2, False, hidden=4, layers=1)
    assert action_only.linear_z is None
    mean, _ = action_only(None, torch.randn(4, 2), None, torch.ones(4, 3, 2))
    assert mean.shape == (4, 3)
    temporal = MaskedTransitionPrior(3, 0, True, hidden=4, layers=1)
    assert temporal.linear_a is None
    assert temporal(torch.randn(4, 3), None, torch.ones(1, 3, 3), None)[0].shape == (4, 3)
    with pytest.raises(ValueError, match="needs z"):
        MaskedTransitionPrior(3, 0, False, hidden=4, layers=1)


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    vp = torch.rand(3, generator=g) + 0.1
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, vp.sqrt()))
    torch.testing.assert_close(normal_kl(mq, lq, mp, vp), expected)


def test_mask_sampling_shapes():
    env = temporal_env()
    assert model(env).sample_masks(7)[0].shape == (7, 10, 10)
    assert model(env, mask_samples="per_batch").sample_masks(7)[0].shape == (1, 10, 10)
    ma = model(action_env(), n_lag=1)
    mz, mask_a = ma.sample_masks(3, torch.Generator().manual_seed(0))
    assert mz.shape == (3, 10, 10) and mask_a.shape == (3, 10, 10)
    assert model(action_env()).sample_masks(3)[0] is None


# -- the loss by hand ----------------------------------------------------------------------
def hand_loss(m: MechanismSparsityVAE, batch: Trajectory, seed: int):
    """Recompute the objective from the model's parts with the same random numbers."""
    c, g = m.config, torch.Generator().manual_seed(seed)
    frames = batch.obs if m.n_lag == 1 else batch.obs[:, 1:]
    b, t = frames.shape[:2]
    x = frames.reshape(b * t, -1)
    post = m.encode(x)
    eps = torch.randn(post.mean.shape, generator=g)
    z = post.mean + eps * (0.5 * post.logvar).exp()
    xhat = m.decoder(z)
    logvar_x = m.decoder_logvar
    rec = (0.5 * ((x - xhat) ** 2 / logvar_x.exp() + logvar_x + math.log(2 * math.pi))).mean()
    n = b if c.mask_samples == "per_example" else 1
    mask_z = m.graph_z.sample(n, g) if m.graph_z is not None else None
    mask_a = m.graph_a.sample(n, g) if m.graph_a is not None else None
    z, mean, logvar = (v.view(b, t, -1) for v in (z, post.mean, post.logvar))
    prior_mean, prior_var = m.prior(z[:, 0] if m.n_lag else None, m.action_inputs(batch), mask_z, mask_a)
    q_last = Normal(mean[:, -1], (0.5 * logvar[:, -1]).exp())
    kl = kl_divergence(q_last, Normal(prior_mean, prior_var.sqrt())).sum(-1)
    if c.full_seq:
        init = Normal(m.initial_mean, (F.softplus(m.initial_rho) + 1e-6).sqrt())
        kl = 0.5 * (kl + kl_divergence(Normal(mean[:, 0], (0.5 * logvar[:, 0]).exp()), init).sum(-1))
    kl = kl.mean()
    penalty = 0.0
    if m.graph_z is not None:
        penalty = penalty + c.reg_z * torch.sigmoid(m.graph_z.alpha).sum()
    if m.graph_a is not None:
        penalty = penalty + c.reg_a * torch.sigmoid(m.graph_a.alpha).sum()
    return rec + c.beta * kl / 20 + penalty / 20, rec, kl


@pytest.mark.parametrize("env_fn, overrides", [
    (action_env, {"beta": 2.0, "reg_a": 3.0}),
    (temporal_env, {"beta": 0.5, "reg_z": 1.5, "mask_samples": "per_batch"}),
    (temporal_env, {"full_seq": True, "reg_z": 0.7, "learn_decoder_var": True, "decoder_logvar_init": -2.0}),
    (action_env, {"n_lag": 1, "reg_z": 1.0, "reg_a": 2.0, "hard_masks": True}),
])
def test_loss_against_hand_computation(env_fn, overrides):
    env = env_fn()
    m = model(env, **overrides)
    with torch.no_grad():  # different logits per entry, so the penalty is not a multiple of a constant
        for mask in (m.graph_z, m.graph_a):
            if mask is not None:
                mask.alpha.copy_(torch.linspace(-3, 4, mask.alpha.numel()).view(mask.shape))
    batch = batch_of(env)
    out = m.loss(batch, 0, torch.Generator().manual_seed(5))
    total, rec, kl = hand_loss(m, batch, 5)
    torch.testing.assert_close(out.terms["reconstruction"], rec)
    torch.testing.assert_close(out.terms["kl"], kl)
    torch.testing.assert_close(out.total, total)
    if m.graph_z is not None:
        assert out.terms["edges_z"].item() == pytest.approx(torch.sigmoid(m.graph_z.alpha).sum().item())
    if m.graph_a is not None:
        assert out.terms["edges_a"].item() == pytest.approx(torch.sigmoid(m.graph_a.alpha).sum().item())


def test_action_model_ignores_frame_zero():
    env = action_env()
    m = model(env)
    batch = batch_of(env)
    changed = Trajectory(obs=torch.cat([torch.randn_like(batch.obs[:, :1]) * 10, batch.obs[:, 1:]], dim=1),
                         actions=batch.actions, factors=batch.factors)
    a = m.loss(batch, 0, torch.Generator().manual_seed(0))
    b = m.loss(changed, 0, torch.Generator().manual_seed(0))
    assert torch.equal(a.total, b.total)
    # the temporal model does read frame 0 (reconstructed, and the parent of frame 1)
    mt = model(env, n_lag=1)
    assert not torch.equal(mt.loss(batch, 0, torch.Generator().manual_seed(0)).total,
                           mt.loss(changed, 0, torch.Generator().manual_seed(0)).total)


def test_frozen_masks_are_full_graphs_without_penalty():
    env = temporal_env()
    free, frozen = model(env, reg_z=5.0), model(env, reg_z=5.0, freeze_graph_z=True)
    batch = batch_of(env)
    out = frozen.loss(batch, 0, torch.Generator().manual_seed(0))
    out.total.backward()
    assert frozen.graph_z.alpha.grad is None
    _, rec, kl = hand_loss(frozen, batch, 0)  # hand_loss adds the penalty of alpha: remove it
    torch.testing.assert_close(out.total, rec + kl / 20)
    assert out.terms["edges_z"].item() == 100.0
    np.testing.assert_array_equal(frozen.learned_graphs()["graph_z"], np.ones((10, 10), dtype=np.int64))
    free.loss(batch, 0, torch.Generator().manual_seed(0)).total.backward()
    assert free.graph_z.alpha.grad.abs().sum() > 0


def test_fixed_transition_variance_is_not_trained():
    m = model(temporal_env(), transition_var="fixed")
    assert not m.prior.rho.requires_grad
    assert model(temporal_env()).prior.rho.requires_grad


# -- graphs --------------------------------------------------------------------------------
def test_edge_probabilities_and_learned_graphs_after_setting_alpha():
    m = model(action_env(), n_lag=1)
    alpha_z = torch.full((10, 10), -6.0)
    alpha_z.fill_diagonal_(6.0)
    alpha_a = torch.zeros(10, 10)
    alpha_a[:, 3] = 0.2
    with torch.no_grad():
        m.graph_z.alpha.copy_(alpha_z)
        m.graph_a.alpha.copy_(alpha_a)
    probs = m.edge_probabilities()
    assert set(probs) == {"graph_z", "graph_a"}
    assert probs["graph_z"].shape == (10, 10) and probs["graph_z"].dtype == np.float64
    np.testing.assert_allclose(probs["graph_z"], torch.sigmoid(alpha_z).numpy(), rtol=1e-6)
    graphs = m.learned_graphs()
    np.testing.assert_array_equal(graphs["graph_z"], np.eye(10, dtype=np.int64))
    assert graphs["graph_z"].dtype == np.int64
    expected_a = np.zeros((10, 10), dtype=np.int64)
    expected_a[:, 3] = 1  # sigmoid(0.2) > 0.5, sigmoid(0) = 0.5 is not
    np.testing.assert_array_equal(graphs["graph_a"], expected_a)
    assert m.learned_graphs(threshold=0.6)["graph_a"].sum() == 0
    scores = m.structure_scores()
    assert scores["edges_z"] == pytest.approx(10 * (1 / (1 + math.exp(-6))) + 90 * (1 / (1 + math.exp(6))))
    assert scores["edges_a"] == pytest.approx(90 * 0.5 + 10 / (1 + math.exp(-0.2)))
    with pytest.raises(ValueError, match="threshold must be in"):
        m.learned_graphs(threshold=1.0)
    assert set(model(temporal_env()).edge_probabilities()) == {"graph_z"}


# -- training and persistence --------------------------------------------------------------
def test_loss_decreases_and_round_trip(tmp_path, one_thread):
    env = action_env()
    learner = RepresentationLearner(env, "mechanism_sparsity", seed=0, device="cpu", reg_a=1.0,
                                    **{**TINY, "mlp_hidden": (32,), "transition_layers": 1, "batch_size": 64})
    history = learner.train(steps=200, progress=False)
    assert set(history) == {"loss", "reconstruction", "kl", "edges_a"}
    loss = np.asarray(history["loss"])
    assert np.isfinite(loss).all()
    assert loss[-20:].mean() < 0.5 * loss[:20].mean()
    assert history["edges_a"][-1] < history["edges_a"][0]  # the penalty pushes edges out
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    obs = batch_of(env, 16).obs[:, 1]
    with torch.no_grad():
        assert torch.equal(learner.model.representation(obs), loaded.model.representation(obs))
    np.testing.assert_array_equal(learner.model.edge_probabilities()["graph_a"],
                                  loaded.model.edge_probabilities()["graph_a"])
    assert loaded.model.config == learner.model.config


def test_lr_masks_moves_the_logits_faster(one_thread):
    # Adam moves each parameter by at most about lr per step: in 20 steps the logits can fall by ~20 * lr,
    # 1.0 with lr_masks = 0.05 and only 0.002 with the shared lr 1e-4.
    moved = {}
    for lr_masks in (None, 0.05):
        learner = RepresentationLearner(action_env(), "mechanism_sparsity", seed=0, device="cpu", reg_a=50.0,
                                        lr=1e-4, lr_masks=lr_masks, **TINY)
        learner.train(steps=20, progress=False)
        moved[lr_masks] = (5.0 - learner.model.graph_a.alpha).mean().item()
    assert 0.0 < moved[None] < 20 * 1e-4 * 1.01
    assert 0.25 < moved[0.05] < 20 * 0.05 * 1.01  # measured 0.50: not every step pushes every logit down


def test_training_with_frozen_masks_and_fixed_variance(one_thread):
    learner = RepresentationLearner(temporal_env(), "mechanism_sparsity", seed=0, device="cpu", freeze_graph_z=True,
                                    transition_var="fixed", full_seq=True, reg_z=1.0, **TINY)
    alpha, rho = learner.model.graph_z.alpha.clone(), learner.model.prior.rho.clone()
    history = learner.train(steps=5, progress=False)
    assert np.isfinite(history["loss"]).all() and history["edges_z"] == [100.0] * 5
    assert torch.equal(learner.model.graph_z.alpha, alpha) and torch.equal(learner.model.prior.rho, rho)
