"""The summary of a sweep folder: one row per point (:func:`summary_rows`), the figure of each metric against each
swept value (:func:`summary_figure`), both written as ``summary.csv`` and ``summary.png`` (:func:`summarize`)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

from dynrep import runs
from dynrep.sweeps.grid import SUMMARY_CSV, SUMMARY_PNG, _read_json, load

#: ``status`` of a point in summary.csv: scores.json at trainer.steps / scores.json at fewer steps (a time
#: limit) / run.yaml but no scores.json (killed, failed or running) / nothing yet.
STATUSES = ("finished", "partial", "unfinished", "not started")

__all__ = ["STATUSES", "summarize", "summary_figure", "summary_rows"]


def _label(value: Any) -> str:
    """A swept value as a plot shows it: strings as they are, anything else as JSON (``[8, 8]``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else value


def summary_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per point of the sweep in ``sweep_dir``, in grid order: ``point`` (folder), ``status``
    (:data:`STATUSES`), each swept key's value, ``step`` (of scores.json, else of the checkpoint), ``wall_time_s``
    and every final metric of scores.json (absent for points without scores)."""
    sweep = load(sweep_dir)
    rows = []
    for name, values in sweep.points.items():
        out = sweep.out / name
        scores = _read_json(out / runs.SCORES_FILE)
        row: dict[str, Any] = {"point": name, **values}
        if isinstance(scores, dict) and isinstance(scores.get("scores"), dict):
            steps = sweep.config(name).trainer.steps
            row.update(status="finished" if scores.get("step", -1) >= steps else "partial", step=scores.get("step"),
                       wall_time_s=scores.get("wall_time_s"), **scores["scores"])
        else:
            checkpoint = _read_json(out / runs.CHECKPOINT_DIR / "config.json")
            row.update(status="unfinished" if (out / runs.RUN_FILE).is_file() else "not started",
                       step=checkpoint.get("step") if isinstance(checkpoint, dict) else None)
        rows.append(row)
    return rows


def _metric_names(rows: Sequence[dict[str, Any]], grid: dict[str, list[Any]]) -> list[str]:
    fixed = {"point", "status", "step", "wall_time_s", *grid}
    names = []
    for row in rows:
        names += [key for key, value in row.items() if key not in fixed and key not in names and
                  isinstance(value, (int, float)) and not isinstance(value, bool)]
    return names


def summary_figure(rows: Sequence[dict[str, Any]], grid: dict[str, list[Any]]):
    """A matplotlib Figure with one panel per (metric, swept key), in metric order, the panels of one metric
    side by side (``fig.axes``: metric 0 against each key, then metric 1, ...): the
    metric of the finished points against the key's values (numbers on a numeric axis, anything else as
    categories in sweep order), the other swept keys but the seed as hue, the seeds aggregated as error bars
    (mean ± sd). With the seed the only swept key, the metric is drawn against the seed. None without a
    finished point."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure
    done = [row for row in rows if row["status"] in ("finished", "partial")]
    metrics = _metric_names(done, grid)
    if not done or not metrics:
        return None
    axes_keys = [key for key in grid if key != "trainer.seed"] or list(grid)
    columns = min(len(axes_keys) * max(1, 4 // len(axes_keys)), len(axes_keys) * len(metrics))  # a few metrics a row
    rows_ = math.ceil(len(metrics) * len(axes_keys) / columns)
    fig = Figure(figsize=(3.6 * columns, 2.8 * rows_), layout="constrained")
    grid_axes = fig.subplots(rows_, columns, squeeze=False).ravel()
    for ax in grid_axes[len(metrics) * len(axes_keys):]:
        fig.delaxes(ax)
    for column, key in enumerate(axes_keys):
        hue_keys = [k for k in grid if k not in (key, "trainer.seed")]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid[key])
        order = [_label(v) for v in grid[key]]
        frame = pd.DataFrame({
            "x": [row[key] if numeric else _label(row[key]) for row in done],
            "hue": [", ".join(f"{k.rsplit('.', 1)[-1]}={_label(row[k])}" for k in hue_keys) or None for row in done],
            **{metric: [row.get(metric, math.nan) for row in done] for metric in metrics}})
        for line, metric in enumerate(metrics):
            ax = grid_axes[line * len(axes_keys) + column]
            hue = "hue" if hue_keys else None
            if numeric:
                sns.lineplot(frame, x="x", y=metric, hue=hue, errorbar="sd", marker="o", err_style="bars", ax=ax)
            else:
                sns.pointplot(frame, x="x", y=metric, hue=hue, order=order, errorbar="sd", ax=ax, dodge=bool(hue))
            ax.set_xlabel(key)
            if ax.get_legend() is not None and line:
                ax.get_legend().remove()  # one legend per swept key: its first panel's
            elif ax.get_legend() is not None:
                ax.get_legend().set_title("")  # the labels name the keys
    return fig


def summarize(sweep_dir: str | Path) -> tuple[Path, Path | None]:
    """Write ``summary.csv`` (:func:`summary_rows`: columns point, status, the swept keys, step, wall_time_s,
    the metrics) and ``summary.png`` (:func:`summary_figure`; removed when no point has finished) into the
    sweep folder ``sweep_dir``; returns their paths (None for a figure not drawn)."""
    from dynrep.viz.files import replaced_atomically
    sweep = load(sweep_dir)
    rows = summary_rows(sweep_dir)
    columns = ["point", "status", *sweep.grid, "step", "wall_time_s", *_metric_names(rows, sweep.grid)]
    path = sweep.out / SUMMARY_CSV
    with replaced_atomically(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None and key in ("step", "wall_time_s") else
                             _cell(row[key]) if key in sweep.grid else row.get(key, "") for key in columns})
    fig = summary_figure(rows, sweep.grid)
    png = sweep.out / SUMMARY_PNG
    if fig is None:
        png.unlink(missing_ok=True)
        return path, None
    with replaced_atomically(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path, png
