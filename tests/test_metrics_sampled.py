"""Environment-level metrics: the Sampler, the FactorVAE and β-VAE scores, and compute()."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from dynrep.envs.base import FactorSpace
from dynrep.metrics import beta_vae, factor_vae
from dynrep.metrics.beta_vae import beta_vae_score
from dynrep.metrics.factor_vae import factor_vae_score
from dynrep.metrics.sampling import Sampler
from metric_worlds import FactorVectors


def identity(obs):
    return obs


def test_sampler_encodes_in_batches_and_checks_shapes():
    env = FactorVectors()
    calls = []

    def rep(obs):
        calls.append(len(obs))
        return obs * 2

    sampler = Sampler(env, rep, seed=3, batch_size=7)
    codes, factors = sampler.sample(20)
    assert calls == [7, 7, 6] and codes.shape == (20, 3) and factors.shape == (20, 3)
    np.testing.assert_array_equal(codes, 2 * factors)
    again, _ = Sampler(env, rep, seed=3, batch_size=5).sample(20)
    np.testing.assert_array_equal(again, codes)  # same seed, same observations, whatever the batching
    with pytest.raises(ValueError, match=r"representation_fn must return codes of shape \[4, num_codes\]"):
        Sampler(env, lambda obs: obs[:, 0], batch_size=4).sample(4)
    with pytest.raises(TypeError, match="representation_fn must be callable"):
        Sampler(env, "encoder")


def reference_factor_vae_votes(env, rep, rng, num_votes, batch_size, global_var, active):
    """disentanglement_lib's vote loop, one vote at a time."""
    votes = np.zeros((len(env.factors), len(global_var)), dtype=np.int64)
    for _ in range(num_votes):
        k = rng.integers(0, len(env.factors), size=1)[0]
        f = env.sample_factors(batch_size, rng)
        f[:, k] = f[0, k]
        local = np.var(np.asarray(rep(env.render(f)), dtype=np.float64), axis=0, ddof=1)
        dims = np.flatnonzero(active)
        votes[k, dims[np.argmin(local[dims] / global_var[dims])]] += 1
    return votes


def mixing(obs):
    obs = torch.as_tensor(obs, dtype=torch.float64)
    return torch.stack([obs[:, 0] + obs[:, 1], obs[:, 0] - obs[:, 1], obs[:, 2], 0 * obs[:, 2] + 1], dim=1)


def test_factor_vae_votes_match_the_reference_loop(monkeypatch):
    env = FactorVectors()
    monkeypatch.setattr(factor_vae, "VOTE_OBSERVATIONS", 16)  # one vote per chunk: the reference's draw order
    result = factor_vae_score(Sampler(env, mixing, seed=5, batch_size=512), num_variance_estimate=300, num_train=60, num_eval=30,
                              batch_size=16)
    rng = np.random.default_rng(5)
    codes = mixing(env.sample_trajectories(300, 0, rng).obs[:, 0]).numpy()
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_var) >= 0.05
    assert active.tolist() == [True, True, True, False]  # the constant code is pruned
    train_votes = reference_factor_vae_votes(env, mixing, rng, 60, 16, global_var, active)
    eval_votes = reference_factor_vae_votes(env, mixing, rng, 30, 16, global_var, active)
    np.testing.assert_array_equal(result["votes"], train_votes)
    assert result["num_active_dims"] == 3 and result["votes"].sum() == 60
    classifier = np.argmax(train_votes, axis=0)  # the reference's: fitted on the training votes, applied to both
    assert result["train_accuracy"] == np.sum(train_votes[classifier, np.arange(4)]) / 60
    assert result["eval_accuracy"] == np.sum(eval_votes[classifier, np.arange(4)]) / 30


def test_factor_vae_perfect_mixed_random_and_inactive():
    env = FactorVectors()
    perfect = factor_vae_score(Sampler(env, identity), num_train=300, num_eval=200)
    assert perfect["train_accuracy"] == 1.0 and perfect["eval_accuracy"] == 1.0
    mixed = factor_vae_score(Sampler(env, mixing), num_train=300, num_eval=200)
    assert mixed["eval_accuracy"] < 0.9
    rng = np.random.default_rng(0)
    noise = factor_vae_score(Sampler(env, lambda obs: rng.normal(size=(len(obs), 3))), num_train=300, num_eval=200)
    assert noise["eval_accuracy"] < 0.6
    constant = factor_vae_score(Sampler(env, lambda obs: np.zeros((len(obs), 2))), num_train=10, num_eval=10)
    assert constant["num_active_dims"] == 0 and constant["eval_accuracy"] == 0.0


