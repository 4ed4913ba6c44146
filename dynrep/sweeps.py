"""Sweeps: one run config trained over a grid of values, one run folder per point, then a summary.

``dynrep sweep RUN.yaml seed=0,1,2 model.config.beta=1,4,16 --out runs/sweep --jobs 2`` expands the grid
(the cartesian product of every ``KEY=V1,V2,...``; an override without a top-level comma applies to every
point), validates every point's config, writes the sweep spec and runs each point as
:func:`dynrep.runs.run` ``(config_with_the_point's_values, point_dir)``::

    OUT/sweep.yaml          the spec, written first: the base config, the swept values, folder -> values
    OUT/seed=0,beta=1/      one run folder per point (run.yaml, checkpoint/, scores.json, ...)
    OUT/logs/NAME.log       with --jobs N > 1 or submitit, each point's output
    OUT/summary.csv         one row per point: status, swept values, step, wall time, final metrics
    OUT/summary.png         each metric against each swept value, seeds as mean ± sd error bars

Rerunning the same command continues the sweep: a finished point is skipped, a killed one resumes from its
checkpoint (:func:`dynrep.runs.resume`), one without a checkpoint starts over. Points run in this process
(``jobs=1``), as ``jobs`` parallel local processes, or as a Slurm job array through ``submitit``
(:func:`submit`).
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from dynrep import runs

SPEC_FILE, SUMMARY_CSV, SUMMARY_PNG, LOG_DIR, SUBMITIT_DIR = ("sweep.yaml", "summary.csv", "summary.png", "logs",
                                                             "submitit")
#: Short spellings of swept keys.
ALIASES = {"seed": "trainer.seed"}
#: ``status`` of a point in summary.csv: scores.json at trainer.steps / scores.json at fewer steps (a time
#: limit) / run.yaml but no scores.json (killed, failed or running) / nothing yet.
STATUSES = ("finished", "partial", "unfinished", "not started")
#: ``--slurm`` keys that are submitit's shared parameters (they apply to the local executor too); any other
#: key is a SlurmExecutor parameter (partition, time, mem, account, qos, constraint, array_parallelism, ...).
SHARED_SLURM_KEYS = ("timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node", "tasks_per_node", "name")

__all__ = ["ALIASES", "SHARED_SLURM_KEYS", "STATUSES", "Sweep", "check_launcher", "default_threads", "grid_points",
           "load", "parse_sweep", "point_names", "point_state", "prepare", "run_point", "run_sweep", "split_values",
           "submit", "summarize", "summary_figure", "summary_rows"]


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


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


def run_point(sweep_dir: str, name: str, threads: int | None = None) -> dict[str, Any]:
    """Train point ``name`` of the sweep in folder ``sweep_dir`` (plain values: this is what a submitit job
    or a local worker process calls): skipped if finished, resumed from its checkpoint if it has one, else
    :func:`dynrep.runs.run` of its config (with ``trainer.threads = threads`` where the config leaves it
    unset); a point killed after its last step but before its scores is only evaluated. Returns ``{"name",
    "state"}`` (``state`` as :func:`point_state` found it) plus the run's ``"step"``."""
    sweep = load(sweep_dir)
    config = sweep.config(name, threads)
    out = sweep.out / name
    state, step = point_state(out, config.trainer.steps)
    if state == "resume" and step >= config.trainer.steps:  # killed while evaluating: evaluate only
        from dynrep.learner import RepresentationLearner
        recorded = runs.load_run_config(out / runs.RUN_FILE)
        learner = RepresentationLearner.load(out / runs.CHECKPOINT_DIR, device=recorded.trainer.device)
        runs._train_and_evaluate(learner, recorded, out, 0, progress=False, overwrite=False)
    elif state == "resume":
        learner, _ = runs.resume(out)
        step = learner.step
    elif state == "new":
        learner, _ = runs.run(config, out)
        step = learner.step
    return {"name": name, "state": state, "step": step}


