"""Run configs: one dataclass tree describes a whole run (environment, model, trainer, evaluation).

A :class:`RunConfig` round-trips YAML and JSON exactly (:func:`save_run_config`, :func:`load_run_config`),
takes dotted overrides (:func:`apply_overrides`, ``["model.config.beta=4", "trainer.steps=2000"]``) and
runs (:func:`run`) into a run folder::

    RUN_DIR/run.yaml      the resolved config (every model and environment setting), written before training
    RUN_DIR/checkpoint/   the learner's checkpoint (config.json + state.pt)
    RUN_DIR/scores.json   the evaluation at the end, its step and ``wall_time_s`` (the training seconds of every
                          call up to that step, killed ones too, plus the final evaluation's)
    RUN_DIR/checkpoint.metrics.jsonl   the logged loss terms (:mod:`dynrep.training.logging`)
    RUN_DIR/tensorboard/  with ``trainer.logger: tensorboard``, tensorboard's event files
    RUN_DIR/wandb/        with ``trainer.logger: wandb``, Weights & Biases' run files

``dynrep train RUN_DIR/run.yaml --out NEW_DIR`` re-runs a run; :func:`resume` continues it.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import re
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from dynrep.config import config_from_dict, config_to_dict, fits_type

RUN_FILE, CHECKPOINT_DIR, SCORES_FILE, TENSORBOARD_DIR = "run.yaml", "checkpoint", "scores.json", "tensorboard"
WANDB_DIR = "wandb"

__all__ = ["EnvConfig", "EvalConfig", "ModelConfig", "RunConfig", "TrainerConfig", "apply_overrides", "build_learner",
           "env_arguments", "load_run_config", "parse_override", "resolved", "resume", "run", "run_config_from_dict",
           "run_config_to_dict", "save_run_config"]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 numbers: PyYAML's YAML 1.1 resolver reads ``1e-3`` (no dot) as a string."""


# own copies of the resolver lists, so that SafeLoader itself is left as it is
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"""^(?:
     [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists), so that configs compare equal after a
    round trip."""
    return json.loads(json.dumps(value))


def env_arguments(name: str, args: dict[str, Any], prefix: str = "env.args.", required: bool = True) -> None:
    """Check ``args`` against environment ``name``'s constructor: an unknown key or (if ``required``) a
    missing required one is a ValueError naming it (as ``prefix + key``) and the arguments the environment
    takes."""
    from dynrep.envs.registry import env_class
    params = inspect.signature(env_class(name)).parameters
    names = [p.name for p in params.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(args) - set(names))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise ValueError(f"{prefix}{unknown[0]}: environment {name!r} has no argument {unknown[0]!r}; its "
                         f"arguments are {', '.join(names)}")
    missing = [n for n in names if params[n].default is inspect.Parameter.empty and n not in args]
    if missing and required:
        raise ValueError(f"environment {name!r} needs {prefix}{missing[0]}=VALUE")
    try:
        hints = typing.get_type_hints(env_class(name).__init__)
    except (NameError, TypeError):  # an annotation that cannot be resolved here: the constructor checks alone
        hints = {}
    for key, value in args.items():
        if key in hints and not fits_type(value, hints[key]):
            raise ValueError(f"{prefix}{key} must be of type {_type_name(hints[key])} for environment {name!r}, "
                             f"got {value!r}")


def _type_name(hint: Any) -> str:
    """``int | None`` for ``typing.Optional[int]``, ``Sequence[int]`` for ``typing.Sequence[int]``."""
    return str(hint).replace("typing.", "").replace("collections.abc.", "").replace("NoneType", "None") \
        if not isinstance(hint, type) else hint.__name__


