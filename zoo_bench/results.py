"""Result tables: one small Parquet file per finished cell, and one with its test predictions.

Layout of a results folder:
    cells/<method>/<task>/<key>.parquet        one row: the cell's scores and provenance
    predictions/<method>/<task>/<key>.parquet  one row per test network: network_id, y_true, y_pred
`<key>` hashes the cell's identity (method, task, source, target, seed, property, and the
variant: the command-line overrides a run used, when there are any). Each file is
written under a temporary name and renamed into place, predictions before the row, so a cell
file exists only when its cell is complete: a killed run loses at most the cells in flight.
Reading a table concatenates the files.

Rows carry `schema_version` (`SCHEMA_VERSION`); tables written by older versions (without the
newer columns) still read: missing columns come back empty and `schema_version` as 1.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from zoo_bench.atomic import replace_atomic
from zoo_bench.errors import ZooBenchError

if TYPE_CHECKING:
    from zoo_bench.evaluator import Evaluator

CELLS = "cells"
PREDICTIONS = "predictions"
STATUS_OK = "ok"
STATUS_NOT_APPLICABLE = "not_applicable"
STATUS_ERROR = "error"
SCHEMA_VERSION = 2  # 1: before schema_version, variants, versions and training outcome
METRICS = ("kendall_tau", "kendall_tau_lo", "kendall_tau_hi", "spearman", "r2", "mae", "n")
KEY_FIELDS = ("method", "task", "source", "target", "seed", "property")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")

KEY_SCHEMA = [
    pa.field("method", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("property", pa.string(), nullable=False),
    pa.field("cell_key", pa.string(), nullable=False),
    pa.field("variant", pa.string()),
]
ROW_SCHEMA = pa.schema(
    KEY_SCHEMA
    + [
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("kendall_tau", pa.float64()),
        pa.field("kendall_tau_lo", pa.float64()),
        pa.field("kendall_tau_hi", pa.float64()),
        pa.field("spearman", pa.float64()),
        pa.field("r2", pa.float64()),
        pa.field("mae", pa.float64()),
        pa.field("n", pa.int64()),
        pa.field("n_train", pa.int64()),
        pa.field("n_val", pa.int64()),
        pa.field("n_test", pa.int64()),
        pa.field("hparams", pa.string()),
        pa.field("n_parameters", pa.int64()),
        pa.field("budget", pa.string()),
        pa.field("fit_key", pa.string()),
        pa.field("split_sha256_train", pa.string()),
        pa.field("split_sha256_val", pa.string()),
        pa.field("split_sha256_test", pa.string()),
        pa.field("source_sha256", pa.string()),
        pa.field("target_sha256", pa.string()),
        pa.field("suite", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("zoo_bench_version", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("git_dirty", pa.bool_()),
        pa.field("torch_version", pa.string()),
        pa.field("python_version", pa.string()),
        pa.field("device", pa.string()),
        pa.field("fit_seconds", pa.float64()),
        pa.field("fit_shared_by", pa.int64()),
        pa.field("predict_seconds", pa.float64()),
        pa.field("peak_rss_mb", pa.float64()),
        pa.field("peak_cuda_mb", pa.float64()),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("schema_version", pa.int64()),
        pa.field("task_version", pa.int64()),
        pa.field("method_version", pa.string()),
        pa.field("overrides", pa.string()),
        pa.field("epochs_run", pa.int64()),
        pa.field("steps_run", pa.int64()),
        pa.field("best_epoch", pa.int64()),
        pa.field("best_step", pa.int64()),
        pa.field("stop_reason", pa.string()),
    ]
)
PREDICTION_SCHEMA = pa.schema(
    KEY_SCHEMA
    + [
        pa.field("network_id", pa.int64(), nullable=False),
        pa.field("y_true", pa.float64(), nullable=False),
        pa.field("y_pred", pa.float64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class CellKey:
    """What one result row is about: a method scored on one task cell for one seed."""

    method: str
    task: str
    source: str
    target: str
    seed: int
    property: str
    variant: str = ""

    def __post_init__(self) -> None:
        for name in ("method", "task"):
            if not _SAFE_NAME.match(getattr(self, name)):
                raise ZooBenchError(
                    f"{name} name {getattr(self, name)!r} must be letters, digits, '_', '.', "
                    "'+' or '-' (it names a results folder)"
                )

    @property
    def digest(self) -> str:
        """16 hex digits of the sha256 of the key's fields: the cell's file name.

        The default configuration (no variant) hashes as it always has, so its stored cells
        keep their names; a variant is part of the hash, so it never shares a file with them.
        """
        fields = [getattr(self, f) for f in KEY_FIELDS] + ([self.variant] if self.variant else [])
        text = json.dumps(fields, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """The method as shown on the leaderboard: `name`, or `name[key=value,...]`."""
        return method_label(self.method, self.variant)

    def as_dict(self) -> dict[str, Any]:
        """The key columns of a row, `cell_key` included."""
        return {**asdict(self), "cell_key": self.digest}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CellKey:
        fields = {f: (int(row[f]) if f == "seed" else str(row[f])) for f in KEY_FIELDS}
        variant = row.get("variant")
        return cls(**fields, variant=variant if isinstance(variant, str) else "")


def method_label(method: str, variant: str | None) -> str:
    """`method`, or `method[variant]` for a run with overrides."""
    return f"{method}[{variant}]" if variant else method


@dataclass(frozen=True)
class MethodConfig:
    """What one (method, overrides) runs with: budget table, hyperparameters, code version."""

    budget: dict[str, Any]
    hparams: str
    version: str


def config_mismatch(row: Mapping[str, Any], config: MethodConfig) -> str:
    """Why a stored row was not made with this configuration ("" when it was): another code
    version, other hyperparameters or another budget table."""
    def text(name: str) -> str | None:  # read tables give None or NaN for an unset column
        value = row.get(name)
        return value if isinstance(value, str) and value else None

    stored_version = text("method_version") or "1"
    if stored_version != config.version:
        return f"method_version {stored_version!r} != {config.version!r}"
    hparams = text("hparams")
    if hparams is not None and json.loads(hparams) != json.loads(config.hparams):
        return "hyperparameters changed"
    if json.loads(text("budget") or "{}") != config.budget:
        return "budget changed"
    return ""


def new_row(key: CellKey, **fields: Any) -> dict[str, Any]:
    """A result row for `key`: every schema column present, unset ones None, `fields` applied."""
    row: dict[str, Any] = dict.fromkeys(ROW_SCHEMA.names)
    row.update(key.as_dict(), schema_version=SCHEMA_VERSION)
    unknown = sorted(set(fields) - set(row))
    if unknown:
        raise ZooBenchError(
            f"unknown result columns {unknown}; the row schema is results.ROW_SCHEMA"
        )
    row.update(fields)
    return row


def cell_path(results: Path, key: CellKey) -> Path:
    """Where the row of `key` lives under a results folder."""
    return Path(results) / CELLS / key.method / key.task / f"{key.digest}.parquet"


def predictions_path(results: Path, key: CellKey) -> Path:
    """Where the test predictions of `key` live under a results folder."""
    return Path(results) / PREDICTIONS / key.method / key.task / f"{key.digest}.parquet"


def _write_atomic(table: pa.Table, path: Path) -> None:
    replace_atomic(path, lambda f: pq.write_table(table, f))


def _as_table(records: list[dict[str, Any]], schema: pa.Schema, what: str) -> pa.Table:
    names = set(schema.names)
    for rec in records[:1]:
        missing, extra = sorted(names - set(rec)), sorted(set(rec) - names)
        if missing or extra:
            raise ZooBenchError(
                f"{what} does not match its schema: missing {missing}, extra {extra}"
            )
    return pa.Table.from_pylist(records, schema=schema)


def write_cell(
    results: Path,
    row: Mapping[str, Any],
    predictions: pd.DataFrame | None = None,
) -> Path:
    """Store one finished cell: its predictions (network_id, y_true, y_pred) first, then its row.

    `row` must hold exactly the columns of `ROW_SCHEMA` (its key columns included); the row's
    file appearing is what marks the cell done.
    """
    key = CellKey.from_row(row)
    if row["cell_key"] != key.digest:
        raise ZooBenchError(f"row's cell_key {row['cell_key']!r} is not its key's digest")
    if predictions is not None:
        preds = predictions[["network_id", "y_true", "y_pred"]]
        keycols = key.as_dict()
        records = [
            {**keycols, "network_id": int(i), "y_true": float(t), "y_pred": float(p)}
            for i, t, p in preds.itertuples(index=False)
        ]
        _write_atomic(
            _as_table(records, PREDICTION_SCHEMA, "predictions")
            if records
            else PREDICTION_SCHEMA.empty_table(),
            predictions_path(results, key),
        )
    path = cell_path(results, key)
    _write_atomic(_as_table([dict(row)], ROW_SCHEMA, "result row"), path)
    return path


def cell_status(results: Path, key: CellKey) -> str | None:
    """The stored status of a cell (`ok`, `not_applicable`, `error`), or None if it has no row."""
    row = stored_row(results, key)
    return None if row is None else str(row["status"])


def stored_row(results: Path, key: CellKey) -> dict[str, Any] | None:
    """The stored row of a cell as a dict (columns an older schema lacks are None)."""
    path = cell_path(results, key)
    if not path.exists():
        return None
    table = pq.read_table(path)
    row = dict.fromkeys(ROW_SCHEMA.names)
    row.update({name: table.column(name)[0].as_py() for name in table.column_names})
    return _upgrade(row)


def _upgrade(row: dict[str, Any]) -> dict[str, Any]:
    """Defaults for the columns a schema-1 row lacks."""
    if row.get("schema_version") is None:
        row["schema_version"] = 1
    if row.get("variant") is None:
        row["variant"] = ""
    return row


def _files(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(str(p) for p in root.rglob("*.parquet") if not p.name.startswith("."))


def _read(root: Path, schema: pa.Schema, filter_expr: ds.Expression | None = None) -> pd.DataFrame:
    """The files under `root` in `schema`; columns an older file lacks are filled with nulls."""
    files = _files(root)
    if not files:
        frame = schema.empty_table().to_pandas()
    else:
        table = ds.dataset(files, schema=schema, format="parquet").to_table(filter=filter_expr)
        frame = table.to_pandas()
    frame["variant"] = frame["variant"].fillna("").astype(str)
    if "schema_version" in frame:
        frame["schema_version"] = frame["schema_version"].fillna(1).astype("int64")
    return frame


def read_cells(results: Path) -> pd.DataFrame:
    """Every stored result row under a results folder, concatenated (empty frame if none)."""
    return _read(Path(results) / CELLS, ROW_SCHEMA)


def read_predictions(results: Path, cell_keys: Iterable[str] | None = None) -> pd.DataFrame:
    """Stored test predictions, optionally only those of some `cell_key`s."""
    expr = None if cell_keys is None else ds.field("cell_key").isin(list(cell_keys))
    return _read(Path(results) / PREDICTIONS, PREDICTION_SCHEMA, expr)


def rescore(results: Path, evaluator: Evaluator | None = None) -> pd.DataFrame:
    """Recompute every `ok` cell's metrics from its stored predictions (no re-run needed).

    Returns one row per cell: the key columns plus the evaluator's metrics.
    """
    if evaluator is None:
        from zoo_bench.evaluator import Evaluator

        evaluator = Evaluator()
    cells = read_cells(results)
    cells = cells[cells["status"] == STATUS_OK]
    preds = read_predictions(results, cells["cell_key"])
    out = []
    for key, group in preds.groupby("cell_key", sort=True):
        first = group.iloc[0]
        scores = evaluator.eval(group["y_true"].to_numpy(), group["y_pred"].to_numpy())
        out.append({**{f: first[f] for f in KEY_FIELDS}, "variant": first["variant"],
                    "cell_key": key, **scores})
    columns = [*KEY_FIELDS, "variant", "cell_key", *METRICS]
    return pd.DataFrame(out, columns=columns)


def hparams_json(hparams: Mapping[str, Any]) -> str:
    """A predictor's hyperparameters as sorted JSON (numpy scalars and paths made plain)."""

    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, Path):
            return str(v)
        raise TypeError(f"hyperparameter value {v!r} is not JSON serialisable")

    return json.dumps(dict(hparams), sort_keys=True, default=plain)
