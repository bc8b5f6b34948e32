"""Atomic file replacement: readers see the old file or the whole new one, never a part.

Every file the package writes for later reading (result cells, split files, shards, lock files)
goes through here, so a crash or Ctrl-C can never leave a half-written file that looks complete.
Files and folders made here get the permissions of the user's umask, as `open` and `mkdir`
would give them, not the private 0600 / 0700 of `tempfile`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def umask() -> int:
    """The process's current umask: from /proc on Linux (no race with other threads), else by
    setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions a plain `open(path, "w")` would give a new file: 0666 less the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Permissions a plain `mkdir` would give a new folder: 0777 less the umask."""
    return 0o777 & ~umask()


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh folder in `parent` (as `tempfile.mkdtemp`) with the umask's permissions.

    Used for folders that are renamed into place when complete, so the result is readable by
    whoever the user's umask lets read it.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, dir_mode())
    return tmp


def replace_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run `write` on a temporary file beside `path`, sync it, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
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
