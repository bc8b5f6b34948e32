"""The canonical zoo format: one folder holding a JSON manifest, a Parquet table and raw weights.

Layout of a zoo folder:
    manifest.json     name, format version, source, architectures, datasets, sizes and sha256s
    networks.parquet  one row per checkpoint (ids, architecture, dataset, epoch, hp_* columns,
                      properties, weight_offset / n_params into the weight file, nonfinite flag)
    weights.f32       every network's flat vector (see `zoo_bench.arch`), little-endian float32,
                      back to back; opened as a memory map so nothing is read until asked for

Format versions: 1 holds conv2d / linear chains; 2 adds the INR and transformer layer kinds
(`zoo_bench.arch`). A zoo is written as version 1 unless one of its architectures uses a
version-2 kind, so CNN zoos keep the bytes and hashes they always had; both versions are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo_bench.arch import LAYER_KINDS, Architecture, ZooNetwork
from zoo_bench.atomic import make_temp_dir, write_text_atomic
from zoo_bench.errors import ZooFormatError
from zoo_bench.paths import home

FORMAT_NAME = "zoo-bench-zoo"
FORMAT_VERSION = 2  # the newest version this code writes (only for zoos that need it)
READ_VERSIONS = (1, 2)
VERSION_1_KINDS = LAYER_KINDS
MANIFEST = "manifest.json"
TABLE = "networks.parquet"
WEIGHTS = "weights.f32"
DTYPE = np.dtype("<f4")
# property columns a zoo may have (`Zoo.properties`); INR zoos: frequency and phase of the
# fitted wave, and no accuracies
PROPERTIES = (
    "test_accuracy", "train_accuracy", "test_loss", "train_loss", "generalization_gap",
    "frequency", "phase",
)
REQUIRED_COLUMNS = (
    "network_id", "run_id", "architecture", "dataset", "epoch",
    "weight_offset", "n_params", "nonfinite", "hp_activation",
)
HASH_BLOCK = 1 << 22


def sha256_file(path: Path, block: int = HASH_BLOCK) -> str:
    """Hex sha256 of a file, read in blocks so memory stays flat."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


