"""dynrep.memory: keep_heap keeps a step's freed blocks for the next (no page faults), compact_heap gives freed
heap memory back and keeps later large blocks out of the heaps."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dynrep import memory

pytestmark = pytest.mark.skipif(memory._libc() is None, reason="needs glibc's malloc")

# What both scripts below start with: dynrep.memory loaded alone (no torch to import), libc's malloc and free,
# and the resident MB.
PRELUDE = """
import ctypes, importlib.util, sys
spec = importlib.util.spec_from_file_location("memory", sys.argv[2])  # alone: no torch to import
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)
libc = memory._libc()
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))
"""

# In a fresh process: free one 16 MB block (glibc then serves blocks up to that size from its heaps), allocate 40
# of 4 MB with a 96 KB block after each (which pins the heap below it), free the large ones and report the resident MB
# before and after compact_heap, and after allocating, touching and freeing 40 blocks of 8 MB (too large for
# the 4 MB holes left in the heap), each followed by an untouched 5 MB pin.
SCRIPT = PRELUDE + """
SIZE = 4 << 20
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
    out = subprocess.run([sys.executable, "-c", SCRIPT, what, memory.__file__], capture_output=True, text=True, check=True)
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


# In a fresh process: allocate, touch and free a 40 MB block (above glibc's largest dynamic mmap threshold,
# as a beta-TCVAE's batch-256 activations are) 20 times, after keep_heap or not, and print the minor page faults
# of those rounds; then, after compact_heap, the resident MB given back when another such block is freed, and
# when 60 blocks of 512 KB from the heap's top are (the default trim threshold is back).
FAULTS = PRELUDE + """
import resource
SIZE = 40 << 20
def round_trip():
    block = libc.malloc(SIZE); ctypes.memset(block, 1, SIZE); libc.free(block)
applied = memory.keep_heap() if sys.argv[1] == "keep" else None
round_trip()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_trip()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
memory.compact_heap()
block = libc.malloc(SIZE); ctypes.memset(block, 1, SIZE); held = rss(); libc.free(block)
returned = held - rss()
small = [libc.malloc(512 << 10) for _ in range(60)]  # from the heap (below the 1 MB mmap threshold)
for b in small:
    ctypes.memset(b, 1, 512 << 10)
held = rss()
for b in reversed(small):
    libc.free(b)
print(applied, faults, returned, held - rss())
"""


def _faults(what: str, env: dict | None = None) -> tuple[str, int, int, int]:
    out = subprocess.run([sys.executable, "-c", FAULTS, what, memory.__file__], capture_output=True, text=True,
                         check=True, env=None if env is None else {**os.environ, **env})
    applied, *counts = out.stdout.split()
    return applied, *map(int, counts)


def test_keep_heap_reuses_freed_blocks_without_page_faults():
    applied, faults, returned, trimmed = _faults("keep")
    assert applied == "True" and faults < 100  # 20 rounds of 10,240 pages each: the block stayed in the heap
    # compact_heap after it: a 40 MB block goes back to the system when freed, and so does the heap's free top
    assert returned > 30 and trimmed > 20


def test_without_keep_heap_every_large_block_faults_in_again():
    applied, faults, *_ = _faults("none")
    assert applied == "None" and faults > 20 * 10_000  # each round maps fresh zeroed pages


@pytest.mark.parametrize("env", [{"MALLOC_MMAP_THRESHOLD_": "65536"}, {"MALLOC_TRIM_THRESHOLD_": "65536"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=65536"}])
def test_keep_heap_leaves_thresholds_the_user_set(env):
    applied, faults, *_ = _faults("keep", env)
    assert applied == "False" and faults > 20 * 10_000


def test_training_keeps_the_heap(monkeypatch):
    from dynrep import GridWorld, RepresentationLearner
    calls = []
    monkeypatch.setattr(memory, "keep_heap", lambda: calls.append(True))
    RepresentationLearner(GridWorld(size=3, image_size=16), model="rotation", seed=0).train(1, progress=False)
    assert calls == [True]