@dataclass
class EnvConfig:
    """The environment: a registered name (``dynrep.list_envs()``) and its constructor arguments; with
    ``split`` (``dynrep.envs.splits.list_splits()``, e.g. ``"shapes3d/recomb2range/shape2ohue"``) and its
    dataset's ``modifiers``, the training part of that combinatorial-generalisation split."""

    name: str = "gridworld"
    args: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    modifiers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        env_arguments(self.name, self.args)
        self.args = _plain(self.args)
        _check_split(self.name, self.split, self.modifiers)
        self.modifiers = _plain(self.modifiers)


def _check_split(env: str, split: str | None, modifiers: Sequence[str]) -> None:
    """ValueError unless ``split`` is None or a split of environment ``env`` (or ``env`` itself, for its
    ``modifiers`` alone) and every modifier is one of that dataset's."""
    from dynrep.envs.splits import list_modifiers, list_splits
    if split is None:
        if modifiers:
            raise ValueError(f"env.modifiers {list(modifiers)!r} need an env.split (e.g. env.split={env})")
        return
    names = [name for name in list_splits() if name.split("/")[0] == env]
    if split != env and split not in names:
        raise ValueError(f"env.split {split!r} is not a split of environment {env!r}; its splits are "
                         f"{', '.join(names) or 'none'}")
    allowed = list_modifiers(env)
    unknown = [m for m in modifiers if m not in allowed]
    if unknown:
        raise ValueError(f"env.modifiers: {unknown[0]!r} is not a modifier of {env!r}; its modifiers are "
                         f"{', '.join(allowed) or 'none'}")


@dataclass
class ModelConfig:
    """The model: a registered name (``dynrep.list_models()``) and overrides of its ``Config`` (checked
    against it: unknown keys and wrong types are ValueErrors)."""

    name: str = "rotation"
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from dynrep.models.registry import model_class
        config_from_dict(model_class(self.name).Config, self.config, what=f"model.config ({self.name!r} model)")
        self.config = _plain(self.config)


@dataclass
class TrainerConfig:
    """How long and where to train: ``steps`` optimiser steps in total (``time_limit`` seconds at most per
    ``dynrep train`` / ``resume`` call), a checkpoint every ``checkpoint_every`` steps (and at the end),
    ``threads`` torch CPU threads (None: torch's default), with ``compile`` each step's loss through
    ``torch.compile``, with ``autocast: bf16`` under bfloat16 autocast (both off by default; not saved in the
    checkpoint, so a resume may change them), ``seed`` of the learner; the loss terms of every
    ``log_every``-th step go to ``checkpoint.metrics.jsonl`` and, with ``logger: tensorboard``, to tensorboard
    event files in ``RUN_DIR/tensorboard``, with ``logger: wandb`` to a Weights & Biases run in ``RUN_DIR/wandb``
    (``logger: tensorboard,wandb``: both; :mod:`dynrep.training.logging`). With ``eval_every`` the run's
    ``evaluation`` is also done every ``eval_every`` steps and after the last step, its scores logged as the
    loss terms are (:class:`~dynrep.training.evaluation.PeriodicEvaluation`). With ``safetensors`` the
    checkpoint also holds the weights as ``model.safetensors``. ``sync_every``: steps between the host's waits
    for the device (None: 1 on CPU, 10 on a GPU; the results are the same for every value:
    :meth:`~dynrep.training.trainer.Trainer.fit`)."""

    steps: int = 1000
    time_limit: float | None = None
    checkpoint_every: int | None = None
    device: str = "auto"
    threads: int | None = None
    compile: bool = False
    autocast: str | None = None
    seed: int = 0
    log_every: int = 10
    logger: str | None = None
    eval_every: int | None = None
    safetensors: bool = False
    sync_every: int | None = None

    def __post_init__(self) -> None:
        from dynrep.checks import check_autocast, check_int
        check_int("trainer.steps", self.steps, 0)
        check_autocast("trainer.autocast", self.autocast)
        check_int("trainer.seed", self.seed, 0)
        check_int("trainer.log_every", self.log_every, 1)
        from dynrep.training.logging import logger_names
        logger_names(self.logger, "trainer.logger")
        for name in ("checkpoint_every", "threads", "eval_every", "sync_every"):
            if getattr(self, name) is not None:
                check_int(f"trainer.{name}", getattr(self, name), 1)
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"trainer.time_limit must be > 0 seconds or null, got {self.time_limit!r}")


