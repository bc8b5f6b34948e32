"""The catalog of known model zoos, and `ensure_zoo`: fetch, verify, unpack and import one by name.

Cache layout under the root (`zoo_bench.paths.home()` unless a `dir` is given):
    downloads/<zoo>/<archive>        verified archives (kept, so a zoo can be re-imported)
    downloads/<zoo>/<archive>.part   an interrupted download, resumed by the next call
    downloads/<zoo>/record.json      a Zenodo record's file list, kept for offline re-use
    downloads/<zoo>/rejected/        files that were already there but did not verify or unpack
                                     (placed by hand, never deleted), named <file>.<UTC time>
    downloads/sha256.lock.json       hashes of archives with none published, recorded once the
                                     archive has unpacked and imported
    zoos/<zoo>/                      the canonical zoo (see `zoo_bench.store`)
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import requests

from zoo_bench.atomic import write_text_atomic
from zoo_bench.download import (
    LOCK_NAME,
    HashLock,
    OfflineError,
    RetryPolicy,
    check_file,
    fetch,
    remote_size,
    request_json,
)
from zoo_bench.errors import DownloadError, ZooBenchError, ZooFormatError, ZooImportError
from zoo_bench.extract import DamagedArchiveError, archive_format, extract
from zoo_bench.importers import IMPORTERS
from zoo_bench.paths import home
from zoo_bench.registry import did_you_mean
from zoo_bench.store import Zoo

logger = logging.getLogger(__name__)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ZENODO_API = "https://zenodo.org/api"
ZENODO_ENV = "ZOO_BENCH_ZENODO_API"
CTC_FILES = ("weights.npy", "metrics.csv.gz", "layout.csv")
_FIELDS = {"description", "urls", "zenodo", "files", "size", "sha256", "format", "importer",
           "networks", "licence", "citation", "homepage"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CatalogError(ZooBenchError):
    """The catalog is malformed, or a zoo name is not in it."""


@dataclass(frozen=True)
class CatalogEntry:
    """One known zoo: where its archive lives, how to check it, how to import it, whose it is."""

    name: str
    importer: str
    format: str
    description: str = ""
    urls: tuple[str, ...] = ()
    zenodo: int | None = None
    files: tuple[str, ...] = ()
    size: int = 0
    sha256: str = ""
    networks: int | None = None
    licence: str = ""
    citation: str = ""
    homepage: str = ""

    @property
    def checksum(self) -> str:
        """How a download of this zoo is verified, in words."""
        if self.sha256:
            return "sha256"
        return "md5" if self.zenodo else "lock"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its name, mirror URLs and whatever size / hashes are published."""

    name: str
    urls: tuple[str, ...]
    size: int = 0
    sha256: str = ""
    md5: str = ""
    lock_key: str = ""

    @property
    def key(self) -> str:
        """Name of this file in the sha256 lock file."""
        return self.lock_key or (self.urls[0] if self.urls else self.name)


@dataclass
class Plan:
    """What `ensure_zoo` would do: the zoo folder, and each file with its local state."""

    entry: CatalogEntry
    zoo_dir: Path
    cached: bool
    files: list[tuple[RemoteFile, Path]] = field(default_factory=list)
    licence: str = ""
    note: str = ""
    offline: str = ""  # why the file list is unknown (no network, nothing kept), else ""


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    """Read and check the catalog: the packaged `catalog.toml`, or the file at `path`."""
    if path is None:
        text = resources.files("zoo_bench").joinpath("catalog.toml").read_text("utf-8")
        where = "zoo_bench/catalog.toml"
    else:
        text, where = Path(path).read_text("utf-8"), str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"{where} is not valid TOML: {e}") from None
    return {name: _entry(name, spec, where) for name, spec in data.items()}


