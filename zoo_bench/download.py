"""Verified, resumable, atomic HTTP downloads of zoo archives, and the sha256 lock file.

A download streams into `<file>.part` beside its destination, hashing on the way, and is renamed
to its final name only once size and hashes are right, so a file under the final name is always
complete. An interrupted download keeps the `.part` file (and a `.part.json` naming its URL and
validators); the next call re-hashes those bytes and asks for the rest with an HTTP Range request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
import urllib3.exceptions
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from zoo_bench.atomic import write_text_atomic
from zoo_bench.errors import DownloadError
from zoo_bench.progress import PlainProgress, progress_bar

logger = logging.getLogger(__name__)
console = Console(stderr=True, soft_wrap=True)  # where download progress bars draw
FAIL_AT_ONCE = (401, 403, 404, 410)
RETRY_STATUS = (408, 425, 429)
HASH_BLOCK = 1 << 22
LOCK_NAME = "sha256.lock.json"


class OfflineError(DownloadError):
    """The host could not be reached at all (connection refused, DNS failure): likely offline."""


class _Transient(Exception):
    """A failure worth retrying: dropped connection, timeout, 5xx, a refused resume."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `retries` extra attempts with exponential backoff, and socket timeouts."""

    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 30.0
    chunk: int = 1 << 18

    def wait(self, failures: int) -> float:
        """Seconds to sleep after the `failures`-th failure in a row (1, 2, ...)."""
        return min(self.max_backoff, self.backoff * 2 ** (failures - 1))


@dataclass(frozen=True)
class Fetched:
    """A completed, verified download."""

    path: Path
    url: str
    size: int
    sha256: str
    md5: str
    resumed_from: int = 0


def part_path(dest: Path) -> Path:
    """The temporary file a download of `dest` streams into."""
    return dest.with_name(dest.name + ".part")


def _meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


def partial_bytes(dest: Path) -> int:
    """Bytes already held for an interrupted download of `dest` (0 if none)."""
    part = part_path(dest)
    return part.stat().st_size if part.exists() else 0


def _new_hashes() -> tuple[Any, Any]:
    return hashlib.sha256(), hashlib.md5(usedforsecurity=False)


def file_hashes(path: Path, limit: int | None = None) -> tuple[Any, Any]:
    """sha256 and md5 hash objects fed with the first `limit` bytes of `path` (all if None)."""
    sha, md5 = _new_hashes()
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(HASH_BLOCK if left is None else min(HASH_BLOCK, left))
            if not block:
                break
            sha.update(block)
            md5.update(block)
            if left is not None:
                left -= len(block)
    return sha, md5


def check_file(path: Path, url: str, *, sha256: str = "", md5: str = "", size: int = 0,
               remove: bool = True) -> tuple[str, str]:
    """Hash a file and compare it with what is expected; on a mismatch remove it and raise."""
    sha, md = file_hashes(path)
    _compare(path, url, path.stat().st_size, sha.hexdigest(), md.hexdigest(),
             sha256=sha256, md5=md5, size=size, remove=[path] if remove else [])
    return sha.hexdigest(), md.hexdigest()


def _compare(path: Path, url: str, got_size: int, got_sha: str, got_md5: str, *, sha256: str,
             md5: str, size: int, remove: list[Path]) -> None:
    problem = ""
    if size and got_size != size:
        problem = f"expected {size} bytes, got {got_size}"
    elif sha256 and got_sha != sha256.lower():
        problem = f"expected sha256 {sha256.lower()}, got {got_sha}"
    elif md5 and got_md5 != md5.lower():
        problem = f"expected md5 {md5.lower()}, got {got_md5}"
    if problem:
        for p in remove:
            p.unlink(missing_ok=True)
        fix = "The bad file was removed; run again to download it afresh." if remove else ""
        if problem.startswith("expected sha256"):
            fix += " If the upstream file changed on purpose, pin its new hash with --sha256."
        raise DownloadError(f"{path} (from {url}) does not verify: {problem}. {fix}".strip())


