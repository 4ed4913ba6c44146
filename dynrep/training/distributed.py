"""Multi-process training and evaluation under ``torchrun`` (torch.distributed, DistributedDataParallel).

A process started by ``torchrun`` (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK`` in its environment) joins one
process group, initialised once by :func:`init`: gloo for CPU tensors, plus nccl for CUDA tensors on a
machine with CUDA (device ``"auto"`` is then ``cuda:LOCAL_RANK``, one GPU per process). Everything else in
dynrep reads the ranks through this module only; in a single process (no ``torchrun``) every function
here is a no-op and training is exactly what it is without it.

Under ``torchrun`` the :class:`~dynrep.training.Trainer`:

* wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel` through :class:`LossModule`
  (models compute ``model.loss(batch, step, generator)``, so DDP's forward is the loss), which averages the
  gradients over the ranks;
* reads the model's ``batch_size`` as the *global* batch: each rank draws ``batch_size / world_size``
  episodes (:func:`local_batch_size`), so for a loss that is a mean over the batch the update equals a
  single process's at ``batch_size``;
* draws each step's episodes and noise from generators seeded with ``[seed, rank, step]``
  (:func:`step_generators`): no two ranks draw the same stream, and a checkpoint (which holds the step)
  resumes every rank exactly, with any number of ranks;
* all-reduces (mean) the loss terms on their device before callbacks and the history see them, and agrees
  across ranks on stopping (time limit, SIGINT/SIGTERM: host flags, all-reduced with the loss terms on the
  CPU, in an all-reduce of their own over gloo before each step on a GPU; a non-finite loss: found by every
  rank at the same syncs), so every rank stops at the same step;
* runs the writing callbacks (``main_process_only``: progress bar, checkpoints, metrics.jsonl,
  tensorboard) on rank 0 alone (:func:`callbacks_for_rank`).

``learner.evaluate`` encodes through :func:`sharded`: each rank encodes its share of the same sampled
observations and the codes are gathered, so every rank gets a single process's scores.

Models and DDP (:func:`check_model`). A model is accepted when each rank's loss is the single-process
estimator on the rank's share of the batch, so that averaging the ranks' gradients estimates the same
gradient: per-sample means (rotation, vae, beta_vae, forward_vae, liegroup_vae, slowvae, ivae, icm_vae,
composition_net), mechanism_sparsity (its masks are parameters sampled per episode with the rank's
generator and trained by the same gradient), wae (its MMD estimate is unbiased at any batch size), pcl and
factor_vae (negatives / permuted codes drawn within each rank's batch, the reference estimator at the
rank's batch size; FactorVAE's discriminator is a parameter group of the one optimiser, updated by the
same averaged backward pass). A model that sets ``ddp_unsupported`` to a reason is refused with a
ValueError at train start: beta_tcvae (minibatch estimators whose bias depends on the batch size),
cascade_vae (the balanced category assignment couples the whole batch), rgrvae (running policy
statistics updated in buffers from each rank's batch).

Failures: an exception in one rank closes its connections, the other ranks' collectives then fail and
raise :class:`PeerFailure`, which prints nothing (the CLI and, for scripts, the ``sys.excepthook`` that
:func:`init` installs): the failing rank alone shows its error (:func:`report_failure`: the first rank to
fail reports, so an error every rank hits, e.g. a bad config value, is shown once). A rank blocked
longer than ``timeout`` seconds (default 1800, ``DYNREP_DIST_TIMEOUT``) gives up.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import inspect
import os
import sys
import time
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from torch import nn

__all__ = ["LossModule", "PeerFailure", "all_reduce_mean", "any_rank", "barrier", "callbacks_for_rank", "check_model",
           "collectives", "default_device",
           "init", "is_active", "is_main", "launched", "local_batch_size", "local_rank", "mean_and_any", "rank",
           "report_failure", "sharded", "step_generators", "world_size", "wrap"]

#: The process-group store key counting the ranks that failed (the first one reports its error).
_FAILURES = "dynrep/failures"
_EXIT_GRACE = 0.1  # seconds the main thread sleeps at exit before leaving the process group (_leave)
_F = TypeVar("_F", bound=Callable)


class PeerFailure(RuntimeError):
    """A collective operation failed because another rank stopped (its own error is shown by that rank)."""


def launched() -> bool:
    """True in a process started by ``torchrun`` (or any launcher setting ``WORLD_SIZE`` > 1 and ``RANK``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_active() -> bool:
    """True once the process group of a multi-process run is initialised (by :func:`init` or the user)."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank: 0 in a single process."""
    if is_active():
        return torch.distributed.get_rank()
    return int(os.environ["RANK"]) if launched() else 0


def world_size() -> int:
    """Number of processes: 1 in a single process."""
    if is_active():
        return torch.distributed.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; the GPU it uses): 0 in a single process."""
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def is_main() -> bool:
    """True on rank 0, the process that writes files and prints (and in a single process)."""
    return rank() == 0


def default_device() -> torch.device:
    """Device ``"auto"``: ``cuda:LOCAL_RANK`` under torchrun on a machine with CUDA, CUDA in a single process
    with CUDA, else CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank()) if launched() else torch.device("cuda")


