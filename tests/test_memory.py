"""dynrep.memory: compact_heap gives freed heap memory back and keeps later large blocks out of the heaps."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dynrep import memory

pytestmark = pytest.mark.skipif(memory._libc() is None, reason="needs glibc's malloc")

# In a fresh process: free one 16 MB block (glibc then serves blocks up to that size from its heaps), allocate 40
# of 4 MB with a 96 KB block after each (which pins the heap below it), free the large ones and report the resident MB
# before and after compact_heap, and after allocating, touching and freeing 40 blocks of 8 MB (too large for
# the 4 MB holes left in the heap), each followed by an untouched 5 MB pin.
SCRIPT = """
import ctypes, sys
from dynrep import memory
libc = memory._libc()
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 4 << 20
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))
def churn(size, pin):
    blocks, pins = [], []
    for _ in range(40):
        blocks.append(libc.malloc(size)); ctypes.memset(blocks[-1], 1, size); pins.append(libc.malloc(pin))
    for block in blocks:
        libc.free(block)
    return pins
libc.free(libc.malloc(4 * SIZE))
pins = churn(SIZE, 96 << 10)
before = rss()
applied = memory.compact_heap() if sys.argv[1] == "compact" else None
after = rss()
pins += churn(2 * SIZE, 5 << 20)
print(applied, before, after, rss())
"""


def _run(what: str) -> tuple[str, int, int, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, what], capture_output=True, text=True, check=True)
    applied, *mb = out.stdout.split()
    return applied, *map(int, mb)


def test_freed_blocks_go_back_and_later_ones_stay_out_of_the_heap():
    applied, before, after, again = _run("compact")
    assert applied == "True"
    assert before - after > 100  # ~160 MB of freed 4 MB blocks were resident, kept by the heap
    assert again - after < 20  # the larger blocks after it: each an mmap of its own, returned when freed


def test_without_it_the_heap_keeps_them():
    applied, before, after, again = _run("none")
    assert applied == "None" and before - after < 5  # the ~160 MB the test above sees returned stay resident


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1M", 2**31])
def test_bad_thresholds_are_named(bad):
    with pytest.raises(ValueError, match=r"mmap_threshold must be .*got"):
        memory.compact_heap(bad)
