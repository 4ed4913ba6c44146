"""The process's heap: give freed memory back to the system once the allocation-heavy work is over.

glibc's malloc serves a block of up to 32 MB from its heaps once a block that size has been freed (its mmap
threshold grows with the blocks freed), and keeps the freed memory of those heaps for later calls. Training
runs at full speed that way, but the memory stays resident: `dynrep demo --steps 100` peaked at 497-544 MB,
the evaluation after training growing the heaps with freed blocks, against 446-448 MB with
:func:`compact_heap` called once after training (benchmarks/RESULTS.md, Speed IV, "Lead's rerun"). A fixed
threshold makes every larger block an ``mmap`` of its own, returned when freed: training steps are then ~40 %
slower (fresh zeroed pages on every step), so this is for the phase after training, in a process that will not
train again (the demo command).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: ``mallopt`` parameter number of the mmap threshold (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
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


def compact_heap(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``mmap_threshold`` bytes (blocks that size or larger are then returned to
    the system as soon as they are freed) and return the heaps' free memory now (``malloc_trim(0)``).
    Process-wide and permanent: later large allocations are slower (module docstring). Returns whether it
    applied (False, doing nothing, where the C library is not glibc)."""
    if not isinstance(mmap_threshold, int) or isinstance(mmap_threshold, bool) or not 0 <= mmap_threshold < 2**31:
        raise ValueError(f"mmap_threshold must be an int in [0, 2**31) (bytes: a C int), got {mmap_threshold!r}")
    libc = _libc()
    if libc is None:
        return False
    if not libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold)):
        raise ValueError(f"glibc's mallopt refused mmap_threshold={mmap_threshold}")
    libc.malloc_trim(ctypes.c_size_t(0))
    return True
