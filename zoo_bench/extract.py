"""Safe unpacking of .tar.xz / .tar.gz / .tar.bz2 / .tar / .zip archives into a fresh folder.

Every member is checked before anything is written: absolute paths, `..` components, links that
point outside the target or go through another link, and device files or fifos are refused with
an `UnsafeArchiveError`. Members land in a temporary folder beside the target, which is renamed
to the target only when the whole archive unpacked; on any failure it is removed.
"""

from __future__ import annotations

import gzip
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn

from zoo_bench.atomic import make_temp_dir
from zoo_bench.download import console
from zoo_bench.errors import DownloadError, UnsafeArchiveError
from zoo_bench.progress import progress_bar

FORMATS = {
    ".tar.xz": "tar.xz", ".txz": "tar.xz", ".tar.gz": "tar.gz", ".tgz": "tar.gz",
    ".tar.bz2": "tar.bz2", ".tar": "tar", ".zip": "zip",
}
TAR_MODES = {"tar.xz": "r:xz", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar": "r:"}
DAMAGE = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile,
          zipfile.BadZipFile)
_DRIVE = re.compile(r"^[A-Za-z]:")


class DamagedArchiveError(DownloadError):
    """An archive is truncated or corrupt (or not the format its name says)."""


def archive_format(name: str) -> str | None:
    """The archive format a file name implies ("tar.xz", "zip", ...), or None if it is not one."""
    lower = name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if lower.endswith(suffix):
            return FORMATS[suffix]
    return None


def extract(archive: Path, dest: Path, *, format: str | None = None,
            progress: bool = True) -> Path:
    """Unpack `archive` into the new folder `dest` (replaced if it exists) and return `dest`."""
    archive, dest = Path(archive), Path(dest)
    fmt = format or archive_format(archive.name)
    if fmt not in TAR_MODES and fmt != "zip":
        raise DamagedArchiveError(
            f"{archive}: unknown archive format {fmt!r}; known: {sorted(set(FORMATS.values()))}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(dest.parent, f".{dest.name}.partial-")
    try:
        with _tracked(archive, progress) as f:
            if fmt == "zip":
                _extract_zip(archive, f, tmp)
            else:
                _extract_tar(archive, f, TAR_MODES[fmt], tmp)
    except DAMAGE as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DamagedArchiveError(
            f"{archive} is truncated or damaged, or not a {fmt} archive ({e}); "
            "get a fresh copy of it"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def _extract_tar(archive: Path, f: BinaryIO, mode: str, tmp: Path) -> None:
    links: set[str] = set()
    extra: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=f, mode=mode) as tar:
        while (member := tar.next()) is not None:
            if member.issym():
                kind = "symlink"
            elif member.islnk():
                kind = "hardlink"
            elif member.isdir():
                kind = "dir"
            elif member.isreg():
                kind = "file"
            elif member.ischr() or member.isblk():
                kind = "device"
            elif member.isfifo():
                kind = "fifo"
            else:
                kind = f"type {member.type!r}"
            name = check_member(archive, member.name, kind, member.linkname, links)
            if kind == "symlink":
                links.add(name)
            tar.extract(member, tmp, **extra)


def _extract_zip(archive: Path, f: BinaryIO, tmp: Path) -> None:
    links: dict[str, str] = {}
    with zipfile.ZipFile(f) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            kind = {stat.S_IFLNK: "symlink", stat.S_IFCHR: "device", stat.S_IFBLK: "device",
                    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}.get(stat.S_IFMT(mode))
            kind = kind or ("dir" if info.is_dir() else "file")
            target = zf.read(info).decode("utf-8", "replace") if kind == "symlink" else ""
            name = check_member(archive, info.filename, kind, target, set(links))
            out = tmp.joinpath(*name.split("/")) if name else tmp
            if kind == "dir":
                out.mkdir(parents=True, exist_ok=True)
            elif kind == "symlink":
                links[name] = target
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        for name, target in links.items():
            out = tmp.joinpath(*name.split("/"))
            out.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, out)


def check_member(archive: Path, name: str, kind: str, link: str, links: set[str]) -> str:
    """Refuse an unsafe member, else return its normalised relative path ('a/b').

    `kind` is file | dir | symlink | hardlink (anything else is refused); `link` is a link's
    target; `links` holds the symlinks seen so far, which no later path may pass through.
    """

    def refuse(why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"{archive}: refusing to unpack member {name!r}: {why}. The archive is unsafe; "
            "nothing was unpacked. Get the archive again from the catalog's URL, or report it"
        )

    if kind not in ("file", "dir", "symlink", "hardlink"):
        raise refuse(f"it is a {kind}, not a plain file or folder")
    if _absolute(name) or ".." in _components(name):
        raise refuse("its path is absolute or has a '..' component")
    rel, through = _resolve(name, links)
    if through:
        raise refuse("its path goes through a symlink in the archive")
    if kind in ("symlink", "hardlink"):
        base = posixpath.dirname(rel) if kind == "symlink" else ""
        target, through = (None, False) if _absolute(link) else _resolve(f"{base}/{link}", links)
        if target is None:
            raise refuse(f"it is a {kind} to {link!r}, outside the target folder")
        if through:
            raise refuse(f"it is a {kind} to {link!r}, which goes through another symlink")
    return rel or ""


def _absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(_DRIVE.match(path))


def _components(path: str) -> list[str]:
    return [c for c in re.split(r"[/\\]", path) if c not in ("", ".")]


def _resolve(path: str, links: set[str]) -> tuple[str | None, bool]:
    """Walk a relative path: (normalised path or None if it climbs out, passes through a link)."""
    parts: list[str] = []
    through = False
    comps = _components(path)
    for i, c in enumerate(comps):
        if c == "..":
            if not parts:
                return None, through
            parts.pop()
            continue
        parts.append(c)
        if i < len(comps) - 1 and "/".join(parts) in links:
            through = True
    return "/".join(parts), through


class _Tracked:
    """A read-only file that moves a progress bar as it is read (by compressed bytes)."""

    def __init__(self, f: BinaryIO, progress: Any, task: Any):
        self._f, self._progress, self._task = f, progress, task

    def _moved(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._f.tell())

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._moved()
        return data

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        self._moved()
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._f.seek(offset, whence)
        self._moved()
        return pos

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._f, attr)


@contextmanager
def _tracked(archive: Path, progress: bool) -> Iterator[Any]:
    with open(archive, "rb") as raw:
        if not progress:
            yield raw
            return
        columns = (TextColumn("unpacking {task.description}"), BarColumn(), DownloadColumn(),
                   TimeRemainingColumn())
        with progress_bar(*columns, console=console, unit="bytes") as bar:
            task = bar.add_task(archive.name, total=archive.stat().st_size)
            yield _Tracked(raw, bar, task)
