"""Atomic file replacement: readers see the old file or the whole new one, never a part.

Every file the package writes for later reading (result cells, split files, shards, lock files)
goes through here, so a crash or Ctrl-C can never leave a half-written file that looks complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def replace_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run `write` on a temporary file beside `path`, sync it, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    replace_atomic(path, lambda f: f.write(data))


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes_atomic(path, text.encode())
