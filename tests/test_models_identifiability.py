"""What every model of zoo II does through the facade on toy-nn and the causal worlds: train, evaluate on
the held-out subset (MCC, linear score, learned-graph SHD), save/load. Model internals are tested in
tests/test_models_<name>.py."""
import numpy as np
import pytest
import torch

from dynrep import Pendulum, RepresentationLearner, ToyNN
from dynrep.learner import held_out_env

TINY = {"mlp_hidden": (16, 16), "batch_size": 32}
EXTRA = {"mechanism_sparsity": {"transition_hidden": 8, "transition_layers": 1}, "ivae": {"prior_hidden": (8,)},
         "pcl": {"psi_hidden": (8,)}, "slowvae": {}}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,dataset", [("mechanism_sparsity", "action_sparsity_non_trivial"),
                                          ("mechanism_sparsity", "temporal_sparsity_non_trivial"),
                                          ("ivae", "action_sparsity_trivial"),
                                          ("slowvae", "temporal_sparsity_trivial"),
                                          ("pcl", "temporal_sparsity_trivial")])
def test_toy_nn_learner_evaluates_on_the_test_subset(name, dataset, tmp_path):
    env = ToyNN(dataset, num_samples=2000)
    learner = RepresentationLearner(env, name, seed=0, device="cpu", **TINY, **EXTRA[name])
    learner.train(steps=5, progress=False)
    scores = learner.evaluate(num_train=300, num_episodes=2, episode_length=1)
    assert 0 <= scores["mcc"] <= 1 and scores["linear_score/r2"] <= 1
    assert ("reconstruction_mse" in scores) == (name != "pcl") and "reconstruction_error" not in scores
    # the metrics read the held-out subset: the same codes on a given test env give the same MCC
    test_env = ToyNN(dataset, subset="test", num_samples=2000)
    explicit = learner.evaluate(["mcc"], num_train=300, num_episodes=2, episode_length=1, metric_env=test_env)
    assert explicit["mcc"] == scores["mcc"]
    on_train = learner.evaluate(["mcc"], num_train=300, num_episodes=2, episode_length=1, metric_env=env)
    assert on_train["mcc"] != scores["mcc"]
    graph_keys = {k for k in scores if k.startswith("graph_")}
    if name == "mechanism_sparsity":
        kind = "graph_a" if dataset.startswith("action") else "graph_z"
        assert graph_keys == {f"{kind}/shd", f"{kind}/precision", f"{kind}/recall"}
        # masks start at sigma(5) ~ 0.99: the learned graph is full, so SHD = number of true non-edges
        true = getattr(env, kind)
        assert scores[f"{kind}/shd"] == true.size - true.sum() and scores[f"{kind}/recall"] == 1.0
    else:
        assert not graph_keys
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    obs = torch.tensor(test_env.observations[:50, -1])
    assert torch.equal(loaded.encode(obs), learner.encode(obs))


def test_graph_scores_follow_the_mcc_permutation():
    env = ToyNN("action_sparsity_non_trivial", num_samples=200)
    learner = RepresentationLearner(env, "mechanism_sparsity", seed=0, device="cpu", **TINY,
                                    **EXTRA["mechanism_sparsity"])
    with torch.no_grad():  # learned G^a = the true graph with its rows (codes) permuted
        perm = np.roll(np.arange(10), 3)
        learned = env.graph_a[np.argsort(perm)]
        learner.model.graph_a.alpha.copy_(torch.as_tensor(np.where(learned == 1, 5.0, -5.0)))
    pairs = learner.aligned_graphs(perm)
    assert set(pairs) == {"graph_a"}
    true, aligned = pairs["graph_a"]
    assert np.array_equal(aligned, true)
    assert learner._graph_scores(perm)["graph_a/shd"] == 0
    assert learner._graph_scores(np.arange(10))["graph_a/shd"] > 0


def test_held_out_env():
    env = ToyNN("temporal_sparsity_trivial", num_samples=100)
    test = held_out_env(env)
    assert test.subset == "test" and test.dataset == env.dataset and test.num_samples == 100
    assert held_out_env(test) is test
    pendulum = Pendulum(image_size=16)
    assert held_out_env(pendulum).subset == "test" and held_out_env(pendulum).image_size == 16


def test_plot_graphs_and_its_errors(tmp_path):
    env = ToyNN("temporal_sparsity_non_trivial", num_samples=300)
    learner = RepresentationLearner(env, "mechanism_sparsity", seed=0, device="cpu", **TINY,
                                    **EXTRA["mechanism_sparsity"])
    path = learner.plot_graphs(tmp_path / "graphs.png", num_samples=200)
    assert path.read_bytes()[:4] == b"\x89PNG"
    other = RepresentationLearner(env, "slowvae", seed=0, device="cpu", **TINY)
    with pytest.raises(ValueError, match="has no learned graph"):
        other.plot_graphs(tmp_path / "x.png")


def test_learner_intervene_on_pendulum():
    env = Pendulum(image_size=16)
    learner = RepresentationLearner(env, "icm_vae", seed=0, device="cpu", encoder_hidden=(16,),
                                    decoder_hidden=(8,), flow_hidden=8)
    obs = env.sample_trajectories(3, 0, rng=0).obs[:, 0]
    images = learner.intervene(obs, {"light": np.array([100.0, 120.0, 140.0])})
    assert images.shape == (3, *env.observation_shape) and 0 <= images.min() and images.max() <= 1
    z = learner.model.intervened_latents(obs, {"light": 130.0})
    assert not torch.equal(z, learner.model.representation(obs))
    with pytest.raises(ValueError, match="no causal mechanisms"):
        RepresentationLearner(env, "vae", seed=0, device="cpu", channels=(4, 8), hidden=8).intervene(obs, {"light": 1})


def test_pendulum_default_evaluation_is_icm_vae_s():
    env = Pendulum(image_size=16)
    learner = RepresentationLearner(env, "icm_vae", seed=0, device="cpu", encoder_hidden=(16,),
                                    decoder_hidden=(8,), flow_hidden=8)
    scores = learner.evaluate(num_train=200, num_test=100, num_episodes=2, episode_length=0)
    assert {"mcc", "dci/disentanglement", "dci/informativeness_test", "irs"} <= set(scores)
    assert 0 <= scores["dci/disentanglement"] <= 1 and scores["dci/informativeness_test"] <= 1  # R², not accuracy
    assert 0 <= scores["irs"] <= 1 and 0 <= scores["mcc"] <= 1


def test_no_graph_scores_without_the_permutation_matching():
    env = ToyNN("action_sparsity_non_trivial", num_samples=300)
    learner = RepresentationLearner(env, "mechanism_sparsity", seed=0, device="cpu", **TINY,
                                    **EXTRA["mechanism_sparsity"])
    scores = learner.evaluate(["mcc"], num_train=200, num_episodes=2, episode_length=1,
                              options={"mcc": {"alignment": "affine"}})
    assert "mcc" in scores and not any(k.startswith("graph_") for k in scores)
