"""Metric defaults pinned to disentanglement_lib's gin configs (unsupervised_study_v1 / abstract_reasoning_study_v1
metric_configs), checked through behaviour: how many observations get encoded, what the estimators receive."""
import dataclasses
import functools

import numpy as np
import pytest
import torch

from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.metrics import factor_vae
from dynrep.metrics.compute import METRICS, compute
from dynrep.metrics.beta_vae import beta_vae_score
from dynrep.metrics.factor_vae import factor_vae_score
from dynrep.metrics.mig import mig
from dynrep.metrics.sampling import Sampler
from metric_worlds import FactorVectors
from dynrep.metrics.sap import sap


class ContinuousVectors(Environment):
    """Standard-normal real-valued factors, observed as they are."""

    def __init__(self, dim=3):
        self.factors = FactorSpace(tuple(f"v{k}" for k in range(dim)), (None,) * dim, (False,) * dim)
        self.actions = ActionSpace()
        self.observation_shape = (dim,)
        self.observation_dtype = np.dtype(np.float32)

    def sample_factors(self, n, rng=None):
        return np.random.default_rng(rng).normal(size=(n, len(self.factors)))

    def render(self, factors):
        return np.asarray(factors, dtype=np.float32)

    def get_config(self):
        return {}


class CountingRepresentation:
    """The identity representation, counting the observations it encodes."""

    def __init__(self):
        self.encoded = 0

    def __call__(self, obs):
        self.encoded += len(obs)
        return obs


