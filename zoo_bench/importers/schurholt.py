"""Import Schürholt et al.'s Model Zoos (CNN-s populations) into the canonical zoo format.

SRC holds one folder per model: `result.json` (JSON lines, one per epoch, with `test_acc`,
`train_acc`, `training_iteration` and the run's `config`) and `checkpoint_{epoch}` or
`checkpoint_{epoch:06d}` folders, each holding the model's PyTorch state_dict in a file named
`checkpoints`. Those files are pickles, so they are read with `torch.load(weights_only=True)`:
a file that would run code when loaded is refused, never executed.
"""

from __future__ import annotations

import json
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_bench.arch import ACTIVATIONS, Architecture
from zoo_bench.errors import ZooImportError
from zoo_bench.families import cnn_s
from zoo_bench.importers.common import hp_column, progress_bar, refuse_existing
from zoo_bench.store import ZooWriter

RESULTS = "result.json"
STATE_FILE = "checkpoints"
CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")
WHAT = f"a Model Zoos folder (one folder per model with {RESULTS} and checkpoint_* folders)"
PROPERTY_KEYS = {
    "test_acc": "test_accuracy",
    "train_acc": "train_accuracy",
    "test_loss": "test_loss",
    "train_loss": "train_loss",
}
NOT_MEASURED = -999  # their trainer logs train_acc / train_loss as -999 for the untrained epoch 0
DATASETS = (
    ("fashion_mnist", ("fashion", "f_mnist", "fmnist")),
    ("mnist", ("mnist",)),
    ("svhn", ("svhn",)),
    ("usps", ("usps",)),
    ("cifar100", ("cifar100", "cifar-100", "cifar_100")),
    ("cifar10", ("cifar10", "cifar-10", "cifar_10")),
    ("stl10", ("stl10", "stl-10", "stl_10")),
    ("eurosat", ("eurosat",)),
    ("tiny_imagenet", ("tiny-imagenet", "tiny_imagenet", "tinyimagenet")),
)
SOURCE = {
    "kind": "schurholt",
    "citation": "Schürholt et al. 2022, Model Zoos: A Dataset of Diverse Populations of "
    "Neural Network Models (NeurIPS Datasets and Benchmarks)",
    "license": "CC-BY-4.0",
}


