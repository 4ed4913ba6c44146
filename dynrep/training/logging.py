"""Logging people can watch: a ``metrics.jsonl`` that needs nothing to read, tensorboard and Weights & Biases.

All are :class:`~dynrep.training.callbacks.Callback` s: pass them to ``learner.train(callbacks=[...])``. Each
also records the scores of a :class:`~dynrep.training.evaluation.PeriodicEvaluation` (its ``on_evaluation``
hook) and leaves the time spent evaluating out of its steps/s. None opens a file or starts a process before
``on_train_begin``, so a logger built on every process can be dropped on all but one before training.
With ``checkpoint_dir`` the learner also writes a :class:`JsonlLogger` by itself, to
:func:`metrics_path` ``(checkpoint_dir)``: the file ``<checkpoint_dir>.metrics.jsonl`` beside the checkpoint
directory, because a checkpoint directory holds ``config.json`` and ``state.pt`` and nothing else.
"""
from __future__ import annotations

import abc
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from dynrep.checks import check_int
from dynrep.config import config_to_dict
from dynrep.training.callbacks import Callback
from dynrep.viz.files import replaced_atomically


def metrics_path(checkpoint_dir: str | Path) -> Path:
    """Where ``learner.train(checkpoint_dir=...)`` writes its metrics: ``runs/gw`` -> ``runs/gw.metrics.jsonl``."""
    checkpoint_dir = Path(checkpoint_dir)
    return checkpoint_dir.with_name(checkpoint_dir.name + ".metrics.jsonl")


class _Cadence(Callback, abc.ABC):
    """Shared by the loggers: which steps to log, the steps/s since the last logged step, the rates."""

    main_process_only = True  # under torchrun rank 0 alone writes
    lazy_logs = True

    def __init__(self, every: int):
        self.every = check_int("every", every, 1)
        self.logged_step = -1

    def on_train_begin(self, trainer, steps: int) -> None:
        self.start = self.mark = time.monotonic()
        self.mark_step = self.logged_step = trainer.step

    def on_step_end(self, trainer, logs: Mapping[str, float]) -> None:
        if trainer.step % self.every == 0:
            self._log(trainer, dict(logs))

    def on_evaluation(self, trainer, scores: dict[str, float], seconds: float) -> None:
        self.mark += seconds  # the steps/s of training alone

    def on_train_end(self, trainer, reason: str) -> None:
        # The last step of a call is logged whatever its number, so the file always ends where training did.
        if trainer.last_logs is not None and self.logged_step != trainer.step:
            self._log(trainer, trainer.last_logs)

    def _log(self, trainer, logs: dict[str, float]) -> None:
        now = time.monotonic()
        rate = (trainer.step - self.mark_step) / max(now - self.mark, 1e-9)
        self.mark, self.mark_step, self.logged_step = now, trainer.step, trainer.step
        self.write(trainer, logs, rate, now - self.start)

    @abc.abstractmethod
    def write(self, trainer, logs: dict[str, float], steps_per_s: float, elapsed: float) -> None:
        """Record one logged step: its loss terms, the steps/s since the last one, seconds since the start."""


