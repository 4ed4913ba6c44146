"""Every user error of the ``dynrep`` command is one line on stderr and exit code 2 (usage) or 1 (runtime),
never a traceback; interruptions save and exit 130 / 143."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import fill_disk, one_line, tiny_learner
from dynrep import cli

TINY = ["--quiet", "--device", "cpu", "--set", "channels=[4,8]", "--set", "hidden=32", "--set", "batch_size=2",
        "--set", "episode_length=2", "--env-arg", "size=3", "--env-arg", "image_size=16"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def run(tmp_path):
    """A checkpoint of a tiny rotation run."""
    path = tmp_path / "run"
    tiny_learner("rotation").save(path)
    return path


# -- checkpoints that are not there ----------------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "animate"])
def test_a_missing_checkpoint(capsys, tmp_path, command):
    code, err = one_line(capsys, command, tmp_path / "nothing", "--device", "cpu")
    assert code == 1
    assert err == f"dynrep {command}: error: no checkpoint at {tmp_path / 'nothing'}: expected a directory with " \
                  "config.json and state.pt"


@pytest.mark.parametrize("command", ["evaluate", "animate"])
def test_a_directory_that_is_not_a_checkpoint(capsys, tmp_path, command):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"")
    code, err = one_line(capsys, command, tmp_path / "photos", "--device", "cpu")
    assert (code, err) == (1, f"dynrep {command}: error: {tmp_path / 'photos'} is not a dynrep checkpoint: it "
                              "has neither config.json nor state.pt")


def test_a_tampered_checkpoint(capsys, run):
    (run / "config.json").write_text("[]")
    code, err = one_line(capsys, "evaluate", run, "--device", "cpu")
    assert code == 1 and "config.json holds a JSON list, not the object of a dynrep checkpoint" in err


# -- bad arguments ---------------------------------------------------------------------------
def test_a_misspelt_env_arg(capsys, tmp_path):
    code, err = one_line(capsys, "train", "--steps", "1", "--out", tmp_path / "x", "--env-arg", "siz=5")
    assert code == 2
    assert err == ("dynrep train: error: --env-arg siz: environment 'gridworld' has no argument 'siz'; its "
                   "arguments are size, scales, colours, backgrounds, image_size, observation")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("setting,message", [
    ("channels=5", "'rotation' model option channels must be of type tuple[int, ...], got 5"),
    ("reg_weight=abc", "'rotation' model option reg_weight must be of type float, got 'abc'"),
    ("angle_init=-1", "angle_init must be >= 0 or None, got -1"),
])
def test_a_model_option_of_the_wrong_type(capsys, tmp_path, setting, message):
    code, err = one_line(capsys, "train", "--steps", "1", "--out", tmp_path / "x", "--set", setting)
    assert (code, err) == (2, f"dynrep train: error: {message}")


def test_an_env_arg_of_the_wrong_type(capsys, tmp_path):
    code, err = one_line(capsys, "train", "--steps", "1", "--out", tmp_path / "x", "--env-arg", "image_size=1.5")
    assert (code, err) == (2, "dynrep train: error: --env-arg image_size must be of type int for environment "
                              "'gridworld', got 1.5")


def test_a_missing_run_config(capsys, tmp_path):
    code, err = one_line(capsys, "train", tmp_path / "run.yaml", "--out", tmp_path / "x")
    assert (code, err) == (2, f"dynrep train: error: run config '{tmp_path / 'run.yaml'}' does not exist: give a "
                              "YAML or .json run config file (a run folder's run.yaml re-runs it)")


def test_an_environment_missing_a_required_argument(capsys, tmp_path):
    code, err = one_line(capsys, "train", "--env", "toy_nn", "--steps", "1", "--out", tmp_path / "x")
    assert (code, err) == (2, "dynrep train: error: environment 'toy_nn' needs --env-arg dataset=VALUE")


def test_a_dataset_that_is_not_downloaded(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path / "data"))
    code, err = one_line(capsys, "train", "--env", "shapes3d", "--steps", "1", "--out", tmp_path / "x")
    assert code == 1
    assert err.startswith(f"dynrep train: error: shapes3d not found at {tmp_path / 'data' / '3dshapes.h5'}; "
                          "fetch it with `dynrep download shapes3d`")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(capsys, tmp_path):
    code, err = one_line(capsys, "train", "--steps", "1", "--out", tmp_path / "x", "--device", "cuda")
    assert code == 2
    assert err.startswith("dynrep train: error: device 'cuda' is not available: this machine has ")
    assert err.endswith("; use device 'cpu' or 'auto'")


@pytest.mark.parametrize("flag,value,message", [
    ("--time-limit", "0", "time_limit must be a positive finite number of seconds or None, got 0.0"),
    ("--time-limit", "nan", "time_limit must be a positive finite number of seconds or None, got nan"),
    ("--checkpoint-every", "0", "checkpoint_every must be >= 1, got 0"),
    ("--steps", "-1", "steps must be >= 0, got -1"),
    ("--autocast", "fp16", "--autocast must be one of (None, 'bf16'), got 'fp16'"),
])
def test_bad_training_numbers(capsys, tmp_path, flag, value, message):
    argv = ["train", "--out", tmp_path / "x", *TINY, flag, value]
    code, err = one_line(capsys, *(argv if flag == "--steps" else [*argv, "--steps", "1"]))
    assert (code, err) == (2, f"dynrep train: error: {message}")
    assert learner_steps(tmp_path / "x") is None


def learner_steps(path: Path) -> int | None:
    """The step of the checkpoint at ``path``, None if there is none."""
    return json.loads((path / "config.json").read_text())["step"] if (path / "config.json").exists() else None


# -- where the output goes -------------------------------------------------------------------
def test_out_is_a_file(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    code, err = one_line(capsys, "train", "--steps", "1", "--out", tmp_path / "notes.txt", *TINY)
    assert (code, err) == (1, f"dynrep train: error: {tmp_path / 'notes.txt'} is a file, not a checkpoint "
                              "directory; choose a directory path")
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_out_holds_another_run(capsys, tmp_path, run):
    code, err = one_line(capsys, "train", "--model", "vae", "--steps", "1", "--out", run, *TINY)
    assert code == 1
    assert f"error: {run} holds the checkpoint of another run (model rotation, step 0, run " in err
    assert err.endswith("pass overwrite=True (CLI: --overwrite) to replace it, or choose another directory")
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "rotation"
    assert cli.main(["train", "--model", "vae", "--steps", "1", "--out", str(run), *TINY, "--overwrite"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "vae"


def test_out_on_a_full_disk(capsys, tiny_disk):
    code, err = one_line(capsys, "train", "--steps", "1", "--out", tiny_disk / "x", *TINY,
                         "--set", "channels=[64,64]", "--set", "hidden=256")
    assert code == 1
    assert err.startswith(f"dynrep train: error: not enough space for a checkpoint at {tiny_disk / 'x'}: it "
                          "needs about ")


def test_a_gif_onto_a_full_disk(capsys, run, tiny_disk):
    fill_disk(tiny_disk)
    code, err = one_line(capsys, "animate", run, "--frames", "2", "--device", "cpu", "--output",
                         tiny_disk / "a.gif")
    assert code == 1
    assert err == f"dynrep animate: error: No space left on device: {tiny_disk / 'a.gif'} (free some space or " \
                  "write elsewhere)"
    assert not (tiny_disk / "a.gif").exists()


def test_out_on_a_read_only_filesystem(capsys, tmp_path, mount_read_only, run):
    (tmp_path / "shared").mkdir()
    mount_read_only(tmp_path / "shared")
    code, err = one_line(capsys, "train", "--steps", "1", "--out", tmp_path / "shared" / "x", *TINY)
    assert (code, err) == (1, f"dynrep train: error: cannot write a checkpoint at {tmp_path / 'shared' / 'x'}: "
                              "Read-only file system; choose a writable directory")
    code, err = one_line(capsys, "animate", run, "--frames", "2", "--device", "cpu", "--output",
                         tmp_path / "shared" / "a.gif")
    assert code == 1
    assert err.startswith("dynrep animate: error: Read-only file system: ") and err.endswith("(write elsewhere)")


def test_permission_denied(capsys, run, tmp_path, monkeypatch):
    """As root, permission bits stop no one: the OS's refusal is simulated at the GIF write."""
    def refuse(self, data):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "write_bytes", refuse)
    code, err = one_line(capsys, "animate", run, "--frames", "2", "--device", "cpu", "--output", tmp_path / "a.gif")
    assert code == 1
    assert err.startswith("dynrep animate: error: Permission denied: ")
    assert err.endswith("(write elsewhere or fix the permissions)")