def init(timeout: float | None = None) -> bool:
    """Join the process group of a ``torchrun`` run (once; later calls return at once); returns whether this
    is a multi-process run. Backend: gloo, plus nccl for CUDA tensors when CUDA is available (each process
    then uses GPU ``LOCAL_RANK``). ``timeout``: seconds a collective may wait for the other ranks (default
    ``DYNREP_DIST_TIMEOUT`` or 1800). Installs the ``sys.excepthook`` that keeps consequent errors quiet
    (module docstring) and leaves the group at exit. A process group the user initialised is used as it is."""
    if is_active():
        return True
    if not launched():
        return False
    name, value = ("DYNREP_DIST_TIMEOUT", os.environ.get("DYNREP_DIST_TIMEOUT", "1800")) if timeout is None else \
        ("timeout", timeout)
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        timeout = float("nan")
    if not timeout > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    backend = "gloo"
    if torch.cuda.is_available() and torch.distributed.is_nccl_available():
        torch.cuda.set_device(local_rank())
        backend = "cpu:gloo,cuda:nccl"
    torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    atexit.register(_leave)
    previous = sys.excepthook

    def excepthook(kind, value, traceback):
        if isinstance(value, PeerFailure) or not report_failure():
            return
        previous(kind, value, traceback)

    sys.excepthook = excepthook
    return True


def _leave() -> None:
    """At exit: a gloo worker thread drops its reference to a finished collective's tensors just after the
    collective returns; when that reference is the last one it takes the GIL, and if the interpreter is
    finalising by then the thread exits mid-C++ and the process aborts ("terminate called without an
    active exception", SIGABRT). Sleeping hands the GIL to such a thread before the group is left."""
    if is_active():
        time.sleep(_EXIT_GRACE)
        torch.distributed.destroy_process_group()


def _store():
    return torch.distributed.distributed_c10d._get_default_store()


def report_failure() -> bool:
    """Count this rank's failure in the process group's store; True if this rank should show its error:
    in a single process, or when it is the first rank to fail (False when another rank failed first, and
    when the store is gone with the rank that hosted it)."""
    if not is_active():
        return True
    try:
        return _store().add(_FAILURES, 1) == 1
    except RuntimeError:
        return False


def _is_collective_error(err: BaseException) -> bool:
    dist = torch.distributed
    text = str(err)
    return isinstance(err, getattr(dist, "DistError", ())) or "/gloo/" in text or "NCCL" in text


def _peer_failed() -> bool:
    """Whether another rank reported a failure (or the store's host is gone)."""
    try:
        return _store().add(_FAILURES, 0) > 0
    except RuntimeError:
        return True


@contextlib.contextmanager
def collectives() -> Iterator[None]:
    """Turns the error of a collective that failed because another rank stopped into :class:`PeerFailure`."""
    try:
        yield
    except RuntimeError as err:
        if is_active() and not isinstance(err, PeerFailure) and _is_collective_error(err) and _peer_failed():
            raise PeerFailure(f"rank {rank()} stopped: another rank failed (its error is shown by that rank)"
                              ) from err
        raise


def check_model(model: nn.Module) -> None:
    """ValueError naming the model and why, if it cannot train correctly under DDP (``ddp_unsupported``)."""
    reason = getattr(model, "ddp_unsupported", None)
    if reason:
        raise ValueError(f"model {model.model_name!r} cannot train on {world_size()} processes (torchrun): "
                         f"{reason}; train it in one process")


def local_batch_size(batch_size: int) -> int:
    """Episodes each rank draws per step for the global ``batch_size``: ``batch_size / world_size``
    (a ValueError naming both if it does not divide)."""
    size = world_size()
    if batch_size % size:
        raise ValueError(f"batch_size={batch_size} is the global batch and must be divisible by the world size "
                         f"{size} (torchrun --nproc_per_node x nodes); use a multiple of {size}")
    return batch_size // size