def default_threads(jobs: int) -> int:
    """Torch threads per point when ``trainer.threads`` is unset: ``cores // jobs`` (at least 1), so that
    ``jobs * threads <= cores``."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()] \
        if path.is_file() else []
    return lines[-1] if lines else "no output"


def _run_in_process(sweep: Sweep, names: Sequence[str], threads: int, report: Callable[..., None]) -> None:
    import torch

    from dynrep.cli import _describe
    from dynrep.data.download import DownloadError
    from dynrep.training import CheckpointError, NonFiniteLossError, TrainingInterrupted
    previous = torch.get_num_threads()
    try:
        for name in names:
            report("started", name)
            start = time.monotonic()
            try:
                run_point(str(sweep.out), name, threads)
            except TrainingInterrupted:
                raise
            except (ValueError, KeyError, CheckpointError, DownloadError, NonFiniteLossError, OSError) as err:
                report("failed", name, _describe(err)[0])
                continue
            report("finished", name, f"{time.monotonic() - start:.1f} s")
    finally:
        torch.set_num_threads(previous)


def _run_processes(sweep: Sweep, names: Sequence[str], jobs: int, threads: int,
                   report: Callable[..., None]) -> None:
    """Each point as ``python -m dynrep.sweeps OUT NAME --threads T --parent PID``, ``jobs`` at once, its output
    in OUT/logs/NAME.log; a point stops (SIGTERM: it saves its checkpoint) if this process dies, even by SIGKILL.

    SIGINT or SIGTERM stops starting points and raises TrainingInterrupted once the running ones have ended.
    SIGTERM is passed on to them (they save their checkpoints); a Ctrl-C at the terminal reaches them by
    itself (they share the process group), so SIGINT is not sent twice."""
    import signal

    from dynrep.training import TrainingInterrupted
    from dynrep.training.signals import StopSignals
    pending, running, forwarded = list(names), {}, False
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    (sweep.out / LOG_DIR).mkdir(parents=True, exist_ok=True)
    with StopSignals() as stop:
        while pending or running:
            while pending and len(running) < jobs and not stop.received:
                name = pending.pop(0)
                log = sweep.out / LOG_DIR / f"{name}.log"
                with open(log, "ab") as f:
                    proc = subprocess.Popen([sys.executable, "-m", "dynrep.sweeps", str(sweep.out), name, "--threads",
                                             str(threads), "--parent", str(os.getpid())], stdout=f,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                running[proc] = (name, time.monotonic(), log)
                report("started", name)
            if stop.received and not forwarded:
                for proc in running if stop.received == "SIGTERM" else ():
                    proc.send_signal(signal.SIGTERM)
                forwarded, pending = True, []
            for proc, (name, start, log) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[proc]
                if code == 0:
                    report("finished", name, f"{time.monotonic() - start:.1f} s")
                else:
                    reason = f"killed by {signal.Signals(-code).name}" if code < 0 else _last_line(log)
                    report("failed", name, f"{reason} (exit {code}; log {log})")
            time.sleep(0.05)
    if stop.received:
        raise TrainingInterrupted(f"sweep stopped by {stop.received}; the running points saved their "
                                  f"checkpoints: rerun the same command to continue", stop.received, 0)


def _slurm_parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """``["partition=gpu", "time=60"]`` -> AutoExecutor parameters (``slurm_partition``, ``slurm_time``);
    values are JSON, bare words strings."""
    from submitit.slurm.slurm import SlurmExecutor
    allowed = sorted(set(SHARED_SLURM_KEYS) | SlurmExecutor._valid_parameters())
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in allowed:
            raise ValueError(f"--slurm {pair!r}: expected KEY=VALUE with KEY one of {', '.join(allowed)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key if key in SHARED_SLURM_KEYS else f"slurm_{key}"] = value
    return out


def check_launcher(launcher: str, jobs: int | None, slurm: Sequence[str] = (), cluster: str | None = None) -> None:
    """Check the launcher arguments of :func:`run_sweep` before anything is written: ValueError for a bad
    value, ImportError (one line) for ``launcher="submitit"`` without submitit installed."""
    from dynrep.checks import check_int
    if jobs is not None:
        check_int("--jobs", jobs, 1)
    if launcher not in ("local", "submitit"):
        raise ValueError(f"--launcher must be local or submitit, got {launcher!r}")
    if launcher == "local":
        if slurm or cluster is not None:
            raise ValueError("--slurm and --cluster need --launcher submitit")
        return
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ImportError("--launcher submitit needs the submitit package: pip install dynrep[submitit] "
                          "(or pip install submitit)") from None
    if cluster not in (None, "slurm", "local"):
        raise ValueError(f"--cluster must be slurm or local, got {cluster!r}")
    _slurm_parameters(slurm)


def _executor(sweep: Sweep, slurm: Sequence[str], cluster: str | None, jobs: int):
    import submitit
    parameters = _slurm_parameters(slurm)
    executor = submitit.AutoExecutor(folder=sweep.out / SUBMITIT_DIR, cluster=cluster)
    try:
        executor.update_parameters(**{"slurm_array_parallelism": jobs, "name": "dynrep-sweep", **parameters})
    except (AssertionError, NameError, ValueError, TypeError) as err:
        raise ValueError(f"--slurm: {str(err).splitlines()[0]}") from None
    return executor


def _exception_line(text: str) -> str:
    """The last ``SomeError: message`` line of a traceback in ``text``, else its first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupted|Exit): ", line)]
    return raised[-1] if raised else lines[0] if lines else ""


