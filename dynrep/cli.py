"""The ``dynrep`` command: demo, train, resume, sweep, summarize, evaluate, animate, list, presets, download.

Every error a user can cause ends in one line on stderr, ``dynrep COMMAND: error: ...``, and an exit code:
see :data:`EXIT_CODES`.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

#: What ``dynrep demo`` trains: the GridWorld rotation learner with its default settings.
DEMO_STEPS = 1000
#: Exit codes of the ``dynrep`` command.
EXIT_CODES = {0: "success", 1: "runtime error: missing or damaged checkpoint or data file, failed download, "
                               "non-finite loss, full disk, no permission",
              2: "usage error: a bad argument or value (argparse's own errors too)",
              130: "interrupted by Ctrl-C (SIGINT); a training run saved its checkpoint first",
              143: "stopped by SIGTERM; a training run saved its checkpoint first"}


def _key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``["latent_dim=4", "channels=[8,8]"]`` -> ``{"latent_dim": 4, "channels": [8, 8]}`` (JSON values,
    bare words kept as strings)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _env_args(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``--env-arg`` pairs checked against the environment's constructor: an unknown key or a missing
    required one is a ValueError naming it and the arguments the environment takes."""
    from dynrep.runs import env_arguments
    kwargs = _key_values(pairs, "--env-arg")
    env_arguments(name, kwargs, prefix="--env-arg ")
    return kwargs


def _print_scores(scores: dict[str, float]) -> None:
    width = max(map(len, scores))
    for name, value in scores.items():
        print(f"  {name:<{width}}  {value:.4f}")


#: ``dynrep train`` flags that, given with a config file, override its dotted keys.
_FLAG_KEYS = {"env": "env.name", "model": "model.name", "steps": "trainer.steps", "time_limit": "trainer.time_limit",
              "checkpoint_every": "trainer.checkpoint_every", "sync_every": "trainer.sync_every",
              "device": "trainer.device", "seed": "trainer.seed",
              "logger": "trainer.logger", "eval_every": "trainer.eval_every", "safetensors": "trainer.safetensors",
              "compile": "trainer.compile", "autocast": "trainer.autocast"}


def _train(args: argparse.Namespace) -> int:
    if args.config is not None and "=" in args.config and not Path(args.config).exists():
        args.overrides.insert(0, args.config)  # KEY=VALUE where the config file should be
    elif args.config is not None:
        return _train_config(args)
    if args.overrides:
        raise ValueError(f"override {args.overrides[0]!r} needs a run config file first: dynrep train RUN.yaml "
                         "KEY=VALUE ... --out DIR")
    if args.steps is None:
        raise ValueError("--steps is required without a run config file (dynrep train RUN.yaml --out DIR)")
    from dynrep.checks import check_autocast, check_int
    if args.eval_every is not None:
        check_int("--eval-every", args.eval_every, 1)
    check_autocast("--autocast", args.autocast)
    from dynrep import RepresentationLearner, make_env
    env_name = args.env or "gridworld"
    env = make_env(env_name, **_env_args(env_name, args.env_arg))
    learner = RepresentationLearner(env, args.model or "rotation", seed=0 if args.seed is None else args.seed,
                                    device=args.device or "auto", compile=bool(args.compile), autocast=args.autocast,
                                    **_key_values(args.set, "--set"))
    from dynrep.training.evaluation import PeriodicEvaluation
    from dynrep.training.logging import loggers
    out = Path(args.out)
    periodic = [] if args.eval_every is None else [PeriodicEvaluation(learner.evaluate, args.eval_every)]
    callbacks = loggers(args.logger, {"tensorboard": f"{out}.tensorboard", "wandb": out.parent}, run_name=out.name,
                        run_id=learner.run_id)
    learner.train(args.steps, time_limit=args.time_limit, progress=not args.quiet, checkpoint_dir=args.out,
                  checkpoint_every=args.checkpoint_every, overwrite=args.overwrite, safetensors=bool(args.safetensors),
                  callbacks=[*periodic, *callbacks], sync_every=args.sync_every)
    print(f"trained {learner.step} steps; checkpoint in {args.out}")
    return 0