def _entry(name: str, spec: Any, where: str) -> CatalogEntry:
    def bad(why: str) -> CatalogError:
        return CatalogError(f"{where}: zoo {name!r}: {why}")

    if not isinstance(spec, dict):
        raise bad("must be a table of fields")
    unknown = set(spec) - _FIELDS
    if unknown:
        raise bad(f"unknown fields {sorted(unknown)}; known: {sorted(_FIELDS)}")
    if bool(spec.get("urls")) == bool(spec.get("zenodo")):
        raise bad("give exactly one of `urls` (a list) or `zenodo` (a record id)")
    if spec.get("importer") not in IMPORTERS:
        raise bad(f"importer {spec.get('importer')!r} is not one of {sorted(IMPORTERS)}")
    fmt = spec.get("format", "auto")
    if fmt != "auto" and archive_format(f"x.{fmt}") != fmt:
        raise bad(f"format {fmt!r} is not auto, tar.xz, tar.gz, tar.bz2, tar or zip")
    if fmt == "auto" and spec.get("urls") and archive_format(spec["urls"][0]) is None:
        raise bad("format is auto but the URL does not end in an archive suffix; set `format`")
    sha = str(spec.get("sha256", "")).lower()
    if sha and not _SHA256.match(sha):
        raise bad(f"sha256 {sha!r} is not 64 hex digits (leave it empty if none is published)")
    return CatalogEntry(
        name=name,
        importer=spec["importer"],
        format=fmt,
        description=spec.get("description", ""),
        urls=tuple(spec.get("urls", ())),
        zenodo=int(spec["zenodo"]) if spec.get("zenodo") else None,
        files=tuple(spec.get("files", ())),
        size=int(spec.get("size", 0)),
        sha256=sha,
        networks=spec.get("networks"),
        licence=spec.get("licence", ""),
        citation=spec.get("citation", ""),
        homepage=spec.get("homepage", ""),
    )


def get_entry(name: str, catalog: Mapping[str, CatalogEntry] | None = None) -> CatalogEntry:
    """The catalog entry called `name`; an unknown name lists the valid ones and a close match."""
    catalog = load_catalog() if catalog is None else catalog
    if name in catalog:
        return catalog[name]
    raise CatalogError(
        f"unknown zoo {name!r}{did_you_mean(name, catalog, n=1)} Known zoos: "
        f"{', '.join(sorted(catalog))} (see `zoo-bench zoo list`)"
    )


def zenodo_api() -> str:
    """Base URL of the Zenodo records API: `$ZOO_BENCH_ZENODO_API` or zenodo.org's."""
    return os.environ.get(ZENODO_ENV) or ZENODO_API


def zenodo_record(record: int, *, api: str | None = None, policy: RetryPolicy | None = None,
                  session: requests.Session | None = None) -> tuple[list[RemoteFile], str]:
    """Every file of a Zenodo record (name, URL, size, md5) and the record's licence id."""
    url = f"{(api or zenodo_api()).rstrip('/')}/records/{record}"
    data = request_json(url, policy=policy, session=session)
    files = data.get("files") if isinstance(data, dict) else None
    if isinstance(files, dict):
        files = files.get("entries", [])
        files = list(files.values()) if isinstance(files, dict) else files
    if not isinstance(files, list):
        raise DownloadError(f"{url}: the record lists no files (is {record} the right record?)")
    out = []
    for f in files:
        links = f.get("links", {})
        link = links.get("content") or links.get("self")
        if not f.get("key") or not link:
            raise DownloadError(f"{url}: a file entry lacks its key or download link: {f}")
        algo, _, digest = str(f.get("checksum", "")).partition(":")
        out.append(RemoteFile(name=Path(f["key"]).name, urls=(link,), size=int(f.get("size", 0)),
                              md5=digest if algo == "md5" else ""))
    licence = (data.get("metadata", {}).get("license") or {}) if isinstance(data, dict) else {}
    return out, licence.get("id", "") if isinstance(licence, dict) else str(licence)


def _downloads(root: Path, name: str) -> Path:
    return root / "downloads" / name


def _select(entry: CatalogEntry, files: list[RemoteFile]) -> list[RemoteFile]:
    if entry.files:
        chosen = [f for f in files if any(fnmatch.fnmatch(f.name, p) for p in entry.files)]
    else:
        chosen = [f for f in files if archive_format(f.name)]
    if not chosen:
        raise DownloadError(
            f"Zenodo record {entry.zenodo} of zoo {entry.name} has no file matching "
            f"{list(entry.files) or 'an archive suffix'}; its files: {[f.name for f in files]}"
        )
    return chosen