def test_a_non_finite_loss(capsys, tmp_path):
    code, err = one_line(capsys, "train", "--steps", "3", "--out", tmp_path / "x", *TINY, "--set", "lr=1e30")
    assert code == 1
    assert err.startswith("dynrep train: error: loss term ") and "the checkpoint in" in err
    assert learner_steps(tmp_path / "x") is not None


def test_ctrl_c_outside_training(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_list", interrupted)  # looked up when main builds the parser
    assert one_line(capsys, "list") == (130, "dynrep list: interrupted")


# -- python -m dynrep, help, signals ---------------------------------------------------------
def test_python_m_dynrep(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dynrep", "list"], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0 and "gridworld" in done.stdout
    usage = subprocess.run([sys.executable, "-m", "dynrep"], env=ENV, capture_output=True, text=True)
    assert usage.returncode == 2 and "the following arguments are required: command" in usage.stderr


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for code in cli.EXIT_CODES:
        assert f"{code} {' '.join(cli.EXIT_CODES[code].split())}" in out


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_and_exits_with_its_code(tmp_path, signum, code):
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "dynrep", "train", "--steps", "1000000", "--out", str(out),
                            "--checkpoint-every", "3", *TINY], env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while learner_steps(out) is None and time.monotonic() < deadline:  # training has begun
        time.sleep(0.05)
    run.send_signal(signum)
    _, err = run.communicate(timeout=120)
    assert run.returncode == code
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    step = learner_steps(out)
    assert lines[0] == (f"dynrep train: interrupted: training stopped by {signum.name} at step {step}; the "
                        f"checkpoint in {out} holds its step-{step} state")
