"""dynrep.metrics.independence: true independence of action directions on constructed representations."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from dynrep.metrics.independence import true_independence

FACTOR_OF_ACTION = [0, 0, 1, 1]  # actions 0/1 = factor 0 (+/-), actions 2/3 = factor 1 (+/-)


def _translations(directions, n=400, dim=4, seed=0):
    """Latents and next latents where action a translates z by directions[a]."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n, dim))
    actions = np.arange(n) % len(directions)
    return z, z + np.asarray(directions)[actions], actions


def _rotation(plane, angle, dim=4):
    m = np.eye(dim)
    i, j = plane
    m[i, i] = m[j, j] = np.cos(angle)
    m[i, j], m[j, i] = -np.sin(angle), np.sin(angle)
    return m


def test_independent_translations_score_one_and_mixed_score_lower():
    e = np.eye(4) * 0.5
    z, z_next, actions = _translations([e[0], -e[0], e[1], -e[1]])
    out = true_independence(z, z_next, actions, factor_of_action=FACTOR_OF_ACTION)
    assert out["independence"] == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(out["action_fit_mse"], 0.0, atol=1e-20)
    assert np.allclose(out["offsets"][0], e[0]) and np.allclose(out["maps"][2], np.eye(4), atol=1e-9)
    diagonal = (e[0] + e[1]) / np.sqrt(2)
    z, z_next, actions = _translations([e[0], -e[0], diagonal, -diagonal])
    out = true_independence(z, z_next, actions, factor_of_action=FACTOR_OF_ACTION)
    assert out["independence"] == pytest.approx(1.0 - np.sqrt(0.5), abs=1e-9)
    assert out["factor_overlap"] == pytest.approx(np.array([[0, np.sqrt(0.5)], [np.sqrt(0.5), 0]]), abs=1e-9)


def test_rotations_in_disjoint_planes_score_one_under_any_orthogonal_change_of_basis():
    rng = np.random.RandomState(1)
    maps = [_rotation((0, 1), 0.7), _rotation((0, 1), -0.7), _rotation((2, 3), 0.4), _rotation((2, 3), -0.4)]
    z = rng.normal(size=(400, 4))
    actions = np.arange(400) % 4
    z_next = np.einsum("nij,nj->ni", np.stack(maps)[actions], z)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    for fit_intercept in (True, False):
        out = true_independence(z @ q.T, z_next @ q.T, actions, factor_of_action=FACTOR_OF_ACTION,
                                fit_intercept=fit_intercept)
        assert out["independence"] == pytest.approx(1.0, abs=1e-9)
    # a non-orthogonal linear mixing of the latents makes the planes overlap
    mix = np.eye(4) + 0.8 * np.ones((4, 4))
    out = true_independence(z @ mix.T, z_next @ mix.T, actions, factor_of_action=FACTOR_OF_ACTION)
    assert out["independence"] < 0.7


def _reference(z, z_next, actions, groups, abs_first):
    """UAE measure_indep with least-squares affine maps, written from the spec."""
    directions = {}
    for a in range(4):
        fit = LinearRegression().fit(z[actions == a], z_next[actions == a])
        d = z - fit.predict(z)
        directions[a] = d / np.linalg.norm(d, axis=1, keepdims=True)
    values = []
    for g1, g2 in itertools.permutations(groups, 2):
        cos = np.stack([(directions[a] * directions[b]).sum(-1) for a in g1 for b in g2], 1)
        values.append(np.abs(cos).max(1) if abs_first else np.abs(cos.max(1)))
    return 1.0 - np.concatenate(values).mean()


@pytest.mark.parametrize("abs_first", [False, True])
def test_parity_with_reference_procedure(abs_first):
    rng = np.random.RandomState(2)
    z = rng.normal(size=(600, 3))
    actions = rng.randint(0, 4, size=600)
    shifts = rng.normal(size=(4, 3))
    z_next = np.tanh(z + shifts[actions]) + 0.05 * rng.normal(size=z.shape)
    expected = _reference(z, z_next, actions, [(0, 1), (2, 3)], abs_first)
    out = true_independence(z, z_next, actions, factor_of_action=np.array([0, 0, 1, 1]), abs_first=abs_first)
    assert out["independence"] == pytest.approx(expected, abs=1e-9)
    assert 0.0 < out["independence"] < 1.0


def test_abs_first_differs_from_reference_order_when_signs_disagree():
    """Group {+e0, +e1} vs group {-e0}: signed cosines (-1, 0) -> |max| = 0, max |.| = 1."""
    e = np.eye(3) * 0.5
    z, z_next, actions = _translations([e[0], e[1], -e[0]], dim=3)
    factor_of_action = [0, 0, 1]
    reference = true_independence(z, z_next, actions, factor_of_action=factor_of_action)
    assert reference["independence"] == pytest.approx(1.0, abs=1e-9)
    spec = true_independence(z, z_next, actions, factor_of_action=factor_of_action, abs_first=True)
    assert spec["independence"] == pytest.approx(0.0, abs=1e-9)


