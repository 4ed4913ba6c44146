""""True independence" of a representation under the true actions (Painter et al. 2020, linear disentanglement).

Reference: Unsupervised-Action-Estimation ``metrics`` ``TrueIndep`` / ``measure_indep``. On frozen latents it
fits one linear map ``M_a`` per true action ``a`` (from the pairs ``(z, z')`` where ``a`` was taken), then, at
every latent point ``z`` of the evaluation set and for every action, takes the displacement direction
``d_a(z) = (z - M_a z) / |z - M_a z|``. For every pair of action groups of different factors (e.g. FlatLand
``[(0, 2), (1, 3)]``: the +/- actions of a factor form a group) it takes, per point, the max over member pairs
of ``cos(d_a, d_b)``; independence = 1 - mean |.| over points and group pairs. 1 = the factors' actions move the
latents in orthogonal directions everywhere.

Deviation (named options below): the reference fits ``M_a = C_a B_a C_a^-1`` with ``B_a`` the identity but for a
free 2x2 block, by Adam (lr 0.1, 30 epochs, StepLR) on ``MSE(M_a z, z') + |det B_a - 1|``; here each map is the
closed-form least-squares fit of ``z' ~ A_a z + b_a`` (``fit_intercept=True``; a latent translation, the usual
effect of an action on a standard VAE, is then fitted exactly; ``fit_intercept=False`` keeps the reference's
linear form without its rank-2 constraint). Pure numpy/sklearn, deterministic.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.linear_model import LinearRegression

from dynrep.metrics.utils import check_codes


def _check_inputs(latents, next_latents, actions, factor_of_action):
    latents = check_codes(latents, "latents")
    next_latents = check_codes(next_latents, "next_latents")
    if next_latents.shape != latents.shape:
        raise ValueError(f"next_latents must have the shape of latents {latents.shape}, got {next_latents.shape}")
    actions = np.asarray(actions)
    if actions.shape != (latents.shape[0],) or not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"actions must be integer action ids of shape ({latents.shape[0]},), got shape "
                         f"{actions.shape} and dtype {actions.dtype}")
    factor_of_action = np.asarray(factor_of_action)
    if factor_of_action.ndim != 1 or not np.issubdtype(factor_of_action.dtype, np.integer):
        raise ValueError(f"factor_of_action must be a 1-D integer sequence (one factor id per action), got "
                         f"{factor_of_action!r}")
    if np.any((actions < 0) | (actions >= len(factor_of_action))):
        raise ValueError(f"actions must be ids in [0, {len(factor_of_action)}) (one per factor_of_action entry), "
                         f"got values {np.unique(actions)}")
    if len(np.unique(factor_of_action)) < 2:
        raise ValueError(f"factor_of_action must name at least two factors, got {factor_of_action}")
    return latents, next_latents, actions, factor_of_action


def true_independence(latents, next_latents, actions, *, factor_of_action: Sequence[int],
                      fit_intercept: bool = True, abs_first: bool = False) -> dict:
    """Independence of the factors' action directions in a learned latent space.

    Args:
        latents: ``[N, D]`` codes ``z`` (encoder means) of the observations before the action.
        next_latents: ``[N, D]`` codes ``z'`` of the observations after it.
        actions: ``[N]`` integer id of the true action taken, in ``[0, A)``.
        factor_of_action: ``[A]`` the factor each action changes (actions of one factor, e.g. its + and -
            actions, form a group); at least two factors.
        fit_intercept: fit ``z' ~ A_a z + b_a`` (True) or ``z' ~ A_a z`` (False, the reference's linear form).
        abs_first: per point and group pair, take ``max |cos|`` over member pairs (the spec's wording); False
            follows the reference code, ``|max cos|``. The two agree when each group has one action.

    The map of action ``a`` is fitted by least squares on the rows with ``actions == a`` (needs at least ``D + 1``
    rows with an intercept, ``D`` without); its displacement direction ``A_a z + b_a - z`` is then evaluated at
    every row of ``latents`` (as the reference does), so every row contributes to every pair of factors.

    Returns:
        ``"independence"`` (float, 1 - mean over points and factor pairs of the pair's |cos|);
        ``"factor_overlap"`` ``[F, F]`` mean |cos| per pair of factors (symmetric, diagonal 0), factors in sorted
        id order; ``"maps"`` ``[A, D, D]`` and ``"offsets"`` ``[A, D]`` the fitted maps; ``"action_fit_mse"``
        ``[A]`` mean squared error of each map on its own pairs (the reference reports the L1 per action).

    Raises ValueError on bad shapes, an action with too few samples, or a point where a map has no displacement
    (``A_a z + b_a = z``: its direction is undefined).
    """
    latents, next_latents, actions, factor_of_action = _check_inputs(latents, next_latents, actions,
                                                                     factor_of_action)
    num_actions, dim = len(factor_of_action), latents.shape[1]
    maps, offsets = np.zeros((num_actions, dim, dim)), np.zeros((num_actions, dim))
    fit_mse = np.zeros(num_actions)
    directions = np.zeros((num_actions,) + latents.shape)
    for a in range(num_actions):
        rows = actions == a
        if rows.sum() < dim + int(fit_intercept):
            raise ValueError(f"action {a} has {int(rows.sum())} samples; fitting its map in {dim} dimensions needs "
                             f"at least {dim + int(fit_intercept)}")
        fit = LinearRegression(fit_intercept=fit_intercept).fit(latents[rows], next_latents[rows])
        maps[a], offsets[a] = fit.coef_, fit.intercept_
        fit_mse[a] = np.mean((fit.predict(latents[rows]) - next_latents[rows]) ** 2)
        displacement = fit.predict(latents) - latents
        norms = np.linalg.norm(displacement, axis=1)
        fixed = norms <= 1e-12 * (1.0 + np.linalg.norm(latents, axis=1))
        if fixed.any():
            raise ValueError(f"the fitted map of action {a} does not move {int(fixed.sum())} of the latents "
                             f"(fixed points, first at row {int(np.argmax(fixed))}): its direction is undefined there")
        directions[a] = displacement / norms[:, None]
    factors = np.unique(factor_of_action)
    overlap = np.zeros((len(factors), len(factors)))
    for i, f in enumerate(factors):
        for j in range(i + 1, len(factors)):
            cosines = np.stack([np.sum(directions[a] * directions[b], axis=1)
                                for a in np.flatnonzero(factor_of_action == f)
                                for b in np.flatnonzero(factor_of_action == factors[j])])  # [pairs, N]
            per_point = np.abs(cosines).max(axis=0) if abs_first else np.abs(cosines.max(axis=0))
            overlap[i, j] = overlap[j, i] = per_point.mean()
    pairs = np.triu_indices(len(factors), 1)
    return {"independence": float(1.0 - overlap[pairs].mean()), "factor_overlap": overlap, "maps": maps,
            "offsets": offsets, "action_fit_mse": fit_mse}