@dataclass
class EvalConfig:
    """The evaluation at the end of a run (and every ``trainer.eval_every`` steps, if set):
    :meth:`RepresentationLearner.evaluate` with ``metrics`` (None:
    the environment's defaults; ``[]``: model scores only), ``num_train`` / ``num_test`` points per metric
    and per-metric ``options`` (``{"dci": {...}}``)."""

    metrics: list[str] | None = None
    num_train: int | None = None
    num_test: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from dynrep.checks import check_int
        from dynrep.metrics.compute import list_metrics, metric_options
        for name in ("num_train", "num_test"):
            if getattr(self, name) is not None:
                check_int(f"evaluation.{name}", getattr(self, name), 1)
        for where, names in (("evaluation.metrics", self.metrics or []), ("evaluation.options", self.options)):
            unknown = sorted(set(names) - set(list_metrics()))
            if unknown:
                raise ValueError(f"{where}: unknown metric {unknown[0]!r}; metrics are {', '.join(list_metrics())}")
        for metric, options in self.options.items():
            allowed = metric_options(metric)
            unknown = sorted(set(options) - set(allowed)) if isinstance(options, dict) else None
            if unknown is None or unknown:
                raise ValueError(f"evaluation.options.{metric} must map options of metric {metric!r} to values; "
                                 f"{'got ' + repr(options) if unknown is None else 'it has no ' + repr(unknown[0])}"
                                 f"; its options are {', '.join(allowed) or 'none'}")


@dataclass
class RunConfig:
    """A whole run; every part has defaults (``RunConfig()`` is the GridWorld rotation model, 1000 steps)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)


_SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)}


def run_config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The plain nested dict (lists, no tuples) of ``config``: what run.yaml holds."""
    return config_to_dict(config)


def run_config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Build a RunConfig from a nested dict (missing keys take their defaults); an unknown key or a wrong
    type is a ValueError naming its dotted key and the allowed keys."""
    if not isinstance(values, dict):
        raise ValueError(f"a run config must be a mapping of {sorted(_SECTIONS)}, got {values!r}")
    unknown = sorted(set(values) - set(_SECTIONS))
    if unknown:
        raise ValueError(f"unknown run config key {unknown[0]!r}; allowed: {', '.join(_SECTIONS)}")
    parts = {}
    for name, cls in _SECTIONS.items():
        section = values.get(name, {})
        if not isinstance(section, dict):
            raise ValueError(f"run config key {name!r} must be a mapping, got {section!r}")
        parts[name] = config_from_dict(cls, section, what=name)
    return RunConfig(**parts)


def load_run_config(path: str | Path) -> RunConfig:
    """Read a run config from a ``.json`` file or YAML (any other suffix), or the packaged preset NAME for
    ``"preset:NAME"`` (:mod:`dynrep.presets`); ``save_run_config`` then ``load_run_config`` gives an equal
    object."""
    from dynrep.presets import PRESET_PREFIX, preset_path
    if isinstance(path, str) and path.startswith(PRESET_PREFIX):
        path = preset_path(path[len(PRESET_PREFIX):])
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"run config {str(path)!r} {'is a directory' if path.is_dir() else 'does not exist'}: give "
                         "a YAML or .json run config file (a run folder's run.yaml re-runs it)")
    text = path.read_text()
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_Loader)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{' '.join(str(err).split())}") from None
    return run_config_from_dict({} if values is None else values)


def save_run_config(config: RunConfig, path: str | Path) -> Path:
    """Write ``config`` as JSON (``.json``) or YAML (any other suffix), atomically; returns the path."""
    path = Path(path)
    values = run_config_to_dict(config)
    text = json.dumps(values, indent=2) + "\n" if path.suffix == ".json" else \
        yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    from dynrep.viz.files import replaced_atomically
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)
    return path


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.config.beta=4"`` -> ``(["model", "config", "beta"], 4)``; the value is a YAML scalar or list
    (``[8,8]``, ``null``, ``1e-3``, bare words are strings)."""
    key, sep, raw = text.partition("=")
    parts = key.split(".")
    if not sep or not all(parts) or any(c.isspace() for c in key):
        raise ValueError(f"override {text!r} is not KEY=VALUE with a dotted KEY (e.g. trainer.steps=2000)")
    try:
        value = yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError as err:
        reason = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ValueError(f"override {key}: value {raw!r} is not a YAML value ({reason})") from None
    return parts, value


