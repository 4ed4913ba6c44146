"""RGrVAE: group actions, the policy and its REINFORCE loss, no use of action labels, config, training,
persistence."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import seeded_model
from dynrep import RepresentationLearner, make_env
from dynrep.envs.flatland import Flatland
from dynrep.models.base import observations_to_float
from dynrep.models.rgrvae import RGrVAE, categorical_entropy, reinforce_loss, sample_actions

TINY = {"latent_dim": 4, "batch_size": 8, "channels": (4, 8), "hidden": 16, "policy_channels": (4, 4)}


def tiny_env() -> Flatland:
    return Flatland(period=5, image_size=16, radius=15.0)


def rgr(env, **overrides) -> RGrVAE:
    return seeded_model("rgrvae", env, **{**TINY, **overrides})


# -- group actions ---------------------------------------------------------------------------------
def test_group_structure_layout():
    model = rgr(tiny_env(), latent_dim=6, group_structure=("c+", "c-", "c"))
    assert model.action_names == ("c+0", "c-0", "c0", "c+1", "c-1", "c1", "c+2", "c-2", "c2")
    assert model.action_factors == (0, 0, 0, 1, 1, 1, 2, 2, 2)
    angles = model.action_angles().detach()
    assert angles.shape == (9, 3)
    for k in range(9):  # one angle, on the action's own pair, with the symbol's sign
        pair, symbol = divmod(k, 3)
        others = [p for p in range(3) if p != pair]
        assert (angles[k, others] == 0).all()
        assert {0: angles[k, pair] > 0, 1: angles[k, pair] < 0, 2: angles[k, pair] == 0}[symbol]
    z = torch.randn(9, 6)
    acts = torch.arange(9)
    expected = torch.stack([model.action_matrices()[0][k] @ z[k] for k in range(9)])
    assert torch.allclose(model.apply_actions(z, acts), expected)
    assert model.policy_probs(torch.zeros(2, 1, 16, 16, dtype=torch.uint8),
                              torch.zeros(2, 1, 16, 16, dtype=torch.uint8)).shape == (2, 9)


def test_no_env_dynamics():
    env = tiny_env()
    model = rgr(env)
    assert not model.has_dynamics
    with pytest.raises(ValueError, match="no latent dynamics"):
        model.transition(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    batch = env.sample_trajectories(2, 3, rng=0)
    with torch.no_grad():
        assert torch.equal(model.predict(batch), model.reconstruct(batch.obs.flatten(0, 1)).view(2, 4, 1, 16, 16))


# -- the policy ------------------------------------------------------------------------------------
def test_policy_starts_uniform_and_sees_detached_pairs():
    env = tiny_env()
    model = rgr(env)
    batch = env.sample_trajectories(3, 1, rng=0)
    probs = model.policy_probs(batch.obs[:, 0], batch.obs[:, 1])
    assert torch.allclose(probs, torch.full((3, 4), 0.25))  # zero head weights, unit biases
    x = observations_to_float(batch.obs[:, 0]).requires_grad_()
    model.policy(x, x).sum().backward()
    assert x.grad is None


def test_sampled_actions_follow_the_probabilities():
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.7, 0.0, 0.3]]).repeat_interleave(5000, 0)
    actions = sample_actions(probs, torch.Generator().manual_seed(0))
    first = torch.bincount(actions[:5000], minlength=3).float() / 5000
    second = torch.bincount(actions[5000:], minlength=3).float() / 5000
    assert torch.allclose(first, torch.tensor([0.1, 0.6, 0.3]), atol=0.025)  # ~4 standard errors
    assert torch.allclose(second, torch.tensor([0.7, 0.0, 0.3]), atol=0.025) and second[1] == 0
    again = sample_actions(probs, torch.Generator().manual_seed(0))
    assert torch.equal(actions, again)
    assert not torch.equal(actions, sample_actions(probs, torch.Generator().manual_seed(1)))


def test_reinforce_loss_by_hand():
    p = torch.tensor([0.5, 0.2, 0.9, 0.4], requires_grad=True)
    r = torch.tensor([2.0, -1.0, 0.0, -3.0])
    ref = reinforce_loss(p, r, "reference")
    expected = -(2 * math.log(0.5) + 1 * math.log(0.8) + 0 + 3 * math.log(0.6)) / 4
    assert ref.item() == pytest.approx(expected, rel=1e-6)
    std = reinforce_loss(p, r, "standard")
    assert std.item() == pytest.approx(-(2 * math.log(0.5) - math.log(0.2) - 3 * math.log(0.4)) / 4, rel=1e-6)
    std.backward()  # d/dp of -(R log p)/N = -R / (p N)
    assert torch.allclose(p.grad, -r / p.detach() / 4)
    with pytest.raises(ValueError, match="kind must be one of"):
        reinforce_loss(p, r, "ppo")


def test_policy_term_is_reinforce_of_the_sampled_actions():
    env = tiny_env()
    model = rgr(env, beta=0.5, gamma=3.0, entropy_weight=0.2)
    with torch.no_grad():  # a non-uniform policy
        model.policy.head.weight.normal_(generator=torch.Generator().manual_seed(4))
    batch = env.sample_trajectories(2, 2, rng=1)  # 2 episodes x 3 frames, 4 transitions
    out = model.loss(batch, 0, torch.Generator().manual_seed(7))

    with torch.no_grad():
        g = torch.Generator().manual_seed(7)
        obs = batch.obs.flatten(0, 1)
        target = obs.float() / 255
        post = model.encode(obs)
        z = post.mean + torch.randn(6, 4, generator=g) * torch.exp(0.5 * post.logvar)
        idx_now, idx_next = [0, 1, 3, 4], [1, 2, 4, 5]
        probs = model.policy_probs(obs[idx_now], obs[idx_next])
        actions = torch.multinomial(probs, 1, generator=g)[:, 0]
        angles = model.action_angles()
        policy, latent, reward_sum, entropy = 0.0, 0.0, 0.0, 0.0
        for i, (s, t) in enumerate(zip(idx_now, idx_next)):
            a = int(actions[i])
            zt, mu = z[s].tolist(), post.mean[t].tolist()
            rotated = []
            for k in range(2):  # [[cos, sin], [-sin, cos]] on (2k, 2k+1)
                th = float(angles[a, k])
                x, y = zt[2 * k], zt[2 * k + 1]
                rotated += [math.cos(th) * x + math.sin(th) * y, -math.sin(th) * x + math.cos(th) * y]
            after = sum((r - m) ** 2 for r, m in zip(rotated, mu))
            before = sum((q - m) ** 2 for q, m in zip(zt, mu))
            reward = before - after
            pa = float(probs[i, a])
            policy += -reward * math.log(pa) if reward >= 0 else -abs(reward) * math.log(1 - pa)
            latent += after
            reward_sum += reward
            entropy += -sum(float(q) * math.log(float(q)) for q in probs[i])
        policy, latent, reward_sum, entropy = policy / 4, latent / 4, reward_sum / 4, entropy / 4
        recon = ((torch.sigmoid(model.decode_logits(z)) - target) ** 2).sum(dim=(1, 2, 3)).mean().item()
        kl = (0.5 * (post.mean ** 2 + post.logvar.exp() - 1 - post.logvar)).sum(-1).mean().item()

    assert len(set(actions.tolist())) > 1  # the seed gives a mix of actions
    assert out.terms["policy"].item() == pytest.approx(policy, rel=1e-4)
    assert out.terms["forward_latent"].item() == pytest.approx(latent, rel=1e-4)
    assert out.terms["reward"].item() == pytest.approx(reward_sum, rel=1e-4, abs=1e-5)
    assert out.terms["policy_entropy"].item() == pytest.approx(entropy, rel=1e-5)
    assert out.terms["reconstruction"].item() == pytest.approx(recon, rel=1e-5)
    assert out.terms["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert out.total.item() == pytest.approx(recon + 0.5 * kl + 3.0 * latent + policy - 0.2 * entropy, rel=1e-5)


def test_policy_gradient_reaches_only_the_policy_through_the_policy_term():
    env = tiny_env()
    model = rgr(env)
    with torch.no_grad():
        model.policy.head.weight.normal_(generator=torch.Generator().manual_seed(1))
    out = model.loss(env.sample_trajectories(4, 2, rng=0), 0, torch.Generator().manual_seed(0))
    out.terms["policy"].backward()
    assert model.policy.head.weight.grad.abs().sum() > 0
    assert model.angles.grad is None and all(p.grad is None for p in model.encoder.parameters())


def test_batch_actions_are_never_used():
    env = tiny_env()
    model = rgr(env)
    batch = env.sample_trajectories(6, 3, rng=2)
    shuffled = batch.actions.flatten()[torch.randperm(batch.actions.numel(),
                                                      generator=torch.Generator().manual_seed(0))]
    other = type(batch)(**{**vars(batch), "actions": (shuffled.view_as(batch.actions) + 1) % env.actions.n})
    assert not torch.equal(other.actions, batch.actions)
    a = model.loss(batch, 0, torch.Generator().manual_seed(5))
    b = model.loss(other, 0, torch.Generator().manual_seed(5))
    assert torch.equal(a.total, b.total)
    assert all(torch.equal(a.terms[k], b.terms[k]) for k in a.terms)


def test_shapes_and_terms():
    env = tiny_env()
    model = rgr(env, prediction="both")
    batch = env.sample_trajectories(3, 2, rng=0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(0))
    assert set(out.terms) == {"reconstruction", "kl", "forward_latent", "forward_recon", "policy",
                              "policy_entropy", "reward"}
    assert out.total.shape == () and all(t.shape == () for t in out.terms.values()) and torch.isfinite(out.total)
    frames, labels = model.traverse(batch.obs[:1, 0], 3)
    assert frames.shape == (4, 3, 1, 16, 16) and labels == ["c+0", "c-0", "c+1", "c-1"]


def test_vector_observations_use_an_mlp_policy():
    env = make_env("gridworld", size=3, observation="onehot")
    model = rgr(env, mlp_hidden=(8,))
    out = model.loss(env.sample_trajectories(3, 2, rng=0), 0, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.total)


# -- structure scores ------------------------------------------------------------------------------
def test_structure_scores():
    env = tiny_env()
    model = rgr(env, planes="all")
    with torch.no_grad():
        model.angles.copy_(torch.tensor([[0.3, 0.4], [0.0, -0.5], [-0.2, 0.0], [0.1, 0.3]]))
    scores = model.structure_scores()
    assert scores["rotation_purity/c+0"] == pytest.approx(0.16 / 0.25)
    assert scores["rotation_purity/c-0"] == pytest.approx(1.0)
    assert scores["rotation_purity/c-1"] == pytest.approx(0.9)
    assert scores["plane_sharing"] == 0.5  # pair 0's actions: (2,3), (2,3); pair 1's: (0,1), (2,3)
    assert scores["policy_entropy"] == pytest.approx(math.log(4))
    assert scores["policy_marginal_entropy"] == pytest.approx(math.log(4))
    with torch.no_grad():
        model.action_marginal.copy_(torch.tensor([0.5, 0.5, 0.0, 0.0]))
        model.policy_entropy.fill_(0.1)
    scores = model.structure_scores()
    assert scores["policy_marginal_entropy"] == pytest.approx(math.log(2))
    assert scores["action_frequency/c+0"] == 0.5 and scores["action_frequency/c+1"] == 0.0
    assert scores["policy_entropy"] == pytest.approx(0.1)


def test_running_policy_statistics_update_in_training():
    env = tiny_env()
    model = rgr(env, stats_momentum=0.5)
    with torch.no_grad():
        model.policy.head.weight.normal_(generator=torch.Generator().manual_seed(1))
    batch = env.sample_trajectories(4, 1, rng=0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(0))
    assert model.policy_entropy.item() == pytest.approx(0.5 * math.log(4) + 0.5 * out.terms["policy_entropy"].item())
    probs = model.policy_probs(batch.obs[:, 0], batch.obs[:, 1]).detach()
    assert torch.allclose(model.action_marginal, 0.5 * 0.25 + 0.5 * probs.mean(0))
    before = model.policy_entropy.clone()
    model.eval()
    model.loss(batch, 0, torch.Generator().manual_seed(0))
    assert torch.equal(model.policy_entropy, before)
    assert categorical_entropy(torch.tensor([0.5, 0.5])).item() == pytest.approx(math.log(2))


# -- config ----------------------------------------------------------------------------------------
def test_config_defaults_are_the_references():
    c = RGrVAE.Config()
    assert (c.latent_dim, c.batch_size, c.episode_length, c.lr, c.beta, c.gamma) == (4, 128, 1, 1e-3, 1.0, 1.0)
    assert (c.group_structure, c.entropy_weight, c.lr_actions, c.lr_policy, c.policy_channels) == (
        ("c+", "c-"), 0.01, 0.1, None, (32, 16, 16))
    assert (c.reconstruction, c.prediction, c.planes, c.policy_loss) == ("gaussian", "latent", "factor", "reference")


@pytest.mark.parametrize("key, value, message", [
    ("group_structure", ("c+", "p"), r"group_structure must be a non-empty sequence of \('c\+', 'c-', 'c'\), "
                                     r"got \('c\+', 'p'\)"),
    ("group_structure", (), r"group_structure must be a non-empty sequence"),
    ("entropy_weight", -0.1, r"entropy_weight must be >= 0, got -0.1"),
    ("lr_policy", 0.0, r"lr_policy must be a positive float or None, got 0.0"),
    ("policy_channels", (), r"policy_channels must be a non-empty sequence of positive ints, got \(\)"),
    ("policy_loss", "ppo", r"policy_loss must be one of \('reference', 'standard'\), got 'ppo'"),
    ("stats_momentum", 1.0, r"stats_momentum must be in \[0, 1\), got 1.0"),
    ("episode_length", 0, r"episode_length must be >= 1"),
    ("gamma", -1.0, r"gamma must be >= 0, got -1.0"),
])
def test_config_validation(key, value, message):
    with pytest.raises(ValueError, match=message):
        RGrVAE.Config(**{key: value})


def test_parameter_groups():
    model = rgr(tiny_env(), lr=1e-3, lr_policy=5e-3)
    groups = model.parameter_groups()
    assert [g["lr"] for g in groups] == [1e-3, 5e-3, 0.1]
    assert groups[2]["params"] == [model.angles] and groups[1]["params"] == list(model.policy.parameters())
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())


# -- training and the learner ----------------------------------------------------------------------
def test_loss_decreases_on_tiny_flatland():
    learner = RepresentationLearner(tiny_env(), "rgrvae", seed=0, device="cpu", **TINY)
    learner.train(steps=200, progress=False)
    history = {k: np.array(v) for k, v in learner.history.items()}
    assert {"loss", "reconstruction", "kl", "forward_latent", "policy", "policy_entropy"} <= set(history)
    assert all(np.isfinite(v).all() for v in history.values())
    assert history["loss"][-20:].mean() < 0.7 * history["loss"][:20].mean()
    assert history["reconstruction"][-20:].mean() < history["reconstruction"][:20].mean()
    scores = learner.evaluate([], num_episodes=4, episode_length=3)
    assert {"rotation_purity_min", "policy_entropy", "policy_marginal_entropy"} <= set(scores)
    assert all(np.isfinite(v) for v in scores.values())


def test_save_load_round_trip(tmp_path):
    learner = RepresentationLearner(tiny_env(), "rgrvae", seed=3, device="cpu", **TINY, planes="all")
    learner.train(steps=5, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config
    batch = learner.env.sample_trajectories(3, 4, rng=9)
    with torch.no_grad():
        assert torch.equal(loaded.model.action_matrices(), learner.model.action_matrices())
        assert torch.equal(loaded.model.predict(batch), learner.model.predict(batch))
        assert torch.equal(loaded.model.policy_probs(batch.obs[:, 0], batch.obs[:, 1]),
                           learner.model.policy_probs(batch.obs[:, 0], batch.obs[:, 1]))
    assert loaded.model.structure_scores() == learner.model.structure_scores()
    learner.train(steps=2, progress=False)
    loaded.train(steps=2, progress=False)
    assert learner.history["loss"] == loaded.history["loss"]


def test_default_learner_trains_without_configuration():
    learner = RepresentationLearner(make_env("circles", radius=3.0, image_size=16), model="rgrvae")  # 16x16: runtime
    learner.train(steps=30, progress=False)
    assert len(learner.history["loss"]) == 30 and np.isfinite(learner.history["loss"]).all()
    assert learner.model.config.batch_size == 128 and learner.model.config.latent_dim == 4
