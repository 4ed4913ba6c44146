"""ForwardVAE: block-diagonal action rotations, the forward loss, config, training, persistence."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import seeded_model
from dynrep import RepresentationLearner, make_env
from dynrep.envs.flatland import Flatland
from dynrep.models.forward_vae import ForwardVAE, block_rotations
from dynrep.models.rotation import givens_product, plane_indices

TINY = {"latent_dim": 4, "batch_size": 8, "channels": (4, 8), "hidden": 16}


def tiny_env() -> Flatland:
    return Flatland(period=5, image_size=16, radius=15.0)


def fvae(env, **overrides) -> ForwardVAE:
    return seeded_model("forward_vae", env, **{**TINY, **overrides})


# -- the action representation ---------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_block_rotations_are_rotations_acting_in_their_planes(n):
    angles = torch.tensor([0.3, -1.1, 2.5][: n // 2], dtype=torch.float64)
    m = block_rotations(angles, n)
    assert torch.allclose(m @ m.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    assert torch.linalg.det(m).item() == pytest.approx(1.0, abs=1e-12)
    for k, a in enumerate(angles.tolist()):  # block k rotates (2k, 2k+1) by a, hand-written
        block = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=torch.float64)
        assert torch.allclose(m[2 * k:2 * k + 2, 2 * k:2 * k + 2], block)
    off = torch.ones(n, n, dtype=torch.bool)
    for k in range(n // 2):
        off[2 * k:2 * k + 2, 2 * k:2 * k + 2] = False
    if n % 2:
        off[-1, -1] = False
        assert m[-1, -1] == 1.0  # odd n: the last coordinate is left alone
    assert (m[off] == 0).all()
    # Same matrix as the rotation model's Givens product with only the (2k, 2k+1) planes non-zero.
    givens = torch.zeros(n * (n - 1) // 2, dtype=torch.float64)
    givens[[plane_indices(n).index((2 * k, 2 * k + 1)) for k in range(n // 2)]] = angles
    assert torch.allclose(givens_product(givens, n), m, atol=1e-12)


def test_block_rotations_rejects_wrong_angle_count():
    with pytest.raises(ValueError, match="angles must have 2 entries per matrix for n=4, got 3"):
        block_rotations(torch.zeros(3), 4)


def test_action_matrices_factor_layout():
    env = tiny_env()  # actions right, left (factor x), down, up (factor y)
    model = fvae(env)
    mats = model.action_matrices(3)
    assert mats.shape == (3, 4, 4, 4)
    eye = torch.eye(4).expand(3, 4, 4, 4)
    assert torch.allclose(mats @ mats.transpose(-1, -2), eye, atol=1e-6)
    assert torch.allclose(torch.linalg.det(mats), torch.ones(3, 4), atol=1e-6)
    angles = model.action_angles().detach()
    assert (angles[:2, 1] == 0).all() and (angles[:2, 0] != 0).all()  # x actions: plane (0, 1) only
    assert (angles[2:, 0] == 0).all() and (angles[2:, 1] != 0).all()  # y actions: plane (2, 3) only
    assert (angles[[0, 2]].sum(-1) > 0).all() and (angles[[1, 3]].sum(-1) < 0).all()  # init sign = action sign
    assert torch.allclose(mats[0, 0, 2:, 2:], torch.eye(2)) and torch.allclose(mats[0, 2, :2, :2], torch.eye(2))
    # Magnitude m rotates by m times the angle, i.e. the m-th matrix power.
    assert torch.allclose(mats[2], torch.linalg.matrix_power(mats[0], 3), atol=1e-5)
    z = torch.randn(5, 4)
    acts = torch.tensor([0, 1, 2, 3, 0])
    twice = model.transition(model.transition(z, acts), acts)
    assert torch.allclose(model.transition(z, acts, torch.full((5,), 2)), twice, atol=1e-5)
    assert torch.allclose(model.transition(z, acts), (mats[0, acts] @ z[..., None])[..., 0])


def test_all_planes_layout_learns_an_angle_per_plane():
    model = fvae(tiny_env(), planes="all", latent_dim=5)
    assert model.angles.shape == (4, 2) and (model.action_angles() != 0).all()
    mats = model.action_matrices()[0]
    assert torch.allclose(mats[:, 4, 4], torch.ones(4)) and (mats[:, 4, :4] == 0).all()


def test_continuous_actions_are_rejected():
    env = make_env("circles")

    class Continuous:
        observation_shape = env.observation_shape
        actions = type(env.actions)(dim=2)

    with pytest.raises(ValueError, match="forward_vae needs discrete actions"):
        ForwardVAE(Continuous(), ForwardVAE.Config(**TINY))


# -- config ------------------------------------------------------------------------------------------
def test_config_defaults_are_the_references():
    c = ForwardVAE.Config()
    assert (c.latent_dim, c.batch_size, c.episode_length, c.lr, c.beta, c.gamma) == (4, 128, 1, 1e-3, 1.0, 1.0)
    assert (c.reconstruction, c.prediction, c.planes, c.channels, c.hidden) == (
        "gaussian", "latent", "factor", (32, 32, 32, 32), 256)


@pytest.mark.parametrize("key, value, message", [
    ("episode_length", 0, r"episode_length must be >= 1 \(forward_vae trains on transitions\), got 0"),
    ("gamma", -1.0, r"gamma must be >= 0, got -1.0"),
    ("prediction", "pixels", r"prediction must be one of \('latent', 'recon', 'both'\), got 'pixels'"),
    ("planes", "one", r"planes must be one of \('factor', 'all'\), got 'one'"),
    ("lr_actions", 0.0, r"lr_actions must be a positive float or None, got 0.0"),
    ("angle_init", -0.5, r"angle_init must be >= 0, got -0.5"),
    ("latent_dim", 1, r"latent_dim must be >= 2, got 1"),
    ("beta", -1.0, r"beta must be >= 0"),
])
def test_config_validation(key, value, message):
    with pytest.raises(ValueError, match=message):
        ForwardVAE.Config(**{key: value})


# -- the loss --------------------------------------------------------------------------------------
def test_shapes():
    env = tiny_env()
    model = fvae(env, prediction="both")
    batch = env.sample_trajectories(3, 2, rng=0)
    assert model.encode(batch.obs[:, 0]).mean.shape == (3, 4)
    assert model.predict(batch).shape == (3, 3, 1, 16, 16)
    frames, labels = model.traverse(batch.obs[:1, 0], 4)
    assert frames.shape == (4, 4, 1, 16, 16) and labels == list(env.actions.names)
    out = model.loss(batch, 0, torch.Generator().manual_seed(0))
    assert set(out.terms) == {"reconstruction", "kl", "forward_latent", "forward_recon"}
    assert out.total.shape == () and all(t.shape == () for t in out.terms.values()) and torch.isfinite(out.total)


@pytest.mark.parametrize("prediction", ["latent", "recon", "both"])
def test_loss_terms_match_hand_computation(prediction):
    env = tiny_env()
    model = fvae(env, prediction=prediction, beta=0.5, gamma=3.0, reconstruction="gaussian")
    batch = env.sample_trajectories(2, 2, rng=1)  # 2 episodes x 3 frames, 4 transitions
    out = model.loss(batch, 0, torch.Generator().manual_seed(7))

    with torch.no_grad():
        obs = batch.obs.flatten(0, 1)
        target = obs.float() / 255
        post = model.encode(obs)
        eps = torch.randn(6, 4, generator=torch.Generator().manual_seed(7))
        z = post.mean + eps * torch.exp(0.5 * post.logvar)
        recon = ((torch.sigmoid(model.decode_logits(z)) - target) ** 2).sum(dim=(1, 2, 3)).mean()
        kl = (0.5 * (post.mean ** 2 + post.logvar.exp() - 1 - post.logvar)).sum(-1).mean()
        angles = model.action_angles()
        latent, predicted, targets = 0.0, [], []
        for b in range(2):
            for t in range(2):
                zt, a = z[3 * b + t].tolist(), int(batch.actions[b, t])
                rotated = []
                for k in range(2):  # [[cos, sin], [-sin, cos]] on (2k, 2k+1)
                    th = float(angles[a, k])
                    x, y = zt[2 * k], zt[2 * k + 1]
                    rotated += [math.cos(th) * x + math.sin(th) * y, -math.sin(th) * x + math.cos(th) * y]
                latent += sum((r - float(m)) ** 2 for r, m in zip(rotated, post.mean[3 * b + t + 1])) / 4
                predicted.append(rotated)
                targets.append(target[3 * b + t + 1])
        logits = model.decode_logits(torch.tensor(predicted))
        forward_recon = ((torch.sigmoid(logits) - torch.stack(targets)) ** 2).sum(dim=(1, 2, 3)).mean().item()

    assert out.terms["reconstruction"].item() == pytest.approx(recon.item(), rel=1e-5)
    assert out.terms["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    forward = 0.0
    if prediction in ("latent", "both"):
        assert out.terms["forward_latent"].item() == pytest.approx(latent, rel=1e-4)
        forward += latent
    if prediction in ("recon", "both"):
        assert out.terms["forward_recon"].item() == pytest.approx(forward_recon, rel=1e-4)
        forward += forward_recon
    assert out.total.item() == pytest.approx(recon.item() + 0.5 * kl.item() + 3.0 * forward, rel=1e-5)


def test_forward_term_pulls_the_angles():
    env = tiny_env()
    model = fvae(env)
    out = model.loss(env.sample_trajectories(4, 3, rng=0), 0, torch.Generator().manual_seed(0))
    out.terms["forward_latent"].backward()
    grad = model.angles.grad
    assert (grad[:2, 0] != 0).any() and (grad[2:, 1] != 0).any()
    assert (grad[:2, 1] == 0).all() and (grad[2:, 0] == 0).all()  # masked angles stay at 0


# -- structure scores ---------------------------------------------------------------------------------
def test_structure_scores():
    env = tiny_env()
    names = env.actions.names
    scores = fvae(env).structure_scores()
    expected = ({f"rotation_purity/{a}" for a in names} | {f"rotation_eigen_purity/{a}" for a in names}
                | {"rotation_purity_min", "rotation_eigen_purity_min", "plane_sharing", "plane_disjoint"})
    assert set(scores) == expected
    assert scores["rotation_purity_min"] == pytest.approx(1.0) and scores["plane_disjoint"] == 1.0
    model = fvae(env, planes="all")
    with torch.no_grad():
        model.angles.copy_(torch.tensor([[0.3, 0.4], [0.0, 0.5], [-0.2, 0.0], [0.1, 0.1]]))
    scores = model.structure_scores()
    assert scores["rotation_purity/right"] == pytest.approx(0.16 / 0.25)
    assert scores["rotation_purity/left"] == pytest.approx(1.0)
    assert scores["rotation_purity/up"] == pytest.approx(0.5)
    assert scores["rotation_eigen_purity/right"] == pytest.approx(0.16 / 0.25, abs=1e-5)
    assert scores["plane_sharing"] == 1.0 and scores["plane_disjoint"] == 1.0  # x: plane (2,3), y: (0,1)
    assert scores["rotation_purity_min"] == pytest.approx(0.5)


# -- training and the learner ----------------------------------------------------------------------
def test_loss_decreases_on_tiny_flatland():
    learner = RepresentationLearner(tiny_env(), "forward_vae", seed=0, device="cpu", **TINY)
    learner.train(steps=200, progress=False)
    history = {k: np.array(v) for k, v in learner.history.items()}
    assert {"loss", "reconstruction", "kl", "forward_latent"} <= set(history)
    assert all(np.isfinite(v).all() for v in history.values())
    assert history["loss"][-20:].mean() < 0.7 * history["loss"][:20].mean()
    assert history["reconstruction"][-20:].mean() < history["reconstruction"][:20].mean()
    scores = learner.evaluate([], num_episodes=4, episode_length=3, prediction_steps=(1, 3))
    assert {"prediction_error/1", "latent_prediction_error/3", "rotation_purity_min"} <= set(scores)
    assert all(np.isfinite(v) for v in scores.values())


def test_save_load_round_trip(tmp_path):
    learner = RepresentationLearner(tiny_env(), "forward_vae", seed=3, device="cpu", **TINY, planes="all")
    learner.train(steps=5, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config
    batch = learner.env.sample_trajectories(3, 4, rng=9)
    with torch.no_grad():
        assert torch.equal(loaded.model.action_matrices(), learner.model.action_matrices())
        assert torch.equal(loaded.model.predict(batch), learner.model.predict(batch))
    learner.train(steps=2, progress=False)
    loaded.train(steps=2, progress=False)
    assert learner.history["loss"] == loaded.history["loss"]


def test_default_flatland_learner_trains():
    learner = RepresentationLearner(make_env("flatland"), model="forward_vae")  # 64x64 Flatland, defaults
    learner.train(steps=2, progress=False)
    assert len(learner.history["loss"]) == 2 and np.isfinite(learner.history["loss"]).all()
    assert learner.model.config.batch_size == 128 and learner.model.config.latent_dim == 4


def test_learner_test_and_traversal_animation(tmp_path):
    learner = RepresentationLearner(tiny_env(), "forward_vae", seed=0, device="cpu", **TINY)
    learner.train(steps=3, progress=False)
    result = learner.test(num_episodes=2, episode_length=3)
    assert result.predicted_frames.shape == result.true_frames.shape and result.true_frames.shape[:2] == (2, 4)
    assert learner.animate(tmp_path / "t.gif", "traversal", num_frames=3).read_bytes()[:3] == b"GIF"


def test_action_angles_have_their_own_learning_rate():
    model = fvae(tiny_env(), lr=1e-3, lr_actions=0.1)
    groups = model.parameter_groups()
    assert [g["lr"] for g in groups] == [1e-3, 0.1] and groups[1]["params"] == [model.angles]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    assert fvae(tiny_env()).parameter_groups()[1]["lr"] == 1e-3  # default: the networks' rate