def import_schurholt(
    src: Path,
    out: Path,
    *,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Convert a Model Zoos folder of CNN-s models into a zoo at `out` (default name: `out`'s).

    Every checkpoint becomes a row: run id = model folder, epoch from the folder name,
    properties from the `result.json` line with that `training_iteration` (NaN where none),
    every config key as a typed `hp_*` column, `hp_activation` from `model::nlin`.
    """
    src, out = Path(src), Path(out)
    models = find_models(src)
    refuse_existing(out, overwrite)
    arch = cnn_s()
    total = sum(len(checkpoints) for _, checkpoints in models)
    source = {**SOURCE, "models": len(models)}
    with (
        ZooWriter(out, name or out.name, [arch], source, overwrite=overwrite) as writer,
        progress_bar(total, f"importing {src.name or src}", progress) as advance,
    ):
        for model_dir, checkpoints in models:
            records, config = read_results(model_dir / RESULTS)
            hp = hyperparameters(config, model_dir / RESULTS)
            dataset = guess_dataset(config, src)
            flats, rows = [], []
            for epoch, folder in checkpoints:
                state = load_state_dict(folder / STATE_FILE)
                flats.append(flatten_state_dict(state, arch, folder / STATE_FILE))
                rows.append(
                    {
                        "run_id": model_dir.name,
                        "dataset": dataset,
                        "epoch": epoch,
                        **hp,
                        **properties(records.get(epoch, {})),
                    }
                )
                advance(1)
            writer.add_many(arch.name, np.stack(flats), rows)
    return out


def find_models(src: Path) -> list[tuple[Path, list[tuple[int, Path]]]]:
    """Model folders under `src` (sorted by name), each with its (epoch, checkpoint folder)s."""
    if not src.is_dir():
        raise ZooImportError(f"{src} is not a folder; point SRC at {WHAT}")
    models = []
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        checkpoints = find_checkpoints(folder)
        if not (folder / RESULTS).is_file():
            if checkpoints:
                raise ZooImportError(f"{folder} has checkpoints but no {RESULTS}; re-download")
            continue
        if checkpoints:
            models.append((folder, checkpoints))
    if not models:
        raise ZooImportError(f"{src} holds no model with checkpoints; point SRC at {WHAT}")
    return models


def find_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(epoch, folder) of every `checkpoint_N` / `checkpoint_00000N` folder, by epoch."""
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        match = CHECKPOINT_DIR.match(path.name)
        if not (match and path.is_dir()):
            continue
        epoch = int(match.group(1))
        if epoch in found:
            raise ZooImportError(
                f"{folder}: {found[epoch].name} and {path.name} are both epoch {epoch}; "
                "remove one"
            )
        if not (path / STATE_FILE).is_file():
            raise ZooImportError(f"{path} has no {STATE_FILE!r} file; re-download the zoo")
        found[epoch] = path
    return sorted(found.items())


def read_results(path: Path) -> tuple[dict[int, dict], dict]:
    """Per-epoch records of a `result.json` (keyed by `training_iteration`) and the config."""
    records: dict[int, dict] = {}
    config = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ZooImportError(
                    f"{path}:{lineno} is not valid JSON ({e.msg}); re-download the zoo"
                ) from None
            if not isinstance(record, dict):
                raise ZooImportError(f"{path}:{lineno} is not a JSON object")
            if "training_iteration" in record:
                records[int(record["training_iteration"])] = record
            if config is None and isinstance(record.get("config"), dict):
                config = record["config"]
    if config is None:
        raise ZooImportError(f"{path} has no line with a config; cannot tell the activation")
    return records, config


def hyperparameters(config: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """`hp_*` columns from a run config; lists and dicts are kept as JSON text."""
    if "model::nlin" not in config:
        raise ZooImportError(f"{path}: config has no model::nlin (the activation)")
    hp = {
        hp_column(key): value
        if value is None or isinstance(value, (str, int, float, bool))
        else json.dumps(value, sort_keys=True, default=str)
        for key, value in config.items()
        if key != "model::nlin"
    }
    activation = str(config["model::nlin"]).lower()
    if activation not in ACTIVATIONS:
        raise ZooImportError(
            f"{path}: activation {activation!r} is not known; known: {sorted(ACTIVATIONS)}"
        )
    hp["hp_activation"] = activation
    return hp


def properties(record: Mapping[str, Any]) -> dict[str, float]:
    """Property columns from one epoch's record; the -999 'not measured' marker becomes NaN."""
    out = {}
    for key, column in PROPERTY_KEYS.items():
        if key in record:
            value = record[key]
            value = math.nan if value is None or value == NOT_MEASURED else float(value)
            out[column] = value
    return out


def guess_dataset(config: Mapping[str, Any], src: Path) -> str:
    """Dataset name from the config's dataset path, else from SRC's path; "unknown" if neither."""
    for text in (str(config.get("dataset::dump", "")), str(src.resolve())):
        lowered = text.lower()
        for dataset, tokens in DATASETS:
            if any(t in lowered for t in tokens):
                return dataset
    return "unknown"


def load_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """Load a checkpoint with `weights_only=True`; anything but plain tensors is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        if "global" not in detail.lower():
            raise ZooImportError(
                f"{path} is not a readable PyTorch checkpoint ({detail}); re-download the zoo"
            ) from None
        raise ZooImportError(
            f"{path}: refused to load: it holds more than plain tensors, and zoo-bench never "
            "runs code from checkpoint files (torch.load weights_only=True). Re-save it as a "
            f"plain state_dict if you trust it. ({detail})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ZooImportError(
            f"{path} is not a readable PyTorch checkpoint ({e}); re-download the zoo"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ZooImportError(f"{path} is not a state_dict (a mapping of names to tensors)")
    return state


def _unpickler_detail(message: str) -> str:
    """The useful part of torch's weights-only refusal (what it met), on one line."""
    detail = message.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation")[0]
    detail = re.sub(r"\x1b\[[0-9;]*m", "", detail)
    return " ".join(detail.split())[:300]


def flatten_state_dict(
    state: Mapping[str, torch.Tensor], arch: Architecture, path: Path
) -> np.ndarray:
    """One flat float32 vector: the state_dict's weight/bias pairs in order, shapes checked."""
    pairs: list[list[tuple[str, torch.Tensor]]] = []
    for key, tensor in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "weight":
            pairs.append([(key, tensor)])
        elif leaf == "bias" and pairs and pairs[-1][0][0] == f"{prefix}.weight":
            pairs[-1].append((key, tensor))
        else:
            raise ZooImportError(
                f"{path}: unexpected tensor {key}; {arch.name} has only conv/linear weights, "
                "each followed by its bias"
            )
    if len(pairs) != len(arch.layers) or any(len(p) != 2 for p in pairs):
        raise ZooImportError(
            f"{path} holds {len(pairs)} weight tensors {[p[0][0] for p in pairs]} (each needs "
            f"its bias); {arch.name} has {len(arch.layers)} layers"
        )
    parts = []
    for ((wkey, w), (bkey, b)), spec in zip(pairs, arch.layers, strict=True):
        for key, t, want in ((wkey, w, spec.weight_shape), (bkey, b, spec.bias_shape)):
            if tuple(t.shape) != want:
                raise ZooImportError(
                    f"{path}: {key} has shape {tuple(t.shape)}, {arch.name} needs {want}"
                )
            parts.append(t.detach().to(torch.float32).reshape(-1).numpy())
    return np.concatenate(parts)
