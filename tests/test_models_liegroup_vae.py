"""Commutative Lie Group VAE: exponential map, Hessian / commutator / group-reconstruction terms against hand
values, config, the loss against an independent computation, training, persistence."""
from __future__ import annotations


import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from conftest import seeded_model
from dynrep import RepresentationLearner, build_model, make_env
from dynrep.envs.circles import Circles
from dynrep.models.liegroup_vae import (LieGroupVAE, commutator_penalty, exponential_map, group_reconstruction_loss,
                                        hessian_penalty)

TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16, "matrix_size": 4}


def tiny_env() -> Circles:
    return Circles(grid=8, radius=3.0, image_size=16)


def tiny_model(env=None, **overrides) -> LieGroupVAE:
    return seeded_model("liegroup_vae", env or tiny_env(), **{**TINY, **overrides})


def E(i: int, j: int, size: int = 2) -> torch.Tensor:
    """Matrix unit: 1 at (i, j), 0 elsewhere."""
    out = torch.zeros(size, size)
    out[i, j] = 1.0
    return out


# -- exponential map -----------------------------------------------------------------------------
def test_exponential_map_hand_values():
    # z = 0 gives the identity.
    basis = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(exponential_map(torch.zeros(2, 3), basis), torch.eye(4).flatten().expand(2, 16))
    # Diagonal basis: expm(diag(d)) = diag(exp(d)) with d = 2*(1, 0) + 0.5*(3, -1) = (3.5, -0.5).
    diagonal = torch.stack([torch.diag(torch.tensor([1.0, 0.0])), torch.diag(torch.tensor([3.0, -1.0]))])
    g = exponential_map(torch.tensor([[2.0, 0.5]]), diagonal)
    assert torch.allclose(g, torch.tensor([[np.exp(3.5), 0.0, 0.0, np.exp(-0.5)]], dtype=torch.float32))
    # Nilpotent generator: expm(z E12) = I + z E12 exactly; flattened row-major.
    g = exponential_map(torch.tensor([[1.5], [-2.0]]), E(0, 1)[None])
    assert torch.allclose(g, torch.tensor([[1.0, 1.5, 0.0, 1.0], [1.0, -2.0, 0.0, 1.0]]))
    # Rotation generator: expm(t [[0, -1], [1, 0]]) = rotation by t.
    t = 0.7
    g = exponential_map(torch.tensor([[t]]), (E(1, 0) - E(0, 1))[None])
    assert torch.allclose(g, torch.tensor([[np.cos(t), -np.sin(t), np.sin(t), np.cos(t)]], dtype=torch.float32))


def test_exponential_map_matches_scipy():
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(3, 5, 5, generator=g, dtype=torch.float64) * 0.3
    z = torch.randn(4, 3, generator=g, dtype=torch.float64)
    out = exponential_map(z, basis)
    for b in range(4):
        expected = scipy.linalg.expm(sum(float(z[b, i]) * basis[i].numpy() for i in range(3)))
        assert np.allclose(out[b].numpy(), expected.reshape(-1), rtol=1e-10, atol=1e-12)


def test_exponential_map_shape_errors():
    with pytest.raises(ValueError, match=r"basis must have shape \[n, m, m\], got \(2, 3, 4\)"):
        exponential_map(torch.zeros(1, 2), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"z must have shape \[B, 2\] for a basis of 2 matrices, got \(1, 3\)"):
        exponential_map(torch.zeros(1, 3), torch.zeros(2, 3, 3))


