"""One training loop for every model: sample a batch, loss, guard, Adam step, log."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch


from dynrep import memory
from dynrep.checks import check_autocast, check_int, check_seconds
from dynrep.schedules import staircase_decay
from dynrep.training import distributed
from dynrep.training.callbacks import Callback, NonFiniteLossError, non_finite_error
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


#: Steps between two host syncs off the CPU when ``fit`` is not given ``sync_every`` (ProgressBar's and
#: ``log_every``'s default period, so their reads fall on syncs).
DEFAULT_SYNC_EVERY = 10


class _FoundOnThisRank(NonFiniteLossError):
    """Under torchrun, a non-finite step found outside the syncs every rank makes: it ends the callbacks that
    read it, and every rank raises at the next common sync."""


def default_sync_every(device: torch.device) -> int:
    """``fit``'s ``sync_every`` when none is given: 1 on CPU (a sync costs nothing there), else
    :data:`DEFAULT_SYNC_EVERY`."""
    return 1 if device.type == "cpu" else DEFAULT_SYNC_EVERY


@dataclass
class _Pending:
    """A step whose loss terms may still be on the device: ``values [len(names)]``, ``logs`` once on the host,
    ``rewind`` what the steps after it change (numpy and torch generator states, the model's buffers and the
    learning rates, all as they were after its forward pass; None when every step is checked before its
    update)."""

    step: int
    names: list[str]
    values: torch.Tensor
    rewind: tuple | None
    logs: dict[str, float] | None = None


class StepLogs(Mapping):
    """One step's loss terms ``{name: float}`` (``"loss"`` the total), read-only. The names are known at once;
    the values wait for the device the first time one is read (:meth:`Trainer.sync`), so a callback that
    reads them every N steps makes the host wait for the device only then."""

    def __init__(self, trainer: "Trainer", record: _Pending):
        self._trainer, self._record = trainer, record

    def _values(self) -> dict[str, float]:
        if self._record.logs is None:
            self._trainer.sync()
        return self._record.logs

    def __getitem__(self, name: str) -> float:
        return self._values()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record.names)

    def __len__(self) -> int:
        return len(self._record.names)

    def __contains__(self, name: object) -> bool:
        return name in self._record.names

    def __repr__(self) -> str:
        return repr(self._values())


def _waits_every_step(callback: Callback) -> bool:
    """Whether ``callback`` may read a step's state (``trainer.step``, the parameters) without its ``logs``:
    it has an ``on_loss`` or ``on_step_end`` hook and does not promise ``lazy_logs``."""
    kind = type(callback)
    return not callback.lazy_logs and (kind.on_loss is not Callback.on_loss or
                                       kind.on_step_end is not Callback.on_step_end)


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

    Host syncs (``fit(sync_every=N)``): a step's loss terms stay on the device and are brought to the host
    together, in one copy, every ``N`` steps (before the update of each step whose number + 1 is a multiple
    of ``N``), when training ends, and whenever something reads them first (a callback's ``logs``,
    :attr:`history`, :meth:`state_dict`, :meth:`sync`). On CUDA the host then queues step after step without
    waiting for the device. A non-finite loss is caught all the same: a sticky flag on the device makes the
    fused Adam skip every update from that step on (``found_inf``), and the next sync rewinds the later steps
    (step counter, generators, buffers, learning rates) and raises :class:`NonFiniteLossError` at that step,
    with the parameters, optimiser state and history of ``N`` = 1. :attr:`last_logs` holds the terms of the
    last step in the history (None before the first step of a ``fit``).

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
        #: The callbacks of the running (or last) ``fit``'s steps: who hears ``on_evaluation``.
        self.callbacks: list[Callback] = []
        self.step = 0
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._history: dict[str, list[float]] = {}
        self._pending: list[_Pending] = []  # steps taken (or being taken) whose terms are not in the history yet
        self.last_logs: dict[str, float] | None = None
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

    def fit(self, steps: int, *, time_limit: float | None = None, callbacks: Sequence[Callback] = (),
            sync_every: int | None = None) -> dict[str, list[float]]:
        """Train for ``steps`` optimiser steps or until ``time_limit`` seconds have passed.

        Training also stops at a step boundary on SIGINT (Ctrl-C) or SIGTERM, or before the update of a
        non-finite loss; the callbacks' ``on_train_end`` runs in every case (reasons ``"steps"``,
        ``"time_limit"``, ``"interrupted"``, ``"non_finite"``), then :class:`TrainingInterrupted` or
        :class:`NonFiniteLossError` is raised for the last two.
        ``sync_every``: steps between host syncs (class docstring; >= 1; None: 1 on CPU, where a sync costs
        nothing, :data:`DEFAULT_SYNC_EVERY` on other devices). It is 1 whatever is asked when the optimiser
        is not fused (it cannot skip updates on the device) or a callback has ``on_loss`` / ``on_step_end``
        hooks without setting :attr:`~dynrep.training.callbacks.Callback.lazy_logs`. Results are bitwise the
        same for every value.
        Returns the full history: ``{term: [value per step]}`` with ``"loss"`` the total.
        """
        steps = check_int("steps", steps, 0)
        time_limit = check_seconds("time_limit", time_limit)
        sync_every = default_sync_every(self.device) if sync_every is None else check_int("sync_every", sync_every, 1)
        # Chosen from every rank's callbacks alike (rank 0 runs more): the ranks sync at the same steps.
        callbacks = list(callbacks)
        fused = bool(self.optimizer.defaults.get("fused"))
        self._sync_every = 1 if not fused or any(map(_waits_every_step, callbacks)) else sync_every
        memory.keep_heap()  # a step's freed activations stay in the heap for the next (dynrep.memory)
        if distributed.init():
            with distributed.collectives():
                return self._fit(steps, time_limit, callbacks)
        return self._fit(steps, time_limit, callbacks)

    def _fit(self, steps: int, time_limit: float | None, callbacks: Sequence[Callback]) -> dict[str, list[float]]:
        if distributed.is_active():
            distributed.check_model(self.model)
            distributed.local_batch_size(self.model.config.batch_size)
            # A new wrapper per call: a step that stopped after its forward pass (NaN) leaves the old one
            # waiting for a backward pass.
            self._ddp = None
            self._ddp = distributed.wrap(self.model, self.device, self.loss)
        callbacks = distributed.callbacks_for_rank(callbacks)
        self.last_logs = None
        # 1 from the first non-finite step on: the fused Adam then skips its updates (and step counts) until the
        # sync that finds it. With a sync before every update there is nothing to skip.
        self._bad = torch.zeros((), dtype=torch.float32, device=self.device)  # the kernels read a float
        self.optimizer.found_inf = self._bad if self._sync_every > 1 else None
        for cb in callbacks:
            cb.on_train_begin(self, steps)
        with StopSignals() as stop:
            try:
                reason = self._run(steps, time_limit, callbacks, stop)
                self._sync(agreed=True)
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
            self._update(out, names, values, callbacks)
        return "interrupted" if stop.received else "steps"

    def _run_ranks(self, steps: int, time_limit: float | None, callbacks: list[Callback], stop: StopSignals,
                   start: float) -> str:
        """The steps of a multi-process run. A stop any rank asks for (signal, time limit) is agreed on in an
        all-reduce of host flags, so every rank stops at the same step: on the CPU in the all-reduce of the
        step's loss terms (one collective a step; the stop then comes after the forward pass, before the
        update), on a GPU in one over gloo before the step, so that the terms stay on the device until a sync."""
        shared = self.device.type == "cpu"
        for _ in range(steps):
            flags = self._stop_flags(stop, start, time_limit)
            reason = None if shared else self._agreed_stop(distributed.any_rank(flags))
            if reason is not None:
                return reason
            self.rng, self.generator = distributed.step_generators(self.seed, self.step, self.device)
            out = self._ddp(self.sample_batch(), self.step, self.generator)
            names, values = _terms(out)
            if shared:
                values, flags = distributed.mean_and_any(values, flags)
                reason = self._agreed_stop(flags)
                if reason is not None:
                    return reason
            else:
                values = distributed.all_reduce_mean(values)
            self._update(out, names, values, callbacks)
        return self._agreed_stop(distributed.any_rank(self._stop_flags(stop, start, None))) or "steps"

    def _update(self, out, names: list[str], values: torch.Tensor, callbacks: list[Callback]) -> None:
        """Callbacks' ``on_loss``, the backward pass and optimiser step, ``on_step_end``; ``values
        [len(names)]`` are the step's terms on the device."""
        rewind = None
        if self._sync_every > 1:  # the update may come before the check: flag the step, keep what a rewind needs
            self._bad.logical_or_(~torch.isfinite(values).all())
            rewind = (self.rng.bit_generator.state, self.generator.get_state(),
                      [b.clone() for b in self.model.buffers()], [group["lr"] for group in self.optimizer.param_groups])
        record = _Pending(self.step, names, values, rewind)
        self._pending.append(record)
        if (self.step + 1) % self._sync_every == 0:
            self._sync(agreed=True)  # before the update: a non-finite step leaves the parameters as they are
        logs = StepLogs(self, record)
        self._call(callbacks, "on_loss", logs)
        self.optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        self.set_learning_rates()
        self.optimizer.step()
        self.step += 1
        self._call(callbacks, "on_step_end", logs)

    def _call(self, callbacks: list[Callback], hook: str, logs: StepLogs) -> None:
        """Each callback's ``hook``. Under torchrun a non-finite step that a callback's read finds (rank 0
        reads more often than the others) ends that step's callbacks here; every rank raises at the next sync
        they all make, where each finds it (their terms are the same all-reduced values)."""
        try:
            for cb in callbacks:
                getattr(cb, hook)(self, logs)
        except _FoundOnThisRank:
            return

    def sync(self) -> None:
        """Wait for the device and bring every pending step's loss terms to the host, into :attr:`history`.
        If one of them is non-finite, rewind to that step (single process; under torchrun at the ranks' next
        common sync) and raise :class:`NonFiniteLossError`. Callbacks that act on the model's state without
        reading ``logs`` (evaluations, checkpoints) call it first."""
        self._sync(agreed=self._ddp is None)

    def _sync(self, agreed: bool) -> None:
        """:meth:`sync`; ``agreed``: every rank syncs here too (the steps' schedule), so a non-finite step may
        be rewound and raised now."""
        fresh = [r for r in self._pending if r.logs is None]
        if fresh:  # one copy (one wait) for all of them
            flat = iter(torch.cat([r.values for r in fresh]).tolist())
            for r in fresh:
                r.logs = {name: next(flat) for name in r.names}
        errors = [non_finite_error(r.step, r.logs) for r in self._pending]
        bad = next((i for i, error in enumerate(errors) if error is not None), None)
        if bad is not None and not agreed:
            raise _FoundOnThisRank(str(errors[bad]))
        kept = bad if bad is not None else sum(r.step < self.step for r in self._pending)
        for r in self._pending[:kept]:
            for name, value in r.logs.items():
                self._history.setdefault(name, []).append(value)
            self.last_logs = r.logs
        if bad is not None:
            self._rewind(self._pending[bad])
            raise errors[bad]
        self._pending = self._pending[kept:]

    def _rewind(self, record: _Pending) -> None:
        """Back to the state at ``record``'s step after its forward pass: what a guard before its update sees."""
        advanced = self.step > record.step
        self.step, self._pending = record.step, []
        if not advanced:
            return
        numpy_state, torch_state, buffers, lrs = record.rewind
        self.rng.bit_generator.state = numpy_state
        self.generator.set_state(torch_state)
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), buffers):
                buffer.copy_(saved)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        # The skipped updates left Adam's moments and step counts as they were, but created the (empty) state
        # of parameters they met first: a step count of 0.
        for param in [p for p, state in self.optimizer.state.items() if float(state["step"]) == 0]:
            del self.optimizer.state[param]

    @property
    def history(self) -> dict[str, list[float]]:
        """``{term: [value per step]}``, ``"loss"`` the total (reading it syncs: :meth:`sync`)."""
        self.sync()
        return self._history

    def _end(self, callbacks: list[Callback], reason: str) -> None:
        self.optimizer.found_inf = None  # a step of the optimiser outside fit is never skipped
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
        self._history = {k: list(v) for k, v in state["history"].items()}
        self._pending = []
