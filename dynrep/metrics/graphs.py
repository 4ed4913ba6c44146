"""Graph recovery: structural Hamming distance and alignment of learned graphs by the MCC matching.

Convention (dynrep, and Lachapelle et al.'s plots): ``graph[i, j] = 1`` iff ``j -> i``; rows are children.
A latent graph ``G^z`` is ``[num_latents, num_latents]`` (row = z^t, column = z^{t-1}), an action graph ``G^a``
is ``[num_latents, num_actions]``. Reference: Lachapelle et al. (CLeaR 2022) ``metrics.py`` (``edge_errors``,
``shd``) and ``train.py`` (learned graph permuted as ``P G P^T`` with ``P[row_gt, col_learned] = 1``).
"""
from __future__ import annotations

import numpy as np


def _check_graph(graph, name: str) -> np.ndarray:
    graph = np.asarray(graph)
    if graph.ndim != 2:
        raise ValueError(f"{name} must be a 2-D adjacency matrix [children, parents], got shape {graph.shape}")
    if not np.issubdtype(graph.dtype, np.number) and graph.dtype != bool:
        raise ValueError(f"{name} must be a numeric or boolean 0/1 array, got dtype {graph.dtype}")
    bad = ~np.isin(graph, (0, 1))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name} must contain only 0/1, got {graph[i, j].item()!r} at [{i}, {j}] "
                         "(threshold edge probabilities first, e.g. graph > 0.5)")
    return graph.astype(bool)


def shd(true_graph, pred_graph) -> dict:
    """Structural Hamming distance between two 0/1 adjacency matrices of the same shape.

    Args:
        true_graph, pred_graph: ``[P, Q]`` 0/1 (or boolean) adjacency, ``graph[i, j] = 1`` iff ``j -> i``; every
            entry counts, including the diagonal (self-edges ``z_i^{t-1} -> z_i^t`` are real edges in temporal
            graphs). Align a learned graph first with :func:`permute_graph`.

    Returns:
        ``"shd"`` = false negatives + false positives (a float with an integer value), as in Lachapelle et al.:
        a reversed edge counts twice (one missing, one extra); ``"false_negatives"`` (true 1, predicted 0),
        ``"false_positives"`` (true 0, predicted 1), ``"precision"`` = correct predicted edges / predicted edges
        (1.0 when no edge is predicted: no predicted edge is wrong), ``"recall"`` = correct predicted edges /
        true edges (1.0 when the true graph has no edge: none is missed), ``"num_true_edges"``,
        ``"num_pred_edges"`` (floats).
    """
    true_graph, pred_graph = _check_graph(true_graph, "true_graph"), _check_graph(pred_graph, "pred_graph")
    if true_graph.shape != pred_graph.shape:
        raise ValueError(f"true_graph and pred_graph must have the same shape, got {true_graph.shape} and "
                         f"{pred_graph.shape} (permute the learned graph with permute_graph first)")
    false_negatives = float(np.sum(true_graph & ~pred_graph))
    false_positives = float(np.sum(~true_graph & pred_graph))
    correct = float(np.sum(true_graph & pred_graph))
    num_true, num_pred = float(true_graph.sum()), float(pred_graph.sum())
    return {"shd": false_negatives + false_positives, "false_negatives": false_negatives,
            "false_positives": false_positives,
            "precision": correct / num_pred if num_pred else 1.0,
            "recall": correct / num_true if num_true else 1.0,
            "num_true_edges": num_true, "num_pred_edges": num_pred}


def permutation_matrix(permutation, num_codes: int) -> np.ndarray:
    """``P [K, num_codes]`` with ``P[k, permutation[k]] = 1`` (row = true factor, column = learned code); rows of
    unmatched factors (``permutation[k] = -1``) are zero. ``permutation`` is :func:`dynrep.metrics.mcc.mcc`'s."""
    permutation = np.asarray(permutation)
    if permutation.ndim != 1 or not np.issubdtype(permutation.dtype, np.integer):
        raise ValueError(f"permutation must be a 1-D integer array (code matched to each true factor, -1 if "
                         f"none), got shape {permutation.shape} and dtype {permutation.dtype}")
    if np.any((permutation < -1) | (permutation >= num_codes)):
        raise ValueError(f"permutation entries must be -1 or code indices in [0, {num_codes}), got {permutation}")
    matched = permutation[permutation >= 0]
    if len(np.unique(matched)) != len(matched):
        raise ValueError(f"permutation matches a code to two true factors: {permutation}")
    matrix = np.zeros((len(permutation), num_codes))
    rows = np.flatnonzero(permutation >= 0)
    matrix[rows, permutation[rows]] = 1.0
    return matrix


def permute_graph(graph, permutation, *, permute_columns: bool = True) -> np.ndarray:
    """Re-index a learned graph into the order of the true factors, using the MCC matching.

    Args:
        graph: learned adjacency (0/1, boolean or edge probabilities), ``[D, D]`` for a latent graph ``G^z`` or
            ``[D, A]`` for an action graph ``G^a`` (rows = learned codes as children).
        permutation: ``[K]`` code matched to each true factor, -1 if unmatched (``mcc(...)["permutation"]``).
        permute_columns: True for ``G^z``: returns ``P G P^T`` ``[K, K]``; False for ``G^a`` (actions are
            observed, so only rows are re-indexed): returns ``P G`` ``[K, A]``.

    ``P = permutation_matrix(permutation, D)``, i.e. ``P[row_gt, col_learned] = 1`` (Lachapelle et al.), so entry
    ``[i, j]`` of the result is ``graph[permutation[i], permutation[j]]``; rows/columns of unmatched true factors
    are 0 (their true edges count as false negatives). Returned with the dtype of ``graph``.
    """
    graph = np.asarray(graph)
    if graph.ndim != 2:
        raise ValueError(f"graph must be 2-D, got shape {graph.shape}")
    if permute_columns and graph.shape[0] != graph.shape[1]:
        raise ValueError(f"graph must be square [D, D] to permute rows and columns, got {graph.shape} "
                         "(pass permute_columns=False for an action graph [D, A])")
    p = permutation_matrix(permutation, graph.shape[0])
    out = p @ graph @ p.T if permute_columns else p @ graph
    return out.astype(graph.dtype)
