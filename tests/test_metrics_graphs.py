"""dynrep.metrics.graphs: SHD on hand-made graphs and alignment of learned graphs by the MCC matching."""
from __future__ import annotations

import numpy as np
import pytest

from dynrep.metrics.graphs import permutation_matrix, permute_graph, shd
from dynrep.metrics.mcc import mcc

# graph[i, j] = 1 iff j -> i.  Edges: 0 -> 1, 0 -> 2, 1 -> 2.
TRUE = np.array([[0, 0, 0],
                 [1, 0, 0],
                 [1, 1, 0]])


def test_shd_hand_made():
    pred = np.array([[0, 1, 0],    # 1 -> 0: the reversal of 0 -> 1 (one false positive ...)
                     [0, 0, 0],    # ... and one false negative
                     [1, 0, 1]])   # 0 -> 2 right, 1 -> 2 missing, self-edge 2 -> 2 extra
    out = shd(TRUE, pred)
    assert out["false_negatives"] == 2.0 and out["false_positives"] == 2.0 and out["shd"] == 4.0
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(1 / 3)
    assert out["num_true_edges"] == 3.0 and out["num_pred_edges"] == 3.0
    assert shd(TRUE, TRUE)["shd"] == 0.0


def test_shd_parity_with_reference_edge_errors():
    """Lachapelle's edge_errors: diff = target - pred; fn = #(diff == 1), fp = #(diff == -1)."""
    rng = np.random.RandomState(0)
    target, pred = rng.randint(0, 2, size=(7, 5)), rng.randint(0, 2, size=(7, 5))
    diff = target - pred
    out = shd(target, pred.astype(bool))
    assert out["false_negatives"] == float((diff == 1).sum())
    assert out["false_positives"] == float((diff == -1).sum())
    assert out["shd"] == float((diff == 1).sum() + (diff == -1).sum())


def test_shd_empty_graphs_precision_recall_conventions():
    empty = np.zeros((3, 3))
    out = shd(TRUE, empty)
    assert out["precision"] == 1.0 and out["recall"] == 0.0 and out["shd"] == 3.0
    out = shd(empty, empty)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["shd"] == 0.0
    out = shd(empty, TRUE)
    assert out["precision"] == 0.0 and out["recall"] == 1.0 and out["false_positives"] == 3.0


def test_shd_errors():
    with pytest.raises(ValueError, match="same shape"):
        shd(TRUE, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"only 0/1, got 0\.7 at \[1, 2\]"):
        shd(TRUE, np.array([[0, 0, 0], [0, 0, 0.7], [0, 0, 0]]))
    with pytest.raises(ValueError, match="2-D adjacency"):
        shd(np.zeros(3), np.zeros(3))


def test_permute_graph_hand_built():
    # true factor 0 <-> code 2, factor 1 <-> code 0, factor 2 <-> code 1
    permutation = np.array([2, 0, 1])
    expected_p = np.array([[0, 0, 1],
                           [1, 0, 0],
                           [0, 1, 0]])
    assert np.array_equal(permutation_matrix(permutation, 3), expected_p)
    learned = np.array([[0, 0, 1],    # code 2 -> code 0  == factor 0 -> factor 1
                        [0, 0, 0],
                        [0, 0, 0]])
    aligned = permute_graph(learned, permutation)
    assert np.array_equal(aligned, [[0, 0, 0], [1, 0, 0], [0, 0, 0]])
    assert aligned.dtype == learned.dtype
    # action graph [codes, actions]: code 0 is moved by action 1 -> factor 1 is moved by action 1
    action_graph = np.array([[0, 1], [0, 0], [0, 0]])
    assert np.array_equal(permute_graph(action_graph, permutation, permute_columns=False),
                          [[0, 0], [0, 1], [0, 0]])


def test_permute_graph_unmatched_factor_is_empty():
    learned = np.ones((2, 2), dtype=int)
    aligned = permute_graph(learned, np.array([1, -1, 0]))
    assert np.array_equal(aligned, [[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    assert shd(np.ones((3, 3)), aligned)["false_negatives"] == 5.0


def test_mcc_matching_then_permute_recovers_true_graph():
    rng = np.random.RandomState(1)
    true = rng.normal(size=(500, 3))
    order = np.array([1, 2, 0])  # code j holds factor order[j]
    codes = true[:, order] * np.array([-2.0, 0.5, 3.0])
    learned = TRUE[np.ix_(order, order)]  # the true graph, written in code order
    permutation = mcc(true, codes)["permutation"]
    assert shd(TRUE, permute_graph(learned, permutation))["shd"] == 0.0
    assert shd(TRUE, learned)["shd"] > 0.0


def test_permute_graph_errors():
    with pytest.raises(ValueError, match="square"):
        permute_graph(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="two true factors"):
        permute_graph(np.zeros((3, 3)), np.array([0, 0, 1]))
    with pytest.raises(ValueError, match=r"-1 or code indices in \[0, 3\)"):
        permute_graph(np.zeros((3, 3)), np.array([0, 3, 1]))
    with pytest.raises(ValueError, match="1-D integer"):
        permute_graph(np.zeros((3, 3)), np.array([0.0, 1.0, 2.0]))