def submit(sweep: Sweep, names: Sequence[str], *, slurm: Sequence[str] = (), cluster: str | None = None,
           jobs: int | None = None, threads: int | None = None, report: Callable[..., None] = lambda *a: None) -> None:
    """Run points ``names`` of ``sweep`` as one submitit job array (:func:`run_point` per task), ``jobs``
    tasks at once (None: all), and wait for them, reporting each.

    ``cluster``: ``"slurm"``, ``"local"`` (submitit's local executor: processes on this machine) or None
    (submitit's choice: Slurm when its commands are found). ``slurm``: ``KEY=VALUE`` parameters, submitit's
    shared ones (:data:`SHARED_SLURM_KEYS`: ``timeout_min``, ``cpus_per_task``, ``gpus_per_node``, ``mem_gb``,
    ...) or SlurmExecutor's (``partition``, ``time`` in minutes, ``account``, ``qos``, ``constraint``, ...).
    ``threads`` (torch threads of a point whose ``trainer.threads`` is unset) defaults to ``cpus_per_task``
    (1 when not given).
    """
    executor = _executor(sweep, slurm, cluster, jobs or len(names))
    if threads is None:
        threads = int(_slurm_parameters(slurm).get("cpus_per_task", 1))
    with executor.batch():
        jobs_ = [executor.submit(run_point, str(sweep.out), name, threads) for name in names]
    for job, name in zip(jobs_, names):
        report("started", name, f"{executor.cluster} job {job.job_id}")
    pending = dict(zip(names, jobs_))
    start = time.monotonic()
    while pending:
        for name, job in list(pending.items()):
            if not job.done():
                continue
            del pending[name]
            error = job.exception()
            if error is None:
                report("finished", name, f"{time.monotonic() - start:.1f} s")
            else:
                report("failed", name, f"{_exception_line(str(error)) or type(error).__name__} (logs "
                                       f"{job.paths.folder})")
        time.sleep(0.2)


