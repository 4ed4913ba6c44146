"""Output files replaced whole or not at all."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; when the block succeeds it is renamed over ``path``,
    when it fails (a full disk, an error while encoding) it is removed and ``path`` is left as it was, so a
    failed write never leaves an empty or truncated file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is not None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err  # a failed write names the file it was for
    finally:
        tmp.unlink(missing_ok=True)