class JsonlLogger(_Cadence):
    """Appends one JSON object per logged step (every ``every`` steps and the last step of each ``train``) to
    ``path``, and one per periodic evaluation. The two kinds of line::

        {"step": 20, "terms": {"loss": 0.61, "recon": 0.58, ...}, "lr": [0.001], "steps_per_s": 41.2,
         "elapsed_s": 0.49, "time": 1764768000.1}
        {"step": 500, "evaluation": {"reconstruction_error": 0.07, "mig": 0.31, ...}, "seconds": 2.3,
         "time": 1764768012.4}

    A loss line (it has ``terms``): every loss term of that step (the values of ``learner.history`` at index
    ``step - 1``), ``lr`` each optimiser parameter group's learning rate, ``steps_per_s`` the training rate
    since the previous logged step (evaluations left out), ``elapsed_s`` the seconds since this ``train``
    call began (evaluations included), ``time`` the Unix time. An evaluation line (it has ``evaluation``):
    the scores of the model after ``step`` steps and the ``seconds`` the evaluation took.

    Each line goes to the file in one ``write`` call on an unbuffered descriptor, so ``tail -f`` shows it at
    once and a killed process leaves whole lines only. When training begins, lines of steps after the
    trainer's step (logged by a run that was killed after its last checkpoint, then resumed from it) and a
    torn last line (a power cut) are removed, so the file always describes the history that led to the
    current parameters. Read it with ``[json.loads(line) for line in open(path)]`` or
    ``pandas.read_json(path, lines=True)``.
    """

    def __init__(self, path: str | Path, every: int = 10):
        super().__init__(every)
        self.path = Path(path)

    def on_train_begin(self, trainer, steps: int) -> None:
        super().on_train_begin(trainer, steps)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._keep_until(trainer.step)

    def _keep_until(self, step: int) -> None:
        """Rewrite the file (atomically) without torn lines or lines of steps after ``step``, if it has any."""
        if not self.path.exists():
            return
        lines = self.path.read_bytes().split(b"\n")
        kept = []
        for line in lines[:-1]:  # what follows the last newline is empty or torn
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + b"\n")
            except (ValueError, KeyError, TypeError):
                continue
        if len(kept) == len(lines) - 1 and not lines[-1]:
            return
        with replaced_atomically(self.path) as temp:
            temp.write_bytes(b"".join(kept))

    def write(self, trainer, logs: dict[str, float], steps_per_s: float, elapsed: float) -> None:
        self._append({"step": trainer.step, "terms": logs,
                      "lr": [group["lr"] for group in trainer.optimizer.param_groups],
                      "steps_per_s": steps_per_s, "elapsed_s": elapsed, "time": time.time()})

    def _append(self, record: dict[str, Any]) -> None:
        """One line, in one ``write`` call."""
        # Opened per line: nothing stays open if training raises, and a logged step costs one open more.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)

    def on_evaluation(self, trainer, scores: dict[str, float], seconds: float) -> None:
        super().on_evaluation(trainer, scores, seconds)
        self._append({"step": trainer.step, "evaluation": scores, "seconds": seconds, "time": time.time()})