def test_beta_vae_matches_the_reference_and_ranks_representations(monkeypatch):
    env = FactorVectors()
    monkeypatch.setattr(beta_vae, "POINT_OBSERVATIONS", 2 * 8)  # one point per chunk: the reference's draw order
    result = beta_vae_score(Sampler(env, mixing, seed=2), num_train=80, num_eval=40, batch_size=8)
    rng = np.random.default_rng(2)

    def points(n):
        xs, ys = [], []
        for _ in range(n):
            k = rng.integers(0, 3, size=1)[0]
            a, b = env.sample_factors(8, rng), env.sample_factors(8, rng)
            b[:, k] = a[:, k]
            xs.append(np.mean(np.abs(mixing(env.render(a)).numpy() - mixing(env.render(b)).numpy()), axis=0))
            ys.append(k)
        return np.array(xs), np.array(ys)

    train, test = points(80), points(40)
    model = LogisticRegression(random_state=np.random.RandomState(0)).fit(*train)
    assert result["train_accuracy"] == pytest.approx(np.mean(model.predict(train[0]) == train[1]), abs=1e-12)
    assert result["eval_accuracy"] == pytest.approx(np.mean(model.predict(test[0]) == test[1]), abs=1e-12)
    perfect = beta_vae_score(Sampler(env, identity), num_train=300, num_eval=200)
    assert perfect["eval_accuracy"] == 1.0
    rng2 = np.random.default_rng(1)
    noise = beta_vae_score(Sampler(env, lambda obs: rng2.normal(size=(len(obs), 3))), num_train=300, num_eval=200)
    assert noise["eval_accuracy"] < 0.6


def test_sampled_scores_refuse_unsuitable_worlds():
    with pytest.raises(ValueError, match="factor 'f1' of FactorVectors has a single value"):
        factor_vae_score(Sampler(FactorVectors((3, 1)), identity), num_train=10, num_eval=10)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        factor_vae_score(Sampler(FactorVectors(), identity), num_train=10, num_eval=10, batch_size=1)
    from dynrep.envs.pendulum import Pendulum
    with pytest.raises(ValueError, match="beta_vae needs discrete factors"):
        beta_vae_score(Sampler(Pendulum(), identity), num_train=10, num_eval=10)


def test_encode_factors_encodes_each_distinct_state_once():
    env = FactorVectors((2, 3))
    seen = []

    def rep(obs):
        seen.append(len(obs))
        return obs + 1

    factors = env.sample_factors(500, 0)
    codes = Sampler(env, rep, batch_size=4).encode_factors(factors)
    assert sum(seen) == 6 and max(seen) <= 4  # 6 states, batches of at most 4
    np.testing.assert_array_equal(codes, factors + 1)


def test_true_independence_through_compute():
    from dynrep.metrics import compute
    env = FactorVectors((6, 6, 6))
    perfect = compute("true_independence", env, identity, num_train=2000)["independence"]

    def skewed(obs):
        obs = torch.as_tensor(obs)
        return torch.stack([obs[:, 0], obs[:, 0] + obs[:, 1], obs[:, 2]], dim=1)

    assert perfect > 0.95
    assert compute("true_independence", env, skewed, num_train=2000)["independence"] < perfect - 0.1
    from dynrep.envs.toy_nn import ToyNN
    with pytest.raises(ValueError, match="ToyNN has no discrete actions"):
        compute("true_independence", ToyNN("temporal_sparsity_trivial", num_samples=100), identity, num_train=10)


def test_chen_mig_through_compute_reads_the_posterior():
    from dynrep.metrics import compute
    from dynrep.metrics.mig import mig
    env = FactorVectors()

    def posterior(obs):  # a sharp Gaussian around each factor, plus one uninformative prior-like code
        obs = torch.as_tensor(obs)
        means = torch.cat([obs, torch.zeros(len(obs), 1)], dim=1)
        return means, torch.cat([torch.full_like(obs, -6.0), torch.zeros(len(obs), 1)], dim=1)

    result = compute("mig", env, identity, posterior_fn=posterior, estimator="chen", num_train=400, seed=2)
    codes, factors = Sampler(env, identity, seed=2).sample(400)
    means, log_vars = (t.numpy() for t in posterior(codes))
    expected = mig(means, factors, estimator="chen", log_vars=log_vars, seed=2)
    assert result["estimator"] == "chen" and result["mig"] == pytest.approx(expected["mig"])
    assert result["mig"] > 0.9 and result["mutual_info"][3].max() < 0.01  # the prior-like code carries no MI
    with pytest.raises(ValueError, match="mig with estimator='chen' reads the encoder's Gaussians"):
        compute("mig", env, identity, estimator="chen", num_train=50)