def _train_config(args: argparse.Namespace) -> int:
    """``dynrep train RUN.yaml [KEY=VALUE ...] --out DIR``: flags given override the file, then the dotted
    overrides do, in order."""
    from dynrep import runs
    config = runs.load_run_config(args.config)
    flags = [f"{key}={json.dumps(getattr(args, name))}" for name, key in _FLAG_KEYS.items()
             if getattr(args, name) is not None]
    flags += [f"model.config.{pair}" for pair in args.set] + [f"env.args.{pair}" for pair in args.env_arg]
    config = runs.apply_overrides(config, [*flags, *args.overrides])
    learner, scores = runs.run(config, args.out, progress=not args.quiet, overwrite=args.overwrite)
    _report_run(learner, scores, args.out)
    return 0


def _report_run(learner, scores: dict[str, float], out: str) -> None:
    print(f"trained {learner.step} steps; run folder {out} (run.yaml, checkpoint/, scores.json)")
    if scores:
        _print_scores(scores)


def _resume_run(args: argparse.Namespace) -> int:
    from dynrep import runs
    learner, scores = runs.resume(args.run, args.steps, progress=not args.quiet)
    _report_run(learner, scores, args.run)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    """``dynrep sweep RUN.yaml KEY=V1,V2 ... --out DIR``: :mod:`dynrep.sweeps`; exit 1 if a point failed."""
    from dynrep import sweeps
    try:
        sweeps.check_launcher(args.launcher, args.jobs, args.slurm, args.cluster)
    except ImportError as err:  # the submitit extra is missing
        print(f"dynrep sweep: error: {err}", file=sys.stderr)
        return 1
    sweep = sweeps.prepare(args.config, args.overrides, args.out, overwrite=args.overwrite)
    results = sweeps.run_sweep(sweep, jobs=args.jobs, launcher=args.launcher, slurm=args.slurm, cluster=args.cluster)
    return 1 if any(result.startswith("failed") for result in results.values()) else 0


def _summarize(args: argparse.Namespace) -> int:
    from dynrep import sweeps
    csv_path, png_path = sweeps.summarize(args.sweep)
    print(f"wrote {csv_path}" + (f" and {png_path}" if png_path else " (no finished point to plot)"))
    return 0


def _resume(args: argparse.Namespace):
    from dynrep import RepresentationLearner
    return RepresentationLearner.load(args.run, device=args.device)


def _metric_names(text: str | None) -> list[str] | None:
    """``--metrics``: None (the environment's defaults), ``none`` (model scores only) or a comma list."""
    if text is None:
        return None
    return [] if text == "none" else [name.strip() for name in text.split(",") if name.strip()]


def _evaluate(args: argparse.Namespace) -> int:
    scores = _resume(args).evaluate(_metric_names(args.metrics), num_train=args.num_train, num_test=args.num_test)
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        _print_scores(scores)
    return 0


def _animate(args: argparse.Namespace) -> int:
    from dynrep.training import distributed
    learner = _resume(args)
    run = Path(args.run)
    out = Path(args.output) if args.output else run.with_name(f"{run.name}_{args.kind}.gif")
    if distributed.is_main():  # under torchrun rank 0 alone writes
        print(learner.animate(out, kind=args.kind, num_frames=args.frames))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from dynrep import GridWorld, RepresentationLearner
    out = Path(args.out)
    print(f"dynrep demo: rotation learner on a 5x5 GridWorld (64x64 images), {args.steps} steps")
    learner = RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=args.seed,
                                    device=args.device)
    learner.train(args.steps, checkpoint_dir=out / "checkpoint", progress=not args.quiet, overwrite=True)
    from dynrep.memory import compact_heap
    from dynrep.training import distributed
    compact_heap()  # this process trains no more: its freed memory goes back (dynrep.memory)
    files = [learner.animate(out / "rollout.gif"), learner.animate(out / "traversal.gif", kind="traversal"),
             learner.plot_representation(out / "angles.png"), learner.plot_training(out / "training.png")
             ] if distributed.is_main() else []  # under torchrun rank 0 alone writes
    print("metrics (representation metrics on 2,000 training / 1,000 test points):")
    _print_scores(learner.evaluate(num_train=2000, num_test=1000))
    print("  (mig reads one code at a time: each factor is an angle in a plane of two codes, its cosine and sine,\n"
          "   which both determine it, so MIG's top-two gap is small by construction; see dynrep.metrics.mig)")
    print("wrote:", *files, out / "checkpoint", sep="\n  ")
    return 0


def _list(args: argparse.Namespace) -> int:
    from dynrep import list_envs, list_models
    print("environments:", ", ".join(list_envs()))
    print("models:      ", ", ".join(list_models()))
    return 0