# -- Hessian, commutator and group-reconstruction terms -------------------------------------------
def test_hessian_penalty_hand_values():
    # Diagonal matrices with disjoint support: every product A_i A_j (i != j) is zero.
    assert hessian_penalty(torch.stack([torch.diag(torch.tensor([1.0, 0.0])),
                                        torch.diag(torch.tensor([0.0, 5.0]))])).item() == 0.0
    # E12 E21 = E11 and E21 E12 = E22: squared norms 1 + 1 over n² = 4 ordered pairs.
    assert hessian_penalty(torch.stack([E(0, 1), E(1, 0)])).item() == pytest.approx(0.5)
    # (2 E12)(E21) = 2 E11 and E21 (2 E12) = 2 E22: (4 + 4) / 4.
    assert hessian_penalty(torch.stack([2 * E(0, 1), E(1, 0)])).item() == pytest.approx(2.0)
    # Commuting but not "orthogonal": diag(1, 2) diag(3, 0) = diag(3, 0) both ways: (9 + 9) / 4.
    assert hessian_penalty(torch.stack([torch.diag(torch.tensor([1.0, 2.0])),
                                        torch.diag(torch.tensor([3.0, 0.0]))])).item() == pytest.approx(4.5)
    # Three matrices: the denominator is n² = 9 (the original's masked mean), not the 6 ordered pairs.
    assert hessian_penalty(torch.stack([E(0, 1), E(1, 0), torch.zeros(2, 2)])).item() == pytest.approx(2 / 9)
    # The i = j terms are excluded: a single idempotent matrix costs nothing.
    assert hessian_penalty(torch.eye(2)[None]).item() == 0.0


def test_hessian_penalty_matches_double_loop():
    basis = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    n = len(basis)
    expected = sum(float(torch.linalg.matrix_norm(basis[i] @ basis[j]) ** 2)
                   for i in range(n) for j in range(n) if i != j) / n ** 2
    assert hessian_penalty(basis).item() == pytest.approx(expected, rel=1e-12)


def test_commutator_penalty_hand_values():
    # [E12, E21] = E11 - E22 (squared norm 2), [E21, E12] = E22 - E11 (2): (2 + 2) / 4 = 1.
    # (The original's "commute loss", A_j A_i - (A_j A_i)^T, would give 0 here: E11 and E22 are symmetric.)
    assert commutator_penalty(torch.stack([E(0, 1), E(1, 0)])).item() == pytest.approx(1.0)
    # Diagonal matrices commute although their products are non-zero.
    diag = torch.stack([torch.diag(torch.tensor([1.0, 2.0])), torch.diag(torch.tensor([3.0, 0.0]))])
    assert commutator_penalty(diag).item() == 0.0 and hessian_penalty(diag).item() > 0
    # E12 E22 = E12 and E22 E12 = 0, so [E12, E22] = E12: squared norm 1 in each order, over n² = 4.
    assert commutator_penalty(torch.stack([E(0, 1), E(1, 1)])).item() == pytest.approx(0.5)


def test_group_reconstruction_loss_hand_value():
    encoded = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    decoded = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # Squared distances 1 + 4 = 5 and 9 + 16 = 25, averaged over the batch of 2.
    assert group_reconstruction_loss(encoded, decoded).item() == pytest.approx(15.0)
    assert group_reconstruction_loss(encoded, encoded).item() == 0.0
    with pytest.raises(ValueError, match=r"group features must both have shape \[B, m²\], got \(2, 2\) and \(2, 3\)"):
        group_reconstruction_loss(encoded, torch.zeros(2, 3))


# -- config ----------------------------------------------------------------------------------------
def test_published_defaults():
    c = LieGroupVAE.Config()
    assert (c.latent_dim, c.matrix_size, c.lie_alg_init_scale, c.forward_encoder_prob) == (10, 10, 0.001, 0.2)
    assert (c.group_reconstruction_weight, c.hessian_weight, c.commutator_weight) == (0.1, 40.0, 0.0)
    assert (c.beta, c.capacity_max, c.lr, c.batch_size, c.reconstruction) == (1.0, 0.0, 1e-4, 64, "gaussian")


