"""Where `dynrep demo`'s time and memory go: each phase's wall and CPU time, its resident memory at the start
and the end, and the peak within it (a thread samples VmRSS every 2 ms), then the real `dynrep demo` under
`/usr/bin/time -v` (its wall time and maximum resident set size, the issue's measure).

    python benchmarks/demo.py                 # the demo's 1000 steps
    python benchmarks/demo.py --steps 50      # the phases after training at the same cost, quickly

The load average is printed before and after: on a shared machine the times are inflated by it, the memory
figures are not.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path


def rss_mb() -> float:
    """The process's resident set size now, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakSampler(threading.Thread):
    """Samples the resident set size every ``interval`` seconds; ``take()`` returns and resets the peak."""

    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        self.interval, self.peak, self.running = interval, rss_mb(), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.interval)

    def take(self) -> float:
        peak, self.peak = max(self.peak, rss_mb()), rss_mb()
        return peak


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def phase(name: str, sampler: PeakSampler, rows: list):
    start_rss, wall, cpu = rss_mb(), time.perf_counter(), time.process_time()
    sampler.take()
    yield
    rows.append((name, time.perf_counter() - wall, time.process_time() - cpu, start_rss, rss_mb(), sampler.take()))


def run_phases(steps: int, out: Path) -> list:
    sampler = PeakSampler()
    sampler.start()
    rows: list = []
    with phase("import torch", sampler, rows):
        import torch
    with phase("import dynrep", sampler, rows):
        from dynrep import GridWorld, RepresentationLearner
    with phase("build learner", sampler, rows):
        learner = RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=0)
    with phase(f"train {steps} steps", sampler, rows):
        learner.train(steps, checkpoint_dir=out / "checkpoint", progress=False, overwrite=True)
    with phase("compact heap", sampler, rows):  # as `dynrep demo` does after training
        from dynrep.memory import compact_heap
        compact_heap()
    with phase("rollout gif", sampler, rows):
        learner.animate(out / "rollout.gif")
    with phase("traversal gif", sampler, rows):
        learner.animate(out / "traversal.gif", kind="traversal")
    with phase("angles png", sampler, rows):
        learner.plot_representation(out / "angles.png")
    with phase("training png", sampler, rows):
        learner.plot_training(out / "training.png")
    with phase("evaluate(metrics=())", sampler, rows):
        learner.evaluate(metrics=())
    for name in ("mig", "dci", "sap", "factor_vae", "beta_vae", "modularity"):
        with phase(f"  metric {name}", sampler, rows):
            learner.evaluate(metrics=[name], num_train=2000, num_test=1000, num_episodes=1, episode_length=0)
    sampler.running = False
    print(f"torch threads {torch.get_num_threads()}")
    return rows


def time_demo(steps: int, out: Path) -> None:
    """The real command, as a user runs it, under GNU time."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "dynrep", "demo", "--quiet", "--steps", str(steps),
               "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    if result.returncode:
        raise SystemExit(f"dynrep demo failed ({result.returncode}):\n{result.stderr}")
    stats = dict(line.strip().rsplit(": ", 1) for line in result.stderr.splitlines() if ": " in line)
    print(f"dynrep demo --steps {steps}: wall {stats['Elapsed (wall clock) time (h:mm:ss or m:ss)']}, "
          f"user {stats['User time (seconds)']} s, system {stats['System time (seconds)']} s, "
          f"max RSS {int(stats['Maximum resident set size (kbytes)']) / 1024:.0f} MB")
    print(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--no-demo", action="store_true", help="only the phases, not the timed `dynrep demo`")
    args = parser.parse_args()
    print(load())
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_phases(args.steps, Path(tmp) / "phases")
        print(f"{'phase':26s} {'wall s':>8s} {'cpu s':>8s} {'RSS MB start':>13s} {'end':>6s} {'peak':>6s}")
        for name, wall, cpu, start, end, peak in rows:
            print(f"{name:26s} {wall:8.2f} {cpu:8.2f} {start:13.0f} {end:6.0f} {peak:6.0f}")
        print(f"process peak (ru_maxrss) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
              f"{load()}")
        if not args.no_demo:
            time_demo(args.steps, Path(tmp) / "demo")
            print(load())


if __name__ == "__main__":
    main()