def test_encode_factors_of_real_valued_factors():
    class Continuous(FactorVectors):
        def __init__(self):
            super().__init__()
            self.factors = FactorSpace(("a", "b"), (None, None), (False, False))

        def render(self, factors):
            return np.asarray(factors, dtype=np.float32)

    seen = []

    def rep(obs):
        seen.append(len(obs))
        return 2 * obs

    factors = np.repeat(np.array([[0.5, -1.0], [2.0, 0.25], [0.5, 3.0]]), 4, axis=0)[::-1]
    codes = Sampler(Continuous(), rep, batch_size=2).encode_factors(factors)
    assert sum(seen) == 3
    np.testing.assert_array_equal(codes, 2 * factors)


def test_sample_transitions_are_one_action_steps_of_the_world():
    env = FactorVectors()
    sampler = Sampler(env, identity, seed=4, batch_size=3)
    codes, next_codes, actions = sampler.sample_transitions(7)
    assert codes.shape == next_codes.shape == (7, 3) and actions.shape == (7,)
    np.testing.assert_array_equal(next_codes, env.step(codes.astype(np.int64), actions))
    batch = env.sample_trajectories(3, 1, np.random.default_rng(4))  # the sampler's first batch, same stream
    np.testing.assert_array_equal(codes[:3], batch.obs[:, 0].numpy())
    one = sampler.sample_transitions(1)
    assert [len(array) for array in one] == [1, 1, 1]
    with pytest.raises(ValueError, match="num_samples"):
        sampler.sample_transitions(0)
    with pytest.raises(ValueError, match="FactorVectors has no discrete actions"):
        Sampler(FactorVectors((1, 1)), identity).sample_transitions(3)


def test_sample_transitions_bring_every_draw_to_the_host_at_once(monkeypatch):
    # One host copy (on a GPU: one wait) for all the draws, not two per draw; the codes as encoded draw by draw.
    env = FactorVectors()
    sampler = Sampler(env, identity, seed=4, batch_size=3)  # draws of 3: 3, 3 and 1 transitions
    calls, encode = [], Sampler._encode_batches
    monkeypatch.setattr(Sampler, "_encode_batches", lambda self, batches: calls.append(1) or encode(self, batches))
    codes, next_codes, actions = sampler.sample_transitions(7)
    assert len(calls) == 1
    rng = np.random.default_rng(4)
    draws = [env.sample_trajectories(k, 1, rng) for k in (3, 3, 1)]
    np.testing.assert_array_equal(codes, np.concatenate([d.obs[:, 0].numpy() for d in draws]))
    np.testing.assert_array_equal(next_codes, np.concatenate([d.obs[:, 1].numpy() for d in draws]))
    np.testing.assert_array_equal(actions, np.concatenate([d.actions[:, 0].numpy() for d in draws]))