class Zoo:
    """A model zoo opened from its folder: table in memory, weights memory-mapped.

    Every accessor takes positions into `zoo.table` (0..len-1); `network_id` is the stable id
    that split files record. `subset` gives a view over some rows that shares the weight map.
    """

    def __init__(self, path: Path, manifest: dict, table: pd.DataFrame, weights: np.ndarray):
        self.path = path
        self.manifest = manifest
        self.table = table
        self._weights = weights
        self.architectures = {
            name: _architecture(name, spec) for name, spec in manifest["architectures"].items()
        }

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = False) -> Zoo:
        """Open a zoo folder; cheap checks always, full sha256 / shape / NaN checks if `verify`."""
        path = Path(path)
        if not path.is_dir():
            raise ZooFormatError(
                f"{path} is not a zoo folder; make one with `zoo-bench zoo generate`, "
                "`zoo-bench zoo import` or `zoo-bench zoo download`"
            )
        manifest = _read_manifest(path)
        _check_files(path, manifest)
        if manifest["files"][TABLE] != sha256_file(path / TABLE):
            raise ZooFormatError(
                f"{path / TABLE}: sha256 differs from the manifest; the table was changed or "
                "damaged: re-create the zoo"
            )
        table = pd.read_parquet(path / TABLE)
        n_weights = int(manifest["n_weights"])
        weights = (
            np.memmap(path / WEIGHTS, dtype=DTYPE, mode="r", shape=(n_weights,))
            if n_weights
            else np.zeros(0, DTYPE)
        )
        zoo = cls(path, manifest, table, weights)
        if manifest["format_version"] < format_version(zoo.architectures.values()):
            kinds = sorted({la.kind for a in zoo.architectures.values() for la in a.layers}
                           - set(VERSION_1_KINDS))
            raise ZooFormatError(
                f"{path / MANIFEST}: format version {manifest['format_version']} cannot hold "
                f"layer kinds {kinds} (version 2 can); the manifest is damaged or was edited: "
                "re-create the zoo"
            )
        zoo._check_table()
        if verify:
            zoo.verify()
        return zoo

    # --- basic facts ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return f"Zoo({self.name!r}, {len(self)} networks, archs={sorted(self.architectures)})"

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def manifest_sha256(self) -> str:
        """Hash of the manifest file: identifies the zoo's content (it holds every file hash)."""
        return sha256_file(self.path / MANIFEST)

    @property
    def datasets(self) -> list[str]:
        return list(self.manifest["datasets"])

    # --- selection -----------------------------------------------------------------------
    def query(self, expr: str) -> np.ndarray:
        """Positions of rows matching a pandas query, e.g. ``"epoch == 86 and not nonfinite"``."""
        return np.flatnonzero(self.table.eval(expr).to_numpy())

    def subset(self, positions: Sequence[int] | np.ndarray | str) -> Zoo:
        """A view of some rows (positions or a query); weights stay shared and mapped."""
        if isinstance(positions, str):
            positions = self.query(positions)
        table = self.table.iloc[np.asarray(positions, dtype=np.int64)].reset_index(drop=True)
        return Zoo(self.path, self.manifest, table, self._weights)

    def arch_groups(
        self, positions: Sequence[int] | np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Positions grouped by architecture name, keeping their order."""
        pos = np.arange(len(self)) if positions is None else np.asarray(positions, dtype=np.int64)
        archs = self.table["architecture"].to_numpy()[pos]
        return {a: pos[archs == a] for a in dict.fromkeys(archs)}

    def architecture_of(self, i: int) -> Architecture:
        return self.architectures[self.table["architecture"].iat[int(i)]]

    # --- weights -------------------------------------------------------------------------
    def flat(self, i: int) -> np.ndarray:
        """Network i's flat weight vector (a read-only view into the map)."""
        off = int(self.table["weight_offset"].iat[int(i)])
        n = int(self.table["n_params"].iat[int(i)])
        return self._weights[off : off + n]

    def flat_batch(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Flat vectors of networks sharing one architecture, stacked as (B, P) float32.

        Read with pread rather than through the map, so random batches copy only what they
        need instead of mapping whole page-cache folios into this process.
        """
        pos = np.asarray(positions, dtype=np.int64)
        archs = set(self.table["architecture"].take(pos).unique())
        if len(archs) > 1:
            raise ValueError(
                f"flat_batch needs one architecture, got {sorted(archs)}; "
                "group first with zoo.arch_groups(positions)"
            )
        offs = self.table["weight_offset"].to_numpy()[pos]
        n = int(self.table["n_params"].iat[int(pos[0])]) if len(pos) else 0
        out = np.empty((len(pos), n), dtype=np.float32)
        if not out.size:
            return out
        if np.array_equal(offs, offs[0] + n * np.arange(len(pos))):
            blocks = [(out.reshape(-1), int(offs[0]))]
        else:
            blocks = list(zip(out, offs.tolist(), strict=True))
        filename = getattr(self._weights, "filename", None)
        if filename is None:
            for dest, off in blocks:
                dest[:] = self._weights[off : off + dest.size]
            return out
        fd = os.open(filename, os.O_RDONLY)
        try:
            for dest, off in blocks:
                _read_into(fd, dest, off * DTYPE.itemsize, filename)
        finally:
            os.close(fd)
        return out

    def params(
        self, positions: Sequence[int] | np.ndarray
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer (weight, bias) tensors in PyTorch layout with a leading batch dimension."""
        pos = np.asarray(positions, dtype=np.int64)
        flat = torch.from_numpy(self.flat_batch(pos))
        return self.architecture_of(int(pos[0])).unflatten(flat)

    def module(self, i: int) -> ZooNetwork:
        """A runnable `torch.nn.Module` holding network i's weights."""
        return ZooNetwork(
            self.architecture_of(i), self.flat(i), str(self.table["hp_activation"].iat[int(i)])
        )

    def targets(self, prop: str, positions: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Values of one property column as float64."""
        if prop not in self.table.columns:
            raise KeyError(f"zoo {self.name} has no property {prop!r}; it has {self.properties}")
        col = self.table[prop].to_numpy(dtype=np.float64)
        return col if positions is None else col[np.asarray(positions, dtype=np.int64)]

    @property
    def properties(self) -> list[str]:
        return [p for p in PROPERTIES if p in self.table.columns]

    @property
    def hyperparameters(self) -> list[str]:
        return [c for c in self.table.columns if c.startswith("hp_")]

    # --- validation ----------------------------------------------------------------------
    def _check_table(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.table.columns]
        if missing:
            raise ZooFormatError(f"{self.path / TABLE}: missing columns {missing}")
        if len(self.table) != int(self.manifest["n_networks"]):
            raise ZooFormatError(
                f"{self.path / TABLE}: {len(self.table)} rows, manifest says "
                f"{self.manifest['n_networks']}"
            )
        codes, names = pd.factorize(self.table["architecture"])
        unknown = set(names) - set(self.architectures)
        if unknown:
            raise ZooFormatError(
                f"{self.path / TABLE}: architectures {sorted(unknown)} not in manifest"
            )
        want = np.array([self.architectures[n].n_params for n in names], dtype=np.int64)[codes]
        bad = np.flatnonzero(want != self.table["n_params"].to_numpy())
        if len(bad):
            i = int(bad[0])
            raise ZooFormatError(
                f"{self.path / TABLE}: network {self.table['network_id'].iat[i]} has "
                f"{self.table['n_params'].iat[i]} weights but architecture "
                f"{self.table['architecture'].iat[i]} needs {int(want[i])}"
            )
        ends = self.table["weight_offset"].to_numpy() + self.table["n_params"].to_numpy()
        if len(ends) and int(ends.max()) > len(self._weights):
            raise ZooFormatError(
                f"{self.path / WEIGHTS} is too short for the table (truncated?): re-create the zoo"
            )

    def verify(self, progress: Any = None, chunk: int = 4096) -> None:
        """Full check: every file's sha256 and the nonfinite flags against the weights.

        `progress(n)`, if given, is called with the number of networks checked so far.
        """
        for rel, digest in self.manifest["files"].items():
            if sha256_file(self.path / rel) != digest:
                raise ZooFormatError(
                    f"{self.path / rel}: sha256 differs from the manifest (damaged or edited); "
                    "re-create or re-download the zoo"
                )
        flags = self.table["nonfinite"].to_numpy(dtype=bool)
        done = 0
        for group in self.arch_groups().values():
            for start in range(0, len(group), chunk):
                pos = group[start : start + chunk]
                finite = np.isfinite(self.flat_batch(pos)).all(axis=1)
                bad = np.flatnonzero(flags[pos] == finite)
                if len(bad):
                    i = int(pos[bad[0]])
                    raise ZooFormatError(
                        f"network {self.table['network_id'].iat[i]}: nonfinite flag disagrees "
                        "with its weights; re-create the zoo"
                    )
                done += len(pos)
                if progress is not None:
                    progress(done)

    def verify_cached(self, cache_dir: Path | None = None) -> bool:
        """`verify` once per zoo and file state: a pass is remembered, so checking again costs
        three `stat` calls until a file changes. Returns True if the check ran, False if a
        remembered pass was used.

        The state is each file's (size, mtime_ns, inode) plus the manifest's sha256; passes are
        kept outside the zoo folder, in `cache_dir` (default ``<zoo_bench.paths.home()>/
        verified``). A pass is not remembered while a file is less than two seconds old, so a
        change within the file system's timestamp granularity cannot hide behind it. Raises
        ZooFormatError naming the zoo and the fix when weights, table or flags do not match the
        manifest.
        """
        folder = Path(cache_dir) if cache_dir is not None else home() / "verified"
        where = self.path.resolve()
        record = folder / f"{hashlib.sha256(str(where).encode()).hexdigest()[:32]}.json"
        state = {"path": str(where), "manifest_sha256": self.manifest_sha256, "files": {}}
        for rel in (MANIFEST, *self.manifest["files"]):
            st = (self.path / rel).stat()
            state["files"][rel] = [st.st_size, st.st_mtime_ns, st.st_ino]
        try:
            if json.loads(record.read_text()) == state:
                return False
        except (OSError, ValueError):
            pass
        full = self if len(self) == int(self.manifest["n_networks"]) else Zoo.open(self.path)
        try:
            full.verify()
        except ZooFormatError as e:
            record.unlink(missing_ok=True)
            raise ZooFormatError(
                f"zoo {self.name} ({self.path}) does not match its manifest: {e}. Its scores "
                "would be wrong: re-create it (`zoo-bench zoo generate ... --overwrite`) or "
                "delete the folder and download it again (`zoo-bench zoo download NAME`)"
            ) from None
        newest = max(mtime for _, mtime, _ in state["files"].values())
        if time.time_ns() - newest >= 2_000_000_000:
            write_text_atomic(record, json.dumps(state))
        return True

    def nonfinite_count(self, chunk: int = 4096) -> int:
        """Networks with a NaN or infinite weight, counted from the weights themselves (the
        `nonfinite` column only says what the writer saw)."""
        count = 0
        for group in self.arch_groups().values():
            for start in range(0, len(group), chunk):
                flats = self.flat_batch(group[start : start + chunk])  # (B, P)
                count += int((~np.isfinite(flats).all(axis=1)).sum())
        return count

    def summary(self) -> dict[str, Any]:
        """Counts, architectures, datasets and property statistics, for `zoo-bench zoo info`."""
        t = self.table
        stats = ["mean", "std", "min", "50%", "max"]
        props = {p: t[p].describe()[stats].to_dict() for p in self.properties}
        return {
            "name": self.name,
            "path": str(self.path),
            "networks": len(t),
            "runs": int(t["run_id"].nunique()),
            "nonfinite": int(t["nonfinite"].sum()),
            "epochs": sorted(int(e) for e in t["epoch"].unique()),
            "datasets": t["dataset"].value_counts().to_dict(),
            "architectures": {
                a: {"count": int((t["architecture"] == a).sum()), "params": arch.n_params}
                for a, arch in self.architectures.items()
            },
            "properties": props,
            "bytes": sum((self.path / f).stat().st_size for f in (MANIFEST, TABLE, WEIGHTS)),
        }


def _read_into(fd: int, dest: np.ndarray, offset: int, filename: str) -> None:
    """Fill `dest` from the file at byte `offset`, however many reads it takes."""
    buf = memoryview(dest).cast("B")
    done = 0
    while done < len(buf):
        got = os.preadv(fd, [buf[done:]], offset + done)
        if got == 0:
            raise ZooFormatError(f"{filename} ends early (truncated?); re-create the zoo")
        done += got


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise ZooFormatError(
            f"{path} has no {MANIFEST}: not a zoo folder (or an unfinished one)"
        ) from None
    except json.JSONDecodeError as e:
        raise ZooFormatError(
            f"{path / MANIFEST} is not valid JSON ({e}); re-create the zoo"
        ) from None
    if not isinstance(manifest, dict):
        raise ZooFormatError(
            f"{path / MANIFEST} holds a JSON {type(manifest).__name__}, not an object: not a "
            "zoo-bench manifest; re-create or re-download the zoo"
        )
    if manifest.get("format") != FORMAT_NAME:
        raise ZooFormatError(
            f"{path / MANIFEST}: not a zoo-bench manifest (format={manifest.get('format')!r})"
        )
    if manifest.get("format_version") not in READ_VERSIONS:
        raise ZooFormatError(
            f"{path / MANIFEST}: format version {manifest.get('format_version')!r} is not "
            f"supported (this zoo-bench reads versions {READ_VERSIONS}); upgrade zoo-bench or "
            "re-create the zoo"
        )
    kinds = {"name": str, "architectures": dict, "files": dict, "sizes": dict,
             "n_networks": int, "n_weights": int}
    bad = [k for k, kind in kinds.items() if not isinstance(manifest.get(k), kind)]
    if bad:
        raise ZooFormatError(
            f"{path / MANIFEST}: fields {bad} are missing or of the wrong type; re-create or "
            "re-download the zoo"
        )
    return manifest


def format_version(architectures: Iterable[Architecture]) -> int:
    """The oldest format version that holds these architectures: 1 for conv2d / linear chains,
    2 once any layer is of a newer kind (sine, transformer)."""
    new = any(la.kind not in VERSION_1_KINDS for a in architectures for la in a.layers)
    return 2 if new else 1


def _architecture(name: str, spec: Any) -> Architecture:
    """A manifest's architecture entry, or a ZooFormatError naming it."""
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list) or not isinstance(
        spec.get("input_shape"), list
    ):
        raise ZooFormatError(
            f"architecture {name}: needs a 'layers' list and an 'input_shape' list; "
            "re-create or re-download the zoo"
        )
    try:
        return Architecture.from_dict(name, spec)
    except ZooFormatError as e:
        if str(e).startswith((f"{name}:", f"architecture {name}:")):
            raise
        raise ZooFormatError(f"architecture {name}: {e}") from None


def _check_files(path: Path, manifest: dict) -> None:
    listed = set(manifest["files"]) | {MANIFEST}
    present = {p.name for p in path.iterdir()}
    missing, extra = sorted(listed - present), sorted(present - listed)
    if missing:
        raise ZooFormatError(f"{path}: missing files {missing}; re-create or re-download the zoo")
    if extra:
        raise ZooFormatError(f"{path}: unexpected files {extra}; remove them or re-create the zoo")
    for rel, size in manifest["sizes"].items():
        actual = (path / rel).stat().st_size
        if actual != size:
            raise ZooFormatError(
                f"{path / rel} has {actual} bytes, the manifest says {size} (truncated?); "
                "re-create or re-download the zoo"
            )


class ZooWriter:
    """Streams networks into a new zoo folder; the folder appears only when `close` succeeds.

    Weights go straight to disk (hashed on the way), so writing a zoo never holds it in memory.
    Used as a context manager, an exception discards the unfinished folder.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        name: str,
        architectures: Iterable[Architecture],
        source: Mapping[str, Any],
        overwrite: bool = False,
    ):
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise FileExistsError(
                f"{self.out} exists; pass overwrite=True (--overwrite) to replace it"
            )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = make_temp_dir(self.out.parent, f".{self.out.name}.partial-")
        self.name = name
        self.source = dict(source)
        self.architectures = {a.name: a for a in architectures}
        self._f = open(self.tmp / WEIGHTS, "wb")  # noqa: SIM115 (closed by close/abort)
        self._hash = hashlib.sha256()
        self._offset = 0
        self._count = 0
        self._chunks: list[pd.DataFrame] = []

    def add(self, arch: str, flat: np.ndarray, **row: Any) -> None:
        """Append one network: its architecture name, flat vector, and table row values."""
        self.add_many(arch, np.asarray(flat)[None, :], [row])

    def add_many(
        self, arch: str, flats: np.ndarray, rows: Sequence[Mapping[str, Any]] | pd.DataFrame
    ) -> None:
        """Append networks of one architecture: flats (B, P) and B rows (dicts or a DataFrame)."""
        a = self.architectures.get(arch)
        if a is None:
            raise ZooFormatError(f"architecture {arch!r} is not declared for zoo {self.name}")
        flats = np.ascontiguousarray(flats, dtype=DTYPE)
        if flats.ndim != 2 or flats.shape[1] != a.n_params or len(rows) != len(flats):
            raise ZooFormatError(
                f"{arch} needs (B, {a.n_params}) weights and B rows, "
                f"got {flats.shape} and {len(rows)} rows"
            )
        if not len(flats):
            return
        data = memoryview(flats).cast("B")
        self._f.write(data)
        self._hash.update(data)
        b = len(flats)
        chunk = (
            rows.reset_index(drop=True).copy()
            if isinstance(rows, pd.DataFrame)
            else pd.DataFrame.from_records(list(rows))
        )
        chunk["network_id"] = np.arange(self._count, self._count + b, dtype=np.int64)
        chunk["architecture"] = arch
        chunk["weight_offset"] = self._offset + a.n_params * np.arange(b, dtype=np.int64)
        chunk["n_params"] = np.int64(a.n_params)
        chunk["nonfinite"] = ~np.isfinite(flats).all(axis=1)
        self._chunks.append(chunk)
        self._count += b
        self._offset += a.n_params * b

    def close(self) -> Path:
        """Write table and manifest, then move the finished folder into place.

        If anything fails here the unfinished folder is removed, so no half-written zoo remains.
        """
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        old = None
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, old / self.out.name)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out

    def _finish(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        table = pd.concat(self._chunks, ignore_index=True) if self._chunks else pd.DataFrame()
        table = _arrow_safe(table)
        if {"train_accuracy", "test_accuracy"} <= set(table.columns):
            table["generalization_gap"] = table["train_accuracy"] - table["test_accuracy"]
        missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
        if len(table) and missing:
            raise ZooFormatError(f"zoo {self.name}: rows lack required columns {missing}")
        front = [c for c in REQUIRED_COLUMNS if c in table.columns]
        table = table[front + [c for c in table.columns if c not in front]]
        table.to_parquet(self.tmp / TABLE, index=False)
        datasets = sorted(table["dataset"].unique().tolist()) if len(table) else []
        used = set(table["architecture"]) if len(table) else set()
        manifest = {
            "format": FORMAT_NAME,
            "format_version": format_version(
                a for n, a in self.architectures.items() if n in used
            ),
            "name": self.name,
            "source": self.source,
            "architectures": {
                n: a.to_dict() for n, a in sorted(self.architectures.items()) if n in used
            },
            "datasets": datasets,
            "n_networks": len(table),
            "n_weights": self._offset,
            "files": {TABLE: sha256_file(self.tmp / TABLE), WEIGHTS: self._hash.hexdigest()},
            "sizes": {
                TABLE: (self.tmp / TABLE).stat().st_size,
                WEIGHTS: self._offset * DTYPE.itemsize,
            },
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default))

    def abort(self) -> None:
        """Drop the unfinished folder."""
        if not self._f.closed:
            self._f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> ZooWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _arrow_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Make object columns storable in Parquet: numbers become numeric, mixed kinds strings.

    Chunks written with different value kinds (3 and "3", or a list) would otherwise fail to
    save only at the very end of a long import.
    """
    for col in table.columns:
        if table[col].dtype != np.dtype(object):
            continue
        kinds = {_kind(v) for v in table[col] if not _missing(v)}
        if kinds == {"number"}:
            table[col] = pd.to_numeric(table[col])
        elif len(kinds) > 1 or "other" in kinds:
            table[col] = table[col].map(lambda v: None if _missing(v) else str(v))
    return table


def _kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return "number"
    return "str" if isinstance(v, str) else "other"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and np.isnan(v))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")
