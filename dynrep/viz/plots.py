"""Figures saved as PNG: learned rotation angles, training curves, metric matrices and causal graphs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from dynrep.viz.files import replaced_atomically


def _save(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` (format from its suffix, PNG without one), replacing it only once complete."""
    path = Path(path)
    with replaced_atomically(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:] or "png", dpi=100, bbox_inches="tight")
    return path


def plot_rotation_angles(angles: np.ndarray, action_names: Sequence[str], latent_dim: int,
                         path: str | Path) -> Path:
    """Heatmap of angles ``[A, n(n-1)/2]`` (actions x coordinate planes), in units of 2π."""
    planes = [f"({i},{j})" for i in range(latent_dim) for j in range(i + 1, latent_dim)]
    wrapped = np.arctan2(np.sin(angles), np.cos(angles)) / (2 * np.pi)
    fig = Figure(figsize=(1.0 + 0.8 * len(planes), 1.0 + 0.5 * len(action_names)))
    ax = fig.add_subplot()
    sns.heatmap(wrapped, ax=ax, annot=True, fmt=".2f", cmap="RdBu_r", vmin=-0.5, vmax=0.5, center=0,
                xticklabels=planes, yticklabels=list(action_names), cbar_kws={"label": "angle / 2π"})
    ax.set_xlabel("coordinate plane")
    ax.set_ylabel("action")
    ax.set_title("learned rotation angles")
    return _save(fig, path)


def plot_history(history: dict[str, list[float]], path: str | Path) -> Path:
    """One panel per logged term against the optimiser step (log scale where all values are positive)."""
    if not history:
        raise ValueError("the history is empty: train before plotting it")
    fig = Figure(figsize=(4 * len(history), 3))
    for k, (name, values) in enumerate(history.items()):
        ax = fig.add_subplot(1, len(history), k + 1)
        ax.plot(np.arange(1, len(values) + 1), np.asarray(values), linewidth=0.8)
        if min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("step")
    fig.tight_layout()
    return _save(fig, path)


#: The matrix each metric result carries: key -> (title, rows, columns).
METRIC_MATRICES = {
    "mutual_info": ("mutual information (nats)", "code", "factor"),
    "importance": ("DCI importance", "code", "factor"),
    "correlation": ("|correlation|", "factor", "code"),
}


def plot_metric_matrices(results: dict[str, dict], path: str | Path, *, factor_names: Sequence[str] | None = None
                         ) -> Path:
    """Seaborn heatmaps of the matrices in metric results, one panel each, side by side.

    ``results`` maps a metric name to what :func:`dynrep.metrics.compute` (or the array-level
    function) returned; the MI matrix (MIG, Modularity), the DCI importance matrix and the MCC
    correlation matrix are drawn, with ``factor_names`` on the factor axis when given.
    """
    panels = [(name, key, result[key]) for name, result in results.items() for key in METRIC_MATRICES
              if key in result]
    if not panels:
        raise ValueError(f"no matrix to plot: results must hold one of {sorted(METRIC_MATRICES)}, got metrics "
                         f"{sorted(results)} with keys {sorted({k for r in results.values() for k in r})}")
    fig = Figure(figsize=(4.5 * len(panels), 4))
    for k, (name, key, matrix) in enumerate(panels):
        title, rows, columns = METRIC_MATRICES[key]
        matrix = np.asarray(matrix, dtype=np.float64)
        labels = {"factor": list(factor_names) if factor_names is not None else "auto", "code": "auto"}
        ax = fig.add_subplot(1, len(panels), k + 1)
        sns.heatmap(matrix, ax=ax, annot=matrix.size <= 150, fmt=".2f", cmap="viridis", vmin=0,
                    xticklabels=labels[columns], yticklabels=labels[rows])
        ax.set_xlabel(columns)
        ax.set_ylabel(rows)
        ax.set_title(f"{name}: {title}")
    fig.tight_layout()
    return _save(fig, path)


def plot_graphs(pairs: dict[str, tuple[np.ndarray, np.ndarray]], correlation: np.ndarray, path: str | Path) -> Path:
    """True and learned graphs side by side, then the MCC correlation matrix.

    ``pairs`` maps a graph name (``"graph_z"``, ``"graph_a"``) to ``(true, learned)`` 0/1 adjacency matrices
    of the same shape (rows = children, already aligned to the true factors); ``correlation`` is MCC's
    ``[K, D]`` |correlation| of true factors and codes. Learned edges missing from the truth are marked.
    """
    if not pairs:
        raise ValueError("pairs must hold at least one (true, learned) graph")
    panels = 2 * len(pairs) + 1
    fig = Figure(figsize=(4.2 * panels, 4))
    for k, (name, (true, learned)) in enumerate(pairs.items()):
        true, learned = np.asarray(true), np.asarray(learned)
        if true.shape != learned.shape:
            raise ValueError(f"{name}: true and learned graphs must have the same shape, got {true.shape} and "
                             f"{learned.shape}")
        wrong = int(np.sum(true != learned))
        for j, (title, graph) in enumerate(((f"true {name}", true), (f"learned {name} (SHD {wrong})", learned))):
            ax = fig.add_subplot(1, panels, 2 * k + j + 1)
            sns.heatmap(graph, ax=ax, cmap="Greys", vmin=0, vmax=1, cbar=False, linewidths=0.5, linecolor="0.8",
                        square=True)
            if j == 1:
                rows, cols = np.nonzero(true != learned)
                ax.scatter(cols + 0.5, rows + 0.5, marker="x", color="tab:red", s=30)
            ax.set_title(title)
            ax.set_xlabel("parent")
            ax.set_ylabel("child")
    ax = fig.add_subplot(1, panels, panels)
    correlation = np.asarray(correlation, dtype=np.float64)
    sns.heatmap(correlation, ax=ax, cmap="viridis", vmin=0, vmax=1, annot=correlation.size <= 150, fmt=".2f")
    ax.set_title("|correlation| (MCC)")
    ax.set_xlabel("code")
    ax.set_ylabel("factor")
    fig.tight_layout()
    return _save(fig, path)
