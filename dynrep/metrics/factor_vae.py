"""FactorVAE score (Kim & Mnih 2018), environment level: it samples observations with one factor held fixed.

Follows disentanglement_lib ``factor_vae.py`` with the unsupervised-study settings: global
variances of the codes from 10,000 observations (``ddof=1``); active dimensions are those
with standard deviation >= ``prune_threshold`` (0.05 in the study's gin config); each vote
picks a factor uniformly, draws ``batch_size`` factor vectors that share its value, and votes
for the active dimension with the smallest local/global variance ratio (``ddof=1``); the
majority-vote classifier is fitted on ``num_train`` votes and scored on ``num_eval``.

Deviations: votes are counted per code dimension (the reference indexes its vote table by the
rank among active dimensions; the accuracy is the same), ``num_active_dims`` counts the active
dimensions (the reference reports the total number), and all votes of a chunk are encoded in
one batch instead of a Python loop of 64-sample calls.
"""
from __future__ import annotations

import numpy as np

from dynrep.metrics.sampling import Sampler

#: Observations encoded per call while voting (votes are grouped so a chunk holds about this many).
VOTE_OBSERVATIONS = 8192


def _votes(sampler: Sampler, num_votes: int, batch_size: int, global_var: np.ndarray,
           active: np.ndarray) -> np.ndarray:
    """Vote counts ``[K, D]``: row = the fixed factor, column = the dimension voted for."""
    num_factors = len(sampler.env.factors)
    votes = np.zeros((num_factors, len(global_var)), dtype=np.int64)
    active_dims = np.flatnonzero(active)
    per_chunk = max(1, VOTE_OBSERVATIONS // batch_size)
    for start in range(0, num_votes, per_chunk):
        count = min(per_chunk, num_votes - start)
        fixed = sampler.integers(num_factors, count)
        factors = sampler.sample_factors(count * batch_size).reshape(count, batch_size, num_factors)
        rows = np.arange(count)
        factors[rows, :, fixed] = factors[rows, 0, fixed][:, None]
        codes = sampler.encode_factors(factors.reshape(-1, num_factors)).reshape(count, batch_size, -1)
        ratio = np.var(codes, axis=1, ddof=1)[:, active_dims] / global_var[active_dims]
        np.add.at(votes, (fixed, active_dims[np.argmin(ratio, axis=1)]), 1)
    return votes


def factor_vae_score(sampler: Sampler, *, num_variance_estimate: int = 10_000, num_train: int = 10_000,
                     num_eval: int = 5_000, batch_size: int = 64, prune_threshold: float = 0.05) -> dict:
    """FactorVAE disentanglement score of the sampler's representation.

    Returns:
        ``{"train_accuracy", "eval_accuracy", "num_active_dims", "votes": [K, D] training votes}``;
        both accuracies are 0.0 when no dimension is active (as the reference).
    """
    sampler.require_discrete("factor_vae")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a local variance needs two samples), got {batch_size}")
    codes, _ = sampler.sample(num_variance_estimate)
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0,
                "votes": np.zeros((len(sampler.env.factors), codes.shape[1]), dtype=np.int64)}
    train_votes = _votes(sampler, num_train, batch_size, global_var, active)
    eval_votes = _votes(sampler, num_eval, batch_size, global_var, active)
    classifier = np.argmax(train_votes, axis=0)  # the factor each dimension stands for
    columns = np.arange(train_votes.shape[1])
    return {"train_accuracy": float(train_votes[classifier, columns].sum() / train_votes.sum()),
            "eval_accuracy": float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
            "num_active_dims": int(active.sum()), "votes": train_votes}