def test_three_factors_average_over_pairs():
    e = np.eye(3) * 0.5
    z, z_next, actions = _translations([e[0], e[1], (e[0] + e[2]) / np.sqrt(2)], dim=3)
    out = true_independence(z, z_next, actions, factor_of_action=[0, 1, 2])
    assert out["independence"] == pytest.approx(1.0 - np.sqrt(0.5) / 3, abs=1e-9)
    assert out["factor_overlap"].shape == (3, 3)


def test_action_fit_mse_is_the_mean_squared_residual_of_each_least_squares_map():
    rng = np.random.RandomState(3)
    z = rng.normal(size=(200, 3))
    actions = np.arange(200) % 4
    z_next = z + rng.normal(size=(4, 3))[actions] + 0.1 * rng.normal(size=z.shape)
    out = true_independence(z, z_next, actions, factor_of_action=FACTOR_OF_ACTION)
    for a in range(4):
        x = np.concatenate([z[actions == a], np.ones((50, 1))], axis=1)
        coef = np.linalg.lstsq(x, z_next[actions == a], rcond=None)[0]
        assert out["action_fit_mse"][a] == pytest.approx(np.mean((x @ coef - z_next[actions == a]) ** 2), rel=1e-9)
    assert np.all(out["action_fit_mse"] > 0.005)


def test_exactly_dim_plus_one_samples_per_action_suffice():
    e = np.eye(4) * 0.5
    z, z_next, actions = _translations([e[0], -e[0], e[1], -e[1]], n=20)  # 5 samples per action in 4-D
    out = true_independence(z, z_next, actions, factor_of_action=FACTOR_OF_ACTION)
    assert out["independence"] == pytest.approx(1.0, abs=1e-9)


def test_fixed_point_tolerance_is_relative_to_each_latent_norm():
    """A point is fixed when |displacement| <= 1e-12 * (1 + |z|) for its own row z."""
    rng = np.random.RandomState(4)
    z = rng.uniform(1.0, 1.1, size=(40, 2))  # row norms in [1.41, 1.56]: thresholds in [2.41e-12, 2.56e-12]
    actions = np.arange(40) % 2

    def run(step):
        shifts = np.array([[step, 0.0], [0.0, step]])
        return true_independence(z, z + shifts[actions], actions, factor_of_action=[0, 1])

    assert run(3e-12)["independence"] == pytest.approx(1.0, abs=1e-6)  # above every row's threshold
    with pytest.raises(ValueError, match="action 0 does not move 40 of the latents"):
        run(1e-12)  # below every row's threshold


def test_errors():
    e = np.eye(4) * 0.5
    z, z_next, actions = _translations([e[0], -e[0], e[1], -e[1]], n=40)
    with pytest.raises(ValueError, match="needs at least 5"):
        true_independence(z[:12], z_next[:12], actions[:12], factor_of_action=FACTOR_OF_ACTION)
    with pytest.raises(ValueError, match="next_latents must have the shape of latents"):
        true_independence(z, z_next[:, :3], actions, factor_of_action=FACTOR_OF_ACTION)
    with pytest.raises(ValueError, match=r"actions must be ids in \[0, 3\) .*, got values \[0 1 2 3\]"):
        true_independence(z, z_next, actions, factor_of_action=[0, 0, 1])
    with pytest.raises(ValueError, match="at least two factors"):
        true_independence(z, z_next, actions, factor_of_action=[0, 0, 0, 0])
    with pytest.raises(ValueError, match="factor_of_action must be a 1-D integer sequence"):
        true_independence(z, z_next, actions, factor_of_action=[0.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="factor_of_action must be a 1-D integer sequence"):
        true_independence(z, z_next, actions, factor_of_action=[[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"^latents contains NaN"):
        true_independence(np.full_like(z, np.nan), z_next, actions, factor_of_action=FACTOR_OF_ACTION)
    with pytest.raises(ValueError, match=r"^next_latents contains NaN"):
        true_independence(z, np.full_like(z, np.nan), actions, factor_of_action=FACTOR_OF_ACTION)
    with pytest.raises(ValueError, match=r"actions must be integer action ids of shape \(40,\)"):
        true_independence(z, z_next, actions.astype(float), factor_of_action=FACTOR_OF_ACTION)
    still = z_next.copy()
    still[actions == 1] = z[actions == 1]  # action 1 does nothing: no direction
    with pytest.raises(ValueError, match="action 1 does not move 40 of the latents"):
        true_independence(z, still, actions, factor_of_action=FACTOR_OF_ACTION)
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])  # a quarter turn about the origin: row 7 (the origin) is fixed
    plane = np.random.RandomState(5).normal(size=(12, 2))
    plane[7] = 0.0
    with pytest.raises(ValueError, match=r"does not move 1 of the latents \(fixed points, first at row 7\)"):
        true_independence(plane, plane @ turn.T, np.arange(12) % 2, factor_of_action=[0, 1])
