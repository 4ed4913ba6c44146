"""One training loop for every model: sample a batch, loss, guard, Adam step, log."""
from __future__ import annotations

import contextlib
import time
from typing import Sequence

import numpy as np
import torch


from dynrep.checks import check_autocast, check_int, check_seconds
from dynrep.schedules import staircase_decay
from dynrep.training import distributed
from dynrep.training.callbacks import Callback, NaNGuard, NonFiniteLossError
from dynrep.training.optim import EagerAdam
from dynrep.training.signals import StopSignals, TrainingInterrupted


def decayed_groups(groups: list[dict], weight_decay: float) -> list[dict]:
    """Optimiser groups with L2 ``weight_decay`` on the weights only: each group split into its parameters
    with >= 2 dims (weight matrices, conv kernels) at ``weight_decay`` and the others (biases, scales) at 0,
    as TensorFlow's ``weights_regularizer``; ``weight_decay`` 0: ``groups`` unchanged."""
    if not weight_decay:
        return groups
    out = []
    for group in groups:
        params = list(group["params"])
        for chosen, decay in (([p for p in params if p.ndim >= 2], weight_decay),
                              ([p for p in params if p.ndim < 2], 0.0)):
            if chosen:
                out.append({**group, "params": chosen, "weight_decay": decay})
    return out


def _terms(out) -> tuple[list[str], torch.Tensor]:
    """The names (``"loss"`` first) and detached values ``[1 + len(out.terms)]`` of a step's loss terms."""
    return ["loss", *out.terms], torch.stack([out.total.detach(), *(t.detach() for t in out.terms.values())])