@pytest.mark.parametrize("overrides,message", [
    ({"matrix_size": 0}, r"matrix_size must be >= 1, got 0"),
    ({"matrix_size": 2.0}, r"matrix_size must be an integer, got 2.0"),
    ({"lie_alg_init_scale": 0.0}, r"lie_alg_init_scale must be a positive number, got 0.0"),
    ({"forward_encoder_prob": 1.5}, r"forward_encoder_prob must be a probability in \[0, 1\], got 1.5"),
    ({"forward_encoder_prob": -0.1}, r"forward_encoder_prob must be a probability in \[0, 1\], got -0.1"),
    ({"group_reconstruction_weight": -1.0}, r"group_reconstruction_weight must be a number >= 0, got -1.0"),
    ({"hessian_weight": float("nan")}, r"hessian_weight must be a number >= 0, got nan"),
    ({"commutator_weight": "1"}, r"commutator_weight must be a number >= 0, got '1'"),
    ({"capacity_max": -5.0}, r"capacity_max must be a number >= 0, got -5.0"),
    ({"capacity_steps": 0}, r"capacity_steps must be >= 1, got 0"),
    ({"beta": -1.0}, r"beta must be >= 0, got -1.0"),
    ({"reconstruction": "l1"}, r"reconstruction must be one of \('bernoulli', 'gaussian', 'normal'\), got 'l1'"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        LieGroupVAE.Config(**overrides)


def test_unknown_option_through_build_model():
    with pytest.raises(ValueError, match=r"unknown 'liegroup_vae' model option\(s\) \['hy_hes'\]"):
        build_model("liegroup_vae", tiny_env(), hy_hes=40.0)


# -- model and loss --------------------------------------------------------------------------------
def test_shapes_and_initialisation():
    env = tiny_env()
    model = tiny_model(env)
    obs = env.sample_trajectories(5, 0, rng=0).obs[:, 0]
    post = model.encode(obs)
    assert post.mean.shape == post.logvar.shape == (5, 3)
    assert post.group_features.shape == (5, 16)
    assert model.representation(obs).shape == (5, 3)
    assert model.decode(torch.zeros(2, 3)).shape == (2, 1, 16, 16)
    assert model.reconstruct(obs).shape == (5, 1, 16, 16)
    assert model.lie_algebra_basis.shape == (3, 4, 4)
    assert model.decoder[0].in_features == 16  # the decoder reads m² group features
    model.eval()
    out = model.loss(env.sample_trajectories(6, 0, rng=1), 0, torch.Generator().manual_seed(0))
    assert set(out.terms) == {"reconstruction", "kl", "group_reconstruction", "hessian", "commutator",
                              "encoder_features"}
    assert out.total.shape == () and all(t.shape == () for t in out.terms.values())
    frames, labels = model.traverse(obs[:1], 4)
    assert frames.shape == (3, 4, 1, 16, 16) and labels == ["z0", "z1", "z2"]
    # Published setting: 10 matrices of 10 x 10 drawn from N(0, 0.001²).
    basis = build_model("liegroup_vae", make_env("circles")).lie_algebra_basis.detach()
    assert basis.shape == (10, 10, 10)
    assert abs(basis.mean().item()) < 2e-4 and 0.0009 < basis.std().item() < 0.0011


@pytest.mark.parametrize("reconstruction,forward,capacity", [("gaussian", 0.0, 0.0), ("bernoulli", 1.0, 0.0),
                                                             ("gaussian", 0.0, 8.0)])
def test_loss_matches_independent_computation(reconstruction, forward, capacity):
    env = tiny_env()
    model = tiny_model(env, reconstruction=reconstruction, forward_encoder_prob=forward, beta=2.0,
                       group_reconstruction_weight=0.3, hessian_weight=5.0, commutator_weight=0.7,
                       capacity_max=capacity, capacity_steps=100)
    with torch.no_grad():  # a basis large enough for the Lie terms to matter
        model.lie_algebra_basis.copy_(0.3 * torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(9)))
    model.train()
    batch = env.sample_trajectories(3, 1, rng=0)  # 6 frames
    out = model.loss(batch, 25, torch.Generator().manual_seed(5))

    obs = batch.obs.flatten(0, 1)
    target = obs.float() / 255
    features = model.encoder(target)
    mean, logvar = model.mean_head(features), model.logvar_head(features)
    g = torch.Generator().manual_seed(5)
    z = mean + torch.randn(6, 3, generator=g) * torch.exp(0.5 * logvar)
    coin = torch.rand((), generator=g).item()
    assert (coin < forward) == bool(out.terms["encoder_features"].item())
    basis = model.lie_algebra_basis.detach().double().numpy()
    decoded = torch.tensor(np.stack([scipy.linalg.expm(np.einsum("n,nij->ij", zb, basis)).reshape(-1)
                                     for zb in z.detach().double().numpy()]), dtype=torch.float32)
    logits = model.decoder(features if forward == 1.0 else decoded)
    if reconstruction == "bernoulli":
        recon = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / 6
    else:
        recon = ((torch.sigmoid(logits) - target) ** 2).sum() / 6
    kl = (-0.5 * (1 + logvar - mean ** 2 - logvar.exp())).sum() / 6
    group_rec = ((features - decoded) ** 2).sum() / 6
    hess = comm = 0.0
    for i in range(3):
        for j in range(3):
            if i != j:
                hess += np.sum((basis[i] @ basis[j]) ** 2) / 9
                comm += np.sum((basis[i] @ basis[j] - basis[j] @ basis[i]) ** 2) / 9
    c_t = min(capacity * 25 / 100, capacity)  # 2 nats at step 25 of 100 for capacity 8

    terms = out.terms
    assert terms["reconstruction"].item() == pytest.approx(recon.item(), rel=1e-5)
    assert terms["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert terms["group_reconstruction"].item() == pytest.approx(group_rec.item(), rel=1e-5)
    assert terms["hessian"].item() == pytest.approx(hess, rel=1e-5)
    assert terms["commutator"].item() == pytest.approx(comm, rel=1e-5)
    assert hess > 0.01 and comm > 0.01
    if capacity:
        assert terms["capacity"].item() == pytest.approx(2.0)
    else:
        assert "capacity" not in terms
    expected = recon.item() + 2.0 * abs(kl.item() - c_t) + 0.3 * group_rec.item() + 5.0 * hess + 0.7 * comm
    assert out.total.item() == pytest.approx(expected, rel=1e-5)
    # decode(z) applies the exponential map itself.
    assert torch.allclose(model.decode(z), torch.sigmoid(model.decoder(decoded)), atol=1e-5)


def test_forward_encoder_coin_uses_generator_and_training_mode():
    env = tiny_env()
    model = tiny_model(env)  # forward_encoder_prob = 0.2
    batch = env.sample_trajectories(4, 0, rng=0)
    model.train()
    generator = torch.Generator().manual_seed(0)
    used = [model.loss(batch, 0, generator).terms["encoder_features"].item() for _ in range(300)]
    assert set(used) == {0.0, 1.0} and 0.13 < np.mean(used) < 0.27
    model.eval()
    assert all(model.loss(batch, 0, generator).terms["encoder_features"].item() == 0.0 for _ in range(20))
    model.train()
    always = tiny_model(env, forward_encoder_prob=1.0)
    out = always.loss(batch, 0, torch.Generator().manual_seed(1))
    assert out.terms["encoder_features"].item() == 1.0
    # The reconstruction then comes from g_e, independent of the latent noise.
    other = always.loss(batch, 0, torch.Generator().manual_seed(2))
    assert torch.equal(out.terms["reconstruction"], other.terms["reconstruction"])
    assert not torch.equal(out.terms["group_reconstruction"], other.terms["group_reconstruction"])


# -- training and the learner ----------------------------------------------------------------------
def test_loss_decreases_and_hessian_penalty_shrinks():
    learner = RepresentationLearner(tiny_env(), "liegroup_vae", seed=0, device="cpu", lr=3e-3,
                                    lie_alg_init_scale=0.3, **TINY)
    learner.train(steps=200, progress=False)
    history = {k: np.array(v) for k, v in learner.history.items()}
    assert all(np.isfinite(v).all() for v in history.values())
    assert history["loss"][-20:].mean() < 0.7 * history["loss"][:20].mean()
    assert history["reconstruction"][-20:].mean() < history["reconstruction"][:20].mean()
    assert history["hessian"][-20:].mean() < 0.5 * history["hessian"][:20].mean()
    assert 0.1 < history["encoder_features"].mean() < 0.3


def test_save_load_round_trip(tmp_path):
    env = tiny_env()
    learner = RepresentationLearner(env, "liegroup_vae", seed=2, device="cpu", **TINY)
    learner.train(steps=5, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config
    assert torch.equal(loaded.model.lie_algebra_basis, learner.model.lie_algebra_basis)
    obs = env.sample_trajectories(6, 0, rng=9).obs[:, 0]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(learner.decode(z), loaded.decode(z))
    learner.train(steps=3, progress=False)
    loaded.train(steps=3, progress=False)
    assert learner.history["loss"] == loaded.history["loss"]


def test_default_decoder_reads_the_flattened_group_element():
    assert build_model("liegroup_vae", make_env("circles")).decoder[0].in_features == 100  # m = 10
