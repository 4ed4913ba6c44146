"""The process's heap: keep freed memory for reuse while training, give it back once training is over.

glibc's malloc gives large freed blocks back to the system: a block from 32 MB on (and from 128 KiB on until a
block that size has been freed) is an ``mmap`` of its own, unmapped when freed, and a heap's free top is
returned once it exceeds the trim threshold. A training step allocates and frees the same large activations and
gradients every step, so each step then faults in fresh zeroed pages: ~48,000 page faults and ~60 ms of system
time per step of a beta-TCVAE at batch 256 (~1,400 per GridWorld step), 12-14 % of the step's CPU time
(benchmarks/RESULTS.md, Speed V). :func:`keep_heap`, which the trainer calls when training starts, fixes both
thresholds at 1 GiB: freed blocks stay in the heaps and the next step reuses them (no page faults; the
resident peak is the working set's, as before, but it is not given back while the process lives).

:func:`compact_heap` is for the phase after training, in a process that will not train again (the demo
command): a fixed 1 MB mmap threshold and the default trim threshold, then the heaps' free memory returned.
`dynrep demo --steps 100` peaked at 497-544 MB without it, the evaluation after training growing the heaps with
freed blocks, against 446-448 MB with it (RESULTS.md, Speed IV, "Lead's rerun"); a small fixed threshold during
training makes every step ~40 % slower (fresh pages on every step).

Both apply only with glibc (elsewhere they do nothing and return False), and :func:`keep_heap` leaves the
thresholds alone when the user set them through glibc's own environment variables.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

#: ``mallopt`` parameter numbers of the trim and mmap thresholds (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Both thresholds while training (:func:`keep_heap`): blocks below 1 GiB come from the heaps and stay there.
KEEP_THRESHOLD = 1 << 30
#: glibc's default trim threshold, restored by :func:`compact_heap`.
TRIM_THRESHOLD = 128 << 10
#: glibc's environment variables for the thresholds: a user who sets one has chosen (:func:`keep_heap`).
GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
GLIBC_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")
#: Blocks from this size on get an mmap of their own after :func:`compact_heap` (glibc's default starts at 128
#: KiB and grows up to 32 MB).
MMAP_THRESHOLD = 1 << 20


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library if it is glibc (it has ``malloc_trim`` and ``mallopt``), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def _set(libc, parameter: int, value: int, name: str) -> None:
    if not libc.mallopt(parameter, ctypes.c_int(value)):
        raise ValueError(f"glibc's mallopt refused {name}={value}")


def keep_heap() -> bool:
    """Fix glibc's mmap and trim thresholds at :data:`KEEP_THRESHOLD` (1 GiB), so that the blocks a training
    step frees stay in the heaps for the next step instead of being unmapped and faulted in again (module
    docstring). Process-wide, until :func:`compact_heap`; called by :meth:`dynrep.training.Trainer.fit`.
    Returns whether it applied: False, doing nothing, where the C library is not glibc or the user set a
    threshold (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or the ``glibc.malloc`` tunables in
    ``GLIBC_TUNABLES``)."""
    libc = _libc()
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if libc is None or any(v in os.environ for v in GLIBC_VARIABLES) or any(t in tunables for t in GLIBC_TUNABLES):
        return False
    _set(libc, M_MMAP_THRESHOLD, KEEP_THRESHOLD, "mmap_threshold")
    _set(libc, M_TRIM_THRESHOLD, KEEP_THRESHOLD, "trim_threshold")
    return True


def compact_heap(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``mmap_threshold`` bytes (blocks that size or larger are then returned to
    the system as soon as they are freed), its trim threshold at glibc's default (:data:`TRIM_THRESHOLD`) and
    return the heaps' free memory now (``malloc_trim(0)``). Process-wide, until :func:`keep_heap` (the next
    training): later large allocations are slower (module docstring). Returns whether it applied (False, doing
    nothing, where the C library is not glibc)."""
    if not isinstance(mmap_threshold, int) or isinstance(mmap_threshold, bool) or not 0 <= mmap_threshold < 2**31:
        raise ValueError(f"mmap_threshold must be an int in [0, 2**31) (bytes: a C int), got {mmap_threshold!r}")
    libc = _libc()
    if libc is None:
        return False
    _set(libc, M_MMAP_THRESHOLD, mmap_threshold, "mmap_threshold")
    _set(libc, M_TRIM_THRESHOLD, TRIM_THRESHOLD, "trim_threshold")
    libc.malloc_trim(ctypes.c_size_t(0))
    return True
