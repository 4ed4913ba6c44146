"""Fault injection in real processes: concurrent writers and readers of one checkpoint, writers killed mid-save,
training stopped by SIGINT / SIGTERM / SIGKILL and resumed exactly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_learner
from dynrep import RepresentationLearner
from dynrep.training import load_checkpoint, save_checkpoint

TESTS = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}

WRITER = """
import sys, torch
from dynrep.training import save_checkpoint
path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(count):
    state = {"x": torch.full((50_000,), float(i)), "writer": name, "i": i}
    save_checkpoint(path, {"writer": name, "i": i}, state)
    print(i, flush=True)
"""

READER = """
import pathlib, sys
from dynrep.training import load_checkpoint
path, stop = sys.argv[1], pathlib.Path(sys.argv[2])
loads = 0
while not stop.exists() or loads == 0:
    config, state = load_checkpoint(path)
    assert (config["writer"], config["i"]) == (state["writer"], state["i"]) and float(state["x"][-1]) == state["i"]
    loads += 1
print(loads)
"""


def python(code: str, *args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_two_writers_and_a_reader(tmp_path):
    ck = tmp_path / "ck"
    save_checkpoint(ck, {"writer": "start", "i": 0}, {"x": torch.zeros(50_000), "writer": "start", "i": 0})
    reader = python(READER, ck, tmp_path / "stop")
    writers = [python(WRITER, ck, name, 40) for name in ("a", "b")]
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert out.split() == [str(i) for i in range(40)]  # every save succeeded
    (tmp_path / "stop").touch()
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err  # no load failed or saw a mixed checkpoint
    assert int(out) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "stop"]
    assert load_checkpoint(ck)[0]["i"] == 39


def test_writers_killed_mid_save_leave_a_loadable_checkpoint(tmp_path):
    """Five rounds in one directory, each killing two writers at a random moment of their continuous saves:
    after each, the checkpoint loads whole, whatever the earlier rounds left behind."""
    ck, rng = tmp_path / "ck", np.random.default_rng(0)
    for _ in range(5):
        writers = [python(WRITER, ck, name, 10_000) for name in ("a", "b")]
        for writer in writers:
            writer.stdout.readline()  # each has saved at least once: now they are saving continuously
        time.sleep(rng.uniform(0.05, 0.5))
        for writer in writers:
            assert writer.poll() is None, writer.communicate()[1]  # still saving, no save has failed
            writer.kill()
            writer.communicate()
        config, state = load_checkpoint(ck)
        assert (config["writer"], config["i"]) == (state["writer"], state["i"])
    save_checkpoint(ck, {"writer": "after", "i": 0}, {"x": torch.zeros(3)})  # cleans up what the dead left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert load_checkpoint(ck)[0]["writer"] == "after"


TRAIN = """
import sys
from conftest import tiny_learner
from dynrep.training import Callback, TrainingInterrupted

class Announce(Callback):
    def on_step_end(self, trainer, logs):
        if trainer.step == 5:
            print("ready", flush=True)

learner = tiny_learner("rotation", seed=4)
every = int(sys.argv[2]) if len(sys.argv) > 2 else None
try:
    learner.train(1_000_000, progress=False, checkpoint_dir=sys.argv[1], checkpoint_every=every,
                  callbacks=[Announce()])
except TrainingInterrupted as err:
    print(err.signal_name, err.step, flush=True)
    print(err, file=sys.stderr)
"""


def assert_resumes_exactly(ck: Path, step: int) -> None:
    """The checkpoint at ``step`` continued for 4 steps equals an uninterrupted run of ``step + 4`` steps."""
    torch.set_num_threads(1)
    resumed = RepresentationLearner.load(ck, device="cpu")
    assert resumed.step == step
    resumed.train(4, progress=False)
    straight = tiny_learner("rotation", seed=4)
    straight.train(step + 4, progress=False)
    assert resumed.history == straight.history
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_with_a_final_checkpoint(tmp_path, one_thread, signum):
    run = python(TRAIN, tmp_path / "ck")  # no periodic checkpoints: only the final one
    assert run.stdout.readline() == "ready\n"
    run.send_signal(signum)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    name, step = out.split()
    assert name == signum.name and int(step) >= 5
    assert f"training stopped by {signum.name} at step {step}; the checkpoint in {tmp_path / 'ck'} holds its " \
           f"step-{step} state" in err
    assert_resumes_exactly(tmp_path / "ck", int(step))


def test_sigkill_keeps_the_last_periodic_checkpoint(tmp_path, one_thread):
    run = python(TRAIN, tmp_path / "ck", 2)
    assert run.stdout.readline() == "ready\n"
    run.kill()
    run.communicate()
    step = load_checkpoint(tmp_path / "ck")[0]["step"]
    assert step >= 4 and step % 2 == 0
    assert_resumes_exactly(tmp_path / "ck", step)
