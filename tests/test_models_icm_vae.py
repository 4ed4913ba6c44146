"""ICM-VAE: config, loss terms by hand, warm-up, interventions on the latents, training, persistence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dynrep.models.icm_vae  # noqa: F401  (registers "icm_vae")
from conftest import seeded_model
from dynrep import RepresentationLearner
from dynrep.envs.circles import Circles
from dynrep.envs.flow import Flow
from dynrep.envs.pendulum import Pendulum
from dynrep.models.icm_vae import ICMVAE

TINY = {"encoder_hidden": (32,), "decoder_hidden": (16,), "flow_hidden": 8, "batch_size": 16}
K = 4

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env() -> Pendulum:
    return Pendulum(image_size=16)


def tiny_model(env, **overrides) -> ICMVAE:
    return seeded_model("icm_vae", env, **{**TINY, **overrides})


def blocks(z: torch.Tensor) -> torch.Tensor:
    return z.view(len(z), -1, K)


# -- config ----------------------------------------------------------------------------------
def test_published_defaults():
    c = ICMVAE.Config()
    assert (c.block_dim, c.latent_dim, c.batch_size, c.episode_length, c.lr) == (4, None, 64, 0, 1e-3)
    assert (c.alpha_max, c.beta_max, c.warmup_steps) == (0.1, 1.2, 94 * 86)
    assert (c.encoder_hidden, c.decoder_hidden, c.flow_hidden) == ((900, 300), (300, 300, 1024), 100)
    assert c.reconstruction_reduction == "row_mean"


@pytest.mark.parametrize("overrides,message", [
    ({"block_dim": 0}, r"block_dim must be >= 1, got 0"),
    ({"latent_dim": 0}, r"latent_dim must be >= 1, got 0"),
    ({"warmup_steps": -1}, r"warmup_steps must be >= 0, got -1"),
    ({"flow_hidden": 2.5}, r"flow_hidden must be an integer, got 2.5"),
    ({"alpha_max": -0.1}, r"alpha_max must be a float >= 0, got -0.1"),
    ({"beta_max": "1"}, r"beta_max must be a float >= 0, got '1'"),
    ({"encoder_hidden": ()}, r"encoder_hidden must be a non-empty sequence of positive ints, got \(\)"),
    ({"decoder_hidden": (16, 0)}, r"decoder_hidden must be a non-empty sequence of positive ints, got \(16, 0\)"),
    ({"reconstruction_reduction": "mean"}, r"reconstruction_reduction must be one of \('row_mean', 'sum'\), "
                                           r"got 'mean'"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        ICMVAE.Config(**overrides)


def test_latent_dim_from_the_environment(env):
    assert tiny_model(env).config.latent_dim == 16
    assert tiny_model(env, block_dim=2, latent_dim=8).config.latent_dim == 8
    with pytest.raises(ValueError, match=r"latent_dim must be n_variables \* block_dim = 4 \* 4 = 16 for "
                                         r"Pendulum, got 10"):
        tiny_model(env, latent_dim=10)


def test_needs_a_causal_environment():
    with pytest.raises(ValueError, match=r"icm_vae needs an environment with a causal graph .*; Circles has none"):
        tiny_model(Circles(grid=4, radius=3.0, image_size=16))


# -- shapes and loss terms -------------------------------------------------------------------
def test_shapes_and_buffers(env):
    model = tiny_model(env)
    obs = env.sample_trajectories(5, 0, rng=0).obs[:, 0]
    post = model.encode(obs)
    assert post.mean.shape == (5, 16) and torch.equal(post.logvar, torch.zeros(5, 16))
    z = model.representation(obs)
    assert z.shape == (5, 16) and torch.equal(z, model.mechanisms(post.mean)[0])
    assert torch.allclose(model.block_means(obs), blocks(z).mean(-1))
    assert model.decode(z).shape == (5, 3, 16, 16) and model.reconstruct(obs).shape == (5, 3, 16, 16)
    assert model.variables == env.variables
    assert torch.equal(model.graph, torch.as_tensor(env.graph))
    assert torch.allclose(model.label_scale.double(), torch.as_tensor(env.label_scale))
    # the decoder averages one decoder per block
    per_block = torch.stack([net(z[:, i * K:(i + 1) * K]) for i, net in enumerate(model.decoder.nets)]).mean(0)
    assert torch.allclose(model.decode_logits(z), per_block.view(5, 3, 16, 16))
    for flow in (model.mechanisms, model.prior):  # both flows' s and t nets at flow_hidden (TINY: 8)
        assert [m.out_features for m in flow.s if isinstance(m, torch.nn.Linear)] == [8, 8, K]
        assert [m.out_features for m in flow.t if isinstance(m, torch.nn.Linear)] == [8, 8, K]



def test_any_image_size_and_only_mlp_networks():
    # The MLPs take any side (no conv nets, so no 2**len(channels) divisibility: 20 is not a multiple of 16).
    env20 = Pendulum(image_size=20)
    model = tiny_model(env20)
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    obs = env20.sample_trajectories(3, 0, rng=0).obs[:, 0]
    assert model.reconstruct(obs).shape == (3, 3, 20, 20)
    assert model.encoder[0].in_features == 3 * 20 * 20

def test_warmup_ramp(env):
    model = tiny_model(env, warmup_steps=100)
    for step, expected in [(0, (0.0, 0.0)), (25, (0.025, 0.3)), (50, (0.05, 0.6)), (100, (0.1, 1.2)),
                           (5000, (0.1, 1.2))]:
        assert model.weights(step) == pytest.approx(expected)
    assert tiny_model(env, warmup_steps=0).weights(0) == (0.1, 1.2)


@pytest.mark.parametrize("step", [0, 40, 200])
def test_loss_terms_by_hand(env, step):
    model = tiny_model(env, warmup_steps=100)
    batch = env.sample_trajectories(6, 0, rng=1)
    out = model.loss(batch, step)
    obs = batch.obs[:, 0]
    x = obs.double() / 255
    eps = model.encode(obs).mean.double()
    z, log_det = model.mechanisms(eps.float())
    logits = model.decode_logits(z).double()
    bce = F.softplus(logits) - x * logits
    rec = bce.sum(-1).mean()                           # sum over a row, mean over batch x channel x row
    kl = 0.5 * (eps ** 2).sum(-1).mean()
    u = torch.as_tensor(env.standardize(batch.factors[:, 0].numpy()))
    mask = torch.zeros(16)
    mask[:2 * K] = 1.0                                 # shadow_length, shadow_position <- pendulum, light
    label = 0.0
    for i in range(4):
        context = z * mask if i >= 2 else torch.zeros_like(z)
        mu = model.prior.s(context).exp() * u[:, i:i + 1] + model.prior.t(context)
        label = label + 0.5 * (z[:, i * K:(i + 1) * K] - mu).double().square().sum(-1)
    label = label.mean()
    alpha, beta = min(step, 100) / 100 * 0.1, min(step, 100) / 100 * 1.2
    terms = {k: v.item() for k, v in out.terms.items()}
    assert terms["reconstruction"] == pytest.approx(rec.item(), rel=1e-5)
    assert terms["kl"] == pytest.approx(kl.item(), rel=1e-5)
    assert terms["log_det"] == pytest.approx(log_det.mean().item(), rel=1e-5)
    assert terms["label"] == pytest.approx(label.item(), rel=1e-5)
    assert (terms["alpha"], terms["beta"]) == pytest.approx((alpha, beta))
    expected = rec + alpha * (kl - log_det.mean()) + beta * label
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_sum_reduction_is_row_mean_times_channels_and_rows(env):
    batch = env.sample_trajectories(4, 0, rng=2)
    row = tiny_model(env).loss(batch, 0).terms["reconstruction"]
    total = tiny_model(env, reconstruction_reduction="sum").loss(batch, 0).terms["reconstruction"]
    assert total.item() == pytest.approx(row.item() * 3 * 16, rel=1e-5)


def test_loss_is_deterministic_and_reaches_every_parameter(env):
    model = tiny_model(env, warmup_steps=0)
    batch = env.sample_trajectories(4, 0, rng=3)
    a = model.loss(batch, 0, torch.Generator().manual_seed(0))
    b = model.loss(batch, 0, torch.Generator().manual_seed(1))
    assert torch.equal(a.total, b.total)  # no sampling: the generator is unused
    a.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_label_prior_context_carries_gradient_to_the_encoder(env):
    # mu~_i reads the learned latents z as its context: the label term trains the encoder through that path too
    model = tiny_model(env, warmup_steps=0)
    batch = env.sample_trajectories(6, 0, rng=4)
    params = list(model.encoder.parameters())
    grads = torch.autograd.grad(model.loss(batch, 0).terms["label"], params)
    z = model.representation(batch.obs[:, 0])
    u = model.standardize(batch.factors[:, 0]).repeat_interleave(K, dim=-1)

    def label(context):
        return 0.5 * (z - model.prior(u, context=context)[0]).square().sum(-1).mean()

    through_context = torch.autograd.grad(label(z), params, retain_graph=True)
    without_context = torch.autograd.grad(label(z.detach()), params)
    for got, expected in zip(grads, through_context):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)
    assert max((a - b).abs().max().item() for a, b in zip(through_context, without_context)) > 1e-4


# -- interventions ---------------------------------------------------------------------------
def prior_block(model, j: int, value: float, z: torch.Tensor) -> torch.Tensor:
    """mu~_j of a label value given z's parent blocks, computed from the prior's MLPs directly."""
    centre, scale = model.label_scale[j].tolist()
    masked = z * model.prior.masks[j]
    return model.prior.s(masked).exp() * (value - centre) / scale + model.prior.t(masked)


@pytest.mark.parametrize("variable,unchanged", [
    ("pendulum", [1]), ("light", [0]), ("shadow_length", [0, 1, 3]), ("shadow_position", [0, 1, 2])])
def test_intervention_changes_only_descendants(env, variable, unchanged):
    model = tiny_model(env)
    obs = env.sample_trajectories(5, 0, rng=4).obs[:, 0]
    base = blocks(model.representation(obs))
    z = model.intervened_latents(obs, {variable: 10.0})
    new, j = blocks(z), env.variables.index(variable)
    for i in range(4):
        assert torch.equal(new[:, i], base[:, i]) == (i in unchanged), i
    assert torch.allclose(new[:, j], prior_block(model, j, 10.0, z), atol=1e-6)
    images = model.intervene(obs, {variable: 10.0})
    assert images.shape == (5, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    assert torch.allclose(images, model.decode(z))


def test_intervention_on_flow_and_joint_interventions(env):
    flow_env = Flow(image_size=16)
    model = tiny_model(flow_env)
    obs = flow_env.sample_trajectories(4, 0, rng=0).obs[:, 0]
    base, new = blocks(model.representation(obs)), blocks(model.intervened_latents(obs, {"water": 3.0}))
    assert [torch.equal(new[:, i], base[:, i]) for i in range(4)] == [True, False, False, True]  # ball, hole kept
    # two interventions: the child's prior block reads the intervened parent
    model = tiny_model(env)
    obs = env.sample_trajectories(4, 0, rng=5).obs[:, 0]
    values = torch.tensor([8.0, 9.0, 10.0, 11.0])
    z = model.intervened_latents(obs, {"shadow_length": values, "light": 120.0})
    assert torch.allclose(blocks(z)[:, 1], prior_block(model, 1, 120.0, z), atol=1e-6)
    assert torch.allclose(blocks(z)[:, 2], prior_block(model, 2, values[:, None], z), atol=1e-6)
    assert torch.equal(blocks(z)[:, 0], blocks(model.representation(obs))[:, 0])


def test_intervention_errors(env):
    model = tiny_model(env)
    obs = env.sample_trajectories(3, 0, rng=6).obs[:, 0]
    with pytest.raises(ValueError, match=r"unknown variable 'sun'; variables are \['pendulum', 'light', "
                                         r"'shadow_length', 'shadow_position'\]"):
        model.intervene(obs, {"sun": 1.0})
    with pytest.raises(ValueError, match=r"interventions must name at least one variable"):
        model.intervene(obs, {})
    with pytest.raises(ValueError, match=r"light must be a scalar or have shape \[3\], got \[2\]"):
        model.intervene(obs, {"light": torch.tensor([1.0, 2.0])})


def test_traverse_sweeps_each_variable(env):
    model = tiny_model(env)
    obs = env.sample_trajectories(1, 0, rng=7).obs[:, 0]
    frames, labels = model.traverse(obs, 5)
    assert frames.shape == (4, 5, 3, 16, 16) and labels == list(env.variables)
    low_light = model.intervene(obs, {"light": 100.0 - 2 * 40.0})        # standardised -2
    high_shadow = model.intervene(obs, {"shadow_position": 10.0 + 2 * 5.0})  # standardised +2
    assert torch.allclose(frames[1, 0], low_light[0], atol=1e-6)
    assert torch.allclose(frames[3, -1], high_shadow[0], atol=1e-6)


# -- training and persistence ----------------------------------------------------------------
def test_training_reduces_the_loss(env):
    learner = RepresentationLearner(env, "icm_vae", seed=0, device="cpu", warmup_steps=50, **TINY)
    history = learner.train(steps=150, progress=False)
    loss, label = np.asarray(history["loss"]), np.asarray(history["label"])
    assert np.isfinite(loss).all()
    assert loss[-15:].mean() < 0.5 * loss[:15].mean()
    assert label[-15:].mean() < 0.5 * label[:15].mean()  # the latents follow the label prior


def test_save_load_round_trip(env, tmp_path):
    learner = RepresentationLearner(env, "icm_vae", seed=0, device="cpu", **TINY)
    learner.train(steps=3, progress=False)
    assert learner.animate(tmp_path / "traversal.gif", kind="traversal", num_frames=3).stat().st_size > 0
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    assert loaded.model.config == learner.model.config and loaded.model.variables == env.variables
    obs = env.sample_trajectories(4, 0, rng=8).obs[:, 0]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    with torch.no_grad():
        do = {"light": 130.0, "shadow_length": 5.0}
        assert torch.equal(learner.model.intervene(obs, do), loaded.model.intervene(obs, do))
    assert learner.train(steps=2, progress=False)["loss"][-2:] == loaded.train(steps=2, progress=False)["loss"][-2:]
