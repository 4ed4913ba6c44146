"""Launching the points of a sweep: one point (:func:`run_point`), all of them (:func:`run_sweep`) in this
process, as parallel local worker processes (``python -m dynrep.sweeps OUT NAME``) or as a submitit job array
(:func:`submit`)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from dynrep import runs
from dynrep.sweeps.grid import LOG_DIR, SUBMITIT_DIR, Sweep, _read_json, load, point_state
from dynrep.sweeps.summary import summarize

#: ``--slurm`` keys that are submitit's shared parameters (they apply to the local executor too); any other
#: key is a SlurmExecutor parameter (partition, time, mem, account, qos, constraint, array_parallelism, ...).
SHARED_SLURM_KEYS = ("timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node", "tasks_per_node", "name")

__all__ = ["SHARED_SLURM_KEYS", "check_launcher", "default_threads", "run_point", "run_sweep", "submit"]


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
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH")]))}
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