def remote_files(entry: CatalogEntry, root: Path, *, api: str | None = None,
                 policy: RetryPolicy | None = None, session: requests.Session | None = None,
                 ) -> tuple[list[RemoteFile], str, str]:
    """The files a zoo needs, its licence and a note on where the list came from.

    A Zenodo record is resolved through the API and its file list kept in the download folder;
    offline, that kept list (or archives placed there by hand) is used instead.
    """
    if entry.zenodo is None:
        name = entry.urls[0].rstrip("/").rsplit("/", 1)[-1]
        return [RemoteFile(name, entry.urls, entry.size, entry.sha256)], entry.licence, ""
    folder = _downloads(root, entry.name)
    kept = folder / "record.json"
    try:
        files, licence = zenodo_record(entry.zenodo, api=api, policy=policy, session=session)
    except OfflineError as e:
        if kept.exists():
            saved = json.loads(kept.read_text())
            files = [RemoteFile(f["name"], tuple(f["urls"]), f["size"], md5=f["md5"])
                     for f in saved["files"]]
            return _select(entry, files), saved["licence"], f"offline: using {kept}"
        placed = sorted(p for p in folder.glob("*") if p.is_file() and archive_format(p.name))
        if placed:
            files = [RemoteFile(p.name, (), p.stat().st_size,
                                lock_key=f"zenodo:{entry.zenodo}/{p.name}") for p in placed]
            return files, entry.licence, "offline: using the archives placed by hand"
        raise OfflineError(
            f"{e} Or download the archives of Zenodo record {entry.zenodo} "
            f"({entry.homepage or 'https://zenodo.org/records/' + str(entry.zenodo)}) elsewhere, "
            f"put them in {folder}/ and run again"
        ) from None
    write_text_atomic(kept, json.dumps({"record": entry.zenodo, "licence": licence, "files": [
        {"name": f.name, "urls": list(f.urls), "size": f.size, "md5": f.md5} for f in files]}))
    return _select(entry, files), licence or entry.licence, ""


def cached_zoo(name: str, dir: Path | None = None) -> Path | None:
    """The zoo's folder if it is in the cache and opens, else None."""
    path = (Path(dir) if dir else home()) / "zoos" / name
    try:
        Zoo.open(path)
    except (ZooFormatError, OSError, ValueError, KeyError):
        return None
    return path


def local_state(entry: CatalogEntry, dir: Path | None = None) -> str:
    """One word on what the cache holds for a zoo: ready, damaged, archive, partial or ''."""
    root = Path(dir) if dir else home()
    if (root / "zoos" / entry.name).exists():
        return "ready" if cached_zoo(entry.name, root) else "damaged"
    folder = _downloads(root, entry.name)
    if not folder.is_dir():
        return ""
    names = [p.name for p in folder.iterdir()]
    if any(archive_format(n) for n in names):
        return "archive"
    return "partial" if any(n.endswith(".part") for n in names) else ""


def plan(name: str, dir: Path | None = None, *, catalog: Mapping[str, CatalogEntry] | None = None,
         policy: RetryPolicy | None = None, session: requests.Session | None = None,
         zenodo_api: str | None = None) -> Plan:
    """What `ensure_zoo` would fetch and where, without fetching it (for `--dry-run`).

    Offline, a Zenodo zoo's file list may be unknown: the plan then has no files, says why in
    `offline`, and keeps what the catalog knows.
    """
    entry = get_entry(name, catalog)
    root = Path(dir) if dir else home()
    zoo_dir = root / "zoos" / name
    if cached_zoo(name, root):
        return Plan(entry, zoo_dir, True, licence=entry.licence)
    try:
        files, licence, note = remote_files(entry, root, api=zenodo_api, policy=policy,
                                            session=session)
    except OfflineError as e:
        return Plan(entry, zoo_dir, False, licence=entry.licence, offline=str(e))
    folder = _downloads(root, name)
    return Plan(entry, zoo_dir, False, [(f, folder / f.name) for f in files], licence, note)


def size_of(f: RemoteFile, *, policy: RetryPolicy | None = None,
            session: requests.Session | None = None) -> int | None:
    """A file's size: published, else from a HEAD request, else None."""
    if f.size:
        return f.size
    for url in f.urls:
        try:
            return remote_size(url, policy=policy, session=session)
        except DownloadError:
            continue
    return None