class RecordingSampler(Sampler):
    """A Sampler that records the draws a sampled metric asks for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples, self.factor_draws, self.integer_draws = [], [], []

    def sample(self, n):
        self.samples.append(n)
        return super().sample(n)

    def sample_factors(self, n):
        self.factor_draws.append(n)
        return super().sample_factors(n)

    def integers(self, high, size):
        self.integer_draws.append(size)
        return super().integers(high, size)


def recording(monkeypatch, name):
    """Replace metric ``name``'s function in compute's table by one with the same signature that records its
    arguments (and returns {}); returns the list the calls go to."""
    calls = []
    function = METRICS[name].function

    @functools.wraps(function)  # inspect.signature follows __wrapped__: compute sees the real parameters
    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return {}

    monkeypatch.setitem(METRICS, name, dataclasses.replace(METRICS[name], function=record))
    return calls


# The reference's sample sizes: mig.gin / unsupervised.gin num_train=10000; dci.gin, sap_score.gin,
# modularity_explicitness.gin 10000 / 5000 (downstream_task: the largest of its num_train sizes, 10000 / 5000).
@pytest.mark.parametrize("name,sets", [("mig", (10_000,)), ("unsupervised", (10_000,)), ("dci", (10_000, 5_000)),
                                       ("sap", (10_000, 5_000)), ("modularity", (10_000, 5_000)),
                                       ("downstream", (10_000, 5_000))])
def test_compute_encodes_the_reference_sample_sizes(monkeypatch, name, sets):
    calls = recording(monkeypatch, name)
    representation = CountingRepresentation()
    compute(name, FactorVectors(), representation)
    (args, _), = calls
    assert representation.encoded == sum(sets)
    assert [len(array) for array in args] == [size for size in sets for _ in range(2)]  # codes, factors per set


def test_sampled_metrics_get_the_reference_vote_counts_and_batch(monkeypatch):
    # factor_vae_metric.gin: num_train=10000, num_eval=5000, batch_size=64; beta_vae_sklearn.gin the same.
    for name in ("factor_vae", "beta_vae"):
        calls = recording(monkeypatch, name)
        compute(name, FactorVectors(), CountingRepresentation())
        (_, kwargs), = calls
        assert (kwargs["num_train"], kwargs["num_eval"], kwargs["batch_size"]) == (10_000, 5_000, 64), name
    calls = recording(monkeypatch, "true_independence")
    compute("true_independence", FactorVectors(), CountingRepresentation())
    assert calls[0][1]["num_train"] == 10_000


def test_factor_vae_defaults_draw_what_the_reference_draws():
    # 10,000 observations for the global variances, then 10,000 + 5,000 votes of 64 factor vectors each.
    sampler = RecordingSampler(FactorVectors(), CountingRepresentation())
    result = factor_vae_score(sampler)
    assert sampler.samples == [10_000]
    assert sum(sampler.integer_draws) == 15_000
    assert sum(sampler.factor_draws) == 15_000 * 64
    assert result["votes"].sum() == 10_000 and result["eval_accuracy"] == 1.0


def test_beta_vae_defaults_draw_what_the_reference_draws():
    # 10,000 + 5,000 points, each two batches of 64 factor vectors.
    sampler = RecordingSampler(FactorVectors(), CountingRepresentation())
    result = beta_vae_score(sampler)
    assert sum(sampler.integer_draws) == 15_000
    assert sum(sampler.factor_draws) == 2 * 15_000 * 64
    assert result["eval_accuracy"] == 1.0


def test_factor_vae_prunes_dimensions_below_the_gin_threshold():
    # prune_dims.threshold = 0.05: codes with standard deviation 0.045 are collapsed, 0.055 active.
    env = FactorVectors()
    std = np.sqrt((np.asarray(env.factors.sizes) ** 2 - 1) / 12)  # of a uniform factor

    def representation(obs):
        scaled = (torch.as_tensor(obs, dtype=torch.float64) - 2) / torch.as_tensor(std)
        return torch.cat([scaled[:, :1], 0.045 * scaled[:, 1:2], 0.055 * scaled[:, 2:]], dim=1)

    result = factor_vae_score(Sampler(env, representation), num_train=50, num_eval=10)
    assert result["num_active_dims"] == 2
    assert result["votes"][:, 1].sum() == 0  # a pruned code gets no vote


def test_factor_vae_classifier_is_fitted_on_the_training_votes_only(monkeypatch):
    # The reference: classifier = argmax over factors of the *training* votes of each code; both accuracies
    # count the votes that land on the classifier's factor. Train votes (rows = fixed factor, columns = code)
    # [[3, 0], [1, 2]]: code 0 -> factor 0, code 1 -> factor 1, train accuracy (3 + 2) / 6. Eval votes
    # [[0, 2], [4, 1]] under that classifier: (0 + 1) / 7 (a classifier refitted on them would score 6 / 7).
    tables = iter([np.array([[3, 0], [1, 2]]), np.array([[0, 2], [4, 1]])])
    monkeypatch.setattr(factor_vae, "_votes", lambda *args: next(tables))
    result = factor_vae_score(Sampler(FactorVectors((3, 4)), lambda obs: obs), num_train=6, num_eval=7)
    assert result["train_accuracy"] == pytest.approx(5 / 6)
    assert result["eval_accuracy"] == pytest.approx(1 / 7)
    np.testing.assert_array_equal(result["votes"], [[3, 0], [1, 2]])


def test_compute_passes_its_seed_to_the_estimators():
    # evaluation.random_seed seeds both the sampling and the estimators' random state.
    env = FactorVectors()

    def posterior(obs):
        obs = torch.as_tensor(obs)
        return obs, torch.full_like(obs, -1.0)

    def chen(seed):
        return compute("mig", env, lambda obs: obs, posterior_fn=posterior, estimator="chen", num_train=300,
                       seed=seed)["mig"]

    codes, factors = Sampler(env, lambda obs: obs, seed=3).sample(300)
    array_level = {s: mig(codes, factors, estimator="chen", log_vars=np.full_like(codes, -1.0), seed=s)["mig"]
                   for s in (0, 3)}
    assert array_level[0] != array_level[3]  # the estimator's draws matter for this case
    assert chen(3) == pytest.approx(array_level[3], abs=1e-12)
    assert chen(3) != pytest.approx(array_level[0], abs=1e-6)


@pytest.mark.parametrize("name", ["mig", "dci", "sap", "modularity", "downstream", "beta_vae"])
def test_every_seeded_estimator_gets_the_compute_seed(monkeypatch, name):
    calls = recording(monkeypatch, name)
    compute(name, FactorVectors(), lambda obs: obs, num_train=20, num_test=10, seed=7)
    assert calls[0][1]["seed"] == 7


def test_compute_switches_continuous_factors_from_the_world(monkeypatch):
    # sap_score.gin sets continuous_factors=False on the study's discrete worlds; on real-valued factors the
    # switch is on, as ICM-VAE's evaluation: the squared-correlation SAP of the same sampled sets.
    for env, continuous in ((FactorVectors(), False), (ContinuousVectors(), True)):
        def codes(obs):
            return torch.cat([obs, obs[:, :1] ** 3], dim=1)

        result = compute("sap", env, codes, num_train=400, num_test=200, seed=1)
        sampler = Sampler(env, codes, seed=1)
        train, test = sampler.sample(400), sampler.sample(200)
        expected = sap(*train, *test, continuous_factors=continuous)["sap"]
        assert result["sap"] == pytest.approx(expected, abs=1e-12), type(env).__name__
        if not continuous:
            assert expected != pytest.approx(sap(*train, *test, continuous_factors=True)["sap"], abs=1e-3)
    calls = recording(monkeypatch, "dci")
    compute("dci", ContinuousVectors(), lambda obs: obs, num_train=20, num_test=10)
    compute("dci", FactorVectors(), lambda obs: obs, num_train=20, num_test=10)
    compute("dci", FactorVectors(), lambda obs: obs, num_train=20, num_test=10, continuous_factors=True)
    assert [kwargs["continuous_factors"] for _, kwargs in calls] == [True, False, True]  # an explicit option wins


def test_compute_seed_defaults_to_the_reference_seed_and_reaches_the_sampled_metrics():
    # evaluation.random_seed = 0 in every metric gin config; the sampled metrics draw from the same seed.
    env = FactorVectors()
    codes, factors = Sampler(env, lambda obs: obs, seed=0).sample(200)
    assert compute("mig", env, lambda obs: obs, num_train=200)["mig"] == mig(codes, factors)["mig"]
    noisy = np.random.default_rng(0).normal(size=(4 * 5 * 3, 3))

    def representation(obs):  # a fixed noisy code per state: the votes depend on which states are drawn
        return np.asarray(obs, dtype=np.float64) + noisy[env.factors.to_index(np.asarray(obs, dtype=np.int64))]

    for seed in (0, 3):
        expected = factor_vae_score(Sampler(env, representation, seed=seed, batch_size=64), num_variance_estimate=200,
                                    num_train=40, num_eval=20)
        result = compute("factor_vae", env, representation, seed=seed, num_train=40, num_test=20,
                         num_variance_estimate=200)
        np.testing.assert_array_equal(result["votes"], expected["votes"])
    assert not np.array_equal(result["votes"], compute("factor_vae", env, representation, num_train=40, num_test=20,
                                                       num_variance_estimate=200)["votes"])
