"""Dynamics metrics: per-step prediction errors (frames and latents) and the structure of learned action rotations.

Pure functions of arrays (frames, angles, matrices), never of a model or an environment: numpy, except
:func:`frame_bce`, the same per-frame error on torch tensors, which lets ``RepresentationLearner.evaluate``
score decoded frames chunk by chunk where the model put them, without float64 copies of every frame.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

#: Probabilities are clipped to [BCE_EPS, 1 - BCE_EPS] before the logarithms (a decoder's saturated 0 or 1).
BCE_EPS = 1e-6
#: Elements per block of :func:`frame_bce`: its temporaries (4 bytes each) stay within a core's L2 cache.
_CACHE_ELEMENTS = 2 ** 16


def _elementwise_bce(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Binary cross-entropy per element; uint8 targets are read as value/255."""
    target = np.asarray(target)
    if target.dtype == np.uint8:
        target = target / 255.0
    predicted = np.asarray(predicted, dtype=np.float64)
    if target.shape != predicted.shape:
        raise ValueError(f"target and predicted must have the same shape, got {target.shape} and {predicted.shape}")
    p = np.clip(predicted, BCE_EPS, 1 - BCE_EPS)
    return -(target * np.log(p) + (1 - target) * np.log1p(-p))


def frame_bce(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """:func:`per_frame_bce` on torch tensors: ``[N, ...]`` -> ``[N]`` float64, on ``predicted``'s device.

    ``target`` is uint8 (0..255, read as value/255) or float in [0, 1]; ``predicted`` holds float
    probabilities, in any memory layout. The terms are computed in ``predicted``'s dtype (float32 for a
    model's frames: within ~2e-7 of the float64 :func:`per_frame_bce`), a few frames at a time so that the
    temporaries stay in cache (~2.5x faster than whole-batch passes on CPU).
    """
    if target.shape != predicted.shape or target.ndim < 1:
        raise ValueError(f"target and predicted must have the same shape [N, ...], got {tuple(target.shape)} and "
                         f"{tuple(predicted.shape)}")
    if not predicted.is_floating_point():
        raise ValueError(f"predicted must hold float probabilities, got {predicted.dtype}")
    frame_size = math.prod(target.shape[1:])
    dims = tuple(range(1, target.ndim))
    rows = max(1, _CACHE_ELEMENTS // max(1, frame_size))
    low, high = math.log(BCE_EPS), math.log1p(-BCE_EPS)
    sums = []
    for t, p in zip(target.split(rows), predicted.split(rows)):
        t = t.to(p.dtype).div_(255.0) if t.dtype == torch.uint8 else t.to(p.dtype, copy=True)
        # Below BCE_EPS both clipped logarithms are constant: p raised to half of it gives the same terms, and the
        # logarithms never see the subnormal p of a well-fit decoder's background (their slow path on a CPU).
        p = p.clamp_min(0.5 * BCE_EPS)
        # Clipping the logarithms, not p, is the same clipping (both are monotone) without float32's rounding of
        # 1 - 1e-6; log1p(-p) is exact where p is near 1 (1 - p is then exact in floating point).
        errors = torch.log(p).clamp_(low, high).mul_(t)
        errors.add_(torch.log1p(-p).clamp_(low, high).mul_(t.neg_().add_(1)))
        sums.append(errors.sum(dims) if dims else errors)
    return torch.cat(sums).to(torch.float64).div_(-frame_size) if sums else predicted.new_zeros(0, dtype=torch.float64)


def mean_bce(target: np.ndarray, predicted: np.ndarray) -> float:
    """Mean binary cross-entropy over all elements of frames in [0, 1] (uint8 targets: 0..255)."""
    return float(_elementwise_bce(target, predicted).mean())


def per_frame_bce(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy of each frame: ``[N, ...]`` -> ``[N]`` float64."""
    errors = _elementwise_bce(target, predicted)
    return errors.reshape(len(errors), -1).mean(axis=1)


def per_step_bce(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy per time step.

    Args:
        target: true frames ``[N, T+1, ...]`` in [0, 1] (float) or uint8 0..255.
        predicted: predicted probabilities ``[N, T+1, ...]`` in [0, 1].

    Returns:
        ``[T+1]`` float64: the error at step ``t`` averaged over episodes and elements
        (the seed project's "Recon. loss" per step).
    """
    if np.ndim(target) < 2:
        raise ValueError(f"target must have shape [N, T+1, ...], got {np.shape(target)}")
    bce = _elementwise_bce(target, predicted)
    return bce.reshape(bce.shape[0], bce.shape[1], -1).mean(axis=(0, 2))


def latent_prediction_error(predicted: np.ndarray, encoded: np.ndarray) -> np.ndarray:
    """k-step latent prediction error: the mean squared Euclidean distance, per step, between the latents a
    model predicts open-loop from the first frame and the encodings of the true frames.

    Args:
        predicted: ``[N, T+1, D]`` open-loop latents (step 0 is the encoded first frame).
        encoded: ``[N, T+1, D]`` representations of the true frames.

    Returns:
        ``[T+1]`` float64 (0 at step 0 by construction).
    """
    predicted, encoded = np.asarray(predicted, dtype=np.float64), np.asarray(encoded, dtype=np.float64)
    if predicted.ndim != 3 or predicted.shape != encoded.shape:
        raise ValueError(f"predicted and encoded must both have shape [N, T+1, D], got {predicted.shape} and "
                         f"{encoded.shape}")
    return np.mean(np.sum((predicted - encoded) ** 2, axis=-1), axis=0)


def _wrap(angles: np.ndarray) -> np.ndarray:
    """Angles mapped to (-pi, pi]."""
    return np.arctan2(np.sin(angles), np.cos(angles))


def angle_purity(angles: np.ndarray) -> np.ndarray:
    """Share of each action's squared (wrapped) angle in its largest plane, ``[A, P] -> [A]``.

    1.0 means the action rotates a single coordinate plane; an action that does not
    rotate at all scores 0.
    """
    squared = _wrap(np.asarray(angles, dtype=np.float64)) ** 2
    total = squared.sum(-1)
    return np.divide(squared.max(-1), total, out=np.zeros_like(total), where=total > 0)


def eigen_purity(matrices: np.ndarray) -> np.ndarray:
    """Parametrisation-free purity of rotation matrices ``[A, n, n] -> [A]``.

    The eigenvalues of a rotation are ``exp(±iφ_k)``, one pair per invariant plane;
    purity = largest φ² / sum over planes of φ² (1.0 = one plane). Unlike
    :func:`angle_purity` it does not depend on how the matrix was parametrised.
    """
    phases = np.angle(np.linalg.eigvals(np.asarray(matrices, dtype=np.float64))) ** 2  # [A, n]
    per_plane = phases.sum(-1) / 2  # each plane's angle appears twice (±φ)
    return np.clip(np.divide(phases.max(-1), per_plane, out=np.zeros_like(per_plane), where=per_plane > 1e-12),
                   0.0, 1.0)


def dominant_planes(angles: np.ndarray, latent_dim: int) -> list[tuple[int, int]]:
    """The coordinate plane ``(i, j)`` with the largest squared angle, for each action."""
    planes = [(i, j) for i in range(latent_dim) for j in range(i + 1, latent_dim)]
    return [planes[k] for k in np.argmax(_wrap(np.asarray(angles)) ** 2, axis=-1)]


def rotation_structure(angles: np.ndarray, matrices: np.ndarray, action_names: Sequence[str],
                       action_factors: Sequence[int]) -> dict[str, float]:
    """Scores of how disentangled a set of action rotations is.

    Args:
        angles: ``[A, n(n-1)/2]`` Givens angles per action.
        matrices: ``[A, n, n]`` the actions' rotation matrices.
        action_names: ``A`` names, used in the keys.
        action_factors: the factor each action moves (actions of one factor should share a plane).

    Returns keys ``rotation_purity/<action>``, ``rotation_purity_min``,
    ``rotation_eigen_purity/<action>``, ``rotation_eigen_purity_min``, ``plane_sharing`` (share of factors whose
    actions all have the same dominant plane) and, with two or more factors,
    ``plane_disjoint`` (share of factor pairs whose dominant planes have no coordinate in common).
    """
    angles = np.asarray(angles, dtype=np.float64)
    if len(action_names) != len(angles) or len(action_factors) != len(angles):
        raise ValueError(f"need one name and one factor per action: {len(angles)} actions, "
                         f"{len(action_names)} names, {len(action_factors)} factors")
    purity, eigen = angle_purity(angles), eigen_purity(matrices)
    scores = {f"rotation_purity/{a}": float(p) for a, p in zip(action_names, purity)}
    scores["rotation_purity_min"] = float(purity.min())
    scores.update({f"rotation_eigen_purity/{a}": float(p) for a, p in zip(action_names, eigen)})
    scores["rotation_eigen_purity_min"] = float(eigen.min())

    planes = dominant_planes(angles, matrices.shape[-1])
    by_factor: dict[int, set[tuple[int, int]]] = {}
    for factor, plane in zip(action_factors, planes):
        by_factor.setdefault(factor, set()).add(plane)
    scores["plane_sharing"] = float(np.mean([len(p) == 1 for p in by_factor.values()]))
    coords = [{c for plane in p for c in plane} for p in by_factor.values()]
    pairs = [(a, b) for i, a in enumerate(coords) for b in coords[i + 1:]]
    if pairs:
        scores["plane_disjoint"] = float(np.mean([not (a & b) for a, b in pairs]))
    return scores