def importer_for(kind: str) -> Callable[..., Path]:
    """The import function for a catalog `importer` field (ctc, schurholt)."""
    if kind not in IMPORTERS:
        raise CatalogError(f"no importer {kind!r}; known: {sorted(IMPORTERS)}")
    return IMPORTERS[kind]


def find_source(kind: str, unpacked: Path) -> Path:
    """The one folder inside an unpacked download that the importer reads.

    ctc: the folder holding weights.npy, metrics.csv.gz and layout.csv. schurholt: the folder
    whose subfolders (one per model) hold result.json.
    """
    if kind == "ctc":
        found = {Path(d) for d, _, names in os.walk(unpacked) if set(CTC_FILES) <= set(names)}
        want = f"holding {list(CTC_FILES)}"
    else:
        found = {Path(d).parent for d, _, names in os.walk(unpacked) if "result.json" in names}
        want = "whose subfolders hold result.json (one per model)"
    if len(found) != 1:
        rel = sorted(str(p.relative_to(unpacked)) for p in found)
        what = "no folder" if not found else f"{len(found)} folders ({rel})"
        raise ZooImportError(f"unpacked, they hold {what} {want}")
    return found.pop()


def _hand_hint(entry: CatalogEntry, zoo_dir: Path) -> str:
    return (
        f"Or unpack a local copy of the archive and run "
        f"`zoo-bench zoo import {entry.importer} SRC {zoo_dir}`."
    )