def test_sampler_sizes_and_device():
    env = FactorVectors()
    assert [len(array) for array in Sampler(env, identity).sample(1)] == [1, 1]
    with pytest.raises(ValueError, match="num_samples"):
        Sampler(env, identity).sample(0)
    with pytest.raises(ValueError, match="batch_size"):
        Sampler(env, identity, batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        Sampler(env, identity, seed=-1)
    assert Sampler(env, identity, batch_size=1).sample(3)[0].shape == (3, 3)
    devices = []

    def rep(obs):
        devices.append(obs.device.type)
        return torch.zeros(len(obs), 2)

    Sampler(env, rep, device="meta").sample(4)
    assert devices == ["meta"]  # observations are moved where the model is


def test_factor_vae_edge_cases():
    env = FactorVectors()
    assert factor_vae_score(Sampler(env, identity), num_train=40, num_eval=20, batch_size=2)["num_active_dims"] == 3
    constant = factor_vae_score(Sampler(env, lambda obs: np.zeros((len(obs), 2))), num_train=10, num_eval=10)
    assert constant["train_accuracy"] == 0.0 and constant["eval_accuracy"] == 0.0
    np.testing.assert_array_equal(constant["votes"], np.zeros((3, 2), dtype=np.int64))
    assert constant["votes"].dtype == np.int64


def test_beta_vae_needs_two_factors_among_its_training_points():
    env = FactorVectors((3, 4))
    assert beta_vae_score(Sampler(env, identity), num_train=60, num_eval=20)["eval_accuracy"] == 1.0
    with pytest.raises(ValueError, match="the 1 training points cover a single factor"):
        beta_vae_score(Sampler(env, identity), num_train=1, num_eval=1)


def test_compute_passes_options_device_and_checks_sizes(monkeypatch):
    import importlib
    from dynrep.metrics import compute
    compute_module = importlib.import_module("dynrep.metrics.compute")  # the package's compute is the function
    seen = []

    def recording(*args, **kwargs):
        seen.append(kwargs)
        return {}

    monkeypatch.setattr(compute_module, "true_independence", recording)
    compute("true_independence", FactorVectors(), identity, num_train=5, abs_first=True)
    assert seen[0]["abs_first"] is True
    devices = []

    def rep(obs):
        devices.append(obs.device.type)
        return torch.as_tensor(obs).new_zeros((len(obs), 2), device="cpu") + torch.arange(len(obs))[:, None]

    compute("mig", FactorVectors(), rep, num_train=6, device="meta")
    compute("factor_vae", FactorVectors(), rep, num_train=2, num_test=2, device="meta")
    assert set(devices) == {"meta"}
    for argument in ("num_train", "num_test", "batch_size"):
        with pytest.raises(ValueError, match=argument):
            compute("mig", FactorVectors(), identity, **{argument: 0})


def test_auto_batch_size_is_the_largest_batch_that_fits(monkeypatch):
    from dynrep.metrics import sampling
    monkeypatch.setattr(sampling, "free_memory", lambda device=None: 2 ** 30)
    # a quarter of 1 GiB over 8 x the float32 size of a 64x64x3 image (393,216 bytes): 682 images
    monkeypatch.setattr(sampling, "CPU_BATCH", 10 ** 6)
    assert sampling.auto_batch_size((3, 64, 64)) == 2 ** 28 // (8 * 4 * 3 * 64 * 64) == 682
    assert sampling.auto_batch_size((3, 128, 128)) == 170  # 4x the pixels, a quarter of the batch
    assert sampling.auto_batch_size((3, 8192, 8192)) == 1  # never 0
    monkeypatch.setattr(sampling, "CPU_BATCH", 256)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the cap does not depend on the threads
    assert sampling.auto_batch_size((3, 64, 64)) == 256 and sampling.auto_batch_size((3, 64, 64), "cpu") == 256
    assert sampling.auto_batch_size((3, 256, 256)) == 42  # memory binds before the CPU cap
    seen = []
    monkeypatch.setattr(sampling, "free_memory", lambda device=None: seen.append(str(device)) or 2 ** 34)
    assert sampling.auto_batch_size((3, 64, 64), "cuda:0") == 2 ** 32 // (8 * 4 * 3 * 64 * 64)  # no CPU cap
    assert seen[-1] == "cuda:0"
    assert Sampler(FactorVectors(), identity).batch_size == 256  # the default: auto_batch_size
    assert Sampler(FactorVectors(), identity, batch_size=7).batch_size == 7


def test_free_memory_reads_the_device(monkeypatch):
    from dynrep.metrics.sampling import free_memory
    assert 0 < free_memory() == free_memory("cpu")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (123, 456))
    assert free_memory("cuda:1") == 123


def test_sampler_encodes_under_inference_mode():
    env = FactorVectors()
    seen = []

    def rep(obs):
        seen.append(torch.is_inference_mode_enabled())
        return obs.to(torch.float32)

    codes, factors = Sampler(env, rep, batch_size=8).sample(20)
    assert seen == [True] * 3 and codes.dtype == np.float64 and codes.shape == (20, 3)
    np.testing.assert_array_equal(codes, factors)


def test_what_a_self_sizing_sampler_draws_does_not_depend_on_the_machine(monkeypatch):
    """The encode batch follows the free memory (and a CPU cap); the draws (which interleave start and action
    draws per call of the environment) must not, or scores would differ between machines."""
    from dynrep import make_env
    from dynrep.metrics import sampling
    env = make_env("gridworld", size=4, image_size=16)
    encode = lambda obs: obs.flatten(1)[:, ::97].float()  # noqa: E731 - a deterministic stand-in encoder
    drawn = []
    for cap in (1, 32):
        monkeypatch.setattr(sampling, "CPU_BATCH", cap)
        sampler = Sampler(env, encode, seed=5)
        drawn.append((*sampler.sample_transitions(300), *sampler.sample(300)))
        assert sampler.batch_size == cap
    for a, b in zip(*drawn):
        np.testing.assert_array_equal(a, b)
    explicit = Sampler(env, encode, seed=5, batch_size=sampling.DRAW_BATCH)
    for a, b in zip(drawn[0], (*explicit.sample_transitions(300), *explicit.sample(300))):
        np.testing.assert_array_equal(a, b)  # the scores of before the encode batch was sized automatically
