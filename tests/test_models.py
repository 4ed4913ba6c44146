"""Model registry, shared config validation, networks, and the VAE."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_NET, seeded_model
from dynrep import GridWorld, build_model, list_models
from dynrep.models import ModelConfig, register_model
from dynrep.models.base import observations_to_float
from dynrep.models.nets import build_decoder, build_encoder
from dynrep.models.rotation import RotationModel
from dynrep.models.vae import VAE, gaussian_kl


# -- registry and config validation ----------------------------------------------------------
def test_list_models():
    names = list_models()
    assert "rotation" in names and "vae" in names
    assert names == sorted(names)


def test_build_model_unknown_name_lists_registered(small_env):
    with pytest.raises(KeyError, match=r"unknown model 'transformer'; registered models: \[.*'rotation'.*'vae'"):
        build_model("transformer", small_env)


def test_register_model_refuses_a_taken_name():
    with pytest.raises(ValueError, match="'vae' is already registered to VAE"):
        register_model("vae")(type("Impostor", (), {}))
    assert "vae" in list_models()


def test_build_model_applies_overrides(small_env):
    model = build_model("rotation", small_env, latent_dim=5, **TINY_NET)
    assert isinstance(model, RotationModel)
    assert model.model_name == "rotation"
    assert model.config.latent_dim == 5
    assert model.config.channels == TINY_NET["channels"]
    assert model.angles.shape == (4, 10)  # 4 actions x 5*4/2 planes


@pytest.mark.parametrize("name", ["rotation", "vae"])
def test_unknown_config_key_lists_allowed_keys(small_env, name):
    with pytest.raises(ValueError, match=rf"unknown '{name}' model option\(s\) \['latent_size'\]; "
                                         r"allowed: \[.*'latent_dim'"):
        build_model(name, small_env, latent_size=4)


def test_rotation_latent_dim_below_two(small_env):
    with pytest.raises(ValueError, match=r"latent_dim must be >= 2, got 1"):
        build_model("rotation", small_env, latent_dim=1, **TINY_NET)
    # The VAE accepts a single latent.
    assert build_model("vae", small_env, latent_dim=1, **TINY_NET).config.latent_dim == 1


@pytest.mark.parametrize("key,value,message", [
    ("latent_dim", 0, r"latent_dim must be >= 1, got 0"),
    ("latent_dim", 2.0, r"latent_dim must be an integer"),
    ("batch_size", -4, r"batch_size must be >= 1, got -4"),
    ("batch_size", 0, r"batch_size must be >= 1, got 0"),
    ("episode_length", -1, r"episode_length must be >= 0, got -1"),
    ("max_action_magnitude", 0, r"max_action_magnitude must be >= 1, got 0"),
    ("hidden", 0, r"hidden must be >= 1, got 0"),
    ("channels", (), r"channels must be a non-empty sequence of positive ints"),
    ("channels", (4, 0), r"channels must be a non-empty sequence of positive ints"),
    ("channels", 5, r"channels must be a non-empty sequence of positive ints, got 5"),
    ("mlp_hidden", "8", r"mlp_hidden must be a sequence of positive ints, got '8'"),
    ("mlp_hidden", (8, -1), r"mlp_hidden must be a sequence of positive ints"),
    ("lr", 0.0, r"lr must be a positive float, got 0.0"),
    ("lr", -1e-3, r"lr must be a positive float"),
])
def test_shared_config_validation(key, value, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{key: value})
    with pytest.raises(ValueError, match=message):
        VAE.Config(**{key: value})


@pytest.mark.parametrize("key,value,message", [
    ("reg_weight", -0.1, "reg_weight must be >= 0"),
    ("reg_warmup_steps", -1, "reg_warmup_steps must be >= 0"),
    ("lr_angles", 0.0, "lr_angles must be a positive float or None"),
])
def test_rotation_config_validation(key, value, message):
    with pytest.raises(ValueError, match=message):
        RotationModel.Config(**{key: value})


def test_vae_config_validation():
    with pytest.raises(ValueError, match=r"reconstruction must be one of \('bernoulli', 'gaussian', 'normal'\), got 'l1'"):
        VAE.Config(reconstruction="l1")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        VAE.Config(beta=-1.0)


def test_model_requires_its_own_config(small_env):
    with pytest.raises(TypeError, match="RotationModel needs a Config, got Config"):
        RotationModel(small_env, VAE.Config(**TINY_NET))


def test_image_side_must_fit_the_conv_stack():
    env = GridWorld(size=3, image_size=20)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*len\(channels\) = 16"):
        build_model("vae", env, channels=(4, 4, 4, 4), hidden=8)
    # Two layers fit 20 = 4 * 5.
    assert build_model("vae", env, channels=(4, 4), hidden=8).config.channels == (4, 4)


# -- networks --------------------------------------------------------------------------------
def test_encoder_decoder_shapes():
    enc = build_encoder((3, 16, 16), 7, (4, 8), 12, (5,))
    dec = build_decoder(7, (3, 16, 16), (4, 8), 12, (5,))
    x = torch.rand(2, 3, 16, 16)
    assert enc(x).shape == (2, 7)
    assert dec(enc(x)).shape == (2, 3, 16, 16)
    enc = build_encoder((9,), 3, (4,), 12, (6, 5))
    dec = build_decoder(3, (9,), (4,), 12, (6, 5))
    assert enc(torch.rand(4, 9)).shape == (4, 3)
    assert dec(torch.rand(4, 3)).shape == (4, 9)
    assert [m.out_features for m in dec if isinstance(m, torch.nn.Linear)] == [5, 6, 9]
    with pytest.raises(ValueError, match=r"no encoder for observation shape \(2, 3\)"):
        build_encoder((2, 3), 3, (4,), 8, ())
    with pytest.raises(ValueError, match=r"no decoder for observation shape \(2, 3\)"):
        build_decoder(3, (2, 3), (4,), 8, ())


@pytest.mark.parametrize("grad_in_place", [True, False])
def test_conv_nets_relu_in_place_matches_out_of_place(grad_in_place, monkeypatch):
    """The conv stacks' ReLUs run in place (one activation-sized allocation less per layer) and, on
    activations of at least ``IN_PLACE_GRAD_MIN`` elements, write their backward into the incoming gradient;
    outputs and gradients are bitwise those of the same nets with out-of-place ReLUs."""
    import copy

    from dynrep.models import nets
    if grad_in_place:
        monkeypatch.setattr(nets, "IN_PLACE_GRAD_MIN", 0)
    torch.manual_seed(0)
    enc = build_encoder((1, 16, 16), 6, (4, 8), 12, (5,))
    dec = build_decoder(3, (1, 16, 16), (4, 8), 12, (5,))
    conv_relus = [m for net in (enc, dec) for m in net if isinstance(m, nets.ConvReLU) and m.inplace]
    assert len(conv_relus) == 2 + 1  # after each encoder conv, between the decoder's transposed convs
    node = type(enc[1](enc[0](torch.rand(5, 1, 16, 16))).grad_fn).__name__
    assert node == ("_ReLUGradInPlaceBackward" if grad_in_place else "ReluBackward0")
    plain_enc, plain_dec = copy.deepcopy(enc), copy.deepcopy(dec)
    for m in [*plain_enc, *plain_dec]:
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    x = torch.rand(5, 1, 16, 16)
    outputs = []
    for e, d in ((enc, dec), (plain_enc, plain_dec)):
        out = d(e(x)[:, :3])
        out.square().sum().backward()
        outputs.append((out.detach(), [p.grad for p in [*e.parameters(), *d.parameters()]]))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outputs[0][1], outputs[1][1]))


def test_conv_relu_in_place_backward_allows_a_double_backward(monkeypatch):
    """A gradient penalty (create_graph=True) differentiates the ReLU's backward: then it runs out of place (the
    in-place write cannot be differentiated) and the second-order gradient is the plain ReLU's."""
    from dynrep.models import nets
    monkeypatch.setattr(nets, "IN_PLACE_GRAD_MIN", 0)
    torch.manual_seed(0)
    enc = build_encoder((1, 16, 16), 6, (4, 8), 12, (5,))
    x = torch.rand(5, 1, 16, 16)
    penalties = []
    for inplace in (True, False):
        for m in enc:
            if isinstance(m, nets.ConvReLU):
                m.inplace = inplace
        enc.zero_grad()
        xi = x.clone().requires_grad_()
        grad, = torch.autograd.grad(enc(xi).square().sum(), xi, create_graph=True)
        grad.square().sum().backward()
        penalties.append([p.grad.clone() for p in enc.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*penalties))