def fetch(
    url: str,
    dest: Path,
    *,
    sha256: str = "",
    md5: str = "",
    size: int = 0,
    policy: RetryPolicy | None = None,
    session: requests.Session | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
    hint: str = "",
) -> Fetched:
    """Download `url` to `dest`, resuming any partial file; verify size / sha256 / md5 if given.

    Transient failures are retried with backoff; 401/403/404/410 fail at once; an unreachable host
    raises `OfflineError` naming `dest` as the place to put the file by hand (plus `hint`).
    `on_chunk(bytes_so_far)` is called after each chunk is written.
    """
    policy = policy or RetryPolicy()
    session = session or requests.Session()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    with _bar(progress, dest.name) as bar:
        while True:
            before = _usable_partial(dest, url)
            try:
                total, sha, md, resumed = _attempt(url, dest, before, policy, session, bar,
                                                   on_chunk, hint)
                break
            except _Transient as e:
                failures = 0 if partial_bytes(dest) > before else failures + 1
                if failures > policy.retries:
                    raise DownloadError(
                        f"giving up on {url} after {policy.retries + 1} failed attempts in a row "
                        f"(last: {e}); run the same command again to resume from "
                        f"{partial_bytes(dest)} bytes"
                    ) from None
                wait = policy.wait(failures)
                logger.warning("%s: %s; retrying in %.1fs", url, e, wait)
                time.sleep(wait)
    part = part_path(dest)
    _compare(dest, url, total, sha, md, sha256=sha256, md5=md5, size=size,
             remove=[part, _meta_path(dest)])
    os.replace(part, dest)
    _meta_path(dest).unlink(missing_ok=True)
    return Fetched(dest, url, total, sha, md, resumed)


def _usable_partial(dest: Path, url: str) -> int:
    """Bytes of a partial file that belong to `url`; a partial from another URL is discarded."""
    part, meta = part_path(dest), _meta_path(dest)
    if part.exists() and _read_meta(meta).get("url") != url:
        part.unlink()
    if not part.exists():
        meta.unlink(missing_ok=True)
    return partial_bytes(dest)


