"""End to end: the README's rotation learner on the default GridWorld actually learns.

300 steps of the default architecture take ~16 s on 2 idle CPU cores.
"""
from __future__ import annotations

import numpy as np
import pytest

from dynrep import GridWorld, RepresentationLearner

STEPS = 300


def constant_prediction_bce(env: GridWorld) -> float:
    """BCE of the best observation-independent prediction (every pixel = its mean over states)."""
    obs = env.render(env.factors.from_index(np.arange(env.factors.num_states))) / 255.0
    p = np.clip(obs.mean(axis=0), 1e-12, 1 - 1e-12)  # pixels never covered: p = 0 costs nothing
    return float(-(obs * np.log(p) + (1 - obs) * np.log1p(-p)).mean())


@pytest.mark.end_to_end
def test_rotation_learner_loss_falls():
    env = GridWorld(size=5)
    learner = RepresentationLearner(env, model="rotation", latent_dim=4, seed=0)
    history = learner.train(STEPS, progress=False)
    reconstruction = np.asarray(history["reconstruction"])
    assert len(reconstruction) == STEPS and np.isfinite(reconstruction).all()
    first, last = reconstruction[:20].mean(), reconstruction[-20:].mean()
    assert last < 0.5 * first, f"reconstruction loss fell only from {first:.4f} to {last:.4f}"
    # Below what drawing the background alone (no position information) can reach.
    baseline = constant_prediction_bce(env)
    assert last < baseline, f"final loss {last:.4f} is not below the position-blind baseline {baseline:.4f}"