def _presets(args: argparse.Namespace) -> int:
    from dynrep import presets
    if args.show is not None:
        print(presets.preset_text(args.show), end="")
        return 0
    descriptions = presets.describe_presets()
    width = max(map(len, descriptions))
    for name, description in descriptions.items():
        print(f"{name:<{width}}  {description}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from dynrep.data.download import download
    print(download(args.name, dest=args.dest, force=args.force, progress=not args.quiet, url=args.url))
    return 0


def _logger_flag(text: str) -> str:
    """``--logger``'s value, checked (argparse reports a bad one as a usage error)."""
    from dynrep.training.logging import logger_names
    try:
        logger_names(text, "--logger")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynrep", description="Disentangled representations of dynamical environments.",
        epilog="exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()))
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, training: bool = False) -> None:
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
        if training:
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("demo", help="train the rotation model on GridWorld, write GIFs, print metrics")
    p.add_argument("--steps", type=int, default=DEMO_STEPS)
    p.add_argument("--out", default="dynrep_demo", help="output directory, its files (checkpoint included) "
                                                        "replaced on each run (default: ./dynrep_demo)")
    common(p, training=True)
    p.set_defaults(func=_demo)

    p = sub.add_parser("train", help="train a model: from a run config file (a run folder) or from flags (a "
                                      "checkpoint directory)")
    p.add_argument("config", nargs="?", default=None, help="run config, YAML or .json, or preset:NAME (dynrep "
                                                            "presets); optional: without it the flags describe the run")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides of the run config (model.config.beta=4 trainer.steps=2000)")
    p.add_argument("--env", default=None, help="environment (default: gridworld)")
    p.add_argument("--model", default=None, help="model (default: rotation)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (required without a config file)")
    p.add_argument("--out", required=True, help="checkpoint directory (with a config file: the run folder)")
    p.add_argument("--time-limit", type=float, default=None, help="wall-clock budget in seconds")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--sync-every", type=int, default=None, metavar="N",
                   help="read the loss terms on the host every N steps (default: 1 on CPU, 10 on a GPU; the same "
                        "results for every N)")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint of another run in --out")
    p.add_argument("--logger", type=_logger_flag, default=None, metavar="{tensorboard,wandb}",
                   help="also log to tensorboard (OUT.tensorboard; with a run config RUN/tensorboard) and/or "
                        "Weights & Biases (OUT's folder/wandb; with a run config RUN/wandb), comma-separated for "
                        "both; the loss terms always go to a metrics.jsonl beside the checkpoint")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="evaluate every N steps and at the end, logging the scores (with a run config: its "
                        "evaluation section; without: dynrep evaluate's defaults)")
    p.add_argument("--safetensors", action="store_true", default=None,
                   help="also store the weights as model.safetensors in the checkpoint")
    p.add_argument("--compile", action="store_true", default=None,
                   help="run each step's loss (the forward pass) through torch.compile (the first steps compile)")
    p.add_argument("--autocast", default=None, metavar="bf16",
                   help="run each step's loss under bfloat16 autocast (default: float32 throughout)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE", help="environment argument")
    common(p, training=True)
    p.set_defaults(func=_train, seed=None, device=None)  # None: not given (the flag form's defaults: 0, auto)

    p = sub.add_parser("resume", help="continue a run folder from its checkpoint to its trainer.steps")
    p.add_argument("run", help="run folder (written by dynrep train RUN.yaml --out DIR)")
    p.add_argument("--steps", type=int, default=None, help="train this many more steps instead")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_resume_run)

    p = sub.add_parser("sweep", help="train a run config over a grid of values, one run folder per point; a "
                                      "rerun continues it")
    p.add_argument("config", help="run config, YAML or .json")
    p.add_argument("overrides", nargs="*", metavar="KEY=V1,V2",
                   help="swept keys (commas at the top level separate values: seed=0,1,2, "
                        "model.config.channels=[8,8],[16,16]); KEY=VALUE without one applies to every point")
    p.add_argument("--out", required=True, help="sweep folder (sweep.yaml, one run folder per point, summary.csv, "
                                                "summary.png)")
    p.add_argument("--jobs", type=int, default=None, help="points at once: local processes (default 1: in this "
                                                          "process) or submitit array tasks (default: all)")
    p.add_argument("--launcher", choices=["local", "submitit"], default="local",
                   help="local processes, or a Slurm job array through submitit (pip install dynrep[submitit])")
    p.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="submitit parameter: partition, time (minutes), gpus_per_node, cpus_per_task, mem_gb, "
                        "timeout_min, account, qos, ...")
    p.add_argument("--cluster", choices=["slurm", "local"], default=None,
                   help="submitit executor (default: Slurm when found; local: processes on this machine)")
    p.add_argument("--overwrite", action="store_true", help="replace another sweep in --out (its point folders "
                                                            "are deleted)")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("summarize", help="rebuild a sweep's summary.csv and summary.png")
    p.add_argument("sweep", help="sweep folder (written by dynrep sweep)")
    p.set_defaults(func=_summarize)

    p = sub.add_parser("evaluate", help="print the scores of a checkpoint")
    p.add_argument("run", help="checkpoint directory")
    p.add_argument("--json", action="store_true")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names (see dynrep.metrics.list_metrics()), or 'none'; "
                        "default: the environment's standard set")
    p.add_argument("--num-train", type=int, default=None, help="training points per metric (reference: 10000)")
    p.add_argument("--num-test", type=int, default=None, help="test points per metric (reference: 5000)")
    common(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("animate", help="write a rollout or traversal GIF of a checkpoint")
    p.add_argument("run", help="checkpoint directory")
    p.add_argument("--kind", choices=["rollout", "traversal"], default="rollout")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--output", default=None, help="GIF path (default: RUN_KIND.gif beside the run)")
    common(p)
    p.set_defaults(func=_animate)

    p = sub.add_parser("list", help="list registered environments and models")
    p.set_defaults(func=_list)

    p = sub.add_parser("presets", help="list the packaged run configs (dynrep train preset:NAME), or print one")
    p.add_argument("--show", default=None, metavar="NAME", help="print preset NAME's YAML (to copy and edit)")
    p.set_defaults(func=_presets)

    from dynrep.data.download import DATASETS
    p = sub.add_parser("download", help="download and verify a dataset into $DYNREP_DATA (~/.cache/dynrep)")
    p.add_argument("name", help="one of: " + ", ".join(DATASETS))
    p.add_argument("--force", action="store_true", help="download again even if the file is present")
    p.add_argument("--url", default=None, help="source to use instead of the official URL (mirror, file:// URL)")
    p.add_argument("--dest", type=Path, default=None, help="directory to write to (default: $DYNREP_DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_download)
    return parser


def _describe(err: BaseException) -> tuple[str, int]:
    """The one line (``error: ...`` or ``interrupted: ...``) and the exit code (:data:`EXIT_CODES`) of an error
    the user can cause."""
    from dynrep.data.download import DownloadError
    from dynrep.training import CheckpointError, NonFiniteLossError, TrainingInterrupted
    if isinstance(err, TrainingInterrupted):
        return f"interrupted: {err}", 128 + signal.Signals[err.signal_name].value
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", 128 + signal.SIGINT
    if isinstance(err, (ValueError, KeyError)):
        return f"error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", 2
    if isinstance(err, (CheckpointError, DownloadError, NonFiniteLossError)) or \
            (isinstance(err, OSError) and err.strerror is None):  # an OSError with a message of its own
        return f"error: {err}", 1
    hints = {errno.ENOSPC: "free some space or write elsewhere", errno.EACCES: "write elsewhere or fix the "
             "permissions", errno.EPERM: "write elsewhere or fix the permissions", errno.EROFS: "write elsewhere"}
    where = f": {err.filename}" if err.filename else ""
    return f"error: {err.strerror}{where}" + (f" ({hints[err.errno]})" if err.errno in hints else ""), 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dynrep`` console script; returns the exit code (:data:`EXIT_CODES`)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command in ("train", "sweep") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra  # KEY=VALUE overrides after --out DIR
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from dynrep.data.download import DownloadError
    from dynrep.training import CheckpointError, NonFiniteLossError, distributed
    # Under torchrun: one process group for the command, rank 0 alone prints, an error is shown by the first
    # rank that hits it, and the other ranks' consequent failures (PeerFailure) stay quiet.
    with contextlib.ExitStack() as stack:
        try:
            if distributed.init() and not distributed.is_main():
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
            return args.func(args)
        except distributed.PeerFailure:
            return 1
        except (KeyboardInterrupt, ValueError, KeyError, CheckpointError, DownloadError, NonFiniteLossError,
                OSError) as err:  # user errors and runtime failures: one clear line, no traceback
            message, code = _describe(err)
            if distributed.report_failure():
                print(f"dynrep {args.command}: {message}", file=sys.stderr)
            return code


if __name__ == "__main__":
    sys.exit(main())