def set_aside(path: Path) -> Path:
    """Move a file we will not use out of the way, never deleting it: to a `rejected/` folder
    beside it, under its name plus a UTC time stamp. Returns where it went."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.parent / "rejected" / f"{path.name}.{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target


def _obtain(entry: CatalogEntry, f: RemoteFile, dest: Path, pin: str, lock: HashLock,
            policy: RetryPolicy | None, session: requests.Session | None, progress: bool,
            hint: str) -> tuple[str, bool]:
    """Make `dest` a verified copy of `f` (already there, or downloaded).

    Returns its sha256 and whether it was already there (placed by the user or kept from an
    earlier run). Such a file that does not verify is set aside (`set_aside`), never deleted;
    the error says where it went.
    """
    locked = lock.get(f.key)
    expected = pin or f.sha256 or locked
    where = (
        f" (expected hash from {lock.path}; delete its entry for {f.key} if the upstream file "
        "changed on purpose)"
        if expected == locked and locked and not (pin or f.sha256)
        else ""
    )
    if dest.exists():
        try:
            sha, _ = check_file(dest, f.key, sha256=expected, md5=f.md5, size=f.size,
                                remove=False)
        except DownloadError as e:
            aside = set_aside(dest)
            raise DownloadError(
                f"{e} It was moved aside to {aside} (not deleted); put the right file at {dest} "
                f"or run again to download it{where}"
            ) from None
        return sha, True
    if not f.urls:
        raise OfflineError(f"no URL is known for {f.name}; put it at {dest} and run again. {hint}")
    errors: list[DownloadError] = []
    for url in f.urls:
        try:
            return fetch(url, dest, sha256=expected, md5=f.md5, size=f.size, policy=policy,
                         session=session, progress=progress, hint=hint).sha256, False
        except DownloadError as e:
            errors.append(e)
            if len(f.urls) > 1:
                logger.warning("%s", e)
    if len(errors) == 1:
        raise type(errors[0])(f"{errors[0]}{where}") from None
    kind = OfflineError if all(isinstance(e, OfflineError) for e in errors) else DownloadError
    raise kind(f"every mirror of {f.name} failed: " + " | ".join(map(str, errors)))


def ensure_zoo(
    name: str,
    dir: Path | None = None,
    sha256: str | None = None,
    progress: bool = True,
    *,
    catalog: Mapping[str, CatalogEntry] | None = None,
    policy: RetryPolicy | None = None,
    session: requests.Session | None = None,
    zenodo_api: str | None = None,
) -> Path:
    """The folder of the zoo `name`, downloading, verifying, unpacking and importing it if needed.

    `dir` replaces the cache root (`zoo_bench.paths.home()`); `sha256` pins the archive's hash
    (single-archive zoos). `catalog`, `policy`, `session` and `zenodo_api` are for tests and
    mirrors.
    """
    entry = get_entry(name, catalog)
    root = Path(dir) if dir else home()
    zoo_dir = root / "zoos" / name
    rebuild = zoo_dir.exists()
    if rebuild:
        try:
            Zoo.open(zoo_dir)
            return zoo_dir
        except ZooFormatError as e:
            logger.warning("%s does not open (%s); rebuilding it", zoo_dir, e)
    pin = (sha256 or "").lower()
    if pin and not _SHA256.match(pin):
        raise DownloadError(f"--sha256 {sha256!r} is not a sha256 (64 hex digits)")
    if pin and entry.sha256 and pin != entry.sha256:
        raise DownloadError(
            f"--sha256 {pin} contradicts the catalog's published sha256 {entry.sha256} for {name}"
        )
    hint = _hand_hint(entry, zoo_dir)
    try:
        files, _, note = remote_files(entry, root, api=zenodo_api, policy=policy, session=session)
    except OfflineError as e:
        raise OfflineError(f"{e} {hint}") from None
    if note:
        logger.info("%s", note)
    if pin and len(files) != 1:
        raise DownloadError(f"zoo {name} has {len(files)} files; --sha256 pins a single archive")
    folder = _downloads(root, name)
    lock = HashLock(root / "downloads" / LOCK_NAME)
    got = {}
    for f in files:
        dest = folder / f.name
        got[f] = (dest, *_obtain(entry, f, dest, pin, lock, policy, session, progress, hint))
    unpacked = folder / ".unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    unverified = [f for f, (_, _, placed) in got.items() if placed and not (
        pin or f.sha256 or f.md5 or lock.get(f.key))]
    kept = (
        f" The archives {[str(got[f][0]) for f in unverified]} were kept as you placed them and "
        "no hash was recorded: replace them with the right files and run again."
        if unverified else ""
    )
    try:
        for f, (dest, _, placed) in got.items():
            fmt = archive_format(f.name) if entry.format == "auto" else entry.format
            _unpack(dest, unpacked / f.name, fmt, progress, placed)
        try:
            src = find_source(entry.importer, unpacked)
        except ZooImportError as e:
            raise ZooImportError(
                f"the downloads of zoo {name} in {folder}: {e}. Unpack them yourself and import "
                f"the right folder with `zoo-bench zoo import {entry.importer} SRC {zoo_dir}`."
                f"{kept}"
            ) from None
        try:
            importer_for(entry.importer)(src, zoo_dir, name=name, overwrite=rebuild,
                                         progress=progress)
        except ZooBenchError as e:
            raise type(e)(f"{e}.{kept}" if kept else str(e)) from None
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    # Only an archive that unpacked and imported is trusted enough to lock its hash.
    for f, (dest, sha, _) in got.items():
        if not (pin or f.sha256 or f.md5 or lock.get(f.key)):
            lock.record(f.key, sha, dest.stat().st_size, name)
            logger.warning(
                "No checksum is published for %s: recorded its sha256 %s in %s after it "
                "unpacked and imported; later downloads are checked against it.",
                f.key, sha, lock.path,
            )
    return zoo_dir


def _unpack(archive: Path, dest: Path, fmt: str | None, progress: bool,
            placed: bool = False) -> None:
    """Extract one archive (or place a plain file).

    A damaged archive this run downloaded is deleted; one that was already there (placed by
    the user, or kept from an earlier run) is moved aside, never deleted.
    """
    if fmt is None:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(archive, dest / archive.name)
        return
    try:
        extract(archive, dest, format=fmt, progress=progress)
    except DamagedArchiveError as e:
        if placed:
            aside = set_aside(archive)
            raise DamagedArchiveError(
                f"{e}: it was moved aside to {aside}; put a good copy at {archive} or run again "
                "to download it afresh"
            ) from None
        archive.unlink(missing_ok=True)
        raise DamagedArchiveError(
            f"{e}: it was deleted, so running again downloads it afresh"
        ) from None