def test_observations_to_float():
    u = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(observations_to_float(u), torch.tensor([0.0, 0.2, 1.0]))
    f = torch.tensor([0.5, 2.0], dtype=torch.float64)
    out = observations_to_float(f)
    assert out.dtype == torch.float32 and torch.equal(out, torch.tensor([0.5, 2.0]))


@pytest.mark.parametrize("name", ["rotation", "vae"])
def test_predict_and_reconstruct_shapes(small_env, name):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(name, small_env, latent_dim=4, **TINY_NET)
    batch = small_env.sample_trajectories(3, 2, rng=0)
    with torch.no_grad():
        pred = model.predict(batch)
        rec = model.reconstruct(batch.obs[:, 0])
    assert pred.shape == (3, 3, 3, 16, 16)
    assert rec.shape == (3, 3, 16, 16)
    assert pred.min() >= 0 and pred.max() <= 1
    assert model.representation(batch.obs[:, 0]).shape == (3, 4)


# -- VAE -------------------------------------------------------------------------------------
def test_gaussian_kl_values():
    assert torch.equal(gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    # mean 1, var 1 -> 0.5 per dimension; var e -> 0.5 * (e - 2) per dimension.
    kl = gaussian_kl(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0],
                                                                                      [1.0, 0.0, 0.0]]))
    expected = torch.tensor([1.0, 0.5 * (torch.e - 2.0)])
    assert torch.allclose(kl, expected)
    g = torch.Generator().manual_seed(0)
    assert (gaussian_kl(torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g)) >= 0).all()


