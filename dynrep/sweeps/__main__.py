"""``python -m dynrep.sweeps OUT NAME [--threads T] [--parent PID]``: the worker process that trains one point
of a sweep (started by :func:`dynrep.sweeps.run_sweep` with ``jobs > 1``)."""
from __future__ import annotations

import os
import sys
from typing import Sequence

from dynrep.sweeps.launch import run_point


def _stop_with(parent: int) -> bool:
    """Linux: have this process receive SIGTERM (a clean stop: the checkpoint, then exit 143) when process
    ``parent``, the sweep that started it, dies, even by SIGKILL, so that no point trains on unseen; False if
    ``parent`` is gone already."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    return os.getppid() == parent


def _main(argv: Sequence[str]) -> int:
    """``python -m dynrep.sweeps OUT NAME [--threads T] [--parent PID]``: one point, as a local worker process."""
    import argparse

    from dynrep.cli import _describe
    from dynrep.data.download import DownloadError
    from dynrep.training import CheckpointError, NonFiniteLossError
    parser = argparse.ArgumentParser(prog="python -m dynrep.sweeps", description="train one point of a sweep")
    parser.add_argument("out")
    parser.add_argument("name")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parent", type=int, default=None, help="stop when this process (the sweep) dies")
    args = parser.parse_args(argv)
    if args.parent is not None and not _stop_with(args.parent):
        print(f"dynrep sweep: {args.name}: the sweep (process {args.parent}) ended before this point started",
              file=sys.stderr)
        return 143
    try:
        run_point(args.out, args.name, args.threads)
    except (KeyboardInterrupt, ValueError, KeyError, CheckpointError, DownloadError, NonFiniteLossError,
            OSError) as err:
        message, code = _describe(err)
        print(f"dynrep sweep: {args.name}: {message}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
