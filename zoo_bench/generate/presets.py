"""Generation presets: the `[generate.<preset>]` tables of benchmark.toml as zoo configurations.

A preset lists datasets and architecture families; each (dataset, family) pair is one zoo named
``<preset>-<dataset>-<family>``. Keys: datasets, families, runs, epochs, checkpoints,
batch_size, seed, group_size, `family_runs` (a table of family = runs for families whose zoos
need another size, e.g. test-only targets), and an optional `[generate.<preset>.space]` table
overriding the hyperparameter search space (see `SearchSpace`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo_bench.errors import ZooBenchError
from zoo_bench.generate.datasets import SIGNALS, dataset_names
from zoo_bench.generate.hyper import FAMILIES, INR_FAMILIES, SearchSpace
from zoo_bench.registry import FAMILIES as FAMILY_REGISTRY
from zoo_bench.spec import PRESET_KEYS, SuiteError, did_you_mean, preset_tables, zoo_name

__all__ = ["PRESET_KEYS", "PresetError", "ZooConfig", "preset_configs", "preset_names",
           "preset_zoo_names", "zoo_name"]
DEFAULTS: dict[str, Any] = {"batch_size": 16, "seed": 0, "group_size": 64}


class PresetError(ZooBenchError):
    """A generation preset is unknown or malformed."""


@dataclass(frozen=True)
class ZooConfig:
    """Everything that determines one generated zoo's content."""

    name: str
    dataset: str
    family: str
    runs: int
    epochs: int
    checkpoints: tuple[int, ...]
    batch_size: int = 16
    seed: int = 0
    group_size: int = 64
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        where = f"zoo {self.name}"
        if self.dataset not in dataset_names():
            raise PresetError(
                f"{where}: unknown dataset {self.dataset!r}; known: {dataset_names()}"
            )
        if self.family not in FAMILIES and self.family not in FAMILY_REGISTRY.names():
            raise PresetError(
                f"{where}: unknown family {self.family!r}; known: {FAMILY_REGISTRY.names()}"
            )
        signal = self.dataset in SIGNALS
        if (self.family in INR_FAMILIES) != signal:
            raise PresetError(
                f"{where}: family {self.family!r} cannot train on dataset {self.dataset!r}: "
                f"INR families {list(INR_FAMILIES)} are fitted to signal sets {sorted(SIGNALS)}, "
                "the other families to image datasets; pair them accordingly"
            )
        for key in ("runs", "epochs", "batch_size", "group_size"):
            if int(getattr(self, key)) < 1:
                raise PresetError(f"{where}: {key} must be at least 1, got {getattr(self, key)}")
        bad = [e for e in self.checkpoints if not 0 <= e <= self.epochs]
        if not self.checkpoints or bad:
            raise PresetError(
                f"{where}: checkpoints {list(self.checkpoints)} must be a non-empty list of "
                f"epochs within 0..{self.epochs} (0 is before training)"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (hashed by `sha256`); the search space as `SearchSpace.to_dict`, with every
        `inr_*` field kept for an INR family (so a zoo made with other inr defaults, or before
        omega_0 was folded into the stored weights, never passes for this configuration)."""
        space = self.space.to_dict(keep=("inr_",) if self.family in INR_FAMILIES else ())
        return {**asdict(self), "checkpoints": list(self.checkpoints), "space": space}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ZooConfig:
        """Inverse of `to_dict`."""
        space = SearchSpace.from_dict(d.get("space", {}))
        return cls(**{**d, "checkpoints": tuple(d["checkpoints"]), "space": space})

    def sha256(self) -> str:
        """Hash of the configuration: a zoo made from the same hash has the same content."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def _presets() -> tuple[str, dict[str, Any]]:
    try:
        path, presets = preset_tables()
    except SuiteError as e:
        raise PresetError(str(e)) from None
    return str(path), presets


def preset_names() -> list[str]:
    """Names of the `[generate.*]` presets."""
    return sorted(_presets()[1])


def _preset_table(preset: str) -> dict[str, Any]:
    path, presets = _presets()
    if preset not in presets:
        raise PresetError(
            f"no preset [generate.{preset}] in {path}{did_you_mean(preset, presets)} "
            f"Presets: {sorted(presets)}"
        )
    return dict(presets[preset])


def preset_zoo_names(preset: str) -> list[str]:
    """Names of the zoos a preset makes: ``<preset>-<dataset>-<family>`` for every pair."""
    table = _preset_table(preset)
    return [zoo_name(preset, d, f) for d in table["datasets"] for f in table["families"]]


def preset_configs(preset: str, overrides: Mapping[str, Any] | None = None,
                   table: Mapping[str, Any] | None = None) -> list[ZooConfig]:
    """One `ZooConfig` per zoo of the preset; `overrides` replaces preset keys (e.g. runs).

    `table` is the preset's (checked) table when it comes from a suite file rather than the
    default benchmark.toml.
    """
    table = {**DEFAULTS, **(dict(table) if table is not None else _preset_table(preset))}
    for key, value in (overrides or {}).items():
        if key not in PRESET_KEYS:
            raise PresetError(f"cannot override {key!r}; keys: {PRESET_KEYS}")
        if value is not None:
            table[key] = value
    try:
        space = SearchSpace.from_dict(table.get("space", {}))
    except ValueError as e:
        raise PresetError(f"[generate.{preset}.space]: {e}") from None
    runs = {f: int(table["runs"]) for f in table["families"]}
    if (overrides or {}).get("runs") is None:  # an explicit --runs sizes every zoo alike
        runs.update({f: int(n) for f, n in dict(table.get("family_runs", {})).items()})
    epochs = int(table["epochs"])
    listed = {int(e) for e in table["checkpoints"] if int(e) <= epochs}
    checkpoints = tuple(sorted(listed | {0, epochs}))
    return [
        ZooConfig(
            name=zoo_name(preset, d, f), dataset=d, family=f, runs=runs[f],
            epochs=epochs, checkpoints=checkpoints, batch_size=int(table["batch_size"]),
            seed=int(table["seed"]), group_size=int(table["group_size"]), space=space,
        )
        for d in table["datasets"]
        for f in table["families"]
    ]
