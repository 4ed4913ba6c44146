"""EagerAdam: torch's Adam, bit for bit, without importing torch._dynamo."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dynrep.training.optim import EagerAdam


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _groups(model):
    weights = [p for p in model.parameters() if p.ndim > 1]
    biases = [p for p in model.parameters() if p.ndim == 1]
    return [{"params": weights, "weight_decay": 0.01, "lr": 1e-2}, {"params": biases, "lr": 3e-3}]


def _run(model, optimizer, steps):
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(8, 6, generator=generator)).square().mean().backward()
        optimizer.step()


@pytest.mark.parametrize("kernel", [{"fused": True}, {"foreach": True}, {"foreach": False}])
def test_same_update_and_state_as_torch_adam(kernel):
    ours, theirs = _model(), _model()
    opt_ours, opt_theirs = EagerAdam(_groups(ours), **kernel), torch.optim.Adam(_groups(theirs), **kernel)
    _run(ours, opt_ours, 5)
    _run(theirs, opt_theirs, 5)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    state_ours, state_theirs = opt_ours.state_dict(), opt_theirs.state_dict()
    assert state_ours["param_groups"] == state_theirs["param_groups"]
    for key, values in state_theirs["state"].items():
        for name, value in values.items():
            assert torch.equal(state_ours["state"][key][name], value)
    # A restored EagerAdam continues as torch's Adam does.
    restored = _model()
    restored.load_state_dict(ours.state_dict())
    opt_restored = EagerAdam(_groups(restored), **kernel)
    opt_restored.load_state_dict(state_ours)
    _run(restored, opt_restored, 3)
    _run(theirs, opt_theirs, 3)
    for a, b in zip(restored.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_differentiable_refused():
    model = _model()
    optimizer = EagerAdam(model.parameters(), differentiable=True)
    model(torch.randn(2, 6)).sum().backward()
    with pytest.raises(ValueError, match="differentiable=True"):
        optimizer.step()


def test_training_and_resume_never_import_dynamo(tmp_path):
    code = f"""
import sys
from conftest import tiny_learner
from dynrep import RepresentationLearner
tiny_learner().train(2, checkpoint_dir={str(tmp_path)!r}, progress=False)
RepresentationLearner.load({str(tmp_path)!r}, device="cpu").train(3, progress=False)
print(sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip().splitlines()[-1] == "[]"