def apply_overrides(config: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """A new RunConfig: ``config`` with each ``"dotted.key=value"`` of ``overrides`` set, in order.

    Keys are the dataclass fields (``trainer.steps``), the model's ``Config`` fields (``model.config.beta``)
    and the environment's constructor arguments (``env.args.size``). An unknown key or a wrong type is a
    ValueError naming the dotted key, the bad value and the allowed keys (or type).
    """
    values = run_config_to_dict(config)
    for text in overrides:
        parts, value = parse_override(text)
        dotted = ".".join(parts)
        node, allowed, where = values, list(_SECTIONS), "a run config"
        for depth, part in enumerate(parts):
            if part not in allowed:
                raise ValueError(f"unknown key {dotted!r} in override {text!r}: {where} has no {part!r}; allowed: "
                                 f"{', '.join(allowed)}")
            if depth == len(parts) - 1:
                break
            prefix = ".".join(parts[:depth + 1])
            if not isinstance(node.setdefault(part, {}), dict):  # free-form mappings start empty
                raise ValueError(f"unknown key {dotted!r} in override {text!r}: {prefix} is a value, not a section")
            node, where = node[part], prefix
            allowed = _allowed(values, prefix, node)
        previous = node.get(parts[-1])
        node[parts[-1]] = value
        if dotted in ("model.name", "env.name") and value != previous:  # the old settings were for the old one
            values[parts[0]]["config" if parts[0] == "model" else "args"] = {}
            if parts[0] == "env":
                values["env"].update(split=None, modifiers=[])
        try:
            _check_section(values, parts[0])
        except (ValueError, KeyError) as err:  # KeyError: an unknown model or environment name
            reason = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise ValueError(f"override {dotted}={value!r}: {reason}") from None
    return run_config_from_dict(values)  # now with every override: an environment's required arguments


def _check_section(values: dict[str, Any], section: str) -> None:
    """Validate one section of a run config dict; an environment's required arguments may still be missing
    (a later override can give them)."""
    if section == "env":
        if not isinstance(values["env"]["name"], str):
            raise ValueError(f"env option name must be of type str, got {values['env']['name']!r}")
        env_arguments(values["env"]["name"], values["env"]["args"], required=False)
    else:
        config_from_dict(_SECTIONS[section], values[section], what=section)


def _allowed(values: dict[str, Any], prefix: str, node: dict[str, Any]) -> list[str]:
    """The keys an override may set under ``prefix``: free-form mappings take the keys their owner accepts."""
    if prefix == "model.config":
        from dynrep.models.registry import model_class
        return [f.name for f in dataclasses.fields(model_class(values["model"]["name"]).Config)]
    if prefix == "env.args":
        from dynrep.envs.registry import env_class
        params = inspect.signature(env_class(values["env"]["name"])).parameters.values()
        return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if prefix == "evaluation.options":
        from dynrep.metrics.compute import list_metrics
        return list_metrics()
    if prefix.startswith("evaluation.options."):
        from dynrep.metrics.compute import metric_options
        return metric_options(prefix.split(".")[2])
    return [f.name for f in dataclasses.fields(_SECTIONS[prefix]())]


def _use_threads(config: RunConfig) -> None:
    """torch's CPU threads to ``trainer.threads``, if given."""
    if config.trainer.threads is not None:
        import torch
        torch.set_num_threads(config.trainer.threads)


def build_learner(config: RunConfig):
    """A fresh :class:`~dynrep.RepresentationLearner` for ``config`` (sets torch's CPU threads if
    ``trainer.threads`` is given)."""

    from dynrep.envs.registry import make_env
    from dynrep.learner import RepresentationLearner
    _use_threads(config)
    env = make_env(config.env.name, **config.env.args)
    if config.env.split is not None:
        env = env.split(config.env.split, config.env.modifiers)[0]
    return RepresentationLearner(env, config.model.name, seed=config.trainer.seed, device=config.trainer.device,
                                 compile=config.trainer.compile, autocast=config.trainer.autocast,
                                 **config.model.config)


def resolved(config: RunConfig, learner) -> RunConfig:
    """``config`` with every environment argument and model setting spelled out, as ``learner`` (built from
    it) uses them: what run.yaml records."""
    return dataclasses.replace(config, env=dataclasses.replace(config.env, args=learner.env.get_config()),
                               model=ModelConfig(config.model.name, config_to_dict(learner.model.config)))


def _logged_seconds(path: Path, step: int) -> float:
    """Seconds of training up to ``step`` that the metrics.jsonl at ``path`` records, summed over the ``train``
    calls that wrote it (a line whose call began, ``time - elapsed_s``, after the line before it was written
    starts another call); 0.0 without the file."""
    total, last = 0.0, None
    lines = path.read_text().splitlines() if path.is_file() else []
    for line in lines:
        try:
            record = json.loads(line)
            if record["step"] > step:
                continue
            began, elapsed, written = record["time"] - record["elapsed_s"], record["elapsed_s"], record["time"]
        except (ValueError, KeyError, TypeError):  # a torn line
            continue
        if last is not None and began <= last[1]:
            total -= last[0]  # the same call: its latest line counts
        total, last = total + elapsed, (elapsed, written)
    return total


def _train_and_evaluate(learner, config: RunConfig, out: Path, steps: int, *, progress: bool,
                        overwrite: bool) -> dict[str, float]:
    from dynrep.training import distributed
    from dynrep.training.evaluation import PeriodicEvaluation
    from dynrep.training.logging import loggers, metrics_path
    start, trainer, ev = time.monotonic(), config.trainer, config.evaluation
    before = _logged_seconds(metrics_path(out / CHECKPOINT_DIR), learner.step)  # earlier calls, killed ones too

    def evaluate() -> dict[str, float]:
        return learner.evaluate(ev.metrics, num_train=ev.num_train, num_test=ev.num_test, options=ev.options or None)

    periodic = [] if trainer.eval_every is None else [PeriodicEvaluation(evaluate, trainer.eval_every)]
    callbacks = loggers(trainer.logger, {"tensorboard": out / TENSORBOARD_DIR, "wandb": out}, trainer.log_every,
                        config=run_config_to_dict(resolved(config, learner)), run_name=out.resolve().name,
                        run_id=learner.run_id)
    learner.train(steps, time_limit=trainer.time_limit, progress=progress, checkpoint_dir=out / CHECKPOINT_DIR,
                  checkpoint_every=trainer.checkpoint_every, overwrite=overwrite, log_every=trainer.log_every,
                  safetensors=trainer.safetensors, callbacks=[*periodic, *callbacks], sync_every=trainer.sync_every)
    last = periodic[0].history[-1] if periodic and periodic[0].history else (None, None)
    scores = last[1] if last[0] == learner.step else evaluate()  # already done: the same weights, the same scores
    if distributed.is_main():  # under torchrun rank 0 alone writes
        wall = before + time.monotonic() - start
        (out / SCORES_FILE).write_text(json.dumps({"step": learner.step, "scores": scores, "wall_time_s": wall},
                                                  indent=2) + "\n")
    return scores


def _check_run_folder(out: Path) -> None:
    """CheckpointError unless ``out`` is new, empty or a run folder (its files and their helpers alone)."""
    from dynrep.training.checkpoint import CheckpointError
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is a file, not a run folder; choose a directory path")
    from dynrep.training.logging import metrics_path
    ours = (RUN_FILE, CHECKPOINT_DIR, SCORES_FILE, TENSORBOARD_DIR, WANDB_DIR,
            metrics_path(out / CHECKPOINT_DIR).name)
    stray = sorted(p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith(
        tuple(f".{name}." for name in ours))) if out.is_dir() else []
    if stray:
        raise CheckpointError(f"{out} holds files that are not a dynrep run folder ({', '.join(stray[:5])}); "
                              "refusing to write into it: choose a new or empty directory")


def run(config: RunConfig, out_dir: str | Path, *, progress: bool = False, overwrite: bool = False):
    """Train and evaluate ``config`` in run folder ``out_dir``; returns ``(learner, scores)``.

    Writes the resolved config to ``out_dir/run.yaml`` before the first step, checkpoints into
    ``out_dir/checkpoint`` (refused if it holds another run's checkpoint, unless ``overwrite``) and the
    final scores to ``out_dir/scores.json`` (``{"step": ..., "scores": {...}, "wall_time_s": ...}``). ``out_dir``
    must be new, empty or a run folder: anything else is a :class:`~dynrep.training.CheckpointError` before any
    file is written.
    Under torchrun every rank trains and evaluates; rank 0 alone checks and writes the folder.
    """
    from dynrep.training import distributed
    from dynrep.training.checkpoint import check_destination
    out = Path(out_dir)
    learner = build_learner(config)
    if distributed.is_main():
        _check_run_folder(out)
        check_destination(out / CHECKPOINT_DIR, run_id=learner.run_id, overwrite=overwrite)  # before run.yaml
        (out / SCORES_FILE).unlink(missing_ok=True)  # an earlier run's scores must not pass for this run's
        save_run_config(resolved(config, learner), out / RUN_FILE)
    return learner, _train_and_evaluate(learner, config, out, config.trainer.steps, progress=progress,
                                        overwrite=overwrite)


def resume(run_dir: str | Path, steps: int | None = None, *, progress: bool = False):
    """Continue the run in ``run_dir`` from its checkpoint: up to run.yaml's ``trainer.steps`` in total, or
    ``steps`` more (then run.yaml's ``trainer.steps`` becomes the new total); returns ``(learner, scores)``.

    A missing run.yaml or checkpoint is a :class:`~dynrep.training.CheckpointError`; nothing left to do is a
    ValueError. A run resumed after a kill ends bitwise equal to an uninterrupted run (CPU, same threads).
    """
    from dynrep.checks import check_int
    from dynrep.learner import RepresentationLearner
    from dynrep.training import distributed
    from dynrep.training.checkpoint import CheckpointError
    out = Path(run_dir)
    if not (out / RUN_FILE).is_file():
        raise CheckpointError(f"{out} is not a run folder: it has no {RUN_FILE} (run folders are written by "
                              "`dynrep train RUN.yaml --out DIR`)")
    config = load_run_config(out / RUN_FILE)
    _use_threads(config)
    learner = RepresentationLearner.load(out / CHECKPOINT_DIR, device=config.trainer.device,
                                         compile=config.trainer.compile, autocast=config.trainer.autocast)
    if steps is None:
        remaining = config.trainer.steps - learner.step
        if remaining <= 0:
            raise ValueError(f"nothing left to do: run {out} is at step {learner.step} of trainer.steps="
                             f"{config.trainer.steps}; pass --steps N to train N more steps")
    else:
        remaining = check_int("--steps", steps, 1)
        config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer,
                                                                         steps=learner.step + remaining))
        if distributed.is_main():
            save_run_config(config, out / RUN_FILE)
    return learner, _train_and_evaluate(learner, config, out, remaining, progress=progress, overwrite=False)
