"""Shared tiny configurations: every learner here trains in milliseconds per step on CPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynrep import GridWorld, RepresentationLearner, build_model, cli

#: Small conv/MLP widths that still exercise every layer type. Two conv layers (16 -> 8 -> 4) rather
#: than four down to 1x1: with four 4-channel layers the decoder's ReLUs are often all dead at
#: initialisation, so its output does not depend on the latent at all.
TINY_NET = {"channels": (4, 8), "hidden": 32, "mlp_hidden": (8,)}
#: Per-model batch settings small enough for fast tests.
TINY_MODEL = {
    "rotation": {"latent_dim": 4, "batch_size": 4, "episode_length": 3, **TINY_NET},
    "vae": {"latent_dim": 3, "batch_size": 4, "episode_length": 1, **TINY_NET},
}


@pytest.fixture
def small_env() -> GridWorld:
    """3x3 torus rendered as 16x16 images (16 fits conv stacks of up to four stride-2 layers)."""
    return GridWorld(size=3, image_size=16)


@pytest.fixture
def onehot_env() -> GridWorld:
    return GridWorld(size=3, observation="onehot")


def tiny_learner(model: str = "rotation", env=None, seed: int = 0, **overrides) -> RepresentationLearner:
    """A CPU learner on a 3x3, 16x16 GridWorld with tiny networks (``overrides`` update the config)."""
    env = GridWorld(size=3, image_size=16) if env is None else env
    config = {**TINY_MODEL[model], **overrides}
    return RepresentationLearner(env, model, seed=seed, device="cpu", **config)


@pytest.fixture
def make_learner():
    return tiny_learner


def params_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


def png_bytes_ok(path) -> bool:
    return Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def pytest_configure(config):
    config.addinivalue_line("markers", "end_to_end: trains a full-size model for a few hundred steps (slow)")
    config.addinivalue_line("markers", "slow: starts several processes (seconds each); runs in CI")


@pytest.fixture
def one_thread():
    """One intra-op torch thread while training tiny networks (restored after): with two threads, the
    millisecond steps of tiny MLPs are many times slower whenever the two cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded_model(name: str, env, seed: int = 0, **config):
    """``build_model(name, env, **config)`` with weights seeded by ``seed``, leaving the global torch RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, env, **config)


@pytest.fixture
def tiny_disk(tmp_path):
    """A directory on a 256 KiB tmpfs (a disk that fills up), where the machine lets us mount one (root on
    Linux); skipped elsewhere: the monkeypatched ENOSPC tests cover those machines."""
    import subprocess
    mount = tmp_path / "tiny_disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root on Linux)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill_disk(directory: Path) -> None:
    """Fill the filesystem of ``directory`` (a :func:`tiny_disk`) until writes fail with ENOSPC."""
    import errno
    with open(directory / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC


@pytest.fixture
def make_read_only():
    """``make_read_only(directory)``: a directory no one here may change (``chattr +i`` as root, whom
    permission bits do not stop; ``chmod 555`` otherwise); undone after the test."""
    import os
    import subprocess
    undo = []

    def make(directory: Path) -> Path:
        if os.geteuid() == 0:
            if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
                pytest.skip("chattr +i is not supported here")
            undo.append(lambda: subprocess.run(["chattr", "-i", str(directory)], capture_output=True))
        else:
            directory.chmod(0o555)
            undo.append(lambda: directory.chmod(0o755))
        return directory

    yield make
    for step in reversed(undo):
        step()


@pytest.fixture
def mount_read_only():
    """``mount_read_only(directory)``: ``directory`` (with what it holds) on a read-only bind mount, so writes
    fail with EROFS for everyone, root included; skipped where the machine does not let us mount (needs
    root on Linux). Unmounted after the test."""
    import subprocess
    mounted = []

    def make(directory: Path) -> Path:
        if subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True).returncode:
            pytest.skip("cannot bind-mount here (needs root on Linux)")
        mounted.append(directory)
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        return directory

    yield make
    for directory in mounted:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def one_line(capsys, *argv) -> tuple[int, str]:
    """Run the ``dynrep`` command ``argv``; return its exit code and its stderr, which must be exactly one line
    (the CLI's rule for every error a user can cause)."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return code, err[0]
