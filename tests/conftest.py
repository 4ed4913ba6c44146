"""Shared tiny configurations: every learner here trains in milliseconds per step on CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dynrep import GridWorld, RepresentationLearner

#: Smallest conv/MLP widths that still exercise every layer type.
TINY_NET = {"channels": (4, 4, 4, 4), "hidden": 16, "mlp_hidden": (8,)}
#: Per-model batch settings small enough for fast tests.
TINY_MODEL = {
    "rotation": {"latent_dim": 4, "batch_size": 4, "episode_length": 3, **TINY_NET},
    "vae": {"latent_dim": 3, "batch_size": 4, "episode_length": 1, **TINY_NET},
}


@pytest.fixture
def small_env() -> GridWorld:
    """3x3 torus rendered as 16x16 images (16 is divisible by 2**4 for the 4-layer conv stack)."""
    return GridWorld(size=3, image_size=16)


@pytest.fixture
def onehot_env() -> GridWorld:
    return GridWorld(size=3, observation="onehot")


def tiny_learner(model: str = "rotation", env=None, seed: int = 0, **overrides) -> RepresentationLearner:
    """A CPU learner on a 3x3, 16x16 GridWorld with tiny networks (``overrides`` update the config)."""
    env = GridWorld(size=3, image_size=16) if env is None else env
    config = {**TINY_MODEL[model], **overrides}
    return RepresentationLearner(env, model, seed=seed, device="cpu", **config)


@pytest.fixture
def make_learner():
    return tiny_learner


def params_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


def png_bytes_ok(path) -> bool:
    return open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