def run_sweep(sweep: Sweep, *, jobs: int | None = None, launcher: str = "local", slurm: Sequence[str] = (),
              cluster: str | None = None, stream=None) -> dict[str, str]:
    """Run every point of ``sweep`` that is not finished, print one line per point started, skipped, finished
    or failed (to ``stream``, stdout by default), then write the summary (:func:`summarize`). Returns
    ``{name: "skipped" | "finished" | "stopped" | "failed: <reason>"}`` (stopped: by ``trainer.time_limit``
    before ``trainer.steps``; a rerun continues it); a failed point does not stop the others.

    ``launcher="local"``: ``jobs=1`` (or None) runs the points one after the other in this process, ``jobs=N``
    as N parallel processes; each point gets ``trainer.threads`` or else :func:`default_threads` ``(jobs)`` torch
    threads. ``launcher="submitit"``: :func:`submit` (``jobs`` array tasks at once, None: all).
    """
    check_launcher(launcher, jobs, slurm, cluster)
    stream = stream or sys.stdout
    names = list(sweep.points)
    width, results = len(str(len(names))), {}
    states = {name: point_state(sweep.out / name, sweep.config(name).trainer.steps) for name in names}

    def report(event: str, name: str, detail: str = "") -> None:
        index = f"[{names.index(name) + 1:>{width}}/{len(names)}]"
        if event == "started" and states[name][0] == "resume":
            event, detail = "resumed", f"from step {states[name][1]}" + (f"; {detail}" if detail else "")
        steps = sweep.config(name).trainer.steps
        if event == "finished" and point_state(sweep.out / name, steps)[0] != "finished":  # a time limit
            scores = _read_json(sweep.out / name / runs.SCORES_FILE) or {}
            event, detail = "stopped", f"at step {scores.get('step')} of {steps} by trainer.time_limit; rerun to go on"
        print(f"{index} {event:<8} {sweep.out / name}" + (f" ({detail})" if detail else ""), file=stream,
              flush=True)
        if event not in ("started", "resumed"):
            results[name] = event if event != "failed" else f"failed: {detail}"

    todo = [name for name in names if states[name][0] != "finished"]
    if jobs is None:
        jobs = 1 if launcher == "local" else max(1, len(todo))
    counts = {state: sum(s == state for s, _ in states.values()) for state in ("new", "resume", "finished")}
    threads = default_threads(jobs)
    how = ("in this process" if jobs == 1 else f"{jobs} parallel processes") if launcher == "local" else (
        f"submitit, {jobs} array tasks at once")
    print(f"sweep {sweep.out}: {len(names)} points ({counts['new']} to train, {counts['resume']} to resume, "
          f"{counts['finished']} finished); {how}" + (f"; {threads} torch thread{'s' if threads > 1 else ''} per "
          "point unless trainer.threads is set" if launcher == "local" else ""), file=stream, flush=True)
    for name in names:
        if states[name][0] == "finished":
            report("skipped", name, f"finished at step {states[name][1]}")
    try:
        if todo and launcher == "submitit":
            submit(sweep, todo, slurm=slurm, cluster=cluster, jobs=jobs, report=report)
        elif todo and jobs == 1:
            _run_in_process(sweep, todo, threads, report)
        elif todo:
            _run_processes(sweep, todo, jobs, threads, report)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the summary of what is there, then the exit code
        summarize(sweep.out)
        raise
    csv_path, png_path = summarize(sweep.out)
    print(f"summary: {csv_path}" + (f", {png_path}" if png_path else " (no finished point to plot)"), file=stream)
    failed = [name for name, result in results.items() if result.startswith("failed")]
    if failed:
        print(f"{len(failed)} of {len(names)} points failed: {', '.join(failed)}; rerun the same command to "
              "retry them", file=stream)
    return results


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None and key in ("step", "wall_time_s") else
                             _cell(row[key]) if key in sweep.grid else row.get(key, "") for key in columns})
    os.replace(tmp, path)
    fig = summary_figure(rows, sweep.grid)
    png = sweep.out / SUMMARY_PNG
    if fig is None:
        png.unlink(missing_ok=True)
        return path, None
    with replaced_atomically(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path, png


def _stop_with(parent: int) -> bool:
    """Linux: have this process receive SIGTERM (a clean stop: the checkpoint, then exit 143) when process
    ``parent``, the sweep that started it, dies, even by SIGKILL, so that no point trains on unseen; False if
    ``parent`` is gone already."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    return os.getppid() == parent


def _main(argv: Sequence[str]) -> int:
    """``python -m dynrep.sweeps OUT NAME [--threads T] [--parent PID]``: one point, as a local worker process."""
    import argparse

    from dynrep.cli import _describe
    from dynrep.data.download import DownloadError
    from dynrep.training import CheckpointError, NonFiniteLossError
    parser = argparse.ArgumentParser(prog="python -m dynrep.sweeps", description="train one point of a sweep")
    parser.add_argument("out")
    parser.add_argument("name")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parent", type=int, default=None, help="stop when this process (the sweep) dies")
    args = parser.parse_args(argv)
    if args.parent is not None and not _stop_with(args.parent):
        print(f"dynrep sweep: {args.name}: the sweep (process {args.parent}) ended before this point started",
              file=sys.stderr)
        return 143
    try:
        run_point(args.out, args.name, args.threads)
    except (KeyboardInterrupt, ValueError, KeyError, CheckpointError, DownloadError, NonFiniteLossError,
            OSError) as err:
        message, code = _describe(err)
        print(f"dynrep sweep: {args.name}: {message}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