class Trainer:
    """Owns the optimiser, the step counter, the data and noise generators and the history.

    Each step draws ``config.batch_size`` episodes of ``config.episode_length`` actions
    from the environment with the trainer's numpy generator, asks the model for its
    loss (passing the trainer's torch generator for sampling noise) and takes one Adam
    step over the model's parameter groups, with the config's ``weight_decay`` on their weights
    (:func:`decayed_groups`) and, if ``lr_decay_steps`` is set, each group's learning rate times
    ``lr_decay_rate ** (step // lr_decay_steps)``. Everything that determines the next step
    is in :meth:`state_dict`, so a restored trainer continues exactly.

    Under ``torchrun`` (:mod:`dynrep.training.distributed`) ``batch_size`` is the global batch (each rank draws
    its share), the gradients and the logged terms are averaged over the ranks, each step's data and noise
    come from generators seeded with ``[seed, rank, step]`` and only rank 0 runs the writing callbacks.

    With ``compile`` the model's loss (``model.loss``, the forward pass; not the optimiser step) runs through
    ``torch.compile``: the method is compiled, not the module, so ``state_dict`` keys and checkpoints are the
    same as without. With ``autocast="bf16"`` the loss runs under ``torch.autocast(device.type, torch.bfloat16)``
    (matrix products and convolutions in bfloat16, as torch's autocast chooses; the reconstruction losses, the
    rotation model's rotations, the Lie group VAE's exponential map, the parameters, gradients and optimiser in
    float32). Neither is saved in :meth:`state_dict`.
    """

    def __init__(self, model, env, *, seed: int, device: torch.device, compile: bool = False,
                 autocast: str | None = None):
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        check_autocast("autocast", autocast)
        if autocast == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"autocast='bf16' needs a GPU with bfloat16 support; {device} has none (use "
                             "autocast=None)")
        self.model, self.env, self.device = model, env, device
        self.compile, self.autocast = compile, autocast
        self._compiled = None  # torch.compile(model.loss), made at the first step with compile
        groups = decayed_groups(model.parameter_groups(), model.config.weight_decay)
        # The fused kernel updates all parameters in one call: the cheapest optimiser step on CPU and CUDA.
        # EagerAdam is torch's Adam without the import of torch._dynamo (~70 MB).
        self.optimizer = EagerAdam(groups, fused=device.type in ("cpu", "cuda"))
        # The schedule's base rates come from the config, not the optimiser state: a pure function of the step.
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        #: The callbacks of the running (or last) ``fit``'s steps, NaNGuard first: who hears ``on_evaluation``.
        self.callbacks: list[Callback] = []
        self.step = 0
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.history: dict[str, list[float]] = {}
        self._ddp = None  # the DistributedDataParallel wrapper of a multi-process fit
        self._signal: str | None = None  # the signal a multi-process run stopped for (on any rank)

    def sample_batch(self):
        """This step's episodes: ``batch_size`` of them (``batch_size / world_size`` on each rank under
        torchrun)."""
        c = self.model.config
        size = distributed.local_batch_size(c.batch_size) if self._ddp is not None else c.batch_size
        batch = self.env.sample_trajectories(size, c.episode_length, self.rng, c.max_action_magnitude)
        return batch.to(self.device)

    def loss(self, batch, step: int, generator: torch.Generator):
        """``model.loss(batch, step, generator)`` as each training step runs it: under the trainer's ``autocast``,
        compiled if ``compile``."""
        if self.compile and self._compiled is None:
            self._compiled = torch.compile(self.model.loss)
        loss = self._compiled or self.model.loss
        precision = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast == "bf16" else \
            contextlib.nullcontext()
        with precision:
            return loss(batch, step, generator)

    def fit(self, steps: int, *, time_limit: float | None = None,
            callbacks: Sequence[Callback] = ()) -> dict[str, list[float]]:
        """Train for ``steps`` optimiser steps or until ``time_limit`` seconds have passed.

        Training also stops at a step boundary on SIGINT (Ctrl-C) or SIGTERM, or before the update of a
        non-finite loss; the callbacks' ``on_train_end`` runs in every case (reasons ``"steps"``,
        ``"time_limit"``, ``"interrupted"``, ``"non_finite"``), then :class:`TrainingInterrupted` or
        :class:`NonFiniteLossError` is raised for the last two.
        Returns the full history: ``{term: [value per step]}`` with ``"loss"`` the total.
        """
        steps = check_int("steps", steps, 0)
        time_limit = check_seconds("time_limit", time_limit)
        if distributed.init():
            with distributed.collectives():
                return self._fit(steps, time_limit, callbacks)
        return self._fit(steps, time_limit, callbacks)

    def _fit(self, steps: int, time_limit: float | None, callbacks: Sequence[Callback]) -> dict[str, list[float]]:
        if distributed.is_active():
            distributed.check_model(self.model)
            distributed.local_batch_size(self.model.config.batch_size)
            # A new wrapper per call: a step that stopped after its forward pass (time limit, signal, NaN)
            # leaves the old one waiting for a backward pass.
            self._ddp = None
            self._ddp = distributed.wrap(self.model, self.device, self.loss)
        callbacks = [NaNGuard(), *distributed.callbacks_for_rank(callbacks)]
        for cb in callbacks:
            cb.on_train_begin(self, steps)
        with StopSignals() as stop:
            try:
                reason = self._run(steps, time_limit, callbacks, stop)
            except NonFiniteLossError:
                self._end(callbacks, "non_finite")
                distributed.barrier()
                raise
            self._end(callbacks, reason)
            distributed.barrier()  # every rank returns once rank 0's final checkpoint is written
        if reason == "interrupted":
            name = stop.received or self._signal
            raise TrainingInterrupted(f"training stopped by {name} at step {self.step}", name, self.step)
        return self.history

    def _stop_flags(self, stop: StopSignals, start: float, time_limit: float | None) -> list[bool]:
        """``[time limit reached, SIGINT received, SIGTERM received]`` on this rank."""
        return [time_limit is not None and time.monotonic() - start >= time_limit, stop.received == "SIGINT",
                stop.received == "SIGTERM"]

    def _agreed_stop(self, flags: list[bool]) -> str | None:
        """Why every rank stops now, from the flags any rank raised (signals first), or None."""
        if flags[1] or flags[2]:
            self._signal = "SIGINT" if flags[1] else "SIGTERM"
            return "interrupted"
        return "time_limit" if flags[0] else None

    def _run(self, steps: int, time_limit: float | None, callbacks: list[Callback], stop: StopSignals) -> str:
        """The steps; returns why they ended."""
        self.callbacks = callbacks
        start = time.monotonic()
        self.model.train()
        if self._ddp is not None:
            return self._run_ranks(steps, time_limit, callbacks, stop, start)
        for _ in range(steps):
            if stop.received:
                return "interrupted"
            if time_limit is not None and time.monotonic() - start >= time_limit:
                return "time_limit"
            out = self.loss(self.sample_batch(), self.step, self.generator)
            names, values = _terms(out)
            self._update(out, dict(zip(names, values.tolist())), callbacks)
        return "interrupted" if stop.received else "steps"

    def _run_ranks(self, steps: int, time_limit: float | None, callbacks: list[Callback], stop: StopSignals,
                   start: float) -> str:
        """The steps of a multi-process run: a stop any rank asks for (signal, time limit) is agreed on in the
        all-reduce of the loss terms, before the update, so every rank stops at the same step."""
        for _ in range(steps):
            self.rng, self.generator = distributed.step_generators(self.seed, self.step, self.device)
            out = self._ddp(self.sample_batch(), self.step, self.generator)
            names, values = _terms(out)
            values, flags = distributed.all_reduce_mean(values, self._stop_flags(stop, start, time_limit))
            reason = self._agreed_stop(flags)
            if reason is not None:
                return reason
            self._update(out, dict(zip(names, values.tolist())), callbacks)
        _, flags = distributed.all_reduce_mean(torch.zeros(0, device=self.device), self._stop_flags(stop, start, None))
        return self._agreed_stop(flags) or "steps"

    def _update(self, out, logs: dict[str, float], callbacks: list[Callback]) -> None:
        """Callbacks' ``on_loss``, the backward pass and optimiser step, the history, ``on_step_end``."""
        for cb in callbacks:
            cb.on_loss(self, logs)
        self.optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        self.set_learning_rates()
        self.optimizer.step()
        self.step += 1
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)
        for cb in callbacks:
            cb.on_step_end(self, logs)

    def _end(self, callbacks: list[Callback], reason: str) -> None:
        self.model.eval()
        for cb in callbacks:
            cb.on_train_end(self, reason)

    def set_learning_rates(self) -> None:
        """Each group's rate for the current step under the config's step decay (no-op without one)."""
        c = self.model.config
        if c.lr_decay_steps is None:
            return
        factor = staircase_decay(self.step, c.lr_decay_rate, c.lr_decay_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def state_dict(self) -> dict:
        """Tensors and plain values only (safe for ``torch.load(weights_only=True)``)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                "numpy_rng": self.rng.bit_generator.state, "torch_rng": self.generator.get_state(),
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_rng"])
        self.history = {k: list(v) for k, v in state["history"].items()}
