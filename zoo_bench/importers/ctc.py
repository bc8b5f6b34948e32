"""Import Unterthiner et al.'s Small CNN Zoo ("CTC") into the canonical zoo format.

A source folder holds `weights.npy` (float32, one row per checkpoint, TensorFlow layout),
`metrics.csv.gz` (one row per checkpoint, same order) and `layout.csv` (where each tensor sits in
a row: each layer's bias, then its kernel). Rows are streamed: the weights stay memory-mapped and
the metrics are read in chunks, so a 5.4 GB zoo imports in flat memory.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import math
import mmap
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from zoo_bench.arch import ACTIVATIONS, Architecture
from zoo_bench.errors import ZooImportError
from zoo_bench.families import ctc
from zoo_bench.importers.common import hp_column, progress_bar, refuse_existing, require_files
from zoo_bench.store import ZooWriter

WEIGHTS, METRICS, LAYOUT = "weights.npy", "metrics.csv.gz", "layout.csv"
WHAT = f"an unpacked Small CNN Zoo archive ({WEIGHTS}, {METRICS}, {LAYOUT})"
INPUT_SIZE = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn_cropped": 32, "svhn": 32}
PROPERTIES = ("test_accuracy", "test_loss", "train_accuracy", "train_loss")
REQUIRED = ("modeldir", "step", "config.activation", "config.dataset", *PROPERTIES)
LAYOUT_COLUMNS = ("varname", "start_idx", "end_idx", "size", "shape")
CHUNK_ROWS = 4096
SOURCE = {
    "kind": "ctc",
    "citation": "Unterthiner et al. 2020, Predicting Neural Network Accuracy from Weights",
    "license": "CC-BY-4.0",
}


def import_ctc(
    src: Path,
    out: Path,
    *,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert a Small CNN Zoo folder into a zoo at `out` (named `name`, default `out`'s name).

    Every checkpoint is kept; kernels become PyTorch layout, `config.*` columns become typed
    `hp_*` columns, `step` becomes `epoch` and `modeldir` the run id.
    """
    src, out = Path(src), Path(out)
    require_files(src, (WEIGHTS, METRICS, LAYOUT), WHAT)
    refuse_existing(out, overwrite)
    weights = open_weights(src / WEIGHTS)
    layout = read_layout(src / LAYOUT)
    chunks = _metric_chunks(src / METRICS)
    first = next(chunks, None)
    if first is None:
        raise ZooImportError(f"{src / METRICS} has no rows; re-download the zoo")
    arch = ctc(size=_input_size(first, src / METRICS))
    perm = torch_order(layout, arch, src / LAYOUT)
    if weights.shape[1] != arch.n_params:
        raise ZooImportError(
            f"{src / WEIGHTS} rows hold {weights.shape[1]} values, {LAYOUT} and the CTC "
            f"architecture need {arch.n_params}; the files are from different zoos"
        )
    source = {
        **SOURCE,
        "rows": int(weights.shape[0]),
        "layout_sha256": hashlib.sha256((src / LAYOUT).read_bytes()).hexdigest(),
    }
    n = int(weights.shape[0])
    with (
        ZooWriter(out, name or out.name, [arch], source, overwrite=overwrite) as writer,
        progress_bar(n, f"importing {src.name or src}", progress) as advance,
    ):
        start = 0
        for chunk in itertools.chain([first], chunks):
            stop = start + len(chunk)
            if stop > n:
                raise ZooImportError(
                    f"{src / METRICS} has more rows than {src / WEIGHTS} ({n}); "
                    "the files are from different zoos or one is damaged: re-download"
                )
            rows = _rows(chunk, arch, src / METRICS)
            writer.add_many(arch.name, np.asarray(weights[start:stop])[:, perm], rows)
            drop_mapped_rows(weights, stop)
            advance(len(chunk))
            start = stop
        if start != n:
            raise ZooImportError(
                f"{src / METRICS} has {start} rows but {src / WEIGHTS} has {n}; "
                "the files are from different zoos or one is truncated: re-download"
            )
    return out


def open_weights(path: Path) -> np.ndarray:
    """Memory-map `weights.npy` as a (rows, params) float array, with a clear error if damaged."""
    try:
        weights = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ZooImportError(
            f"{path} is not a readable .npy array ({e}); it may be truncated: re-download"
        ) from None
    if weights.ndim != 2 or weights.dtype.kind != "f":
        raise ZooImportError(
            f"{path} holds a {weights.dtype} array of shape {weights.shape}; expected float32 "
            "with one row per checkpoint"
        )
    return weights


