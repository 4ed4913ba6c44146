"""The grid and the sweep folder: ``KEY=V1,V2`` arguments into a grid (:func:`parse_sweep`), its points and their
folder names (:func:`grid_points`, :func:`point_names`), the spec ``sweep.yaml`` (:class:`Sweep`, :func:`prepare`,
:func:`load`) and what a rerun does with a point folder (:func:`point_state`)."""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

import yaml

from dynrep import runs

SPEC_FILE, SUMMARY_CSV, SUMMARY_PNG, LOG_DIR, SUBMITIT_DIR = ("sweep.yaml", "summary.csv", "summary.png", "logs",
                                                             "submitit")
#: Short spellings of swept keys.
ALIASES = {"seed": "trainer.seed"}

__all__ = ["ALIASES", "Sweep", "grid_points", "load", "parse_sweep", "point_names", "point_state", "prepare",
           "split_values"]


def split_values(text: str) -> list[str]:
    """``"[8,8],[16,16]"`` -> ``["[8,8]", "[16,16]"]``: split at commas outside brackets, braces and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def parse_sweep(args: Sequence[str]) -> tuple[dict[str, list[Any]], list[str]]:
    """Split command-line ``KEY=VALUE`` arguments into the swept keys (``{dotted_key: [values]}``, in order;
    ``KEY=V1,V2`` with a top-level comma) and the fixed overrides (the rest, as given). Each value is parsed
    like :func:`dynrep.runs.parse_override` (YAML: ``[8,8]``, ``1e-3``, ``null``); ``seed`` is short for
    ``trainer.seed``. A key swept twice, or both swept and fixed, is a ValueError."""
    swept: dict[str, list[Any]] = {}
    fixed, fixed_keys = [], set()
    for text in args:
        key, sep, raw = text.partition("=")
        key = ALIASES.get(key, key)
        values = split_values(raw) if sep else [raw]
        if len(values) == 1:
            parts, _ = runs.parse_override(f"{key}{sep}{raw}")
            fixed.append(f"{key}{sep}{raw}")
            fixed_keys.add(".".join(parts))
            continue
        parsed = [runs.parse_override(f"{key}={value}")[1] for value in values]
        if key in swept:
            raise ValueError(f"sweep key {key} is given twice; give all its values at once ({key}=V1,V2,...)")
        if len(set(map(json.dumps, parsed))) < len(parsed):
            raise ValueError(f"sweep key {key} repeats a value: {raw}")
        swept[key] = parsed
    both = sorted(fixed_keys & set(swept))
    if both:
        raise ValueError(f"sweep key {both[0]} is both swept and fixed; give it once")
    return swept, fixed


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of ``grid`` (``{key: [values]}``), the last key varying fastest:
    ``{"a": [1, 2], "b": [3, 4]}`` -> ``[{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, ...]``."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "-".join(map(_text, value)) or "empty"
    return value if isinstance(value, str) else json.dumps(value)


def point_names(grid: dict[str, list[Any]]) -> list[str]:
    """One folder name per point of :func:`grid_points` ``(grid)``: ``KEY=VALUE`` pairs joined by commas, each
    KEY the last part of its dotted key when that is unique among the swept keys (``seed=0,beta=4``), list
    values joined by ``-`` (``channels=8-8``), other characters than letters, digits and ``._+-=`` replaced
    by ``_``; a name that would repeat gets ``-2``, ``-3``, ..."""
    last = [key.rsplit(".", 1)[-1] for key in grid]
    short = {key: tail if last.count(tail) == 1 else key for key, tail in zip(grid, last)}
    names, seen = [], set()
    for point in grid_points(grid):
        name = ",".join(re.sub(r"[^A-Za-z0-9._+=-]", "_", f"{short[key]}={_text(value)}")
                        for key, value in point.items())
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}-{n}"
        seen.add(candidate)
        names.append(candidate)
    return names


@dataclasses.dataclass
class Sweep:
    """A sweep folder's spec (``sweep.yaml``): ``base`` is the run config with the fixed overrides, ``grid``
    the swept keys and their values, ``points`` each folder name and its values, ``out`` the folder."""

    out: Path
    base: runs.RunConfig
    grid: dict[str, list[Any]]
    points: dict[str, dict[str, Any]]

    def config(self, name: str, threads: int | None = None) -> runs.RunConfig:
        """The run config of point ``name``; ``threads`` sets ``trainer.threads`` where the base leaves it
        unset."""
        config = runs.apply_overrides(self.base, [f"{key}={json.dumps(value)}"
                                                  for key, value in self.points[name].items()])
        if threads is not None and config.trainer.threads is None:
            config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, threads=threads))
        return config

    def to_dict(self) -> dict[str, Any]:
        """What ``sweep.yaml`` holds: ``{"config": base as a dict, "sweep": grid, "points": points}``."""
        return {"config": runs.run_config_to_dict(self.base), "sweep": self.grid, "points": self.points}


def load(out: str | Path) -> Sweep:
    """The sweep in folder ``out``; FileNotFoundError (one line) if it has no ``sweep.yaml``."""
    out = Path(out)
    if not (out / SPEC_FILE).is_file():
        raise FileNotFoundError(f"{out} is not a sweep folder: it has no {SPEC_FILE} (sweep folders are written by "
                                "`dynrep sweep RUN.yaml KEY=V1,V2 ... --out DIR`)")
    values = yaml.safe_load((out / SPEC_FILE).read_text())
    if not isinstance(values, dict) or set(values) != {"config", "sweep", "points"}:
        raise ValueError(f"{out / SPEC_FILE} is not a sweep spec: expected the keys config, sweep, points")
    return Sweep(out, runs.run_config_from_dict(values["config"]), values["sweep"], values["points"])


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict) and values:
        return {k: v for key, value in values.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: values}


def _difference(old: Sweep, new: Sweep) -> str | None:
    """The first difference between two specs, in words; None if they describe the same grid."""
    if set(old.grid) != set(new.grid):
        return f"it sweeps {', '.join(old.grid)}, this command {', '.join(new.grid)}"
    for key in old.grid:
        if sorted(map(json.dumps, old.grid[key])) != sorted(map(json.dumps, new.grid[key])):
            return f"{key} is {old.grid[key]} there and {new.grid[key]} here"
    a, b = _flat(runs.run_config_to_dict(old.base)), _flat(runs.run_config_to_dict(new.base))
    for key in [*a, *(k for k in b if k not in a)]:
        if a.get(key) != b.get(key):
            return f"its base config has {key}={a.get(key)!r}, this command {b.get(key)!r}"
    return None


class _Dumper(yaml.SafeDumper):
    """No anchors: a value shared by several points is written out each time."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _flush(path: Path, text: str) -> None:
    from dynrep.viz.files import replaced_atomically
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)