def _read_meta(meta: Path) -> dict:
    try:
        return json.loads(meta.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _attempt(url: str, dest: Path, offset: int, policy: RetryPolicy, session: requests.Session,
             bar: _Bar, on_chunk: Callable[[int], None] | None,
             hint: str) -> tuple[int, str, str, int]:
    """One request: stream the (rest of the) body into the partial file.

    Returns the total size, sha256, md5 and the byte offset this request resumed from.
    """
    part, meta = part_path(dest), _meta_path(dest)
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = _read_meta(meta).get("validator")
        if validator:
            headers["If-Range"] = validator
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=policy.timeout)
    except requests.RequestException as e:
        raise _classify(e, url, dest, hint) from None
    with resp:
        status = resp.status_code
        if status in FAIL_AT_ONCE:
            raise DownloadError(
                f"{url} answered HTTP {status} {resp.reason}: the file is not there or not public; "
                "check the URL in the catalog (or the Zenodo record)"
            )
        if status == 416 and offset:
            if _total_from_range(resp.headers.get("Content-Range", "")) == offset:
                sha, md = file_hashes(part)
                return offset, sha.hexdigest(), md.hexdigest(), offset
            part.unlink()
            raise _Transient("the server refused to resume (HTTP 416); starting over")
        if status >= 500 or status in RETRY_STATUS:
            raise _Transient(f"HTTP {status} {resp.reason}")
        if status == 206 and offset:
            start = _start_from_range(resp.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Transient(f"asked for bytes from {offset}, got a range from {start}")
            total = _total_from_range(resp.headers.get("Content-Range", ""))
        elif status == 200:
            if offset:
                logger.warning("%s: the server sent the whole file (no Range support, or the "
                               "file changed); starting over", url)
                offset = 0
            length = resp.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
        else:
            raise DownloadError(f"{url} answered an unexpected HTTP {status} {resp.reason}")
        _write_meta(meta, url, resp.headers)
        sha, md = file_hashes(part, offset) if offset else _new_hashes()
        bar.start(total, offset)
        received = offset
        with open(part, "ab" if offset else "wb") as f:
            try:
                for chunk in resp.iter_content(policy.chunk):
                    f.write(chunk)
                    sha.update(chunk)
                    md.update(chunk)
                    received += len(chunk)
                    bar.advance(len(chunk))
                    if on_chunk is not None:
                        on_chunk(received)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
                raise _Transient(f"connection lost ({_reason(e)}); {received} bytes kept") from None
        if total is not None and received != total:
            raise _Transient(f"connection closed after {received} of {total} bytes")
    return received, sha.hexdigest(), md.hexdigest(), offset


def _write_meta(meta: Path, url: str, headers: Any) -> None:
    etag = headers.get("ETag", "")
    validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified", "")
    meta.write_text(json.dumps({"url": url, "validator": validator}))


def _start_from_range(value: str) -> int | None:
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_from_range(value: str) -> int | None:
    try:
        return int(value.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return None


def _causes(e: BaseException) -> Iterator[BaseException]:
    seen, stack = set(), [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack += [x.__cause__, x.__context__, getattr(x, "reason", None)]
        stack += [a for a in getattr(x, "args", ()) if isinstance(a, BaseException)]


def _reason(e: BaseException) -> str:
    """The innermost cause's text, e.g. 'Connection refused'."""
    return str(list(_causes(e))[-1]) or type(e).__name__


def _is_offline(e: BaseException) -> bool:
    if isinstance(e, requests.ConnectTimeout):
        return False
    offline = (urllib3.exceptions.NewConnectionError, ConnectionRefusedError, socket.gaierror)
    return any(isinstance(x, offline) for x in _causes(e))


def _classify(e: requests.RequestException, url: str, dest: Path | None, hint: str) -> Exception:
    """Turn a request exception into OfflineError, a retryable _Transient or a DownloadError."""
    if _is_offline(e):
        where = (
            f"Download it on a machine that is online and put it at {dest}, then run again"
            if dest is not None
            else "Connect to the network and run again"
        )
        return OfflineError(
            f"cannot reach {url} ({_reason(e)}): this machine looks offline. "
            f"{where}. {hint}".strip()
        )
    if isinstance(e, (requests.ConnectionError, requests.Timeout)):
        return _Transient(f"{type(e).__name__}: {_reason(e)}")
    return DownloadError(f"cannot download {url}: {e}")


def request_json(url: str, *, policy: RetryPolicy | None = None,
                 session: requests.Session | None = None, hint: str = "") -> Any:
    """GET a JSON document with the same retry rules as `fetch`."""
    resp = _request("GET", url, policy, session, hint)
    try:
        return resp.json()
    except ValueError:
        raise DownloadError(f"{url} did not answer with JSON (got {resp.text[:80]!r})") from None


def remote_size(url: str, *, policy: RetryPolicy | None = None,
                session: requests.Session | None = None) -> int | None:
    """Size announced by a HEAD request, or None where the server does not say."""
    resp = _request("HEAD", url, policy, session, "")
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _request(method: str, url: str, policy: RetryPolicy | None,
             session: requests.Session | None, hint: str) -> requests.Response:
    policy = policy or RetryPolicy()
    session = session or requests.Session()
    failures = 0
    while True:
        try:
            resp = session.request(method, url, timeout=policy.timeout, allow_redirects=True)
            if resp.status_code in FAIL_AT_ONCE:
                raise DownloadError(f"{url} answered HTTP {resp.status_code} {resp.reason}")
            if resp.status_code >= 500 or resp.status_code in RETRY_STATUS:
                raise _Transient(f"HTTP {resp.status_code} {resp.reason}")
            resp.raise_for_status()
            return resp
        except requests.RequestException as e:
            err = _classify(e, url, None, hint)
            if not isinstance(err, _Transient):
                raise err from None
            failure = err
        except _Transient as e:
            failure = e
        failures += 1
        if failures > policy.retries:
            raise DownloadError(f"giving up on {url} after {failures} attempts (last: {failure})")
        time.sleep(policy.wait(failures))


class _Bar:
    """A rich progress bar with bytes, speed and ETA, or nothing when progress is off."""

    def __init__(self, progress: Progress | PlainProgress | None, label: str):
        self.progress, self.label, self.task = progress, label, None

    def start(self, total: int | None, done: int) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=total, completed=done)
        else:
            self.progress.reset(self.task, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, n)


@contextmanager
def _bar(enabled: bool, label: str) -> Iterator[_Bar]:
    if not enabled:
        yield _Bar(None, label)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with progress_bar(*columns, console=console, unit="bytes") as progress:
        yield _Bar(progress, label)


class HashLock:
    """sha256s observed on first download of files with no published checksum, keyed by URL.

    Kept as JSON in the download folder; later downloads of the same URL must match.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as e:
            raise DownloadError(
                f"{self.path} is not valid JSON ({e}); fix it or delete it (its hashes are then "
                "recorded again on the next download)"
            ) from None
        return data if isinstance(data, dict) else {}

    def get(self, url: str) -> str:
        return str(self.read().get(url, {}).get("sha256", ""))

    def record(self, url: str, sha256: str, size: int, zoo: str) -> None:
        """Add or replace one URL's hash, writing the lock file atomically."""
        data = self.read()
        data[url] = {"sha256": sha256, "size": size, "zoo": zoo,
                     "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_text_atomic(self.path, json.dumps(data, indent=2, sort_keys=True))