def drop_mapped_rows(weights: np.ndarray, stop: int) -> None:
    """Unmap rows [0, stop) of a row-major memmap; they stay in the page cache.

    Without this a sequential pass leaves every page it touched mapped, and the importer's
    resident memory grows to the size of weights.npy.
    """
    mm = getattr(weights, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not weights.flags.c_contiguous:
        return
    head = weights.offset % mmap.ALLOCATIONGRANULARITY  # where the data starts inside the map
    end = head + stop * weights.strides[0]
    mm.madvise(mmap.MADV_DONTNEED, 0, end - end % mmap.PAGESIZE)


def read_layout(path: Path) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """Parse `layout.csv` into (varname, start, end, TF shape), checking it tiles a row exactly."""
    table = pd.read_csv(path)
    missing = [c for c in LAYOUT_COLUMNS if c not in table.columns]
    if missing:
        raise ZooImportError(f"{path} lacks columns {missing}; expected {list(LAYOUT_COLUMNS)}")
    entries, pos = [], 0
    for row in table.sort_values("start_idx").itertuples(index=False):
        try:
            shape = tuple(int(d) for d in ast.literal_eval(str(row.shape)))
        except (ValueError, SyntaxError, TypeError):
            raise ZooImportError(
                f"{path}: {row.varname} has unreadable shape {row.shape!r}"
            ) from None
        start, end = int(row.start_idx), int(row.end_idx)
        if start != pos or end - start != math.prod(shape) or int(row.size) != end - start:
            raise ZooImportError(
                f"{path}: {row.varname} spans [{start}, {end}) with size {row.size} and shape "
                f"{shape}; entries must tile the row without gaps (next start {pos})"
            )
        entries.append((str(row.varname), start, end, shape))
        pos = end
    return entries


def torch_order(
    layout: list[tuple[str, int, int, tuple[int, ...]]], arch: Architecture, path: Path
) -> np.ndarray:
    """Column order that turns a TF-layout row into `arch`'s flat layout (weight, then bias).

    Conv kernels (kh, kw, in, out) become (out, in, kh, kw); dense kernels (in, out) become
    (out, in). Every tensor's shape is checked against `arch`.
    """
    layers: dict[str, dict[str, tuple[int, int, tuple[int, ...]]]] = {}
    for varname, start, end, shape in layout:
        layer, _, leaf = varname.rpartition("/")
        kind = leaf.split(":")[0]
        if kind not in ("kernel", "bias") or kind in layers.get(layer, {}):
            raise ZooImportError(
                f"{path}: unexpected entry {varname}; expected one kernel and one bias per layer"
            )
        layers.setdefault(layer, {})[kind] = (start, end, shape)
    if len(layers) != len(arch.layers):
        raise ZooImportError(
            f"{path} describes {len(layers)} layers {list(layers)}; the CTC architecture has "
            f"{len(arch.layers)}"
        )
    parts = []
    for (layer, tensors), spec in zip(layers.items(), arch.layers, strict=True):
        if set(tensors) != {"kernel", "bias"}:
            raise ZooImportError(f"{path}: layer {layer} lacks a kernel or a bias")
        (ks, ke, kshape), (bs, be, bshape) = tensors["kernel"], tensors["bias"]
        axes = (3, 2, 0, 1) if len(kshape) == 4 else (1, 0)
        torch_shape = tuple(kshape[a] for a in axes)
        kind = "conv2d" if len(kshape) == 4 else "linear"
        if kind != spec.kind or torch_shape != spec.weight_shape or bshape != spec.bias_shape:
            raise ZooImportError(
                f"{path}: layer {layer} is a {kind} with kernel {kshape} (PyTorch {torch_shape}) "
                f"and bias {bshape}, but the CTC architecture needs a {spec.kind} with "
                f"{spec.weight_shape} and {spec.bias_shape}; is this a Small CNN Zoo layout?"
            )
        parts += [np.arange(ks, ke).reshape(kshape).transpose(axes).ravel(), np.arange(bs, be)]
    return np.concatenate(parts)


def _metric_chunks(path: Path) -> Iterator[pd.DataFrame]:
    """The metrics table in chunks of CHUNK_ROWS rows; a damaged file gives a clear error."""
    try:
        with pd.read_csv(path, chunksize=CHUNK_ROWS) as reader:
            yield from reader
    except (ValueError, OSError, EOFError, zlib.error) as e:
        raise ZooImportError(f"{path} is not a readable CSV ({e}); re-download") from None


def _input_size(chunk: pd.DataFrame, path: Path) -> int:
    _check_columns(chunk, path)
    dataset = str(chunk["config.dataset"].iat[0])
    if dataset not in INPUT_SIZE:
        raise ZooImportError(
            f"{path}: unknown dataset {dataset!r} in config.dataset; known: {sorted(INPUT_SIZE)}"
        )
    return INPUT_SIZE[dataset]


def _check_columns(chunk: pd.DataFrame, path: Path) -> None:
    missing = [c for c in REQUIRED if c not in chunk.columns]
    if missing:
        raise ZooImportError(f"{path} lacks columns {missing}; is it a Small CNN Zoo metrics file?")


def _rows(chunk: pd.DataFrame, arch: Architecture, path: Path) -> pd.DataFrame:
    """Table rows for one metrics chunk: ids, epoch, typed hp_* columns and properties."""
    _check_columns(chunk, path)
    datasets = chunk["config.dataset"].astype(str)
    sizes = datasets.map(INPUT_SIZE)
    if sizes.isna().any() or (sizes != arch.input_shape[-1]).any():
        raise ZooImportError(
            f"{path} mixes datasets {sorted(set(datasets))} with different input sizes; "
            "import each dataset's folder separately"
        )
    steps = pd.to_numeric(chunk["step"], errors="coerce")
    if steps.isna().any():
        raise ZooImportError(f"{path}: column step has missing or non-numeric values")
    rows = pd.DataFrame(
        {
            "run_id": chunk["modeldir"].astype(str).to_numpy(),
            "dataset": datasets.to_numpy(),
            "epoch": steps.astype(np.int64).to_numpy(),
        }
    )
    for col in chunk.columns:
        if col.startswith("config."):
            rows[hp_column(col.removeprefix("config."))] = chunk[col].to_numpy()
    rows["hp_activation"] = chunk["config.activation"].astype(str).str.lower().to_numpy()
    unknown = set(rows["hp_activation"]) - set(ACTIVATIONS)
    if unknown:
        raise ZooImportError(
            f"{path}: activations {sorted(unknown)} are not known; known: {sorted(ACTIVATIONS)}"
        )
    for prop in PROPERTIES:
        rows[prop] = pd.to_numeric(chunk[prop], errors="coerce").astype(np.float64).to_numpy()
    return rows
