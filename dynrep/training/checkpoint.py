"""Checkpoint directories: ``config.json`` + ``state.pt`` (tensors only), written atomically, under a lock;
optionally also ``model.safetensors``, the model's weights in the format any framework can read.

Protocol for a checkpoint directory ``DIR`` (its helper directories are siblings in DIR's parent):

- a writer takes an exclusive lock on the parent directory, writes the new checkpoint completely into a
  directory of its own (``.DIR.writing-<pid>-<random>``), renames ``DIR`` to ``.DIR.previous``, renames
  its directory to ``DIR`` and deletes ``.DIR.previous``;
- a reader takes a shared lock on the parent directory, so it never sees a half-swapped checkpoint;
- a writer killed at any point leaves ``DIR`` or ``.DIR.previous`` complete: readers read the previous
  one, and the next writer restores it and removes the dead writer's directory.

``config.json`` records the dynrep version, the SHA-256 of ``state.pt`` (and of ``model.safetensors``, when
written) and of the rest of the config; loading verifies them all. A directory is recognised as a checkpoint by its ``config.json``, never by
file names alone, and a checkpoint of another run (another ``run_id``) is replaced only when asked.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import torch

from dynrep import __version__
from dynrep.training import distributed

CONFIG_FILE, STATE_FILE, WEIGHTS_FILE = "config.json", "state.pt", "model.safetensors"
_CHECKSUMS = ("state_sha256", "config_sha256")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupted, incompatible, or may not be written where asked."""


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def _locked(directory: Path, exclusive: bool) -> Iterator[None]:
    """An advisory lock on ``directory`` itself (POSIX ``flock`` on a directory descriptor, which needs
    only read permission): exclusive for writers, shared for readers. A reader that may not even list the
    directory reads without the lock, and so could meet another user's save mid-swap."""
    try:
        import fcntl
        fd = os.open(directory, os.O_RDONLY)
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    except PermissionError:
        if exclusive:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _resolved(path: str | Path) -> Path:
    """``path``, or the directory it links to: a symlinked checkpoint is saved and read through the link."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")


def _config_digest(config: dict) -> str:
    """SHA-256 of ``config`` without its checksums, in canonical JSON (equal before and after a round trip)."""
    body = {k: v for k, v in config.items() if k not in _CHECKSUMS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _version(text: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in text.split("+")[0].split("."))
    except (AttributeError, ValueError):
        return None


def _check_version(path: Path, version: Any) -> None:
    """Checkpoints of this major version, written by this release or an earlier one, are readable."""
    mine, theirs = _version(__version__), _version(version)
    if theirs is None:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} has dynrep_version {version!r}, not a version "
                              "number: not a checkpoint written by dynrep")
    if theirs[0] != mine[0] or theirs > mine:
        raise CheckpointError(f"checkpoint {path} was written by dynrep {version}, but this is dynrep {__version__}, "
                              f"which reads checkpoints of dynrep {mine[0]}.x up to {__version__}: install dynrep "
                              f"{version} to read it")


def _checkpoint_config(path: Path) -> dict | None:
    """The ``config.json`` of directory ``path`` if it is a dynrep checkpoint's (a JSON object with a
    version and a checksum), else None."""
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and {"dynrep_version", "state_sha256"} <= config.keys() else None


def _existing(path: Path) -> dict | None:
    """The config of the checkpoint at ``path``; None if nothing (or an empty directory) is there.

    Raises CheckpointError if ``path`` holds anything else: a file, other files, a foreign ``config.json``."""
    if not path.exists():
        return None
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a checkpoint directory; choose a directory path")
    names = {p.name for p in path.iterdir()}
    if not names:
        return None
    config = _checkpoint_config(path)
    if config is None or names - {CONFIG_FILE, STATE_FILE, WEIGHTS_FILE}:
        raise CheckpointError(f"{path} holds files that are not a dynrep checkpoint ({', '.join(sorted(names)[:5])}); "
                              "refusing to replace it: choose a new or empty directory")
    return config


def _check_owner(path: Path, existing: dict | None, run_id: str | None, overwrite: bool) -> None:
    if existing is None or overwrite or existing.get("run_id") == run_id:
        return
    model = existing.get("model")
    what = ", ".join(f"{k} {v}" for k, v in (("model", model.get("name") if isinstance(model, dict) else None),
                                               ("step", existing.get("step")), ("run", existing.get("run_id")))
                     if v is not None)
    raise CheckpointError(f"{path} holds the checkpoint of another run ({what or 'no run id'}); pass "
                          "overwrite=True (CLI: --overwrite) to replace it, or choose another directory")


def _check_writable(path: Path) -> None:
    if path.is_dir() and not os.access(path, os.W_OK):
        raise CheckpointError(f"checkpoint directory {path} is read-only, so it cannot be replaced: make it "
                              f"writable (chmod -R u+w {path}) or choose another directory")


def _recover(path: Path) -> None:
    """Under the writers' lock: undo what a killed writer left (its own directory; a swap cut in half)."""
    previous = _previous(path)
    if not path.exists() and previous.is_dir():
        previous.rename(path)
    for stale in path.parent.glob(f".{path.name}.writing-*"):
        shutil.rmtree(stale, ignore_errors=True)


