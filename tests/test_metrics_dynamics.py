"""dynrep.metrics.dynamics: per-step BCE and the structure scores of action rotations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dynrep.metrics.dynamics import (angle_purity, dominant_planes, eigen_purity, frame_bce, mean_bce,
                                    per_frame_bce, per_step_bce, rotation_structure)
from dynrep.models.rotation import givens_product, plane_indices


# -- per_step_bce ----------------------------------------------------------------------------
def test_per_step_bce_hand_computation():
    target = np.array([[[1.0, 0.0], [0.5, 1.0]]])  # [N=1, T+1=2, 2]
    predicted = np.array([[[0.8, 0.3], [0.5, 0.9]]])
    out = per_step_bce(target, predicted)
    expected = [(-math.log(0.8) - math.log(0.7)) / 2, (math.log(2) - math.log(0.9)) / 2]
    assert out.shape == (2,) and out.dtype == np.float64
    assert out == pytest.approx(expected, rel=1e-12)


def test_per_step_bce_averages_over_episodes_and_elements():
    target = np.zeros((2, 3, 2, 2))
    predicted = np.full((2, 3, 2, 2), 0.5)
    predicted[1, 2] = 0.25  # one episode, one step
    out = per_step_bce(target, predicted)
    assert out[:2] == pytest.approx([math.log(2)] * 2)
    assert out[2] == pytest.approx((math.log(2) - math.log(0.75)) / 2)


def test_per_step_bce_uint8_target():
    predicted = np.array([[[0.9, 0.2, 0.6]]])
    as_uint8 = per_step_bce(np.array([[[255, 0, 255]]], dtype=np.uint8), predicted)
    as_float = per_step_bce(np.array([[[1.0, 0.0, 1.0]]]), predicted)
    assert np.array_equal(as_uint8, as_float)
    assert as_uint8[0] == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.6)) / 3)


def test_per_step_bce_clips_probabilities():
    out = per_step_bce(np.array([[[1.0, 0.0]]]), np.array([[[0.0, 1.0]]]))
    assert np.isfinite(out).all()
    assert out[0] == pytest.approx(-math.log(1e-6), rel=1e-6)


def test_per_step_bce_shape_errors():
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3, 4\) and \(2, 3, 5\)"):
        per_step_bce(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"target must have shape \[N, T\+1, \.\.\.\], got \(3,\)"):
        per_step_bce(np.zeros(3), np.zeros(3))


def test_mean_bce():
    target = np.array([[255, 0], [0, 255]], dtype=np.uint8)
    predicted = np.array([[0.9, 0.2], [0.5, 0.6]])
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.5) + math.log(0.6)) / 4
    out = mean_bce(target, predicted)
    assert isinstance(out, float) and out == pytest.approx(expected)
    # The mean over all elements equals the per-step errors averaged over equally sized steps.
    frames = np.random.default_rng(0).random((3, 4, 5))
    probs = np.random.default_rng(1).random((3, 4, 5))
    assert mean_bce(frames, probs) == pytest.approx(per_step_bce(frames, probs).mean())
    with pytest.raises(ValueError, match="same shape"):
        mean_bce(np.zeros(3), np.zeros(4))


# -- frame_bce (torch) -----------------------------------------------------------------------
def test_frame_bce_equals_per_frame_bce():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (13, 3, 20, 20), dtype=torch.uint8, generator=generator)
    target[0] = 0  # saturated frames exercise the clipping
    predicted = torch.rand(13, 3, 20, 20, generator=generator)
    predicted[0, 0] = 1.0
    predicted = predicted.to(memory_format=torch.channels_last)  # a decoder's layout
    expected = per_frame_bce(target.numpy(), predicted.numpy())
    inputs = target.clone(), predicted.clone()
    out = frame_bce(target, predicted)
    assert torch.equal(target, inputs[0]) and torch.equal(predicted, inputs[1])  # inputs left alone
    assert out.dtype == torch.float64 and out.shape == (13,)
    np.testing.assert_allclose(out.numpy(), expected, rtol=2e-7)
    floats = target.double() / 255
    np.testing.assert_allclose(frame_bce(floats, predicted.double()).numpy(), expected, rtol=1e-10)
    assert torch.equal(floats, target.double() / 255)


def test_frame_bce_blocks_and_edge_cases(monkeypatch):
    import dynrep.metrics.dynamics as dynamics
    target, predicted = torch.full((5, 7), 255, dtype=torch.uint8), torch.full((5, 7), 0.5)
    whole = frame_bce(target, predicted)
    monkeypatch.setattr(dynamics, "_CACHE_ELEMENTS", 8)  # one frame per block
    assert torch.allclose(frame_bce(target, predicted), whole) and whole[0] == pytest.approx(math.log(2))
    assert frame_bce(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.0])).tolist() == pytest.approx(
        [math.log(2), -math.log(1e-6)], rel=1e-6)  # [N] frames of one element
    assert frame_bce(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0,)
    with pytest.raises(ValueError, match=r"same shape \[N, \.\.\.\], got \(2, 3\) and \(2, 4\)"):
        frame_bce(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="predicted must hold float probabilities, got torch.uint8"):
        frame_bce(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.uint8))


# -- purity ----------------------------------------------------------------------------------
def test_angle_purity_values():
    angles = np.array([
        [0.5, 0.0, 0.0, 0.0, 0.0, 0.0],   # one plane
        [0.3, -0.3, 0.3, 0.0, 0.0, 0.0],  # spread equally over 3 planes
        [0.2] * 6,                         # over all 6
        [0.0] * 6,                         # no rotation
        [0.3, 0.4, 0.0, 0.0, 0.0, 0.0],
    ])
    assert angle_purity(angles) == pytest.approx([1.0, 1 / 3, 1 / 6, 0.0, 0.64])


def test_angle_purity_wraps_angles():
    # 2*pi + 0.1 is the same rotation as 0.1.
    assert angle_purity(np.array([[2 * math.pi + 0.1, 0.2, 0.0]])) == pytest.approx([0.8])


def test_eigen_purity_single_and_two_planes():
    n = 4
    single = np.zeros(6)
    single[plane_indices(n).index((0, 2))] = 1.1
    a, b = 0.9, 0.3
    two = np.zeros(6)
    two[plane_indices(n).index((0, 1))] = a
    two[plane_indices(n).index((2, 3))] = b
    mats = givens_product(torch.tensor(np.stack([single, two, np.zeros(6)])), n).numpy()
    out = eigen_purity(mats)
    assert out == pytest.approx([1.0, a * a / (a * a + b * b), 0.0], abs=1e-9)


def test_eigen_purity_ignores_the_basis():
    """A change of basis (Q R Q^T) changes the Givens angles but not the eigen purity."""
    a, b = 0.8, 0.5
    angles = np.zeros(10)
    angles[plane_indices(5).index((0, 1))] = a
    angles[plane_indices(5).index((2, 4))] = b
    rot = givens_product(torch.tensor(angles), 5).numpy()
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))
    mats = np.stack([rot, q @ rot @ q.T])
    assert eigen_purity(mats) == pytest.approx([a * a / (a * a + b * b)] * 2, abs=1e-9)


def test_dominant_planes():
    angles = np.array([[0.1, 0.0, 0.0, 0.0, 0.0, -0.9], [0.0, 0.5, 0.0, 0.2, 0.0, 0.0]])
    assert dominant_planes(angles, 4) == [(2, 3), (0, 2)]


# -- rotation_structure ----------------------------------------------------------------------
NAMES = ("row+", "row-", "column+", "column-")
FACTORS = (0, 0, 1, 1)


def structure(angles):
    angles = np.asarray(angles, dtype=np.float64)
    mats = givens_product(torch.tensor(angles), 4).numpy()
    return rotation_structure(angles, mats, NAMES, FACTORS)


def test_rotation_structure_ideal_torus():
    p01, p23 = plane_indices(4).index((0, 1)), plane_indices(4).index((2, 3))
    angles = np.zeros((4, 6))
    angles[0, p01], angles[1, p01] = 2 * math.pi / 5, -2 * math.pi / 5
    angles[2, p23], angles[3, p23] = 2 * math.pi / 5, -2 * math.pi / 5
    scores = structure(angles)
    expected_keys = ({f"rotation_purity/{a}" for a in NAMES} | {f"rotation_eigen_purity/{a}" for a in NAMES}
                     | {"rotation_purity_min", "rotation_eigen_purity_min", "plane_sharing", "plane_disjoint"})
    assert set(scores) == expected_keys
    for key in expected_keys:
        assert scores[key] == pytest.approx(1.0), key
    assert all(isinstance(v, float) for v in scores.values())


def test_rotation_structure_bad_representation():
    planes = plane_indices(4)
    angles = np.zeros((4, 6))
    angles[0, planes.index((0, 1))] = 1.0
    angles[1, planes.index((0, 1))] = -1.0
    angles[2, planes.index((0, 2))] = 1.0                                  # column+ in (0, 2)
    angles[3, planes.index((1, 2))] = 1.0                                  # column- in (1, 2)
    angles[3, planes.index((0, 3))] = 0.5                                  # and impure
    scores = structure(angles)
    assert scores["plane_sharing"] == 0.5        # rows share a plane, columns do not
    assert scores["plane_disjoint"] == 0.0       # the planes of rows and columns overlap
    assert scores["rotation_purity/column-"] == pytest.approx(0.8)
    assert scores["rotation_purity_min"] == pytest.approx(0.8)
    assert scores["rotation_purity/row+"] == pytest.approx(1.0)
    assert scores["rotation_eigen_purity/column-"] < 1.0
    assert scores["rotation_eigen_purity_min"] == pytest.approx(scores["rotation_eigen_purity/column-"])


def test_rotation_structure_single_factor_has_no_disjoint_score():
    angles = np.zeros((2, 1))
    angles[:, 0] = [0.5, -0.5]
    mats = givens_product(torch.tensor(angles), 2).numpy()
    scores = rotation_structure(angles, mats, ["x+", "x-"], [0, 0])
    assert "plane_disjoint" not in scores
    assert scores["plane_sharing"] == 1.0


def test_rotation_structure_length_mismatch():
    angles = np.zeros((4, 6))
    mats = np.stack([np.eye(4)] * 4)
    with pytest.raises(ValueError, match="need one name and one factor per action: 4 actions, 3 names, 4 factors"):
        rotation_structure(angles, mats, NAMES[:3], FACTORS)


def test_latent_prediction_error_per_step():
    from dynrep.metrics.dynamics import latent_prediction_error
    encoded = np.zeros((2, 3, 2))
    predicted = encoded.copy()
    predicted[0, 1] = [3.0, 4.0]  # squared distance 25
    predicted[1, 2] = [1.0, 0.0]  # squared distance 1
    np.testing.assert_allclose(latent_prediction_error(predicted, encoded), [0.0, 12.5, 0.5])
    np.testing.assert_allclose(latent_prediction_error(predicted + 1, encoded + 1), [0.0, 12.5, 0.5])  # a difference
    with pytest.raises(ValueError, match=r"must both have shape \[N, T\+1, D\]"):
        latent_prediction_error(predicted[:, :2], encoded)
