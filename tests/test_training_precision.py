"""The trainer's ``compile`` (torch.compile of each step's loss) and ``autocast="bf16"`` switches, on CPU: the same
training as without within tolerance, bfloat16 where autocast says, checkpoints unchanged, bad values refused.

Most compile tests trace with dynamo and run the graphs with the ``aot_eager`` backend (the plumbing, graph
breaks and autograd, without inductor's C++ build); one test runs the default inductor backend.
"""
from __future__ import annotations

import functools

import pytest
import torch

from conftest import TINY_MODEL, tiny_learner
from dynrep import Flatland, Pendulum, RepresentationLearner, ToyNN, list_models
from dynrep.runs import TrainerConfig
from dynrep.training import Callback
from dynrep.training.trainer import Trainer

#: Tiny settings every model of the zoo accepts (as in test_models_zoo).
TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16}


@pytest.fixture
def aot_eager(monkeypatch):
    """``torch.compile`` with the ``aot_eager`` backend (dynamo's graphs run by eager kernels), a fresh cache."""
    import torch._dynamo
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    yield
    torch._dynamo.reset()


def _zoo_learner(name: str, **switches) -> RepresentationLearner:
    if name == "icm_vae":  # needs a causal graph (as its tests train it)
        return RepresentationLearner(Pendulum(image_size=16), name, device="cpu", encoder_hidden=(32,),
                                     decoder_hidden=(16,), flow_hidden=8, batch_size=16, **switches)
    if name == "mechanism_sparsity":  # a vector world, as its tests train it
        return RepresentationLearner(ToyNN("action_sparsity_trivial", num_samples=200), name, device="cpu",
                                     mlp_hidden=(16, 16), transition_hidden=8, transition_layers=2, batch_size=16,
                                     **switches)
    return RepresentationLearner(Flatland(period=5, image_size=16, radius=15.0), name, seed=0, device="cpu",
                                 **switches, **TINY)


def _close(a: RepresentationLearner, b: RepresentationLearner, rtol: float, atol: float) -> None:
    assert a.history.keys() == b.history.keys()
    for name in a.history:
        torch.testing.assert_close(torch.tensor(a.history[name]), torch.tensor(b.history[name]), rtol=rtol, atol=atol)
    torch.testing.assert_close(a.model.state_dict(), b.model.state_dict(), rtol=rtol, atol=atol)


@pytest.mark.slow  # ~30 s for the 16 models on 2 busy cores
@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_compiled_as_without(name, aot_eager, one_thread):
    eager, compiled = _zoo_learner(name), _zoo_learner(name, compile=True)
    eager.train(3, progress=False)
    compiled.train(3, progress=False)
    assert compiled.trainer._compiled is not None
    _close(eager, compiled, rtol=1e-5, atol=1e-6)


def test_conv_relu_with_its_backward_in_place_trains_compiled(aot_eager, one_thread, monkeypatch):
    """The conv ReLUs' in-place backward (every activation at IN_PLACE_GRAD_MIN = 0) eagerly, and the plain
    ReLU it falls back to under compile, train alike."""
    from dynrep.models import nets
    monkeypatch.setattr(nets, "IN_PLACE_GRAD_MIN", 0)
    eager, compiled = _zoo_learner("beta_tcvae"), _zoo_learner("beta_tcvae", compile=True)
    eager.train(3, progress=False)
    compiled.train(3, progress=False)
    assert compiled.trainer._compiled is not None
    _close(eager, compiled, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # 26 s (rotation), 15 s (vae) with an empty inductor cache on 2 busy cores, 3 s with it
@pytest.mark.parametrize("model", ["rotation", "vae"])
def test_inductor_matches_eager(model, one_thread):
    """The default backend (inductor's generated C++ kernels): a few steps match within float32 rounding, the
    VAE's noise drawn from the trainer's generator as without compile."""
    eager, compiled = tiny_learner(model), tiny_learner(model, compile=True)
    eager.train(3, progress=False)
    compiled.train(3, progress=False)
    _close(eager, compiled, rtol=1e-4, atol=1e-5)
    assert torch.equal(compiled.trainer.generator.get_state(), eager.trainer.generator.get_state())


def test_compiled_checkpoints_load_without_compile_and_resume(aot_eager, tmp_path, one_thread):
    straight = tiny_learner()
    straight.train(4, progress=False)
    compiled = tiny_learner(compile=True)
    compiled.train(2, progress=False, checkpoint_dir=tmp_path / "ckpt")
    assert compiled.model.state_dict().keys() == straight.model.state_dict().keys()  # no "_orig_mod." prefixes
    for switch in (False, True):
        resumed = RepresentationLearner.load(tmp_path / "ckpt", device="cpu", compile=switch)
        resumed.train(2, progress=False)
        _close(straight, resumed, rtol=1e-5, atol=1e-6)


class _Capture(Callback):
    """The gradients of the first step, and the dtype of every convolution's output in training."""

    def __init__(self, model):
        self.grads, self.dtypes = None, set()
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                module.register_forward_hook(lambda _m, _in, out: self.dtypes.add(out.dtype))

    def on_step_end(self, trainer, logs):
        if self.grads is None:
            self.grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])