def step_generators(seed: int, step: int, device: torch.device) -> tuple[np.random.Generator, torch.Generator]:
    """``(numpy generator for the episodes, torch generator for the model's noise)`` of ``step`` on this
    rank, both seeded from ``[seed, rank, step]``: distinct streams per rank, a pure function of the step."""
    data, noise = np.random.SeedSequence([seed, rank(), step]).spawn(2)
    torch_seed = int(noise.generate_state(1, np.uint64)[0] >> np.uint64(1))  # below 2**63
    return np.random.default_rng(data), torch.Generator(device=device).manual_seed(torch_seed)


class LossModule(nn.Module):
    """``forward(batch, step, generator)`` is ``loss(...)`` (default ``model.loss``; the trainer's
    :meth:`~dynrep.training.trainer.Trainer.loss` to compile it or run it under autocast): what DDP wraps, so that
    each step's loss goes through DDP's forward (which prepares the gradient all-reduce)."""

    def __init__(self, model: nn.Module, loss=None):
        super().__init__()
        self.model = model
        self.loss = model.loss if loss is None else loss

    def forward(self, batch, step: int, generator: torch.Generator | None = None):
        return self.loss(batch, step, generator)


def wrap(model: nn.Module, device: torch.device, loss=None) -> nn.parallel.DistributedDataParallel:
    """``model`` as a DDP :class:`LossModule` of ``loss`` (default ``model.loss``; call the wrapper like it).
    Parameters a step does not use (a branch not taken) are found and keep no gradient, as in one process;
    buffers are not broadcast each step: models that change buffers in training set ``ddp_unsupported``."""
    ddp = nn.parallel.DistributedDataParallel
    # torch >= 2.12 spells broadcast_buffers=False (no buffer sync before each forward) this way.
    buffers = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters else \
        {"broadcast_buffers": False}
    return ddp(LossModule(model, loss), device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=True, **buffers)


def barrier() -> None:
    """Wait for every rank (no-op in a single process): e.g. until rank 0 has written the final checkpoint."""
    if is_active():
        torch.distributed.barrier()


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values [N]`` (float32) over the ranks, on their device (nccl for CUDA tensors): the host
    does not wait for it."""
    total = values.detach().float().clone()
    torch.distributed.all_reduce(total)
    return total / world_size()


def any_rank(flags: Sequence[bool]) -> list[bool]:
    """``[any rank's flag i]``: host values all-reduced on the CPU (gloo), so no device is waited for."""
    return mean_and_any(torch.zeros(0), flags)[1]


def mean_and_any(values: torch.Tensor, flags: Sequence[bool]) -> tuple[torch.Tensor, list[bool]]:
    """``(all_reduce_mean(values), any_rank(flags))`` in one all-reduce, for CPU ``values [N]`` (on a device,
    reading the flags would wait for it: use the two functions)."""
    if values.device.type != "cpu":
        raise ValueError(f"mean_and_any reduces CPU values; got values on {values.device} (use all_reduce_mean "
                         "and any_rank)")
    both = torch.cat([values.detach().float(), torch.tensor([float(f) for f in flags])])
    torch.distributed.all_reduce(both)
    n = len(values)
    return both[:n] / world_size(), [bool(f > 0) for f in both[n:].tolist()]


def callbacks_for_rank(callbacks: Sequence) -> list:
    """``callbacks`` without the ``main_process_only`` ones (writers, progress) except on rank 0."""
    return list(callbacks) if is_main() else [cb for cb in callbacks if not getattr(cb, "main_process_only", False)]


def _gather_rows(local: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """All ranks' ``local [sizes[rank], ...]`` in rank order ``[sum(sizes), ...]``."""
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    torch.distributed.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def sharded(fn: _F) -> _F:
    """``fn`` (observations ``[B, ...]`` -> tensor ``[B, D]`` or a tuple of them, e.g.
    ``model.representation``), computed on this rank's contiguous share of the batch, the ranks' results
    gathered in order: the same ``[B, D]`` on every rank. Every rank must call it with the same
    observations (the same seed). ``fn`` itself in a single process, and for batches smaller than the
    world size."""
    if not init():
        return fn

    def on_shares(obs):
        size, n = world_size(), len(obs)
        if n < size:
            return fn(obs)
        sizes = [n // size + (r < n % size) for r in range(size)]
        start = sum(sizes[:rank()])
        out = fn(obs[start:start + sizes[rank()]])
        with collectives():
            if isinstance(out, tuple):
                return tuple(_gather_rows(torch.as_tensor(part), sizes) for part in out)
            return _gather_rows(torch.as_tensor(out), sizes)

    return on_shares
