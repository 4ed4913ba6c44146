"""Logging people can watch: a ``metrics.jsonl`` that needs nothing to read, and tensorboard.

Both are :class:`~dynrep.training.callbacks.Callback` s: pass them to ``learner.train(callbacks=[...])``.
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
from typing import Any

import numpy as np
import torch

from dynrep.checks import check_int
from dynrep.config import config_to_dict
from dynrep.training.callbacks import Callback


def metrics_path(checkpoint_dir: str | Path) -> Path:
    """Where ``learner.train(checkpoint_dir=...)`` writes its metrics: ``runs/gw`` -> ``runs/gw.metrics.jsonl``."""
    checkpoint_dir = Path(checkpoint_dir)
    return checkpoint_dir.with_name(checkpoint_dir.name + ".metrics.jsonl")


class _Cadence(Callback, abc.ABC):
    """Shared by the loggers: which steps to log, the steps/s since the last logged step, the rates."""

    main_process_only = True  # under torchrun rank 0 alone writes

    def __init__(self, every: int):
        self.every = check_int("every", every, 1)
        self.last_logs: dict[str, float] | None = None
        self.logged_step = -1

    def on_train_begin(self, trainer, steps: int) -> None:
        self.start = self.mark = time.monotonic()
        self.mark_step = self.logged_step = trainer.step
        self.last_logs = None

    def on_step_end(self, trainer, logs: dict[str, float]) -> None:
        self.last_logs = logs
        if trainer.step % self.every == 0:
            self._log(trainer, logs)

    def on_train_end(self, trainer, reason: str) -> None:
        # The last step of a call is logged whatever its number, so the file always ends where training did.
        if self.last_logs is not None and self.logged_step != trainer.step:
            self._log(trainer, self.last_logs)

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
    ``path``::

        {"step": 20, "terms": {"loss": 0.61, "recon": 0.58, ...}, "lr": [0.001], "steps_per_s": 41.2,
         "elapsed_s": 0.49, "time": 1764768000.1}

    ``terms`` holds every loss term of that step (the values of ``learner.history`` at index ``step - 1``),
    ``lr`` each optimiser parameter group's learning rate, ``steps_per_s`` the rate since the previous
    logged step, ``elapsed_s`` the seconds since this ``train`` call began, ``time`` the Unix time.

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
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temp.write_bytes(b"".join(kept))
        os.replace(temp, self.path)

    def write(self, trainer, logs: dict[str, float], steps_per_s: float, elapsed: float) -> None:
        record = {"step": trainer.step, "terms": logs,
                  "lr": [group["lr"] for group in trainer.optimizer.param_groups],
                  "steps_per_s": steps_per_s, "elapsed_s": elapsed, "time": time.time()}
        # Opened per line: nothing stays open if training raises, and a logged step costs one open more.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch's module imports the tensorboard package
        raise ImportError("TensorBoardLogger needs the tensorboard package: pip install dynrep[tensorboard] "
                          "(or pip install tensorboard)") from err
    return SummaryWriter


def image_grid(true: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """One picture ``[C, 2 * B * H, (T + 1) * W]`` in [0, 1] of episodes ``true`` (uint8 or [0, 1] floats) and
    ``predicted`` (floats in [0, 1]), both ``[B, T + 1, C, H, W]``: for each episode its frames in a row,
    the model's frames in the row below."""
    true = true.float() / 255 if not true.is_floating_point() else true.float()
    pairs = torch.stack([true, predicted.float()], dim=1)  # [B, 2, T+1, C, H, W]
    b, _, t, c, h, w = pairs.shape
    return pairs.permute(3, 0, 1, 4, 2, 5).reshape(c, b * 2 * h, t * w).clamp(0, 1)


class TensorBoardLogger(_Cadence):
    """Tensorboard event files in ``log_dir``: every ``every`` steps (and the last of each ``train``) the
    scalars ``loss/<term>`` for every loss term, ``lr/group<i>`` for each optimiser parameter group and
    ``perf/steps_per_s``; once, the text ``config`` (``config``, a JSON-able dict, or by default the model's
    name and config and the world's name and config); every ``images_every`` steps (None: never) the image
    ``reconstructions``: :func:`image_grid` of ``num_episodes`` fixed episodes (drawn once, with
    ``numpy.random.default_rng(seed)``, not from the training stream) and the model's ``predict`` of them
    (open-loop rollouts for models with dynamics, reconstructions otherwise), for image worlds and models
    with a decoder. Watch with ``tensorboard --logdir LOG_DIR``. Needs ``pip install dynrep[tensorboard]``.
    """

    def __init__(self, log_dir: str | Path, every: int = 10, images_every: int | None = 500, *,
                 config: dict[str, Any] | None = None, num_episodes: int = 4, seed: int = 0):
        super().__init__(every)
        self.images_every = None if images_every is None else check_int("images_every", images_every, 1)
        self.num_episodes = check_int("num_episodes", num_episodes, 1)
        self.log_dir, self.config, self.seed = Path(log_dir), config, seed
        self.writer_class = _summary_writer()
        self.writer = None
        self.episodes = None

    def on_train_begin(self, trainer, steps: int) -> None:
        super().on_train_begin(trainer, steps)
        self.writer = self.writer_class(log_dir=str(self.log_dir))
        model, env = trainer.model, trainer.env
        config = self.config if self.config is not None else {
            "model": {"name": model.model_name, "config": config_to_dict(model.config)},
            "env": {"name": env.env_name, "config": env.get_config()}}
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", trainer.step)
        if self.images_every is not None and self.episodes is None and model.has_decoder \
                and len(model.observation_shape) == 3:
            c = model.config
            self.episodes = env.sample_trajectories(self.num_episodes, c.episode_length,
                                                    np.random.default_rng(self.seed),
                                                    c.max_action_magnitude).to(trainer.device)

    def write(self, trainer, logs: dict[str, float], steps_per_s: float, elapsed: float) -> None:
        for name, value in logs.items():
            self.writer.add_scalar(f"loss/{name}", value, trainer.step)
        for i, group in enumerate(trainer.optimizer.param_groups):
            self.writer.add_scalar(f"lr/group{i}", group["lr"], trainer.step)
        self.writer.add_scalar("perf/steps_per_s", steps_per_s, trainer.step)
        self.writer.flush()

    def on_step_end(self, trainer, logs: dict[str, float]) -> None:
        super().on_step_end(trainer, logs)
        if self.episodes is not None and trainer.step % self.images_every == 0:
            self.write_images(trainer)

    def write_images(self, trainer) -> None:
        """Add the ``reconstructions`` grid of the current model (it is left in training mode)."""
        model = trainer.model
        model.eval()
        # The trainer's generators are untouched; fork_rng also keeps the global one as it was.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            predicted = model.predict(self.episodes)
        model.train()
        self.writer.add_image("reconstructions", image_grid(self.episodes.obs.cpu(), predicted.cpu()),
                              trainer.step, dataformats="CHW")
        self.writer.flush()

    def on_train_end(self, trainer, reason: str) -> None:
        super().on_train_end(trainer, reason)
        self.writer.close()


def loggers(name: str | None, log_dir: str | Path, every: int = 10) -> list[Callback]:
    """The callbacks of logger ``name`` beyond the default jsonl: ``[]`` for None, ``[TensorBoardLogger(log_dir,
    every)]`` for ``"tensorboard"`` (what ``--logger`` and a run config's ``trainer.logger`` choose)."""
    if name is None:
        return []
    if name == "tensorboard":
        return [TensorBoardLogger(log_dir, every=every)]
    raise ValueError(f"logger must be None or 'tensorboard', got {name!r}")