@pytest.mark.parametrize("model", ["rotation", "vae"])
def test_bf16_autocast_matches_float32_and_runs_in_bf16(model, one_thread):
    runs = {}
    for autocast in (None, "bf16"):
        learner = tiny_learner(model, autocast=autocast)
        capture = _Capture(learner.model)
        learner.train(5, progress=False, callbacks=[capture])
        runs[autocast] = learner, capture
    (full, full_seen), (half, half_seen) = runs[None], runs["bf16"]
    assert full_seen.dtypes == {torch.float32} and half_seen.dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    assert half_seen.grads.dtype == torch.float32
    # The same first step within bfloat16's 8 bits of mantissa: the loss and the gradient's direction and size.
    torch.testing.assert_close(torch.tensor(half.history["loss"]), torch.tensor(full.history["loss"]), rtol=2e-2,
                               atol=1e-3)
    cosine = torch.nn.functional.cosine_similarity(half_seen.grads, full_seen.grads, dim=0)
    assert cosine > 0.99
    assert abs(half_seen.grads.norm() / full_seen.grads.norm() - 1) < 0.05


def test_bf16_autocast_keeps_every_model_finite_and_close(one_thread):
    for name in list_models():
        full, half = _zoo_learner(name), _zoo_learner(name, autocast="bf16")
        full.train(2, progress=False)
        half.train(2, progress=False)
        loss = torch.tensor(half.history["loss"])
        assert torch.isfinite(loss).all(), name
        torch.testing.assert_close(loss, torch.tensor(full.history["loss"]), rtol=3e-2, atol=1e-2, msg=name)


def test_compile_and_autocast_together(aot_eager, one_thread):
    alone, both = tiny_learner(autocast="bf16"), tiny_learner(compile=True, autocast="bf16")
    alone.train(3, progress=False)
    both.train(3, progress=False)
    for name in alone.history:
        torch.testing.assert_close(torch.tensor(both.history[name]), torch.tensor(alone.history[name]), rtol=1e-2,
                                   atol=1e-3)
    # bfloat16 rounds the compiled graph's and the eager ops' gradients differently: where a gradient element is
    # near 0 its sign can differ, and Adam moves that parameter by up to lr either way each step.
    lr = max(group["lr"] for group in alone.trainer.optimizer.param_groups)
    torch.testing.assert_close(both.model.state_dict(), alone.model.state_dict(), rtol=0, atol=2 * 3 * lr)


def test_off_by_default():
    learner = tiny_learner()
    assert (learner.trainer.compile, learner.trainer.autocast) == (False, None)
    assert (TrainerConfig().compile, TrainerConfig().autocast) == (False, None)


@pytest.mark.parametrize("switches, message", [
    ({"compile": "yes"}, "compile must be True or False, got 'yes'"),
    ({"autocast": "fp16"}, r"autocast must be one of \(None, 'bf16'\), got 'fp16'"),
    ({"autocast": torch.bfloat16}, r"autocast must be one of \(None, 'bf16'\), got torch.bfloat16"),
])
def test_bad_switches_are_named(switches, message):
    """(The run config's ``trainer.compile`` / ``trainer.autocast`` and the CLI's: test_runs, test_cli_errors.)"""
    with pytest.raises(ValueError, match=message):
        RepresentationLearner("gridworld", "rotation", device="cpu", **TINY_MODEL["rotation"], **switches)


def test_bf16_needs_a_gpu_that_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    learner = tiny_learner()
    with pytest.raises(ValueError, match="autocast='bf16' needs a GPU with bfloat16 support; cuda:0 has none"):
        Trainer(learner.model, learner.env, seed=0, device=torch.device("cuda:0"), autocast="bf16")


def test_reconstruction_losses_compute_in_float32_at_least():
    """bfloat16 logits (a decoder under autocast) are upcast before the sums; float64 stays float64."""
    from dynrep.models.losses import bernoulli_nll, gaussian_nll
    gen = torch.Generator().manual_seed(0)
    logits, target = torch.randn(64, 3, 16, 16, generator=gen), torch.rand(64, 3, 16, 16, generator=gen)
    half = logits.bfloat16()
    assert bernoulli_nll(half, target).dtype == torch.float32
    torch.testing.assert_close(bernoulli_nll(half, target), bernoulli_nll(half.float(), target), rtol=1e-6, atol=0)
    nll = gaussian_nll(half, target, torch.zeros(3, 16, 16, dtype=torch.bfloat16))
    assert nll.dtype == torch.float32
    torch.testing.assert_close(nll, gaussian_nll(half.float(), target, torch.zeros(3, 16, 16)))
    assert bernoulli_nll(logits.double(), target).dtype == torch.float64


def test_a_run_config_sets_them_and_resume_keeps_them(aot_eager, tmp_path, one_thread):
    from test_runs import tiny_config
    from dynrep.runs import load_run_config, resume, run
    learner, _ = run(tiny_config(2, compile=True, autocast="bf16"), tmp_path / "run")
    assert (learner.trainer.compile, learner.trainer.autocast) == (True, "bf16")
    assert learner.trainer._compiled is not None
    assert load_run_config(tmp_path / "run" / "run.yaml").trainer.autocast == "bf16"
    resumed, _ = resume(tmp_path / "run", steps=1)
    assert (resumed.trainer.compile, resumed.trainer.autocast, resumed.step) == (True, "bf16", 3)


def test_rotation_dynamics_stay_float32_under_autocast():
    """The rotation model's rollout (its learned rotations) runs in float32 under bfloat16 autocast."""
    model = tiny_learner().model
    gen = torch.Generator().manual_seed(0)
    z0 = torch.nn.functional.normalize(torch.randn(4, 4, generator=gen), dim=-1).bfloat16()
    actions = torch.randint(0, 4, (4, 5), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = model.rollout(z0, actions)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z, model.rollout(z0.float(), actions), rtol=1e-6, atol=1e-6)
