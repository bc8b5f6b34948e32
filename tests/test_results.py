"""Result tables: atomic per-cell files, fixed schema, reading back, re-scoring from predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.provenance import now
from zoo_bench.results import (
    SCHEMA_VERSION,
    STATUS_NOT_APPLICABLE,
    STATUS_OK,
    CellKey,
    cell_path,
    cell_status,
    new_row,
    predictions_path,
    read_cells,
    read_predictions,
    rescore,
    stored_row,
    write_cell,
)


def scored_cell(results, key: CellKey, y_true, y_pred):
    """Score predictions with the evaluator and store them the way the runner does."""
    row = new_row(key, status=STATUS_OK, timestamp=now(), hparams='{"width": 8}',
                  **Evaluator(n_boot=20).eval(y_true, y_pred))
    preds = pd.DataFrame({"network_id": np.arange(len(y_true)), "y_true": y_true, "y_pred": y_pred})
    return write_cell(results, row, preds)


def test_a_cell_round_trips_through_its_own_file(tmp_path):
    key = CellKey("mlp", "standard", "zoo-a", "zoo-a", 0, "test_accuracy")
    rng = np.random.default_rng(0)
    y = rng.uniform(size=30)
    path = scored_cell(tmp_path, key, y, y + rng.normal(0, 0.1, size=30))

    assert path == cell_path(tmp_path, key)
    assert path == tmp_path / "cells" / "mlp" / "standard" / f"{key.digest}.parquet"
    assert predictions_path(tmp_path, key).exists()
    assert cell_status(tmp_path, key) == STATUS_OK
    rows = read_cells(tmp_path)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row.method, row.task, row.source, row.target, row.seed) == (
        "mlp", "standard", "zoo-a", "zoo-a", 0)
    assert row.cell_key == key.digest
    assert 0.5 < row.kendall_tau <= 1 and row.n == 30
    preds = read_predictions(tmp_path)
    assert len(preds) == 30 and set(preds["cell_key"]) == {key.digest}
    np.testing.assert_allclose(preds["y_true"], y)


def test_keys_differ_by_every_field_and_are_stable():
    base = dict(method="mlp", task="standard", source="a", target="b", seed=0,
                property="test_accuracy")
    digests = {CellKey(**base).digest}
    for field, other in [("method", "statnn"), ("task", "cross"), ("source", "x"), ("target", "y"),
                         ("seed", 1), ("property", "test_loss")]:
        digests.add(CellKey(**{**base, field: other}).digest)
    assert len(digests) == 7
    assert CellKey(**base).digest == CellKey(**base).digest


def test_rows_must_match_the_schema(tmp_path):
    key = CellKey("mlp", "standard", "a", "a", 0, "test_accuracy")
    with pytest.raises(ZooBenchError, match="unknown result columns"):
        new_row(key, kendal_tau=0.3)
    row = new_row(key, status=STATUS_OK, timestamp=now())
    del row["mae"]
    with pytest.raises(ZooBenchError, match=r"missing \['mae'\]"):
        write_cell(tmp_path, row)
    assert read_cells(tmp_path).empty


def test_unsafe_method_names_are_refused():
    with pytest.raises(ZooBenchError, match="names a results folder"):
        CellKey("../evil", "standard", "a", "a", 0, "test_accuracy")


def test_reading_ignores_half_written_files_and_empty_folders(tmp_path):
    assert read_cells(tmp_path).empty
    assert list(read_cells(tmp_path).columns)[:6] == ["method", "task", "source", "target", "seed",
                                                      "property"]
    key = CellKey("mlp", "standard", "a", "a", 0, "test_accuracy")
    write_cell(tmp_path, new_row(key, status=STATUS_NOT_APPLICABLE, timestamp=now()))
    partial = cell_path(tmp_path, key).parent / f".{key.digest}.abc123.tmp"
    partial.write_bytes(b"PAR1 half a file")
    rows = read_cells(tmp_path)
    assert list(rows["status"]) == [STATUS_NOT_APPLICABLE]
    assert np.isnan(rows["kendall_tau"].iloc[0])


def test_rewriting_a_cell_replaces_it(tmp_path):
    key = CellKey("mlp", "standard", "a", "a", 0, "test_accuracy")
    y = np.linspace(0, 1, 10)
    scored_cell(tmp_path, key, y, y)
    scored_cell(tmp_path, key, y, -y)
    rows = read_cells(tmp_path)
    assert len(rows) == 1 and rows["kendall_tau"].iloc[0] == pytest.approx(-1.0)
    assert len(read_predictions(tmp_path)) == 10


def test_stored_predictions_rescore_to_the_stored_metrics(tmp_path):
    rng = np.random.default_rng(1)
    for seed in (0, 1):
        for method in ("mlp", "statnn"):
            y = rng.uniform(size=25)
            key = CellKey(method, "standard", "a", "a", seed, "test_accuracy")
            scored_cell(tmp_path, key, y, y + rng.normal(0, 0.2 + seed, size=25))
    write_cell(tmp_path, new_row(CellKey("sne", "standard", "a", "a", 0, "test_accuracy"),
                                 status=STATUS_NOT_APPLICABLE, timestamp=now()))

    again = rescore(tmp_path, Evaluator(n_boot=20)).set_index("cell_key").sort_index()
    stored = read_cells(tmp_path).query("status == 'ok'").set_index("cell_key").sort_index()
    assert len(again) == 4
    for metric in ("kendall_tau", "kendall_tau_lo", "spearman", "r2", "mae"):
        np.testing.assert_allclose(again[metric], stored[metric])


def test_predictions_can_be_read_for_some_cells_only(tmp_path):
    keys = [CellKey("mlp", "standard", "a", "a", s, "test_accuracy") for s in (0, 1, 2)]
    for k in keys:
        scored_cell(tmp_path, k, np.arange(5.0), np.arange(5.0))
    some = read_predictions(tmp_path, [keys[1].digest])
    assert set(some["seed"]) == {1} and len(some) == 5


# One cell (and its predictions) of the first default run, written before schema_version existed
# (commit 2e444bd), kept as a fixture when results/default was recomputed.
OLD = Path(__file__).resolve().parent / "data" / "schema1"


def test_tables_in_the_old_schema_still_read_and_resume_against_them(tmp_path):
    """Cells written before schema_version (the first default run's, schema 1) read back
    beside new ones: missing columns are empty, schema_version is 1, the variant is ""; their
    keys are unchanged, so the stored row is found (and judged) under the same file name."""
    import shutil

    import pyarrow.parquet as pq

    old_cell = sorted((OLD / "cells" / "statnn" / "standard").glob("*.parquet"))[0]
    old_pred = OLD / "predictions" / "statnn" / "standard" / old_cell.name
    assert "schema_version" not in pq.read_schema(old_cell).names  # really the old schema
    for src, part in ((old_cell, "cells"), (old_pred, "predictions")):
        dest = tmp_path / part / "statnn" / "standard" / src.name
        dest.parent.mkdir(parents=True)
        shutil.copy(src, dest)
    new = CellKey("statnn", "standard", "zoo-a", "zoo-a", 0, "test_accuracy", variant="lr=0.1")
    scored_cell(tmp_path, new, np.arange(5.0), np.arange(5.0))

    rows = read_cells(tmp_path).set_index("cell_key")
    old_key = CellKey.from_row(rows.loc[old_cell.stem].to_dict() | {"cell_key": old_cell.stem})
    assert old_key.digest == old_cell.stem and old_key.variant == ""
    assert rows.loc[old_cell.stem, "schema_version"] == 1
    assert rows.loc[new.digest, "schema_version"] == SCHEMA_VERSION
    assert pd.isna(rows.loc[old_cell.stem, "method_version"])
    assert rows.loc[new.digest, "variant"] == "lr=0.1"
    assert rows.loc[old_cell.stem, "kendall_tau"] == pytest.approx(
        pq.read_table(old_cell).column("kendall_tau")[0].as_py())
    stored = stored_row(tmp_path, old_key)
    assert stored["schema_version"] == 1 and stored["status"] == "ok"
    assert stored["task_version"] is None and stored["source_sha256"]
    assert len(read_predictions(tmp_path, [old_cell.stem])) == rows.loc[old_cell.stem, "n"]
    assert set(rescore(tmp_path)["variant"]) == {"", "lr=0.1"}


def test_a_variant_is_its_own_cell_and_the_default_keeps_its_name():
    plain = CellKey("mlp", "standard", "z", "z", 0, "test_accuracy")
    variant = CellKey("mlp", "standard", "z", "z", 0, "test_accuracy", variant="lr=0.1")
    assert plain.digest == "9e7da86b4392b730"  # as before variants existed: old files still match
    assert variant.digest != plain.digest and variant.label == "mlp[lr=0.1]"


def test_importing_results_does_not_import_the_evaluator_or_torch():
    import subprocess
    import sys

    code = ("import sys, types; p = types.ModuleType('zoo_bench'); "
            f"p.__path__ = [{str(OLD.parents[1] / 'zoo_bench')!r}]; sys.modules['zoo_bench'] = p; "
            "import zoo_bench.results; "
            "print('torch' in sys.modules, 'zoo_bench.evaluator' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