def check_destination(path: str | Path, *, run_id: str | None = None, overwrite: bool = False,
                      size: int = 0) -> Path:
    """Raise CheckpointError now, before any training, if a checkpoint of about ``size`` bytes could not
    be saved at ``path``: it is a file or a directory of other things, it holds another run's checkpoint
    (unless ``overwrite``), it or its parent cannot be written, or the filesystem lacks the space.
    Creates the parent directories. Returns the resolved path. Under torchrun only rank 0 checks (it alone
    saves: :mod:`dynrep.training.distributed`)."""
    path = _resolved(path)
    if not distributed.is_main():
        return path
    _check_owner(path, _existing(path), run_id, overwrite)
    _check_writable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.writing-", dir=path.parent))
    except OSError as err:
        raise CheckpointError(f"cannot write a checkpoint at {path}: {err.strerror}; choose a writable "
                              "directory") from err
    free = shutil.disk_usage(path.parent).free
    if free < size:
        raise CheckpointError(f"not enough space for a checkpoint at {path}: it needs about {size / 2**20:.1f} MiB "
                              f"and {free / 2**20:.1f} MiB are free there; free some space or choose another "
                              "directory")
    return path


def require_safetensors():
    """``safetensors.torch.save``; an ImportError saying how to install it if the package is missing."""
    try:
        from safetensors.torch import save
    except ImportError as err:
        raise ImportError("saving weights as safetensors needs the safetensors package: pip install "
                          "dynrep[safetensors] (or pip install safetensors)") from err
    return save


def safetensors_bytes(weights: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """``weights`` (name -> tensor, any device) in the safetensors format, with string ``metadata``; tensors
    that share memory (tied weights) are stored as copies. Needs ``pip install dynrep[safetensors]``."""
    return require_safetensors()({name: t.detach().cpu().clone().contiguous() for name, t in weights.items()}, metadata)


def save_checkpoint(path: str | Path, config: dict[str, Any], state: dict[str, Any], *,
                    overwrite: bool = False, weights: bytes | None = None) -> Path:
    """Write ``config`` (JSON-serialisable) and ``state`` (tensors and plain values) to directory ``path``,
    and ``weights`` (:func:`safetensors_bytes`), if given, to ``model.safetensors`` beside them.

    ``path`` must be new, empty or a checkpoint of the same run (``config["run_id"]``, if any) or, with
    ``overwrite``, of any run: anything else is never replaced (CheckpointError). ``dynrep_version`` and
    the checksums are added to the config. A symlink is followed. Concurrent saves and loads of one
    directory are serialised; a failed or killed save leaves the previous checkpoint readable.
    Under torchrun only rank 0 writes (the other ranks return ``path`` at once).
    """
    path = _resolved(path)
    if not distributed.is_main():
        return path
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    payload = json.loads(json.dumps({**config, "dynrep_version": __version__}))  # fails before anything is written
    if weights is not None:  # part of the config digest: the pair cannot be swapped for other weights
        payload["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    payload.update(state_sha256=hashlib.sha256(data).hexdigest(), config_sha256=_config_digest(payload))
    text = json.dumps(payload, indent=2, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = _previous(path)
    with _locked(path.parent, exclusive=True):
        _recover(path)
        _check_owner(path, _existing(path), config.get("run_id"), overwrite)
        _check_writable(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.writing-{os.getpid()}-", dir=path.parent))
        try:
            _fsync_write(tmp / STATE_FILE, data)
            if weights is not None:
                _fsync_write(tmp / WEIGHTS_FILE, weights)
            _fsync_write(tmp / CONFIG_FILE, text)
            shutil.rmtree(previous, ignore_errors=True)
            if path.exists():
                path.rename(previous)
            tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if not path.exists() and previous.is_dir():
                previous.rename(path)
            raise
        shutil.rmtree(previous, ignore_errors=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Read and verify a checkpoint directory; returns ``(config, state)``.

    If ``path`` is missing because a save was killed between its two renames, the previous checkpoint
    kept beside it is read instead. Every failure is a CheckpointError naming the path.
    """
    path = _resolved(path)
    previous = _previous(path)
    with _locked(path.parent, exclusive=False) if path.parent.is_dir() else nullcontext():
        if not path.exists() and previous.is_dir():
            path = previous
        if not path.is_dir():
            raise CheckpointError(f"no checkpoint at {path}: expected a directory with {CONFIG_FILE} and "
                                  f"{STATE_FILE}")
        missing = [name for name in (CONFIG_FILE, STATE_FILE) if not (path / name).is_file()]
        if len(missing) == 2:
            raise CheckpointError(f"{path} is not a dynrep checkpoint: it has neither {CONFIG_FILE} nor {STATE_FILE}")
        if missing:
            raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
        text, data = (path / CONFIG_FILE).read_bytes(), (path / STATE_FILE).read_bytes()
        weights = (path / WEIGHTS_FILE).read_bytes() if (path / WEIGHTS_FILE).is_file() else None
    try:
        config = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} is not valid JSON ({err})") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} holds a JSON {type(config).__name__}, not the "
                              "object of a dynrep checkpoint")
    _check_version(path, config.get("dynrep_version"))
    if hashlib.sha256(data).hexdigest() != config.get("state_sha256"):
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} does not match the checksum in {CONFIG_FILE} "
                              "(truncated or corrupted file)")
    if "config_sha256" not in config:
        warnings.warn(f"checkpoint {path} predates config checksums: its {CONFIG_FILE} is not verified; save it "
                      "again to add one", stacklevel=2)
    elif _config_digest(config) != config["config_sha256"]:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} was changed after saving (it does not match its "
                              "checksum); restore the original file")
    if "weights_sha256" in config and (weights is None or hashlib.sha256(weights).hexdigest()
                                       != config["weights_sha256"]):
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} is " + ("missing" if weights is None else
                              "changed or corrupted: it does not match the checksum in " + CONFIG_FILE))
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable state is the checkpoint's fault: one error class
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} cannot be read ({type(err).__name__}: "
                              f"{err or 'no details'})") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} holds a {type(state).__name__}, not a state dict")
    return config, state
