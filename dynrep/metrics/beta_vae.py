"""β-VAE score (Higgins et al. 2017), environment level: it samples pairs of batches sharing one factor.

Follows disentanglement_lib ``beta_vae.py``: each point picks a factor uniformly, draws two
batches of ``batch_size`` factor vectors whose values of that factor agree, encodes both and
takes the mean absolute code difference over the batch as its feature, labelled with the
factor; ``sklearn.linear_model.LogisticRegression(random_state=RandomState(seed))`` with
defaults is fitted on ``num_train`` points and scored on ``num_eval``. Deviation: points are
encoded in large batches instead of a Python loop of 64-sample calls.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from dynrep.metrics.sampling import Sampler

#: Observations encoded per call (points are grouped so a chunk holds about this many).
POINT_OBSERVATIONS = 8192


def _points(sampler: Sampler, num_points: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[num_points, D]`` and labels ``[num_points]`` (the shared factor)."""
    num_factors = len(sampler.env.factors)
    per_chunk = max(1, POINT_OBSERVATIONS // (2 * batch_size))
    features, labels = [], []
    for start in range(0, num_points, per_chunk):
        count = min(per_chunk, num_points - start)
        shared = sampler.integers(num_factors, count)
        first = sampler.sample_factors(count * batch_size).reshape(count, batch_size, num_factors)
        second = sampler.sample_factors(count * batch_size).reshape(count, batch_size, num_factors)
        rows = np.arange(count)
        second[rows, :, shared] = first[rows, :, shared]
        codes = sampler.encode_factors(np.concatenate([first, second]).reshape(-1, num_factors))
        codes = codes.reshape(2, count, batch_size, -1)
        features.append(np.mean(np.abs(codes[0] - codes[1]), axis=1))
        labels.append(shared)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(sampler: Sampler, *, num_train: int = 10_000, num_eval: int = 5_000, batch_size: int = 64,
                   seed: int = 0) -> dict:
    """β-VAE disentanglement score of the sampler's representation.

    Returns:
        ``{"train_accuracy", "eval_accuracy"}`` of the linear classifier that reads the fixed
        factor from the mean absolute code difference.
    """
    sampler.require_discrete("beta_vae")
    train_x, train_y = _points(sampler, num_train, batch_size)
    eval_x, eval_y = _points(sampler, num_eval, batch_size)
    if len(np.unique(train_y)) < 2:
        raise ValueError(f"beta_vae: the {num_train} training points cover a single factor; use more points")
    model = LogisticRegression(random_state=np.random.RandomState(seed))
    model.fit(train_x, train_y)
    return {"train_accuracy": float(np.mean(model.predict(train_x) == train_y)),
            "eval_accuracy": float(np.mean(model.predict(eval_x) == eval_y))}
