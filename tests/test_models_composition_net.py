"""CompositionNet (Lost in Latent Space composition task): triplets, operators, loss, training, persistence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import seeded_model
from dynrep import RepresentationLearner, build_model, make_env
from dynrep.envs.circles import Circles, Simple
from dynrep.envs.splits import SplitEnvironment
from dynrep.models import composition_net
from dynrep.models.composition_net import COMPOSITIONS, Composition, CompositionNet, host_seed, sample_triplets

TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16}
SPLIT = "circles/recomb2range/shape2px"


def tiny_env() -> Circles:
    return Circles(grid=8, radius=3.0, image_size=16)


def tiny_model(env=None, **overrides) -> CompositionNet:
    return seeded_model("composition_net", env or tiny_env(), **{**TINY, **overrides})


def is_valid(env, codes: np.ndarray) -> np.ndarray:
    allowed = getattr(env, "allowed", None)
    return np.ones(len(codes), bool) if allowed is None else allowed[env.factors.to_index(codes)]


# -- triplets --------------------------------------------------------------------------------
@pytest.mark.parametrize("env", [tiny_env(), Simple(grid=4, radius=2.0, image_size=16)], ids=["circles", "simple"])
def test_triplet_invariants_full_grid(env):
    n = 200
    t = sample_triplets(env, n, np.random.default_rng(0))
    ref, cmd, tgt, k = t["reference"], t["command"], t["target"], t["factor"]
    rows = np.arange(n)
    diff_rt = ref != tgt
    # the target differs from the reference exactly at factor k
    assert diff_rt[rows, k].all() and diff_rt.sum(1).tolist() == [1] * n
    # the command shares exactly factor k with the target (every factor has > 1 value on a full grid)
    same_qt = cmd == tgt
    assert same_qt[rows, k].all() and same_qt.sum(1).tolist() == [1] * n
    np.testing.assert_array_equal(t["action"], np.eye(len(env.factors), dtype=np.float32)[k])
    for key, codes in (("x_r", ref), ("x_q", cmd), ("x_t", tgt)):
        np.testing.assert_array_equal(t[key], env.render(codes))
    assert set(k.tolist()) == set(range(len(env.factors)))  # every factor gets chosen


def test_triplets_respect_a_split_and_reference_codes():
    train, _ = tiny_env().split(SPLIT)
    n = 300
    reference = train.sample_factors(n, np.random.default_rng(1))
    t = sample_triplets(train, n, np.random.default_rng(2), reference)
    np.testing.assert_array_equal(t["reference"], reference)
    for codes in (t["reference"], t["command"], t["target"]):
        assert is_valid(train, codes).all()
    rows = np.arange(n)
    k = t["factor"]
    assert (t["reference"] != t["target"]).sum(1).tolist() == [1] * n
    assert (t["reference"][rows, k] != t["target"][rows, k]).all()
    same = t["command"] == t["target"]
    assert same[rows, k].all()
    # with 2 factors the other factor always has another valid value in this split (an L-shaped region)
    assert same.sum(1).tolist() == [1] * n


def test_triplets_of_an_isolated_combination_keep_the_reference():
    base = tiny_env()
    allowed = np.zeros(base.factors.num_states, bool)
    allowed[[0, 63]] = True  # (0, 0) and (7, 7): no single-factor move connects them
    env = SplitEnvironment(base, allowed, "custom", "train")
    t = sample_triplets(env, 20, np.random.default_rng(0))
    np.testing.assert_array_equal(t["target"], t["reference"])
    np.testing.assert_array_equal(t["command"], t["reference"])
    assert is_valid(env, t["reference"]).all()


def test_triplets_are_a_pure_function_of_the_generator():
    env = Simple(grid=4, radius=2.0, image_size=16)
    a, b = (sample_triplets(env, 30, np.random.default_rng(7)) for _ in range(2))
    c = sample_triplets(env, 30, np.random.default_rng(8))
    assert all(np.array_equal(a[key], b[key]) for key in a)
    assert not np.array_equal(a["command"], c["command"])


def test_triplet_argument_errors():
    env = tiny_env()
    with pytest.raises(ValueError, match="reference must have 3 rows, got 2"):
        sample_triplets(env, 3, 0, np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        sample_triplets(env, 0, 0)


# -- operators -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", COMPOSITIONS)
def test_operator_output_shape(kind):
    op = Composition(kind, latent_dim=5, num_factors=3)
    z_r, z_q = torch.randn(4, 5), torch.randn(4, 5)
    a = F.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
    assert op(z_r, z_q, a).shape == (4, 5)


def test_fixint_hand_value():
    op = Composition("fixint", latent_dim=4, num_factors=2)
    z_r = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    z_q = torch.tensor([[10.0, 20.0, 30.0, 40.0], [10.0, 20.0, 30.0, 40.0]])
    a = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    torch.testing.assert_close(op(z_r, z_q, a), torch.tensor([[1.0, 20.0, 3.0, 4.0], [10.0, 2.0, 3.0, 4.0]]))
    assert not list(op.parameters())


def test_interp_hand_value():
    op = Composition("interp", latent_dim=2, num_factors=1)
    with torch.no_grad():
        op.gate.weight.zero_()
        op.gate.weight[0, 4] = 1.0  # gate of dim 0 reads a
        op.gate.bias.copy_(torch.tensor([0.0, float(np.log(3.0))]))
    z_r, z_q, a = torch.tensor([[2.0, 4.0]]), torch.tensor([[6.0, 8.0]]), torch.tensor([[1.0]])
    w0, w1 = 1 / (1 + np.exp(-1.0)), 0.75  # sigmoid(1), sigmoid(log 3)
    expected = torch.tensor([[w0 * 2 + (1 - w0) * 6, w1 * 4 + (1 - w1) * 8]], dtype=torch.float32)
    torch.testing.assert_close(op(z_r, z_q, a), expected)


def test_linear_hand_value():
    op = Composition("linear", latent_dim=2, num_factors=1)
    with torch.no_grad():
        for lin in (op.reference_map, op.command_map):
            lin.weight.zero_()
            lin.bias.zero_()
        op.reference_map.weight[:, :2] = torch.eye(2)
        op.command_map.weight[:, 2] = torch.tensor([1.0, -1.0])  # a
    out = op(torch.tensor([[3.0, 5.0]]), torch.tensor([[100.0, 100.0]]), torch.tensor([[2.0]]))
    torch.testing.assert_close(out, torch.tensor([[5.0, 3.0]]))


def test_fixint_needs_a_latent_per_factor():
    with pytest.raises(ValueError, match=r"composition='fixint' needs latent_dim >= the number of factors 3, got 2"):
        build_model("composition_net", Simple(grid=4, radius=2.0, image_size=16), composition="fixint",
                    **{**TINY, "latent_dim": 2})


# -- config ----------------------------------------------------------------------------------
def test_published_defaults():
    c = CompositionNet.Config()
    assert (c.latent_dim, c.batch_size, c.lr, c.beta, c.composition) == (10, 64, 1e-4, 1.0, "interp")
    assert (c.composition_hidden, c.reconstruction, c.episode_length) == (128, "bernoulli", 0)


@pytest.mark.parametrize("overrides,message", [
    ({"composition": "add"}, r"composition must be one of \('linear', 'interp', 'fixint', 'mlp'\), got 'add'"),
    ({"composition_hidden": 0}, r"composition_hidden must be >= 1, got 0"),
    ({"beta": -1.0}, r"beta must be >= 0, got -1.0"),
    ({"reconstruction": "l1"}, r"reconstruction must be one of \('bernoulli', 'gaussian', 'normal'\), got 'l1'"),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        CompositionNet.Config(**overrides)


# -- loss ------------------------------------------------------------------------------------
@pytest.mark.parametrize("reconstruction", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("kind", COMPOSITIONS)
def test_loss_terms_against_independent_computation(kind, reconstruction):
    env = Simple(grid=4, radius=2.0, image_size=16)
    model = tiny_model(env, composition=kind, reconstruction=reconstruction, beta=2.5)
    batch = env.sample_trajectories(3, 1, rng=0)  # 6 reference frames
    out = model.loss(batch, 0, torch.Generator().manual_seed(11))

    gen = torch.Generator().manual_seed(11)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    t = sample_triplets(env, 6, np.random.default_rng(seed), batch.factors.reshape(6, 3).numpy())
    x_r, x_q, x_t = (torch.from_numpy(t[key]).float() / 255 for key in ("x_r", "x_q", "x_t"))
    mean, logvar = model.encoder(torch.cat([x_r, x_q])).chunk(2, -1)
    z = mean + torch.randn(mean.shape, generator=gen) * torch.exp(0.5 * logvar)
    z_r, z_q = z[:6], z[6:]
    z_t = model.composition(z_r, z_q, torch.from_numpy(t["action"]))
    totals = []
    for zz, x in ((z_r, x_r), (z_q, x_q), (z_t, x_t)):
        logits = model.decoder(zz)
        if reconstruction == "bernoulli":
            element = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            element = (torch.sigmoid(logits) - x) ** 2
        totals.append(element.sum())
    recon = sum(totals) / 6
    kl = (-0.5 * (1 + logvar - mean ** 2 - logvar.exp())).sum() / 6  # 2B = 12 posteriors, divided by B
    torch.testing.assert_close(out.terms["reconstruction"], recon, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.terms["reconstruction_target"], totals[2] / 6, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.terms["kl"], kl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.total, recon + 2.5 * kl, rtol=1e-5, atol=1e-4)
    assert out.total.shape == () and all(v.shape == () for v in out.terms.values())


def test_shapes_and_representation_is_encoder_mean():
    env = tiny_env()
    model = tiny_model(env)
    obs = env.sample_trajectories(5, 0, rng=0).obs[:, 0]
    mean = model.encoder(obs.float() / 255).chunk(2, -1)[0]
    torch.testing.assert_close(model.representation(obs), mean)
    assert model.reconstruct(obs).shape == (5, 1, 16, 16)


# -- training --------------------------------------------------------------------------------
@pytest.mark.parametrize("split", [False, True], ids=["full", "split"])
def test_loss_decreases(split):
    env = tiny_env()
    if split:
        env = env.split(SPLIT)[0]
    learner = RepresentationLearner(env, "composition_net", seed=0, device="cpu", **{**TINY, "lr": 3e-3})
    history = learner.train(steps=200, progress=False)
    loss, target = np.asarray(history["loss"]), np.asarray(history["reconstruction_target"])
    assert np.isfinite(loss).all()
    assert loss[-20:].mean() < 0.7 * loss[:20].mean()
    assert target[-20:].mean() < 0.7 * target[:20].mean()


def test_training_is_reproducible():
    runs = [RepresentationLearner(tiny_env(), "composition_net", seed=1, device="cpu", **TINY)
            .train(steps=3, progress=False) for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("split", [False, True], ids=["full", "split"])
def test_save_load_round_trip(tmp_path, split):
    env = tiny_env()
    if split:
        env = env.split(SPLIT)[0]
    learner = RepresentationLearner(env, "composition_net", seed=0, device="cpu", **{**TINY, "composition": "mlp"})
    learner.train(steps=3, progress=False)
    learner.save(tmp_path / "ckpt")
    loaded = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    obs = env.sample_trajectories(6, 0, rng=5).obs[:, 0]
    assert torch.equal(learner.encode(obs), loaded.encode(obs))
    z = learner.encode(obs)
    assert torch.equal(learner.decode(z), loaded.decode(z))
    a = torch.eye(2)[torch.tensor([0, 1, 1, 0, 1, 0])]
    with torch.no_grad():
        assert torch.equal(learner.model.compose(z, z.flip(0), a), loaded.model.compose(z, z.flip(0), a))
    assert loaded.model.config == learner.model.config and loaded.step == 3


def test_default_learner_trains_without_configuration():
    # 32x32 rather than the default 64x64 to keep the test short; tests/test_models_zoo.py runs 64x64.
    learner = RepresentationLearner(make_env("circles", image_size=32), model="composition_net", device="cpu")
    learner.train(steps=30, progress=False)
    assert len(learner.history["loss"]) == 30 and np.isfinite(learner.history["loss"]).all()


def test_checkpoint_resume_continues_exactly(tmp_path):
    straight = RepresentationLearner(tiny_env(), "composition_net", seed=2, device="cpu", **TINY)
    straight.train(steps=4, progress=False)
    first = RepresentationLearner(tiny_env(), "composition_net", seed=2, device="cpu", **TINY)
    first.train(steps=2, progress=False)
    first.save(tmp_path / "ckpt")
    resumed = RepresentationLearner.load(tmp_path / "ckpt", device="cpu")
    resumed.train(steps=2, progress=False)
    assert resumed.history == straight.history


def test_the_triplets_wait_for_no_device(monkeypatch):
    # As on a GPU: the batch's factors live on a device whose values cannot be read (meta), and neither can the
    # generator's draws (reads_free False, int() forbidden). The triplets come from the host copy of the factors
    # that Trajectory.to kept, seeded from the generator's state.
    model, env = tiny_model(), tiny_env()
    batch = env.sample_trajectories(4, 1, np.random.default_rng(0))
    start = torch.Generator().manual_seed(5)
    cpu_seed = host_seed(torch.Generator().set_state(start.get_state()))
    monkeypatch.setattr(composition_net, "reads_free", lambda value: False)
    monkeypatch.setattr(torch.Tensor, "__int__", lambda self: pytest.fail("a draw was read on the host"))
    gen = torch.Generator().set_state(start.get_state())
    data = model.triplets(batch.to("meta"), gen)
    seeds = [host_seed(torch.Generator().set_state(start.get_state())) for _ in range(2)]
    assert seeds[0] == seeds[1] != cpu_seed and 0 <= seeds[0] < 2**62  # a pure function of the state
    expected = sample_triplets(env, 8, np.random.default_rng(seeds[0]), batch.factors.flatten(0, 1).numpy())
    assert all(np.array_equal(data[key], expected[key]) for key in expected)
    # The generator advances by the same one draw as on the CPU, so the step's noise is drawn from the same state.
    reference = torch.Generator().set_state(start.get_state())
    torch.randint(0, 2**62, (1,), generator=reference)
    assert torch.equal(gen.get_state(), reference.get_state())
    assert host_seed(gen) != seeds[0]


def test_continuous_factor_worlds_are_refused():
    env = make_env("pendulum")
    with pytest.raises(ValueError, match="composition_net needs discrete factors; Pendulum has continuous ones"):
        build_model("composition_net", env, **TINY)
    with pytest.raises(ValueError, match="sample_triplets needs discrete factors"):
        sample_triplets(env, 2, 0)