def image_grid(true: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """One picture ``[C, 2 * B * H, (T + 1) * W]`` in [0, 1] of episodes ``true`` (uint8 or [0, 1] floats) and
    ``predicted`` (floats in [0, 1]), both ``[B, T + 1, C, H, W]``: for each episode its frames in a row,
    the model's frames in the row below."""
    true = true.float() / 255 if not true.is_floating_point() else true.float()
    pairs = torch.stack([true, predicted.float()], dim=1)  # [B, 2, T+1, C, H, W]
    b, _, t, c, h, w = pairs.shape
    return pairs.permute(3, 0, 1, 4, 2, 5).reshape(c, b * 2 * h, t * w).clamp(0, 1)


def _rgb(image: torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` uint8 of a ``[C, H, W]`` picture in [0, 1] (C = 1 or 3)."""
    pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


class _Writer(_Cadence, abc.ABC):
    """Shared by tensorboard and wandb: which scalars, the config, the fixed episodes and their pictures."""

    def __init__(self, every: int, images_every: int | None, config: dict[str, Any] | None, num_episodes: int,
                 num_frames: int | None, seed: int):
        super().__init__(every)
        self.images_every = None if images_every is None else check_int("images_every", images_every, 1)
        self.num_episodes = check_int("num_episodes", num_episodes, 1)
        self.num_frames = None if num_frames is None else check_int("num_frames", num_frames, 2)
        self.config, self.seed = config, seed
        self.episodes = None

    def on_train_begin(self, trainer, steps: int) -> None:
        super().on_train_begin(trainer, steps)
        model, env = trainer.model, trainer.env
        config = self.config if self.config is not None else {
            "model": {"name": model.model_name, "config": config_to_dict(model.config)},
            "env": {"name": env.env_name, "config": env.get_config()}}
        self.open(trainer, config)
        if self.images_every is not None and self.episodes is None and model.has_decoder \
                and len(model.observation_shape) == 3:
            c = model.config
            self.episodes = env.sample_trajectories(self.num_episodes, c.episode_length,
                                                    np.random.default_rng(self.seed),
                                                    c.max_action_magnitude).to(trainer.device)

    def write(self, trainer, logs: dict[str, float], steps_per_s: float, elapsed: float) -> None:
        values = {f"loss/{name}": value for name, value in logs.items()}
        values.update({f"lr/group{i}": group["lr"] for i, group in enumerate(trainer.optimizer.param_groups)})
        values["perf/steps_per_s"] = steps_per_s
        self.scalars(values, trainer.step)

    def on_evaluation(self, trainer, scores: dict[str, float], seconds: float) -> None:
        super().on_evaluation(trainer, scores, seconds)
        self.scalars({f"eval/{name}": value for name, value in scores.items()}, trainer.step)

    def on_step_end(self, trainer, logs: Mapping[str, float]) -> None:
        super().on_step_end(trainer, logs)
        if self.episodes is not None and trainer.step % self.images_every == 0:
            trainer.sync()  # never the model of steps after a non-finite one
            self.write_images(trainer)

    def write_images(self, trainer) -> None:
        """Add the ``reconstructions`` grid and (unless ``num_frames`` is None) the ``traversal`` picture of the
        current model (it is left in training mode)."""
        from dynrep.viz.gif import traversal_frames, traversal_grid
        model = trainer.model
        model.eval()
        # The trainer's generators are untouched; fork_rng also keeps the global one as it was.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            predicted = model.predict(self.episodes)
            traversal = None if self.num_frames is None else \
                traversal_frames(model, trainer.env, self.episodes.obs[:1, 0], self.num_frames)
        model.train()
        images = {"reconstructions": _rgb(image_grid(self.episodes.obs.cpu(), predicted.cpu()))}
        if traversal is not None:
            images["traversal"] = traversal_grid(*traversal)
        self.images(images, trainer.step)

    @abc.abstractmethod
    def open(self, trainer, config: dict[str, Any]) -> None:
        """Start writing; record ``config`` (a JSON-able dict)."""

    @abc.abstractmethod
    def scalars(self, values: dict[str, float], step: int) -> None:
        """Record ``{tag: value}`` at ``step``."""

    @abc.abstractmethod
    def images(self, images: dict[str, np.ndarray], step: int) -> None:
        """Record ``{tag: [H, W, 3] uint8 picture}`` at ``step``."""


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch's module imports the tensorboard package
        raise ImportError("TensorBoardLogger needs the tensorboard package: pip install dynrep[tensorboard] "
                          "(or pip install tensorboard)") from err
    return SummaryWriter


class TensorBoardLogger(_Writer):
    """Tensorboard event files in ``log_dir``: every ``every`` steps (and the last of each ``train``) the
    scalars ``loss/<term>`` for every loss term, ``lr/group<i>`` for each optimiser parameter group and
    ``perf/steps_per_s`` (evaluations left out); ``eval/<score>`` for every score of each periodic evaluation
    (:class:`~dynrep.training.evaluation.PeriodicEvaluation`); once, the text ``config`` (``config``, a
    JSON-able dict, or by default the model's name and config and the world's name and config); every
    ``images_every`` steps (None: never), for image worlds and models with a decoder, two images:
    ``reconstructions``, :func:`image_grid` of ``num_episodes`` fixed episodes (drawn once, with
    ``numpy.random.default_rng(seed)``, not from the training stream) and the model's ``predict`` of them
    (open-loop rollouts for models with dynamics, reconstructions otherwise), and ``traversal``, every frame of
    the traversal GIF ``learner.animate(path, "traversal", num_frames=num_frames)`` draws, from the first
    frame of the first fixed episode (:func:`dynrep.viz.gif.traversal_grid`; ``num_frames`` None: no
    traversal). Watch with ``tensorboard --logdir LOG_DIR``. Needs ``pip install dynrep[tensorboard]``.
    """

    def __init__(self, log_dir: str | Path, every: int = 10, images_every: int | None = 500, *,
                 config: dict[str, Any] | None = None, num_episodes: int = 4, num_frames: int | None = 20,
                 seed: int = 0):
        super().__init__(every, images_every, config, num_episodes, num_frames, seed)
        self.log_dir = Path(log_dir)
        self.writer_class = _summary_writer()
        self.writer = None

    def open(self, trainer, config: dict[str, Any]) -> None:
        self.writer = self.writer_class(log_dir=str(self.log_dir))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", trainer.step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def images(self, images: dict[str, np.ndarray], step: int) -> None:
        for tag, image in images.items():
            self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()

    def on_train_end(self, trainer, reason: str) -> None:
        super().on_train_end(trainer, reason)
        self.writer.close()


def _wandb():
    try:
        import wandb
    except ImportError as err:
        raise ImportError("WandbLogger needs the wandb package: pip install dynrep[wandb] (or pip install "
                          "wandb)") from err
    return wandb


class WandbLogger(_Writer):
    """A Weights & Biases run: the scalars and images of :class:`TensorBoardLogger` (same names, same steps;
    images as ``wandb.Image``), the config (by default the model's and the world's) as the run's config.

    Each ``train`` call is one wandb run, started in ``on_train_begin`` (``wandb.init(project=project,
    name=name, dir=dir, mode=mode, config=..., id=run_id, resume="allow")``) and finished when training ends;
    with ``run_id`` (a run config's runs pass the learner's :attr:`~dynrep.RepresentationLearner.run_id`, which a
    resumed learner keeps) the calls of one run are one wandb run: a resumed run continues it (offline: each call
    writes its own ``offline-run-*`` folder under that id, and ``wandb sync`` joins them). wandb writes the run's
    files to ``DIR/wandb`` (``dir`` None: ``$WANDB_DIR/wandb`` or ``./wandb``); ``mode`` is ``"online"``,
    ``"offline"`` (no network, no login: ``wandb sync DIR/wandb/offline-run-*`` uploads it later),
    ``"disabled"`` or None (``$WANDB_MODE``, else online, which needs ``wandb login``). Needs
    ``pip install dynrep[wandb]``.
    """

    def __init__(self, dir: str | Path | None = None, every: int = 10, images_every: int | None = 500, *,
                 project: str = "dynrep", name: str | None = None, mode: str | None = None,
                 config: dict[str, Any] | None = None, num_episodes: int = 4, num_frames: int | None = 20,
                 seed: int = 0, run_id: str | None = None):
        super().__init__(every, images_every, config, num_episodes, num_frames, seed)
        self.dir, self.project, self.name, self.mode, self.run_id = dir, project, name, mode, run_id
        self.wandb = _wandb()
        self.run = None

    def open(self, trainer, config: dict[str, Any]) -> None:
        if self.dir is not None:
            Path(self.dir).mkdir(parents=True, exist_ok=True)
        self.run = self.wandb.init(project=self.project, name=self.name, mode=self.mode, config=config,
                                   dir=None if self.dir is None else str(self.dir), reinit="create_new",
                                   id=self.run_id, resume=None if self.run_id is None else "allow")

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def images(self, images: dict[str, np.ndarray], step: int) -> None:
        self.run.log({tag: self.wandb.Image(image) for tag, image in images.items()}, step=step)

    def on_train_end(self, trainer, reason: str) -> None:
        super().on_train_end(trainer, reason)
        self.run.finish(exit_code=0 if reason in ("steps", "time_limit") else 1)


#: What ``--logger`` and a run config's ``trainer.logger`` may name (several: comma-separated).
LOGGER_NAMES = ("tensorboard", "wandb")


def logger_names(text: str | None, key: str = "trainer.logger") -> list[str]:
    """``"tensorboard,wandb"`` -> ``["tensorboard", "wandb"]``; None -> ``[]``; an unknown or repeated name is a
    ValueError naming ``key``."""
    if text is None:
        return []
    names = [name.strip() for name in text.split(",")] if isinstance(text, str) else None
    if names is None or not all(name in LOGGER_NAMES for name in names) or len(set(names)) != len(names):
        raise ValueError(f"{key} must name one or more of {', '.join(LOGGER_NAMES)}, separated by commas "
                         f"(e.g. tensorboard,wandb), got {text!r}")
    return names


def loggers(name: str | None, log_dirs: dict[str, str | Path], every: int = 10, *,
            config: dict[str, Any] | None = None, run_name: str | None = None,
            run_id: str | None = None) -> list[Callback]:
    """The callbacks of ``name`` (None, ``"tensorboard"``, ``"wandb"`` or both, comma-separated: what
    ``--logger`` and a run config's ``trainer.logger`` choose) beyond the default jsonl, each logging every
    ``every`` steps: a :class:`TensorBoardLogger` writing to ``log_dirs["tensorboard"]``, a
    :class:`WandbLogger` with ``dir=log_dirs["wandb"]``, ``name=run_name`` and ``run_id``; ``config`` is what
    both record (None: the model's and the world's)."""
    built = []
    for logger in logger_names(name, "logger"):
        if logger == "tensorboard":
            built.append(TensorBoardLogger(log_dirs["tensorboard"], every=every, config=config))
        else:
            built.append(WandbLogger(log_dirs["wandb"], every=every, config=config, name=run_name, run_id=run_id))
    return built
