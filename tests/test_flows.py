"""CausalFlow: exact inverse, log-determinant against autograd, roots, interventions, topological order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dynrep.models.flows import CausalFlow, topological_order

# 0 -> 1 -> 2, 0 -> 3 (rows = children)
CHAIN = np.array([[0, 0, 0, 0],
                  [1, 0, 0, 0],
                  [0, 1, 0, 0],
                  [1, 0, 0, 0]])


def make_flow(graph=CHAIN, k: int = 3, hidden: int = 8, seed: int = 0) -> CausalFlow:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CausalFlow(graph, k, hidden).double()


def noise(b: int, width: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def blocks(z: torch.Tensor, k: int) -> torch.Tensor:
    return z.view(len(z), -1, k)


def test_shapes_masks_and_ranges():
    flow = make_flow()
    assert flow.order == (0, 1, 2, 3)
    assert flow.masks.shape == (4, 12)
    assert flow.masks[1].tolist() == [1.0] * 3 + [0.0] * 9 and flow.masks[0].sum() == 0
    z, log_det = flow(noise(5, 12))
    assert z.shape == (5, 12) and log_det.shape == (5,)
    s, t = flow.affine_params(z)
    assert s.shape == t.shape == (5, 4, 3)
    assert ((s > 0) & (s < 1) & (t > 0) & (t < 1)).all()  # sigmoid outputs
    with pytest.raises(ValueError, match=r"x must have shape \[B, 12\] \(n\*k = 4\*3\), got \[5, 10\]"):
        flow(noise(5, 10))
    with pytest.raises(ValueError, match=r"block index 4 is not in 0..3"):
        flow(noise(5, 12), interventions={4: torch.zeros(3)})


def test_inverse_is_exact():
    flow = make_flow()
    eps = noise(7, 12)
    z, _ = flow(eps)
    assert torch.allclose(flow.inverse(z), eps, atol=1e-12)
    context = noise(7, 12, seed=3)
    y, _ = flow(eps, context=context)
    assert torch.allclose(flow.inverse(y, context=context), eps, atol=1e-12)


@pytest.mark.parametrize("context", [False, True])
def test_log_det_matches_autograd_jacobian(context):
    flow = make_flow(k=2)
    eps = noise(1, 8, seed=4)
    ctx = noise(1, 8, seed=5) if context else None
    jacobian = torch.autograd.functional.jacobian(lambda e: flow(e, context=ctx)[0][0], eps)[:, 0]  # [8, 8]
    sign, logabs = torch.linalg.slogdet(jacobian)
    assert sign.item() == 1.0
    _, log_det = flow(eps, context=ctx)
    assert log_det.item() == pytest.approx(logabs.item(), rel=1e-10)
    # causal structure: block i of z never depends on the noise of a non-ancestor
    jac_blocks = jacobian.view(4, 2, 4, 2).abs().sum((1, 3))
    ancestors = {0: {0}, 1: {0, 1}, 2: {0, 1, 2}, 3: {0, 3}}
    for i, anc in ancestors.items():
        for j in range(4):
            expected_nonzero = (j == i) if context else (j in anc)
            assert (jac_blocks[i, j] > 0) == expected_nonzero, (i, j)


def test_roots_are_affine_in_their_own_noise():
    flow = make_flow()
    eps = noise(6, 12)
    z, _ = flow(eps)
    zeros = torch.zeros(1, 12, dtype=torch.float64)
    scale, shift = flow.s(zeros).exp(), flow.t(zeros)
    assert torch.allclose(blocks(z, 3)[:, 0], scale * blocks(eps, 3)[:, 0] + shift, atol=1e-12)
    # a non-root is not: its scale depends on the parent's value
    s, _ = flow.affine_params(z)
    assert not torch.allclose(s[:, 1], s[:1, 1].expand(6, 3))


def test_intervention_changes_only_the_block_and_its_descendants():
    flow = make_flow()
    eps = noise(6, 12)
    base, log_det = flow(eps)
    value = torch.full((3,), 2.5, dtype=torch.float64)
    z, log_det_do = flow(eps, interventions={1: value})
    b0, b1 = blocks(base, 3), blocks(z, 3)
    assert torch.equal(b1[:, 0], b0[:, 0]) and torch.equal(b1[:, 3], b0[:, 3])  # not descendants of 1
    assert torch.equal(b1[:, 1], value.expand(6, 3))
    assert not torch.allclose(b1[:, 2], b0[:, 2])  # child of 1 sees the new value
    s, t = flow.affine_params(z)
    assert torch.allclose(b1[:, 2], s[:, 2].exp() * blocks(eps, 3)[:, 2] + t[:, 2], atol=1e-12)
    # the intervened block no longer depends on the noise: its s is left out of the log-determinant
    s_base, _ = flow.affine_params(base)
    assert torch.allclose(log_det - log_det_do, s_base[:, 1].sum(-1) + (s_base[:, 2] - s[:, 2]).sum(-1))
    # per-row values [B, k] and functions of the partial latents (read the parent, 0, already computed)
    rows = noise(6, 3, seed=9)
    assert torch.equal(blocks(flow(eps, interventions={1: rows})[0], 3)[:, 1], rows)
    z_fn, _ = flow(eps, interventions={1: lambda partial: 2 * partial[:, :3]})
    assert torch.allclose(blocks(z_fn, 3)[:, 1], 2 * b0[:, 0])


def test_topological_order_of_a_permuted_graph():
    # variables [c, a, b] with a -> b -> c: a (index 1) first, then b (2), then c (0)
    graph = np.array([[0, 0, 1],
                      [0, 0, 0],
                      [0, 1, 0]])
    assert topological_order(graph) == (1, 2, 0)
    assert topological_order(torch.as_tensor(graph)) == (1, 2, 0)
    assert topological_order(np.zeros((3, 3), dtype=int)) == (0, 1, 2)
    flow = make_flow(graph, k=2)
    assert flow.order == (1, 2, 0)
    eps = noise(4, 6)
    z, _ = flow(eps)
    assert torch.allclose(flow.inverse(z), eps, atol=1e-12)
    jacobian = torch.autograd.functional.jacobian(lambda e: flow(e)[0][0], eps[:1])[:, 0]
    jac_blocks = jacobian.view(3, 2, 3, 2).abs().sum((1, 3))
    assert (jac_blocks > 0).tolist() == [[True, True, True], [False, True, False], [False, True, True]]


@pytest.mark.parametrize("graph,message", [
    (np.array([[0, 1], [1, 0]]), r"graph has a cycle among variables \[0, 1\]"),
    (np.array([[1, 0], [0, 0]]), r"graph has a cycle among variables \[0\]"),
    (np.array([[0, 0, 0], [1, 0, 1], [0, 1, 0]]), r"graph has a cycle among variables \[1, 2\]"),
    (np.zeros((2, 3)), r"graph must be a non-empty square \[n, n\] matrix, got shape \(2, 3\)"),
    (np.array([[0, 2], [0, 0]]), r"graph entries must be 0 or 1"),
])
def test_bad_graphs(graph, message):
    with pytest.raises(ValueError, match=message):
        topological_order(graph)
    with pytest.raises(ValueError, match=message):
        CausalFlow(graph, 2)


def test_block_dim_and_hidden_validation():
    with pytest.raises(ValueError, match="block_dim must be >= 1, got 0"):
        CausalFlow(CHAIN, 0)
    with pytest.raises(ValueError, match="hidden must be >= 1, got 0"):
        CausalFlow(CHAIN, 2, 0)
