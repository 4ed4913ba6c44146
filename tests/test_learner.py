"""RepresentationLearner facade: construction, seeding, encode/decode/rollout, test, evaluate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, assert_same_params, params_of, tiny_learner
from dynrep import DynamicRepresentationLearner, GridWorld, RepresentationLearner, metrics
from dynrep import TestResult as Result  # aliased so pytest does not try to collect it
from dynrep.data import Trajectory
from dynrep.learner import resolve_device


@pytest.fixture(scope="module")
def trained_rotation():
    learner = tiny_learner("rotation")
    learner.train(3, progress=False)
    return learner


@pytest.fixture(scope="module")
def trained_vae():
    learner = tiny_learner("vae")
    learner.train(3, progress=False)
    return learner


# -- construction ----------------------------------------------------------------------------
def test_alias():
    assert DynamicRepresentationLearner is RepresentationLearner


def test_env_given_by_name():
    learner = RepresentationLearner("gridworld", "rotation", device="cpu", **TINY_MODEL["rotation"])
    assert isinstance(learner.env, GridWorld)
    assert learner.env.observation_shape == (3, 64, 64)
    learner.train(1, progress=False)
    assert learner.step == 1


def test_unknown_names():
    with pytest.raises(KeyError, match=r"registered environments: \[.*'gridworld'"):
        RepresentationLearner("atari", "rotation", device="cpu")
    with pytest.raises(KeyError, match=r"registered models: \[.*'rotation'.*'vae'"):
        RepresentationLearner(GridWorld(size=3, image_size=16), "diffusion", device="cpu")


def test_env_of_wrong_type():
    with pytest.raises(TypeError, match="env must be an Environment or a registered name, got int"):
        RepresentationLearner(5, "rotation", device="cpu")


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        tiny_learner("rotation", seed=-1)
    with pytest.raises(ValueError, match="latent_dim must be >= 2, got 1"):
        tiny_learner("rotation", latent_dim=1)
    with pytest.raises(ValueError, match=r"unknown 'vae' model option\(s\) \['reg_weight'\]"):
        tiny_learner("vae", reg_weight=0.1)


def test_device_resolution():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="device must be"):
        RepresentationLearner(GridWorld(size=3, image_size=16), "rotation", device="banana")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback of device='auto'")
def test_auto_device_is_cpu_here():
    env = GridWorld(size=3, image_size=16)
    learner = RepresentationLearner(env, "rotation", device="auto", **TINY_MODEL["rotation"])
    assert learner.device == torch.device("cpu")
    assert learner.model.angles.device.type == "cpu"


def test_repr(trained_rotation):
    text = repr(trained_rotation)
    assert text.startswith("RepresentationLearner(env=GridWorld(size=[3, 3]")
    assert "model='rotation'" in text and "step=3" in text and "device='cpu'" in text


# -- seeding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["rotation", "vae"])
def test_same_seed_same_weights_and_history(model):
    a, b = tiny_learner(model, seed=11), tiny_learner(model, seed=11)
    assert_same_params(params_of(a.model), params_of(b.model))
    a.train(4, progress=False)
    b.train(4, progress=False)
    assert a.history == b.history
    assert_same_params(params_of(a.model), params_of(b.model))


@pytest.mark.parametrize("model", ["rotation", "vae"])
def test_different_seed_differs(model):
    a, b = tiny_learner(model, seed=1), tiny_learner(model, seed=2)
    assert not torch.equal(params_of(a.model)["decoder.0.weight"], params_of(b.model)["decoder.0.weight"])
    a.train(2, progress=False)
    b.train(2, progress=False)
    assert a.history["loss"] != b.history["loss"]


def test_learner_leaves_global_rng_alone():
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    learner = tiny_learner("vae", seed=4)
    learner.train(2, progress=False)
    learner.test(num_episodes=2, episode_length=1)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


# -- encode / decode / rollout ---------------------------------------------------------------
def test_encode_rotation_is_unit_norm(trained_rotation):
    env = trained_rotation.env
    traj = env.sample_trajectories(7, 3, rng=0)
    for t in (0, 2):
        z = trained_rotation.encode(traj.obs[:, t])
        assert z.shape == (7, 4) and z.device.type == "cpu"
        assert torch.allclose(z.norm(dim=-1), torch.ones(7), atol=1e-5)
    # numpy input and small chunks give the same result
    z = trained_rotation.encode(traj.obs[:, 1])
    assert torch.allclose(trained_rotation.encode(traj.obs[:, 1].numpy(), batch_size=2), z, atol=1e-6)


def test_encode_vae_and_onehot():
    learner = tiny_learner("vae", env=GridWorld(size=3, observation="onehot"))
    obs = learner.env.sample_trajectories(4, 0, rng=0).obs[:, 0]
    assert learner.encode(obs).shape == (4, 3)
    assert learner.decode(torch.zeros(2, 3)).shape == (2, 9)


def test_encode_wrong_shape(trained_rotation):
    with pytest.raises(ValueError, match=r"obs must have shape \[B, 3, 16, 16\], got \[2, 3, 8, 8\]"):
        trained_rotation.encode(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="obs must have shape"):
        trained_rotation.encode(torch.zeros(3, 16, 16, dtype=torch.uint8))  # a missing batch axis


def test_decode(trained_rotation):
    frames = trained_rotation.decode(np.eye(4, dtype=np.float32))
    assert frames.shape == (4, 3, 16, 16)
    assert frames.min() >= 0 and frames.max() <= 1


def test_rollout_matches_model_prediction(trained_rotation):
    traj = trained_rotation.env.sample_trajectories(3, 4, rng=1)
    frames = trained_rotation.rollout(traj.obs[:, 0], traj.actions)
    assert frames.shape == (3, 5, 3, 16, 16)
    with torch.no_grad():
        expected = trained_rotation.model.predict(traj)
    assert torch.allclose(frames, expected, atol=1e-5)
    as_numpy = trained_rotation.rollout(traj.obs[:, 0].numpy(), traj.actions.numpy())
    assert torch.allclose(as_numpy, frames)


def test_rollout_without_dynamics(trained_vae):
    traj = trained_vae.env.sample_trajectories(2, 2, rng=0)
    with pytest.raises(ValueError, match="model 'vae' has no latent dynamics"):
        trained_vae.rollout(traj.obs[:, 0], traj.actions)


# -- the input contract (dynrep.inputs) ------------------------------------------------------
def test_encode_reads_every_integer_dtype_as_the_same_pixels(trained_rotation):
    obs = trained_rotation.env.sample_trajectories(5, 0, rng=3).obs[:, 0]
    expected = trained_rotation.encode(obs)
    for dtype in (np.int64, np.int32, np.int16, np.uint16):
        assert torch.equal(trained_rotation.encode(obs.numpy().astype(dtype)), expected), dtype
    # intensities in [0, 1] are the same images
    assert torch.allclose(trained_rotation.encode(obs.float() / 255), expected, atol=1e-5)
    assert torch.allclose(trained_rotation.encode(obs.numpy() / 255.0), expected, atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (lambda obs: obs.float(), r"float images must be intensities in \[0, 1\], got values in 0\.\.255"),
    (lambda obs: obs.long() - 1, r"integer images must be pixels in 0\.\.255, got values in -1\.\.254"),
    (lambda obs: obs.long() + 1, r"integer images must be pixels in 0\.\.255, got values in 1\.\.256"),
    (lambda obs: obs.float().div(255).index_fill(0, torch.tensor([0]), float("nan")), "NaN or infinite"),
    (lambda obs: obs > 0, "bool"),
    (lambda obs: obs.numpy().astype(str), "must be numbers"),
])
def test_encode_refuses_images_outside_the_contract(trained_rotation, bad, message):
    obs = torch.arange(2 * 3 * 16 * 16).remainder(256).to(torch.uint8).view(2, 3, 16, 16)
    with pytest.raises(ValueError, match=message):
        trained_rotation.encode(bad(obs))


def test_vector_worlds_take_real_numbers():
    learner = tiny_learner("vae", env=GridWorld(size=3, observation="onehot"))
    obs = learner.env.sample_trajectories(4, 0, rng=0).obs[:, 0]
    assert torch.equal(learner.encode(obs.double()), learner.encode(obs))
    assert torch.equal(learner.encode(obs.long()), learner.encode(obs))  # a one-hot of ints is the same vector
    with pytest.raises(ValueError, match="NaN or infinite"):
        learner.encode(obs * float("inf"))


def test_rollout_actions_must_be_valid_indices(trained_rotation):
    traj = trained_rotation.env.sample_trajectories(2, 3, rng=1)
    first, actions = traj.obs[:, 0], traj.actions
    n = trained_rotation.env.actions.n
    assert torch.equal(trained_rotation.rollout(first, actions.int()), trained_rotation.rollout(first, actions))
    for bad in (torch.full_like(actions, -1), torch.full_like(actions, n)):
        with pytest.raises(ValueError, match=rf"actions must be in \[0, {n}\) \(.*\), got values in"):
            trained_rotation.rollout(first, bad)
    with pytest.raises(ValueError, match="actions must be integer action indices"):
        trained_rotation.rollout(first, actions.float() + 0.7)
    with pytest.raises(ValueError, match=r"actions must have shape \[B=2, T\], got \[3\]"):
        trained_rotation.rollout(first, actions[0])
    with pytest.raises(ValueError, match="float images must be intensities"):
        trained_rotation.rollout(first.float(), actions)


def test_decode_checks_the_latent_size(trained_rotation):
    with pytest.raises(ValueError, match=r"z must have shape \[B, 4\] \(the model's latent size\), got \[2, 5\]"):
        trained_rotation.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"z must have shape \[B, 4\]"):
        trained_rotation.decode(torch.zeros(4))


@pytest.mark.parametrize("model", ["cascade_vae", "liegroup_vae"])
def test_decode_takes_what_encode_gives(model):
    learner = RepresentationLearner(GridWorld(size=3, image_size=16), model, device="cpu", latent_dim=3,
                                    batch_size=4, channels=(4, 8), hidden=16)
    obs = learner.env.sample_trajectories(3, 0, rng=0).obs[:, 0]
    z = learner.encode(obs)
    assert z.shape == (3, learner.model.code_size())
    assert learner.decode(z).shape == (3, *learner.env.observation_shape)


# -- test() ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["trained_rotation", "trained_vae"])
def test_test_result_shapes(request, fixture):
    learner = request.getfixturevalue(fixture)
    result = learner.test(num_episodes=3, episode_length=4)
    assert isinstance(result, Result)
    assert result.true_frames.shape == (3, 5, 16, 16, 3) and result.true_frames.dtype == np.uint8
    assert result.predicted_frames.shape == (3, 5, 16, 16, 3) and result.predicted_frames.dtype == np.uint8
    assert result.step_errors.shape == (5,) and np.isfinite(result.step_errors).all()
    assert (result.step_errors > 0).all()
    assert result.actions.shape == (3, 4)
    assert result.factors.shape == (3, 5, 2)
    # The true frames are the environment's rendering of the factors.
    rendered = learner.env.render(result.factors.reshape(-1, 2)).reshape(3, 5, 3, 16, 16)
    assert np.array_equal(result.true_frames, rendered.transpose(0, 1, 3, 4, 2))


def test_test_is_deterministic_and_seedable(trained_rotation):
    a = trained_rotation.test(num_episodes=2, episode_length=3)
    b = trained_rotation.test(num_episodes=2, episode_length=3)
    c = trained_rotation.test(num_episodes=2, episode_length=3, seed=123)
    assert np.array_equal(a.factors, b.factors) and np.array_equal(a.predicted_frames, b.predicted_frames)
    assert np.array_equal(a.step_errors, b.step_errors)
    assert not np.array_equal(a.factors, c.factors)


def test_test_step_errors_match_predictions(trained_rotation):
    learner = trained_rotation
    result = learner.test(num_episodes=2, episode_length=2)
    obs = learner.env.render(result.factors.reshape(-1, 2)).reshape(2, 3, 3, 16, 16)
    traj = Trajectory(obs=torch.from_numpy(obs), actions=torch.from_numpy(result.actions),
                      factors=torch.from_numpy(result.factors))
    with torch.no_grad():
        predicted = learner.model.predict(traj).numpy()
    target = obs / 255.0
    p = np.clip(predicted, 1e-6, 1 - 1e-6)
    expected = -(target * np.log(p) + (1 - target) * np.log1p(-p)).mean(axis=(0, 2, 3, 4))
    assert result.step_errors == pytest.approx(expected, rel=1e-5)
    expected_frames = np.round(predicted.transpose(0, 1, 3, 4, 2) * 255).astype(np.uint8)
    assert np.abs(result.predicted_frames.astype(int) - expected_frames).max() <= 1


def test_test_on_onehot():
    learner = tiny_learner("rotation", env=GridWorld(size=3, observation="onehot", image_size=15))
    result = learner.test(num_episodes=2, episode_length=3)
    assert result.true_frames.shape == (2, 4, 15, 15, 3)
    assert result.predicted_frames.shape == (2, 4, 15, 15, 3)
    assert result.step_errors.shape == (4,)


def test_test_argument_errors(trained_rotation):
    with pytest.raises(ValueError, match="num_episodes must be >= 1"):
        trained_rotation.test(num_episodes=0)
    with pytest.raises(ValueError, match="episode_length must be >= 0"):
        trained_rotation.test(episode_length=-1)


# -- evaluate() ------------------------------------------------------------------------------
def test_evaluate_rotation(trained_rotation):
    scores = trained_rotation.evaluate((), num_episodes=4, episode_length=5, prediction_steps=(1, 5))
    assert all(isinstance(k, str) and isinstance(v, float) and np.isfinite(v) for k, v in scores.items())
    for key in ("reconstruction_error", "prediction_error/1", "prediction_error/5", "latent_prediction_error/1",
                "latent_prediction_error/5", "rotation_purity_min",
                "rotation_eigen_purity_min", "plane_sharing", "plane_disjoint", "entanglement"):
        assert key in scores, key
    for action in ("row+", "row-", "column+", "column-"):
        assert f"rotation_purity/{action}" in scores and f"rotation_eigen_purity/{action}" in scores
    assert "prediction_error/10" not in scores
    assert scores["reconstruction_error"] > 0
    assert 0 < scores["latent_prediction_error/1"] <= 4  # unit-norm latents are at most 2 apart
    assert scores == trained_rotation.evaluate((), num_episodes=4, episode_length=5, prediction_steps=(1, 5))


def test_evaluate_model_scores_equal_the_whole_batch_computation(trained_rotation, trained_vae):
    """The chunked, torch-side scores equal the reference computation on whole float64 arrays."""
    from dynrep.learner import _EVAL_STREAM
    from dynrep.metrics.dynamics import mean_bce, per_step_bce
    for learner in (trained_rotation, trained_vae):
        scores = learner.evaluate((), num_episodes=6, episode_length=5, prediction_steps=(1, 5))
        episodes, frames = (6, 5) if learner.model.has_dynamics else (36, 0)
        batch = learner._episodes(episodes, frames, _EVAL_STREAM, None)
        with torch.no_grad():
            obs = batch.obs.flatten(0, 1)
            assert scores["reconstruction_error"] == pytest.approx(
                mean_bce(obs.numpy(), learner.model.reconstruct(obs).numpy()), rel=1e-6)
            if learner.model.has_dynamics:
                steps = per_step_bce(batch.obs.numpy(), learner.model.predict(batch).numpy())
                assert [scores["prediction_error/1"], scores["prediction_error/5"]] == pytest.approx(
                    [steps[1], steps[5]], rel=1e-6)


def test_evaluate_encodes_each_frame_once_in_bounded_chunks(monkeypatch):
    """Load-independent memory bound: no network call sees more than EVAL_CHUNK frames (so no decoded copy of
    every frame exists at once), and each frame is encoded once (plus the episodes' first frames in predict)."""
    import dynrep.learner as learner_module
    monkeypatch.setattr(learner_module, "EVAL_CHUNK", 16)
    learner = tiny_learner("rotation")
    encoded, decoded = [], []
    encoder, decoder = learner.model.encoder.forward, learner.model.decoder.forward
    monkeypatch.setattr(learner.model.encoder, "forward", lambda x: encoded.append(len(x)) or encoder(x))
    monkeypatch.setattr(learner.model.decoder, "forward", lambda z: decoded.append(len(z)) or decoder(z))
    learner.evaluate((), num_episodes=7, episode_length=4, prediction_steps=(1,))
    assert max(encoded) <= 16 and max(decoded) <= 16
    assert sum(encoded) == 7 * 5 + 7 and sum(decoded) == 2 * 7 * 5


def test_evaluate_chunks_64_frames_on_cpu_and_the_metrics_batch_elsewhere(monkeypatch):
    import dynrep.learner as learner_module
    from dynrep.metrics import sampling
    monkeypatch.setattr(sampling, "free_memory", lambda device=None: 2**30)  # a GPU's 1 GiB free, on any device
    assert learner_module.eval_chunk((3, 64, 64), torch.device("cpu")) == 64
    assert learner_module.eval_chunk((3, 64, 64), torch.device("cuda")) == sampling.auto_batch_size(
        (3, 64, 64), "cuda") == 2**30 // 4 // (8 * 4 * 3 * 64 * 64)
    asked, eval_chunk = [], learner_module.eval_chunk
    monkeypatch.setattr(learner_module, "eval_chunk", lambda shape, device: asked.append((shape, device)) or 8)
    learner = tiny_learner("rotation")
    encoded, encoder = [], learner.model.encoder.forward
    monkeypatch.setattr(learner.model.encoder, "forward", lambda x: encoded.append(len(x)) or encoder(x))
    learner.evaluate((), num_episodes=7, episode_length=4, prediction_steps=(1,))
    assert asked == [((3, 16, 16), learner.device)] and max(encoded) == 8
    assert eval_chunk((3, 16, 16), learner.device) == 64


def test_evaluate_default_arguments(trained_rotation):
    scores = trained_rotation.evaluate((), num_episodes=2)
    assert {"prediction_error/1", "prediction_error/5", "prediction_error/10"} <= set(scores)


def test_evaluate_vae(trained_vae):
    scores = trained_vae.evaluate((), num_episodes=4, episode_length=2, prediction_steps=(1,))
    assert set(scores) == {"reconstruction_error"}
    assert isinstance(scores["reconstruction_error"], float) and scores["reconstruction_error"] > 0


def test_evaluate_prediction_steps_beyond_episode(trained_rotation):
    with pytest.raises(ValueError, match=r"prediction_steps must be >= 1 and <= 4, got 5"):
        trained_rotation.evaluate(num_episodes=2, episode_length=4, prediction_steps=(1, 5))
    with pytest.raises(ValueError, match=r"prediction_steps must be >= 1"):
        trained_rotation.evaluate(num_episodes=2, episode_length=4, prediction_steps=(0,))


def test_evaluate_with_representation_metrics(trained_vae):
    scores = trained_vae.evaluate(["mig", "sap", "factor_vae"], num_train=300, num_test=100, num_episodes=2,
                                  options={"sap": {"continuous_factors": False}})
    assert {"mig", "sap", "factor_vae/train_accuracy", "factor_vae/eval_accuracy",
            "factor_vae/num_active_dims"} <= set(scores)
    assert all(isinstance(v, float) and np.isfinite(v) for v in scores.values())
    assert 0 <= scores["mig"] <= 1 and 0 <= scores["factor_vae/eval_accuracy"] <= 1
    direct = metrics.compute("mig", trained_vae.env, trained_vae.model.representation, seed=trained_vae.seed,
                             num_train=300)
    assert scores["mig"] == direct["mig"]
    with pytest.raises(ValueError, match=r"options given for metrics that are not computed: \['dci'\]"):
        trained_vae.evaluate(["mig"], num_train=50, options={"dci": {"mode": "fast"}})
    with pytest.raises(ValueError, match=r"metrics: unknown metric\(s\) \['migg'\]; metrics are \['beta_vae'"):
        trained_vae.evaluate(["migg"], num_train=50)


def test_evaluate_reads_one_name_as_one_metric(trained_vae):
    """``evaluate("mig")`` used to read as the metrics 'm', 'i', 'g'."""
    one = trained_vae.evaluate("mig", num_train=200, num_episodes=2)
    assert one == trained_vae.evaluate(["mig"], num_train=200, num_episodes=2) and "mig" in one


@pytest.mark.parametrize("options, message", [
    ({"mig": {"bins": 5}}, r"metric 'mig' has no option\(s\) \['bins'\]; its options are \['estimator', "
                           r"'num_bins', 'num_samples'\]"),
    ({"mig": {"seed": 3}}, r"metric 'mig' has no option\(s\) \['seed'\]"),  # set by compute from seed=
    ({"mig": 5}, r"options\['mig'\] must be a dict of option values, got 5"),
    (["mig"], r"options must be a dict \{metric name: \{option: value\}\}, got \['mig'\]"),
])
def test_evaluate_refuses_unknown_metric_options(trained_vae, options, message):
    """Unknown options used to surface as a TypeError from deep inside the metric."""
    with pytest.raises(ValueError, match=message):
        trained_vae.evaluate(["mig"], num_train=50, num_episodes=2, options=options)


def test_compute_names_the_options_each_metric_takes(trained_vae):
    assert metrics.metric_options("unsupervised") == ["num_bins"]
    assert metrics.metric_options("mcc") == ["alignment", "method"]
    assert metrics.metric_options("true_independence") == ["abs_first", "fit_intercept"]
    assert metrics.metric_options("linear_score") == []
    with pytest.raises(ValueError, match=r"metric 'linear_score' has no option\(s\) \['method'\]; its options are "
                                         "none"):
        metrics.compute("linear_score", trained_vae.env, trained_vae.model.representation, method="x")
    with pytest.raises(ValueError, match=r"metric 'dci' has no option\(s\) \['n_job'\]"):
        metrics.compute("dci", trained_vae.env, trained_vae.model.representation, n_job=1)


def test_evaluate_chen_mig_uses_the_encoder_posterior(trained_vae, trained_rotation):
    chen = trained_vae.evaluate(["mig"], num_train=300, num_episodes=2, options={"mig": {"estimator": "chen"}})

    def posterior(o):
        p = trained_vae.model.encode(o)
        return p.mean, p.logvar

    with torch.no_grad():
        direct = metrics.compute("mig", trained_vae.env, trained_vae.model.representation, seed=trained_vae.seed,
                                 num_train=300, posterior_fn=posterior, estimator="chen")
    assert 0 <= chen["mig"] <= 1 and chen["mig"] == pytest.approx(direct["mig"])
    with pytest.raises(ValueError, match="model 'rotation' has a deterministic encoder"):
        trained_rotation.evaluate(["mig"], num_train=50, num_episodes=2, options={"mig": {"estimator": "chen"}})


def test_default_metrics_follow_the_factors():
    from dynrep import ToyNN
    from dynrep.envs.pendulum import Pendulum
    from dynrep.metrics.compute import default_metrics
    assert default_metrics(GridWorld(size=3)) == ["mig", "dci", "sap", "factor_vae", "beta_vae", "modularity"]
    assert default_metrics(Pendulum()) == ["mcc", "dci", "irs"]
    assert default_metrics(ToyNN("action_sparsity_trivial", num_samples=100)) == ["mcc", "linear_score"]


def test_generalisation_report_on_a_split():
    from dynrep import Circles
    train_env, test_env = Circles(grid=8, radius=3.0, image_size=16).split("circles/recomb2range/midpos")
    learner = RepresentationLearner(train_env, model="vae", latent_dim=2, channels=(4, 8), hidden=16, seed=0)
    learner.train(steps=3, progress=False)
    report = learner.generalisation_report(test_env, num_train=200, num_test=60, baseline="train_mean")
    assert {"reconstruction_train", "reconstruction_test", "reconstruction_gap", "alignment_train_r2",
            "alignment_test_r2"} <= set(report)
    assert report["reconstruction_gap"] == pytest.approx(report["reconstruction_test"]
                                                         - report["reconstruction_train"])
    assert report["alignment_per_factor_test_r2"].shape == (2,)
    with pytest.raises(ValueError, match="test_env must have the learner's observation shape"):
        learner.generalisation_report(Circles(grid=8, radius=3.0, image_size=32), num_train=10, num_test=10)


@pytest.mark.parametrize("world,name,modifiers,part", [
    ("circles", "circles/recomb2range/midpos", [], "train"), ("circles", "circles/recomb2range/midpos", [], "test"),
    ("two_shapes", "two_shapes/recomb2range/huecomb", ["noverlap"], "test"),
    ("two_shapes", "two_shapes", ["noverlap"], "train")])  # a modifier with no condition
def test_checkpoint_of_a_split_restores_the_split(tmp_path, world, name, modifiers, part):
    from dynrep import make_env
    from dynrep.envs.splits import SplitEnvironment
    base = make_env(world, grid=3 if world == "two_shapes" else 8, radius=3.0, image_size=16)
    parts = dict(zip(("train", "test"), base.split(name, modifiers)))
    learner = RepresentationLearner(parts[part], model="beta_tcvae", latent_dim=2, channels=(4, 8), hidden=16,
                                    batch_size=4, seed=0)
    learner.train(steps=2, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert isinstance(loaded.env, SplitEnvironment)
    assert (loaded.env.name, loaded.env.part, loaded.env.modifiers) == (name, part, tuple(modifiers))
    np.testing.assert_array_equal(loaded.env.allowed, parts[part].allowed)
    assert loaded.model.dataset_size == learner.model.dataset_size == int(parts[part].allowed.sum())
    loaded.train(steps=1, progress=False)  # resumes on the same part
    learner.train(steps=1, progress=False)
    assert loaded.history["loss"] == learner.history["loss"]
