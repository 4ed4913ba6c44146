"""Checkpoint directories: ``config.json`` + ``state.pt`` (tensors only), written atomically.

A checkpoint is first written completely to a sibling temporary directory, then
swapped in with renames, so a crash while writing never replaces a good checkpoint.
``config.json`` records the SHA-256 of ``state.pt``; loading verifies it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

CONFIG_FILE, STATE_FILE = "config.json", "state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupted."""


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path: str | Path, config: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write ``config`` (JSON-serialisable) and ``state`` (tensors and plain values) to directory ``path``.

    ``path`` must be new, empty or an earlier checkpoint: a directory holding other
    files is never replaced (CheckpointError).
    """
    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.writing"), path.with_name(f".{path.name}.previous")
    if not path.exists() and old.is_dir():  # an earlier save stopped between its two renames
        old.rename(path)
    if path.exists() and not (path.is_dir() and {p.name for p in path.iterdir()} <= {CONFIG_FILE, STATE_FILE}):
        raise CheckpointError(f"{path} exists and holds more than a dynrep checkpoint ({CONFIG_FILE}, "
                              f"{STATE_FILE}); refusing to replace it")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    payload = dict(config, state_sha256=hashlib.sha256(data).hexdigest())
    text = json.dumps(payload, indent=2, sort_keys=True).encode()  # fails before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _fsync_write(tmp / STATE_FILE, data)
    _fsync_write(tmp / CONFIG_FILE, text)
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Read a checkpoint directory; returns ``(config, state)``.

    If ``path`` is missing because a save was interrupted between its two renames,
    the previous checkpoint kept beside it is read instead.
    """
    path = Path(path)
    previous = path.with_name(f".{path.name}.previous")
    if not path.exists() and previous.is_dir():
        path = previous
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint at {path}: expected a directory with {CONFIG_FILE} and {STATE_FILE}")
    missing = [name for name in (CONFIG_FILE, STATE_FILE) if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} is not valid JSON ({err})") from err
    data = (path / STATE_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != config.get("state_sha256"):
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} does not match the checksum in {CONFIG_FILE} "
                              "(truncated or corrupted file)")
    state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    return config, state
