"""Toy-nn (mechanism sparsity): graphs, latent means, mixing network, reference RNG order, trajectory view."""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dynrep.data.loaders import TrajectoryDataset, TrajectoryStream
from dynrep.data.trajectory import Trajectory
from dynrep.envs.registry import list_envs, make_env
from dynrep.envs.toy_nn import DATASETS, SUBSETS, ToyNN

N = 2000  # num_samples: train 1600 rows, valid / test 200
ACTION, TEMPORAL = "action_sparsity_non_trivial", "temporal_sparsity_non_trivial"
LRELU_GAIN = np.sqrt(2 / (1 + 0.2 ** 2))
#: sha256 of every array of every dataset and subset, computed with the reference generator itself (a copy of
#: ../shared/reference/toy_nn_reference_sha256.json: get_ToyManifoldDatasets at 1e5 samples, split 0.8/0.1/0.1).
REFERENCE = json.loads((Path(__file__).parent / "data" / "toy_nn_reference_sha256.json").read_text())


@pytest.fixture(scope="module")
def envs():
    """Train subsets of every dataset, generated once for the module."""
    return {name: ToyNN(name, num_samples=N) for name in DATASETS}


def expected_mean(dataset: str, inputs: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """Transition mean written out term by term (independent of the module's vectorised code)."""
    n = len(inputs)
    out = np.zeros((n, 10))
    variant = dataset.split("_sparsity_")[1]
    for i in range(10):
        if variant == "trivial":
            parents = [i]
        elif variant == "non_trivial_no_graph_crit":
            block = 2 if dataset.startswith("action") else 5
            parents = [j for j in range(10) if j // block == i // block]
        elif dataset.startswith("action"):
            parents = sorted({i, (i - 1) % 10})
        else:
            parents = list(range(i + 1))
        for j in parents:
            if variant == "trivial":
                term = np.sin(inputs[:, j])
            elif variant == "non_trivial_no_suff_var":
                term = matrix[i, j] * inputs[:, j]
            else:
                term = np.sin(inputs[:, j] * (i + 3) / np.pi + i)
            out[:, i] += term
    return out if dataset.startswith("action") else inputs + 0.5 * out


def mix64(z: np.ndarray, weights) -> np.ndarray:
    """The mixing network in float64 numpy."""
    h = np.asarray(z, dtype=np.float64)
    for k, w in enumerate(weights):
        h = h @ np.asarray(w, dtype=np.float64)
        if k < 3:
            h = np.where(h > 0, h, 0.2 * h)
    return h


# -- spaces and shapes -------------------------------------------------------------------------
def test_shapes_action_dataset(envs):
    env = envs[ACTION]
    assert env.num_rows == 1600 and ToyNN(ACTION, subset="valid", num_samples=N).num_rows == 200
    assert env.factors.names == tuple(f"z{i}" for i in range(10))
    assert env.factors.sizes == (None,) * 10 and not env.factors.discrete
    assert env.actions.dim == 10 and env.actions.names == tuple(f"a{i}" for i in range(10))
    assert env.observation_shape == (20,) and env.observation_dtype == np.float32
    assert env.n_lag == 0 and not env.is_image
    assert env.graph_z.shape == (10, 10) and env.graph_z.sum() == 0 and env.graph_a.dtype == np.int64
    assert env.latents.shape == (1600, 1, 10) and env.latents.dtype == np.float32
    assert env.observations.shape == (1600, 1, 20) and env.observations.dtype == np.float32
    assert env.action_values.shape == (1600, 10) and env.action_values.dtype == np.float32
    assert env.action_values.min() >= -2 and env.action_values.max() <= 2
    assert env.action_values.min() < -1.9 and env.action_values.max() > 1.9  # uniform on [-2, 2]
    assert env.mixing(np.zeros((3, 10))).shape == (3, 20)
    assert env.render(env.latents[:4, 0]).shape == (4, 20)
    assert env.sample_factors(5, 0).shape == (5, 10)
    with pytest.raises(ValueError, match="not images"):
        env.observation_to_image(env.observations[:2, 0])
    with pytest.raises(ValueError):  # the cache is read-only
        env.latents[0, 0, 0] = 1.0


def test_shapes_temporal_dataset(envs):
    env = envs[TEMPORAL]
    assert env.actions.dim == 0 and env.actions.names == ()
    assert env.n_lag == 1
    assert env.graph_z.shape == (10, 10) and env.graph_a.shape == (10, 0)
    assert env.latents.shape == (1600, 2, 10) and env.observations.shape == (1600, 2, 20)
    assert env.action_values.shape == (1600, 0) and env.action_values.dtype == np.float32
    assert env.latents.dtype == env.observations.dtype == np.float32
    # z^0 ~ N(0, I)
    assert abs(env.latents[:, 0].mean()) < 0.05 and abs(env.latents[:, 0].std() - 1) < 0.05


# -- graphs and means --------------------------------------------------------------------------
def test_graphs_exact():
    eye = np.eye(10, dtype=np.int64)
    cyclic = eye.copy()
    for i in range(10):
        cyclic[i, (i - 1) % 10] = 1
    pairs = np.kron(np.eye(5, dtype=np.int64), np.ones((2, 2), dtype=np.int64))
    halves = np.kron(np.eye(2, dtype=np.int64), np.ones((5, 5), dtype=np.int64))
    tril = np.tril(np.ones((10, 10), dtype=np.int64))
    expected = {
        "action_sparsity_trivial": (eye, 10), "action_sparsity_non_trivial": (cyclic, 20),
        "action_sparsity_non_trivial_no_graph_crit": (pairs, 20),
        "action_sparsity_non_trivial_no_suff_var": (cyclic, 20),
        "temporal_sparsity_trivial": (eye, 10), "temporal_sparsity_non_trivial": (tril, 55),
        "temporal_sparsity_non_trivial_no_graph_crit": (halves, 50),
        "temporal_sparsity_non_trivial_no_suff_var": (tril, 55),
    }
    assert set(expected) == set(DATASETS) and len(DATASETS) == 8
    for name, (graph, edges) in expected.items():
        env = ToyNN(name, num_samples=N)  # graphs need no data
        assert env._data is None
        driving = env.graph_a if name.startswith("action") else env.graph_z
        np.testing.assert_array_equal(driving, graph, err_msg=name)
        assert driving.sum() == edges and driving.dtype == np.int64
    g = ToyNN("action_sparsity_non_trivial", num_samples=N).graph_a
    assert set(np.flatnonzero(g[0])) == {0, 9} and set(np.flatnonzero(g[4])) == {3, 4}
    assert ToyNN("action_sparsity_trivial", num_samples=N)._data is None  # nothing generated at construction


@pytest.mark.parametrize("dataset", DATASETS)
def test_latent_means_and_noise(envs, dataset):
    env = envs[dataset]
    matrix = env.transition_matrix
    if dataset.endswith("no_suff_var"):
        driving = env.graph_a if dataset.startswith("action") else env.graph_z
        np.testing.assert_array_equal(matrix != 0, driving.astype(bool))  # A = N(0, 1) * G
    else:
        assert matrix is None
    if dataset.startswith("action"):
        inputs, target = env.action_values.astype(np.float64), env.latents[:, 0].astype(np.float64)
    else:
        inputs, target = env.latents[:, 0].astype(np.float64), env.latents[:, 1].astype(np.float64)
    mu = expected_mean(dataset, inputs, matrix)
    residual = target - mu
    assert np.abs(residual[:3]).max() < 0.05  # a couple of rows by hand: within 5 noise std
    assert abs(residual.std() - 0.01) < 0.0005 and abs(residual.mean()) < 0.0005
    # the public mean agrees with the hand formula
    z_prev = None if dataset.startswith("action") else inputs
    a = inputs if dataset.startswith("action") else None
    np.testing.assert_allclose(env.transition_mean(z_prev, a), mu, atol=1e-9)
    np.testing.assert_allclose(env.step(inputs if z_prev is None else z_prev, a), mu, atol=1e-5)
    if "non_trivial" in dataset and not dataset.endswith("no_suff_var"):
        # bit-identical to the reference's dense expression (all 100 sines, masked, summed over parents)
        graph = (env.graph_a if dataset.startswith("action") else env.graph_z).astype(np.float64)
        rows = np.arange(10)[:, None]
        delta = np.sum(graph * np.sin(inputs[:, None, :] * np.repeat((rows + 3) / np.pi, 10, 1)
                                      + np.repeat(rows, 10, 1)), 2)
        dense = delta if dataset.startswith("action") else inputs + 0.5 * delta
        assert np.array_equal(env.transition_mean(z_prev, a), dense)


def test_step_and_transition_errors(envs):
    action, temporal = envs[ACTION], envs[TEMPORAL]
    z = np.zeros((4, 10))
    with pytest.raises(ValueError, match=r"actions must have shape \[4, 10\]"):
        action.step(z, None)
    with pytest.raises(ValueError, match=r"actions must have shape \[n, 10\]"):
        action.step(z, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="one per factor row"):
        action.step(z, np.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"factors must have shape \[n, 10\]"):
        action.step(np.zeros((4, 9)), np.zeros((4, 10)))
    with pytest.raises(ValueError, match="magnitudes"):
        action.step(z, np.zeros((4, 10)), magnitudes=np.full(4, 2))
    assert temporal.step(z).shape == (4, 10)
    np.testing.assert_array_equal(temporal.step(z, np.zeros((4, 0))), temporal.step(z))
    with pytest.raises(ValueError, match="temporal datasets have no actions"):
        temporal.step(z, np.zeros((4, 10)))
    with pytest.raises(ValueError, match="z_prev must have shape"):
        temporal.transition_mean(None)
    with pytest.raises(ValueError, match="real numbers"):
        temporal.render(np.array([["a"] * 10]))


# -- mixing network and standardisation -----------------------------------------------------------
def test_mixing_weights_orthonormal_rows(envs):
    env = envs[ACTION]
    weights = env.mixing_weights
    assert [w.shape for w in weights] == [(10, 20), (20, 20), (20, 20), (20, 20)]
    assert all(w.dtype == np.float32 for w in weights)
    for w in weights:
        scale = LRELU_GAIN * np.sqrt(2 / sum(w.shape))
        gram = w.astype(np.float64) @ w.T.astype(np.float64) / scale ** 2
        np.testing.assert_allclose(gram, np.eye(len(w)), atol=1e-5)
    # the network is shared by every dataset and subset (drawn first unless A is drawn before it)
    for other in (envs[TEMPORAL], ToyNN(ACTION, subset="test", num_samples=N)):
        for w, v in zip(weights, other.mixing_weights):
            np.testing.assert_array_equal(w, v)
    no_suff = envs["action_sparsity_non_trivial_no_suff_var"].mixing_weights[0]
    assert not np.allclose(no_suff, weights[0])  # A consumed the first 100 normals
    z = np.random.default_rng(0).normal(size=(50, 10))
    np.testing.assert_allclose(env.mixing(z), mix64(z, weights), atol=1e-5)
    assert np.linalg.matrix_rank(mix64(np.eye(10), weights[:1])) == 10  # injective first layer


def test_standardisation(envs):
    for name in (ACTION, TEMPORAL):
        obs = envs[name].observations.reshape(-1, 20).astype(np.float64)
        assert np.abs(obs.mean(0)).max() < 0.01
        assert np.abs(obs.std(0) - 1).max() < 0.01
        # observations = render(latents) + noise of std 0.01
        env = envs[name]
        noise = obs - env.render(env.latents.reshape(-1, 10)).astype(np.float64)
        assert abs(noise.std() - 0.01) < 0.0005 and abs(noise.mean()) < 0.0005
    raw = ToyNN(ACTION, num_samples=N, normalize=False)
    np.testing.assert_array_equal(raw.latents, envs[ACTION].latents)
    noise = raw.observations[:, 0].astype(np.float64) - raw.mixing(raw.latents[:, 0])
    assert abs(noise.std() - 0.01) < 0.0005
    assert np.abs(raw.observations.reshape(-1, 20).std(0) - 1).max() > 0.05  # really not standardised
    mean, std = raw.observation_stats
    np.testing.assert_array_equal(mean, np.zeros(20))
    np.testing.assert_array_equal(std, np.ones(20))


# -- seeds, the reference quirk, determinism --------------------------------------------------------
def test_valid_and_test_actions_repeat_train_actions(envs):
    train = envs[ACTION]
    for subset in ("valid", "test"):
        other = ToyNN(ACTION, subset=subset, num_samples=N)
        np.testing.assert_array_equal(other.action_values, train.action_values[:200])
        # different latent noise (seed 2 / 3), but only 0.01 of it: near-duplicates of train rows
        assert not np.array_equal(other.latents, train.latents[:200])
        assert np.abs(other.latents - train.latents[:200]).max() < 0.1


def test_determinism_and_subset_seeds(envs):
    again = ToyNN(TEMPORAL, num_samples=N)
    np.testing.assert_array_equal(again.observations, envs[TEMPORAL].observations)
    np.testing.assert_array_equal(again.latents, envs[TEMPORAL].latents)
    valid = ToyNN(TEMPORAL, subset="valid", num_samples=N)
    test = ToyNN(TEMPORAL, subset="test", num_samples=N)
    assert valid.latents.shape == test.latents.shape == (200, 2, 10)
    assert np.abs(valid.latents - test.latents).max() > 1
    assert np.abs(valid.latents - envs[TEMPORAL].latents[:200]).max() > 1


@pytest.mark.parametrize("dataset", DATASETS)
def test_full_arrays_match_the_reference_generator_sha256(dataset):
    """Every array (x = observations, z = latents, a = actions) of all three subsets, byte for byte."""
    assert (REFERENCE["split"], REFERENCE["z_dim"], REFERENCE["x_dim"]) == ([0.8, 0.1, 0.1], 10, 20)
    assert set(REFERENCE["datasets"]) == set(DATASETS)
    expected = REFERENCE["datasets"][dataset]
    assert set(expected) == set(SUBSETS)
    mismatched = []
    for subset in SUBSETS:
        env = ToyNN(dataset, subset=subset, num_samples=REFERENCE["num_samples"])
        arrays = {"x": env.observations, "z": env.latents, "a": env.action_values}
        assert set(expected[subset]) == ({"x", "z", "a"} if dataset.startswith("action") else {"x", "z"})
        for key, spec in expected[subset].items():
            # The reference's action rows have no time axis: [N, 10], where ours are [N, 1, 10] (same bytes).
            array = arrays[key].reshape(spec["shape"])
            assert array.dtype == np.dtype(spec["dtype"]) and array.flags.c_contiguous
            if hashlib.sha256(array.tobytes()).hexdigest() != spec["sha256"]:
                mismatched.append(f"{subset}/{key}")
    assert not mismatched, f"{dataset}: arrays differ from the reference generator's: {mismatched}"


def test_first_rows_match_an_independent_reimplementation():
    """First rows re-derived with default_rng calls in the reference order (float64 mixing)."""

    def weights_from(gen):
        out = []
        for fan_in, fan_out in ((10, 20), (20, 20), (20, 20), (20, 20)):
            w = np.linalg.qr(gen.normal(size=(fan_in, fan_out)).T)[0].T
            out.append(w * LRELU_GAIN * np.sqrt(2 / (fan_in + fan_out)))
        return out

    def standardise_and_noise(x, rng):
        x = (x - x.mean(0)) / x.std(0)
        return x + 0.01 * rng.normal(0, 1, size=x.shape)

    # temporal_sparsity_trivial, train: weights from 265542; z0, z1 noise, obs noise from seed 1
    n = 1600
    gen, rng = np.random.default_rng(265542), np.random.default_rng(1)
    weights = weights_from(gen)
    z0 = rng.normal(0, 1, size=(n, 10))
    z1 = rng.normal(z0 + 0.5 * np.sin(z0), 0.01)
    x = standardise_and_noise(mix64(np.stack([z0, z1], 1).reshape(2 * n, 10), weights), rng).reshape(n, 2, 20)
    env = ToyNN("temporal_sparsity_trivial", num_samples=N)
    np.testing.assert_allclose(env.latents[:3, 0], z0[:3], atol=1e-6)
    np.testing.assert_allclose(env.latents[:3, 1], z1[:3], atol=1e-6)
    np.testing.assert_allclose(env.observations[:3], x[:3], atol=1e-5)

    # action_sparsity_non_trivial_no_suff_var, valid: A before the weights, actions after them
    n = 200
    gen, rng = np.random.default_rng(265542), np.random.default_rng(2)
    cyclic = np.eye(10) + np.roll(np.eye(10), -1, axis=1)
    matrix = gen.normal(size=(10, 10)) * cyclic
    weights = weights_from(gen)
    a = gen.uniform(-2, 2, size=(n, 10))
    z = rng.normal(a @ matrix.T, 0.01)
    x = standardise_and_noise(mix64(z, weights), rng)
    env = ToyNN("action_sparsity_non_trivial_no_suff_var", subset="valid", num_samples=N)
    np.testing.assert_allclose(env.transition_matrix, matrix, atol=0)
    np.testing.assert_allclose(env.action_values[:3], a[:3], atol=1e-6)
    np.testing.assert_allclose(env.latents[:3, 0], z[:3], atol=1e-6)
    np.testing.assert_allclose(env.observations[:3, 0], x[:3], atol=1e-5)


# -- trajectory view --------------------------------------------------------------------------------
def test_trajectories_action_dataset_pairs_previous_row(envs):
    env = envs[ACTION]
    t = env.trajectories()
    obs, lat, act = env.observations[:, 0], env.latents[:, 0], env.action_values
    assert t.obs.shape == (1600, 2, 20) and t.actions.shape == (1600, 1, 10) and t.factors.shape == (1600, 2, 10)
    assert t.obs.dtype == t.actions.dtype == t.factors.dtype == torch.float32
    np.testing.assert_array_equal(t.obs[:, 1].numpy(), obs)  # frame 1 = reference row i
    np.testing.assert_array_equal(t.actions[:, 0].numpy(), act)
    np.testing.assert_array_equal(t.factors[:, 1].numpy(), lat)
    np.testing.assert_array_equal(t.obs[1:, 0].numpy(), obs[:-1])  # frame 0 = row i - 1
    np.testing.assert_array_equal(t.factors[1:, 0].numpy(), lat[:-1])
    np.testing.assert_array_equal(t.obs[0, 0].numpy(), obs[-1])  # cyclic at row 0
    np.testing.assert_array_equal(t.factors[0, 0].numpy(), lat[-1])
    some = env.trajectories([7, 0, 7])
    np.testing.assert_array_equal(some.obs[0].numpy(), t.obs[7].numpy())
    np.testing.assert_array_equal(some.obs[1].numpy(), t.obs[0].numpy())
    for bad in ([1600], [-1], [[0, 1]], [0.5]):
        with pytest.raises(ValueError, match=r"index must .*\[0, 1600\)"):
            env.trajectories(bad)


def test_trajectories_temporal_dataset(envs):
    env = envs[TEMPORAL]
    t = env.trajectories()
    np.testing.assert_array_equal(t.obs.numpy(), env.observations)
    np.testing.assert_array_equal(t.factors.numpy(), env.latents)
    assert t.actions.shape == (1600, 1, 0) and t.actions.dtype == torch.float32


@pytest.mark.parametrize("dataset", [ACTION, TEMPORAL])
def test_sample_trajectories(envs, dataset):
    env = envs[dataset]
    adim = 10 if dataset == ACTION else 0
    one = env.sample_trajectories(64, 1, rng=3)
    assert one.obs.shape == (64, 2, 20) and one.actions.shape == (64, 1, adim) and one.factors.shape == (64, 2, 10)
    assert one.length == 1
    again = env.sample_trajectories(64, 1, rng=np.random.default_rng(3))
    assert torch.equal(one.obs, again.obs)  # seeded
    # every sampled episode is a row of the trajectory view
    full = env.trajectories()
    rows = [int(np.flatnonzero((full.obs[:, 1] == o).all(1))[0]) for o in one.obs[:, 1]]
    assert torch.equal(full.obs[rows], one.obs) and torch.equal(full.actions[rows], one.actions)
    static = env.sample_trajectories(32, 0, rng=1)
    assert static.obs.shape == (32, 1, 20) and static.actions.shape == (32, 0, adim)
    assert static.factors.shape == (32, 1, 10) and static.length == 0
    last = env.observations[:, -1]
    assert all((last == o.numpy()).all(1).any() for o in static.obs[:, 0])  # last frames of rows
    with pytest.raises(ValueError, match="length must be 0 .* or 1"):
        env.sample_trajectories(4, 2)
    with pytest.raises(ValueError, match="max_magnitude must be 1"):
        env.sample_trajectories(4, 1, max_magnitude=2)
    with pytest.raises(ValueError, match="batch must be"):
        env.sample_trajectories(0, 1)


# -- construction, registry, serialisation, loaders -------------------------------------------------
def test_argument_errors_name_argument_and_allowed_values():
    with pytest.raises(ValueError, match="dataset must be one of .*action_sparsity_trivial.*got 'toy'"):
        ToyNN("toy")
    with pytest.raises(ValueError, match=r"subset must be one of \['train', 'valid', 'test'\], got 'val'"):
        ToyNN(ACTION, subset="val")
    with pytest.raises(ValueError, match="num_samples must be an integer >= 20"):
        ToyNN(ACTION, num_samples=10)
    with pytest.raises(ValueError, match="num_samples"):
        ToyNN(ACTION, num_samples=2000.5)
    with pytest.raises(ValueError, match="normalize must be True or False"):
        ToyNN(ACTION, normalize="yes")
    assert ToyNN(ACTION, num_samples=2e3).num_samples == 2000  # the reference's float 1e6 style


def test_make_env():
    assert "toy_nn" in list_envs()
    env = make_env("toy_nn", "action_sparsity_non_trivial")
    assert isinstance(env, ToyNN) and env.num_rows == 800_000 and env._data is None  # lazy
    small = make_env("toy_nn", TEMPORAL, subset="test", num_samples=N)
    assert small.num_rows == 200 and "subset='test'" in repr(small)


def test_config_and_pickle_round_trip(envs):
    env = ToyNN(TEMPORAL, subset="valid", num_samples=N, normalize=False)
    config = env.get_config()
    assert config == {"dataset": TEMPORAL, "subset": "valid", "num_samples": N, "normalize": False}
    rebuilt = type(env)(**config)
    np.testing.assert_array_equal(rebuilt.observations, env.observations)
    blob = pickle.dumps(env)  # data already generated: the arrays must not be shipped
    assert len(blob) < 10_000
    restored = pickle.loads(blob)
    assert restored.get_config() == config
    np.testing.assert_array_equal(restored.observations, env.observations)
    np.testing.assert_array_equal(restored.latents, env.latents)


def test_loaders(envs):
    env = envs[ACTION]
    stream = iter(TrajectoryStream(env, batch_size=16, length=1, seed=0))
    batch = next(stream)
    assert batch.obs.shape == (16, 2, 20) and batch.actions.shape == (16, 1, 10)
    static = next(iter(TrajectoryStream(envs[TEMPORAL], batch_size=8, length=0)))
    assert static.obs.shape == (8, 1, 20)
    dataset = TrajectoryDataset(env.trajectories())
    assert len(dataset) == 1600
    loader = DataLoader(dataset, batch_size=100, collate_fn=Trajectory.collate)
    batches = list(loader)
    assert len(batches) == 16 and batches[0].obs.shape == (100, 2, 20)
    np.testing.assert_array_equal(batches[0].obs[:, 1].numpy(), env.observations[:100, 0])
    temporal = DataLoader(TrajectoryDataset(envs[TEMPORAL].trajectories(np.arange(10))), batch_size=4,
                          collate_fn=Trajectory.collate)
    assert [b.actions.shape for b in temporal] == [(4, 1, 0), (4, 1, 0), (2, 1, 0)]