def prepare(config: str | Path | runs.RunConfig, args: Sequence[str], out: str | Path, *,
            overwrite: bool = False) -> Sweep:
    """Parse ``args`` (:func:`parse_sweep`), validate every point's config, and write ``out/sweep.yaml``.

    Any bad key or value is a ValueError before anything is written. If ``out`` already holds a sweep, it
    must be the same one (base config and values; then its spec and folder names are kept), else a
    ValueError names the first difference; with ``overwrite`` the old sweep's point folders, logs, submitit
    files and summaries are removed instead. A folder of other files is refused
    (:class:`~dynrep.training.CheckpointError`).
    """
    from dynrep.training.checkpoint import CheckpointError
    grid, fixed = parse_sweep(args)
    if not grid:
        raise ValueError("a sweep needs at least one KEY=V1,V2,... with two or more values (e.g. seed=0,1,2)")
    base = runs.load_run_config(config) if not isinstance(config, runs.RunConfig) else config
    base = runs.apply_overrides(base, fixed)
    names = point_names(grid)
    sweep = Sweep(Path(out), base, grid, dict(zip(names, grid_points(grid))))
    for name in names:  # every point's config checked before anything is written
        sweep.config(name)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is a file, not a sweep folder; choose a directory path")
    if (out / SPEC_FILE).is_file():
        old = load(out)
        difference = _difference(old, sweep)
        if difference is None:
            return old
        if not overwrite:
            raise ValueError(f"{out} holds another sweep: {difference}; rerun with the same grid to continue it, "
                             "choose another --out, or pass --overwrite to replace it")
        for path in [*(out / name for name in old.points), out / LOG_DIR, out / SUBMITIT_DIR, out / SUMMARY_CSV,
                     out / SUMMARY_PNG]:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    elif out.is_dir() and any(out.iterdir()):
        raise CheckpointError(f"{out} is not empty and holds no {SPEC_FILE}: refusing to write a sweep into it; "
                              "choose a new or empty directory")
    _flush(out / SPEC_FILE, "# dynrep sweep: the base run config, the swept values, each point's folder\n" +
           yaml.dump(sweep.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=None))
    return sweep


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def point_state(point_dir: str | Path, steps: int) -> tuple[str, int | None]:
    """What a rerun does with a point folder, and the step it is at: ``("finished", step)`` (scores.json
    for ``steps`` steps: skipped), ``("resume", step)`` (run.yaml and a checkpoint: :func:`dynrep.runs.resume`),
    ``("new", None)`` (nothing, or run.yaml without a checkpoint: :func:`dynrep.runs.run`)."""
    point_dir = Path(point_dir)
    scores = _read_json(point_dir / runs.SCORES_FILE)
    if isinstance(scores, dict) and isinstance(scores.get("step"), int) and scores["step"] >= steps:
        return "finished", scores["step"]
    checkpoint = _read_json(point_dir / runs.CHECKPOINT_DIR / "config.json")
    if (point_dir / runs.RUN_FILE).is_file() and isinstance(checkpoint, dict) and "step" in checkpoint:
        return "resume", checkpoint["step"]
    return "new", None
