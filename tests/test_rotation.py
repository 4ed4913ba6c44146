"""Rotation model: Givens products, regulariser, rollouts, magnitudes, loss, traversal."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY_NET, seeded_model
from dynrep import GridWorld
from dynrep.models import rotation as rotation_module
from dynrep.models.rotation import entanglement, givens_product, plane_indices, step_rotations


def givens(n: int, i: int, j: int, angle: float) -> torch.Tensor:
    """Reference Givens matrix with the documented convention: [i,i]=[j,j]=cos, [i,j]=+sin, [j,i]=-sin."""
    m = torch.eye(n, dtype=torch.float64)
    c, s = math.cos(angle), math.sin(angle)
    m[i, i] = m[j, j] = c
    m[i, j] = s
    m[j, i] = -s
    return m


def reference_product(angles: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.eye(n, dtype=torch.float64)
    for (i, j), a in zip(plane_indices(n), angles.tolist()):
        out = out @ givens(n, i, j, a)
    return out


def rotation_model(env=None, **overrides):
    env = GridWorld(size=3, image_size=16) if env is None else env
    return seeded_model("rotation", env, **{"latent_dim": 4, **TINY_NET, **overrides})


# -- Givens products -------------------------------------------------------------------------
def test_plane_indices_order():
    assert plane_indices(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert plane_indices(2) == [(0, 1)]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_givens_product_is_a_rotation(n):
    g = torch.Generator().manual_seed(n)
    angles = (torch.rand(3, 2, n * (n - 1) // 2, generator=g, dtype=torch.float64) - 0.5) * 4 * math.pi
    mats = givens_product(angles, n)
    assert mats.shape == (3, 2, n, n)
    eye = torch.eye(n, dtype=torch.float64)
    assert torch.allclose(mats @ mats.transpose(-1, -2), eye.expand_as(mats), atol=1e-12)
    assert torch.allclose(torch.linalg.det(mats), torch.ones(3, 2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_givens_product_equals_sequential_reference(n):
    g = torch.Generator().manual_seed(100 + n)
    angles = (torch.rand(4, n * (n - 1) // 2, generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi
    mats = givens_product(angles, n)
    for k in range(4):
        assert torch.allclose(mats[k], reference_product(angles[k], n), atol=1e-12)


def test_givens_product_float32_unbatched():
    angles = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float32)
    mat = givens_product(angles, 3)
    assert mat.shape == (3, 3) and mat.dtype == torch.float32
    assert torch.allclose(mat.double(), reference_product(angles.double(), 3), atol=1e-6)


def test_givens_basis_is_built_once_and_trains_after_inference_mode(monkeypatch):
    """The constants are cached per (n, device, dtype); a first call under inference mode (evaluate) must not
    leave inference tensors that a later step recording gradients cannot save."""
    monkeypatch.setattr(rotation_module, "_BASES", {})
    with torch.inference_mode():
        first = givens_product(torch.zeros(3, dtype=torch.float64), 3)
    assert torch.equal(first, torch.eye(3, dtype=torch.float64))
    assert list(rotation_module._BASES) == [(3, torch.device("cpu"), torch.float64)]
    angles = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64, requires_grad=True)
    givens_product(angles, 3).sum().backward()
    assert angles.grad is not None and len(rotation_module._BASES) == 1
    assert torch.allclose(givens_product(angles.detach(), 3), reference_product(angles.detach(), 3), atol=1e-12)


def test_single_plane_angle_is_a_plane_rotation():
    angles = torch.zeros(6, dtype=torch.float64)
    angles[plane_indices(4).index((1, 3))] = 0.7
    mat = givens_product(angles, 4)
    expected = torch.eye(4, dtype=torch.float64)
    expected[1, 1] = expected[3, 3] = math.cos(0.7)
    expected[1, 3] = math.sin(0.7)
    expected[3, 1] = -math.sin(0.7)
    assert torch.allclose(mat, expected, atol=1e-15)
    # It rotates e3 towards e1 by 0.7 rad and leaves e0, e2 fixed.
    e3 = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(mat @ e3, torch.tensor([0.0, math.sin(0.7), 0.0, math.cos(0.7)], dtype=torch.float64))
    assert torch.equal(mat[:, 0], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))


def test_zero_angles_give_identity():
    assert torch.equal(givens_product(torch.zeros(5, 10), 5), torch.eye(5).expand(5, 5, 5))


def test_givens_product_wrong_angle_count():
    with pytest.raises(ValueError, match=r"angles must have 6 entries per matrix for n=4, got 5"):
        givens_product(torch.zeros(2, 5), 4)


def test_givens_product_is_differentiable():
    angles = torch.tensor([0.3, 0.2, -0.1], requires_grad=True)
    givens_product(angles, 3)[0, 1].backward()
    assert angles.grad is not None and angles.grad.abs().sum() > 0


# -- entanglement regulariser ----------------------------------------------------------------
def test_entanglement_on_hand_made_angles():
    one = torch.tensor([[0.3, 0.1, 0.0, 0.0, 0.0, 0.0]])
    assert entanglement(one).item() == pytest.approx(0.01, abs=1e-7)
    two = torch.tensor([[0.3, 0.1, 0.0, 0.0, 0.0, 0.0], [0.2, -0.2, 0.1, 0.0, 0.0, 0.0]])
    # (0.01 + (0.04 + 0.04 + 0.01 - 0.04)) / 2
    assert entanglement(two).item() == pytest.approx(0.03, abs=1e-7)
    pure = torch.tensor([[0.0, 0.0, 1.2, 0.0, 0.0, 0.0], [0.0, -0.5, 0.0, 0.0, 0.0, 0.0]])
    assert entanglement(pure).item() == 0.0


# -- the model ------------------------------------------------------------------------------
def test_encode_is_unit_norm():
    model = rotation_model()
    obs = GridWorld(size=3, image_size=16).sample_trajectories(6, 0, rng=0).obs[:, 0]
    z = model.encode(obs).mean
    assert z.shape == (6, 4)
    assert torch.allclose(z.norm(dim=-1), torch.ones(6), atol=1e-6)
    assert model.encode(obs).logvar is None


def test_angles_shape_and_init_bound():
    model = rotation_model(latent_dim=5)
    assert model.angles.shape == (4, 10)
    assert model.angles.abs().max() <= math.pi / 5
    model = rotation_model(angle_init=0.01)
    assert model.angles.abs().max() <= 0.01 and model.angles.abs().max() > 0


def test_action_matrices_shape():
    model = rotation_model()
    with torch.no_grad():
        mats = model.action_matrices(3)
        assert mats.shape == (3, 4, 4, 4)
        assert torch.allclose(mats[2], givens_product(3 * model.angles, 4), atol=1e-6)


def test_rollout_shapes_and_norm():
    model = rotation_model()
    z0 = torch.nn.functional.normalize(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    actions = torch.tensor([[0, 1, 2], [3, 3, 3], [0, 0, 0], [1, 2, 3], [2, 2, 1]])
    with torch.no_grad():
        z = model.rollout(z0, actions)
    assert z.shape == (5, 4, 4)
    assert torch.equal(z[:, 0], z0)
    assert torch.allclose(z.norm(dim=-1), torch.ones(5, 4), atol=1e-5)
    # Each step multiplies by the action's rotation.
    with torch.no_grad():
        mats = givens_product(model.angles, 4)
    assert torch.allclose(z[1, 2], mats[3] @ mats[3] @ z0[1], atol=1e-6)
    assert torch.allclose(z[3, 3], mats[3] @ mats[2] @ mats[1] @ z0[3], atol=1e-6)


def test_transition_equals_one_rollout_step():
    model = rotation_model()
    z0 = torch.nn.functional.normalize(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)), dim=-1)
    actions = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        a = model.transition(z0, actions)
        b = model.rollout(z0, actions[:, None])[:, 1]
        mats = givens_product(model.angles, 4)
    assert a.shape == (4, 4)
    assert torch.allclose(a, b)
    assert torch.allclose(a, (mats[actions] @ z0[..., None])[..., 0], atol=1e-6)


def test_magnitude_two_is_rotation_by_doubled_angles():
    model = rotation_model()
    z0 = torch.nn.functional.normalize(torch.randn(4, 4, generator=torch.Generator().manual_seed(2)), dim=-1)
    actions = torch.tensor([0, 1, 2, 3])
    magnitudes = torch.tensor([2, 2, 1, 2])
    with torch.no_grad():
        out = model.transition(z0, actions, magnitudes)
        doubled = givens_product(2 * model.angles, 4)
        single = givens_product(model.angles, 4)
    for k in range(4):
        mat = doubled[actions[k]] if magnitudes[k] == 2 else single[actions[k]]
        assert torch.allclose(out[k], mat @ z0[k], atol=1e-6)


def test_per_step_rotations_equal_the_gathered_ones():
    # Off the CPU the rollout builds each step's rotation from its magnitude (no host read of the largest one):
    # the same matrices as the host path's gather from action_matrices, and the same rollout.
    model = rotation_model(max_action_magnitude=3)
    gen = torch.Generator().manual_seed(3)
    actions, magnitudes = torch.randint(0, 4, (5, 6), generator=gen), torch.randint(1, 4, (5, 6), generator=gen)
    with torch.no_grad():
        gathered = model.action_matrices(3)[magnitudes - 1, actions]
        per_step = step_rotations(model.angles, actions, magnitudes, 4)
    assert per_step.shape == (5, 6, 4, 4)
    torch.testing.assert_close(per_step, gathered, rtol=0, atol=1e-6)
    assert not torch.allclose(per_step, step_rotations(model.angles, actions, magnitudes.clamp(max=1), 4))
    z0 = torch.nn.functional.normalize(torch.randn(5, 4, generator=gen), dim=-1)
    with torch.no_grad():
        host = model.rollout(z0, actions, magnitudes)
        with pytest.MonkeyPatch.context() as patch:  # as on a GPU: magnitudes not readable for free
            patch.setattr(rotation_module, "reads_free", lambda tensor: False)
            patch.setattr(torch.Tensor, "__int__", lambda self: pytest.fail("the rollout read a magnitude"))
            device = model.rollout(z0, actions, magnitudes)
    torch.testing.assert_close(device, host, rtol=0, atol=1e-6)


def test_loss_terms_and_gradients():
    env = GridWorld(size=3, image_size=16)
    model = rotation_model(env)
    batch = env.sample_trajectories(3, 4, rng=0)
    out = model.loss(batch, step=0)
    assert set(out.terms) == {"reconstruction", "entanglement"}
    assert torch.isfinite(out.total) and out.total.ndim == 0
    assert out.terms["entanglement"].item() == pytest.approx(entanglement(model.angles).item())
    out.total.backward()
    assert model.angles.grad is not None and model.angles.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_reconstruction_scores_the_whole_open_loop_episode():
    env = GridWorld(size=3, image_size=16)
    model = rotation_model(env)
    batch = env.sample_trajectories(3, 4, rng=0)
    with torch.no_grad():
        pred = model.predict(batch)
        target = batch.obs.float() / 255
        expected = torch.nn.functional.binary_cross_entropy(pred.clamp(1e-7, 1 - 1e-7), target)
        assert pred.shape == (3, 5, 3, 16, 16)
        assert model.loss(batch, 0).terms["reconstruction"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_regulariser_warmup():
    env = GridWorld(size=3, image_size=16)
    model = rotation_model(env, reg_weight=2.0, reg_warmup_steps=10)
    batch = env.sample_trajectories(3, 2, rng=0)
    with torch.no_grad():
        at0 = model.loss(batch, step=0)
        at5 = model.loss(batch, step=5)
        at10 = model.loss(batch, step=10)
        at50 = model.loss(batch, step=50)
    recon, ent = at0.terms["reconstruction"].item(), at0.terms["entanglement"].item()
    assert ent > 0
    assert at0.total.item() == recon
    assert at5.total.item() == pytest.approx(recon + 1.0 * ent, rel=1e-6)
    assert at10.total.item() == pytest.approx(recon + 2.0 * ent, rel=1e-6)
    assert at50.total.item() == pytest.approx(recon + 2.0 * ent, rel=1e-6)


def test_regulariser_target():
    env = GridWorld(size=3, image_size=16)
    model = rotation_model(env, reg_weight=1.0, reg_target=0.5)
    batch = env.sample_trajectories(3, 2, rng=0)
    with torch.no_grad():
        out = model.loss(batch, 0)
    recon, ent = out.terms["reconstruction"].item(), out.terms["entanglement"].item()
    assert out.total.item() == pytest.approx(recon + abs(ent - 0.5), rel=1e-6)


def test_parameter_groups_give_angles_their_own_lr():
    model = rotation_model(lr=1e-3, lr_angles=0.5)
    groups = model.parameter_groups()
    assert len(groups) == 2
    assert groups[0]["lr"] == 1e-3 and groups[1]["lr"] == 0.5
    assert len(groups[1]["params"]) == 1 and groups[1]["params"][0] is model.angles
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    default = rotation_model(lr=2e-3).parameter_groups()
    assert [g["lr"] for g in default] == [2e-3, 2e-3]


def test_traverse_rows_are_repeated_actions():
    env = GridWorld(size=3, image_size=16)
    model = rotation_model(env)
    obs = env.sample_trajectories(1, 0, rng=0).obs[:, 0]
    with torch.no_grad():
        frames, labels = model.traverse(obs, 4)
        z = model.representation(obs)
        mats = givens_product(model.angles, 4)
        assert frames.shape == (4, 4, 3, 16, 16)
        assert labels == ["row+", "row-", "column+", "column-"]
        for a in range(4):
            assert torch.allclose(frames[a, 0], model.decode(z)[0], atol=1e-6)
            z2 = mats[a] @ mats[a] @ z[0]
            assert torch.allclose(frames[a, 2], model.decode(z2[None])[0], atol=1e-5)
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        model.traverse(obs, 1)


def test_structure_scores_keys():
    model = rotation_model()
    scores = model.structure_scores()
    for a in ("row+", "row-", "column+", "column-"):
        assert 0 <= scores[f"rotation_purity/{a}"] <= 1
        assert 0 <= scores[f"rotation_eigen_purity/{a}"] <= 1
    for key in ("rotation_purity_min", "rotation_eigen_purity_min", "plane_sharing", "plane_disjoint"):
        assert key in scores
    assert scores["entanglement"] == pytest.approx(entanglement(model.angles).item())
    assert all(isinstance(v, float) for v in scores.values())


def test_rotation_model_on_onehot(onehot_env):
    model = rotation_model(onehot_env)
    batch = onehot_env.sample_trajectories(4, 3, rng=0)
    out = model.loss(batch, 0)
    assert torch.isfinite(out.total)
    assert model.predict(batch).shape == (4, 4, 9)
    z = model.encode(batch.obs[:, 0]).mean
    assert torch.allclose(z.norm(dim=-1), torch.ones(4), atol=1e-6)


def test_rotation_model_with_magnitudes_in_training_batches():
    env = GridWorld(size=3, image_size=16)
    model = rotation_model(env, max_action_magnitude=3)
    batch = env.sample_trajectories(4, 3, rng=0, max_magnitude=3)
    with torch.no_grad():
        pred = model.predict(batch)
        z0 = model.encode(batch.obs[:, 0]).mean
        z = model.rollout(z0, batch.actions, batch.magnitudes)
        mats = givens_product(batch.magnitudes[0, 0].item() * model.angles, 4)
    assert torch.allclose(z[0, 1], mats[batch.actions[0, 0]] @ z0[0], atol=1e-6)
    assert torch.allclose(pred, model.decode(z.flatten(0, 1)).view_as(pred), atol=1e-6)