def vae(env, **overrides):
    return seeded_model("vae", env, latent_dim=3, **{**TINY_NET, **overrides})


@pytest.mark.parametrize("reconstruction", ["bernoulli", "gaussian"])
def test_vae_loss_matches_hand_computation(small_env, reconstruction):
    model = vae(small_env, beta=2.5, reconstruction=reconstruction)
    batch = small_env.sample_trajectories(4, 1, rng=0)
    out = model.loss(batch, step=0, generator=torch.Generator().manual_seed(11))
    assert set(out.terms) == {"reconstruction", "kl"}

    obs = batch.obs.flatten(0, 1)
    target = obs.float() / 255
    post = model.encode(obs)
    assert post.mean.shape == post.logvar.shape == (8, 3)
    noise = torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(11))
    logits = model.decode_logits(post.mean + noise * (0.5 * post.logvar).exp())
    if reconstruction == "bernoulli":
        per_element = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_element = (torch.sigmoid(logits) - target) ** 2
    recon = per_element.sum(dim=(1, 2, 3)).mean()
    kl = gaussian_kl(post.mean, post.logvar).mean()
    assert torch.allclose(out.terms["reconstruction"], recon, rtol=1e-5)
    assert torch.allclose(out.terms["kl"], kl, rtol=1e-5)
    assert torch.allclose(out.total, recon + 2.5 * kl, rtol=1e-5)


def test_gaussian_and_bernoulli_reconstruction_differ(small_env):
    batch = small_env.sample_trajectories(4, 1, rng=0)
    b = vae(small_env).loss(batch, 0, torch.Generator().manual_seed(0)).terms["reconstruction"]
    g = vae(small_env, reconstruction="gaussian").loss(batch, 0, torch.Generator().manual_seed(0))
    g = g.terms["reconstruction"]
    # Squared error of a probability is below 1 per element; BCE of an untrained net is ~ln 2.
    assert g < 768 and b > g


def test_vae_loss_reproducible_with_seeded_generator(small_env):
    model = vae(small_env)
    batch = small_env.sample_trajectories(4, 0, rng=0)
    a = model.loss(batch, 0, torch.Generator().manual_seed(5))
    b = model.loss(batch, 0, torch.Generator().manual_seed(5))
    c = model.loss(batch, 0, torch.Generator().manual_seed(6))
    assert torch.equal(a.total, b.total)
    assert not torch.equal(a.terms["reconstruction"], c.terms["reconstruction"])
    assert torch.equal(a.terms["kl"], c.terms["kl"])  # the KL does not depend on the noise


def test_vae_on_onehot_observations(onehot_env):
    model = vae(onehot_env)
    batch = onehot_env.sample_trajectories(5, 2, rng=0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.total)
    out.total.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.encode(batch.obs[:, 0]).mean.shape == (5, 3)


def test_vae_traverse(small_env):
    model = vae(small_env)
    obs = small_env.sample_trajectories(1, 0, rng=0).obs[:, 0]
    with torch.no_grad():
        frames, labels = model.traverse(obs, 5)
        z = model.representation(obs)[0]
        assert frames.shape == (3, 5, 3, 16, 16)
        assert labels == ["z0", "z1", "z2"]
        # Row 1, frame 0: latent 1 set to -3, the others kept at the posterior mean.
        z_row = z.clone()
        z_row[1] = -3.0
        assert torch.allclose(frames[1, 0], model.decode(z_row[None])[0], atol=1e-6)
        z_row[1] = 3.0
        assert torch.allclose(frames[1, 4], model.decode(z_row[None])[0], atol=1e-6)
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        model.traverse(obs, 1)


def test_vae_has_no_dynamics(small_env):
    model = vae(small_env)
    assert not model.has_dynamics
    with pytest.raises(ValueError, match="model 'vae' has no latent dynamics"):
        model.transition(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    assert model.structure_scores() == {}
    assert model.encoder_outputs() == 6


def test_named_architectures_and_spatial_broadcast_decoder():
    from dynrep.models import build_model
    from dynrep.models.nets import SpatialBroadcastDecoder
    env = GridWorld(size=3, image_size=64)
    montero = build_model("vae", env, architecture="montero", latent_dim=3)
    convs = [m for m in montero.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256] and montero.config.hidden == 256
    assert montero.config.channels == (64, 64, 128, 128, 256)
    sbd = build_model("vae", env, architecture="burgess", decoder="spatial_broadcast", latent_dim=3)
    assert isinstance(sbd.decoder, SpatialBroadcastDecoder)
    z = torch.zeros(2, 3)
    z[1, 0] = 1.0
    logits = sbd.decode_logits(z)
    assert logits.shape == (2, 3, 64, 64)
    coords = sbd.decoder.coordinates
    assert coords.shape == (1, 2, 64, 64) and coords[0, 0, 0, 0] == -1 and coords[0, 0, 0, -1] == 1  # x along columns
    assert coords[0, 1, -1, 0] == 1  # y along rows
    assert not torch.allclose(logits[0], logits[1])
    with pytest.raises(ValueError, match=r"architecture must be None or one of \['abdi', 'burgess', 'kim', 'montero'\]"):
        build_model("vae", env, architecture="resnet")
    with pytest.raises(ValueError, match="decoder must be one of"):
        build_model("vae", env, decoder="pixelcnn")


@pytest.mark.parametrize("learn", [True, False])
def test_vae_normal_reconstruction_on_vectors(learn):
    from dynrep import ToyNN
    from dynrep.models.losses import gaussian_nll
    env = ToyNN("action_sparsity_trivial", num_samples=200)
    model = build_model("vae", env, reconstruction="normal", decoder_logvar_init=-2.0, learn_decoder_var=learn,
                        latent_dim=3, mlp_hidden=(8,))
    assert isinstance(model.decoder_logvar, torch.nn.Parameter) == learn
    assert ("decoder_logvar" in dict(model.named_parameters())) == learn
    assert model.decoder_logvar.item() == -2.0 and "decoder_logvar" in model.state_dict()
    x = torch.randn(5, 20)
    z = torch.randn(5, 3)
    assert torch.equal(model.decode(z), model.decode_logits(z))  # the mean itself, no sigmoid
    expected = gaussian_nll(model.decode_logits(z), x, torch.tensor(-2.0)).sum(-1).mean()
    assert torch.allclose(model.reconstruction_term(model.decode_logits(z), x), expected)
    out = model.loss(env.sample_trajectories(6, 0, rng=0), 0, torch.Generator().manual_seed(0))
    out.total.backward()
    assert (model.decoder_logvar.grad is not None) == learn


def test_normal_reconstruction_needs_a_logvar():
    from dynrep.models.vae import reconstruction_loss
    with pytest.raises(ValueError, match="needs the decoder log-variance"):
        reconstruction_loss(torch.zeros(2, 3), torch.zeros(2, 3), "normal")
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        reconstruction_loss(torch.zeros(2, 3), torch.zeros(2, 3), "laplace")
