"""Tasks: which (source zoo, target zoo) pairs a benchmark scores, turned into runnable cells.

Every task trains and validates on the source zoo's split and tests on the target zoo's test
split; tasks differ only in which pairs they take. A cell carries Zoo views of its three parts
and the sha256 of each part's split file. Cells sharing a `fit_key` train on identical data, so
a runner fits once and scores all of them (e.g. a cross-dataset row and its diagonal).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zoo_bench.errors import RegistryError, ZooBenchError
from zoo_bench.registry import TASKS, did_you_mean
from zoo_bench.spec import DEFAULT_PROPERTY, ZooInfo
from zoo_bench.splits import Split, nfn_split, standard_split
from zoo_bench.store import REQUIRED_COLUMNS, Zoo


class TaskError(ZooBenchError):
    """A task cannot be built from the zoos and options given."""


def zoo_info(zoo: Zoo) -> ZooInfo:
    """The zoo's one dataset (table column) and family (manifest); None where it has several.

    The dataset is what the networks were trained or fitted on, whatever its kind: an image
    dataset (`digits`) or a signal set (an INR zoo fitted to sine waves: `sines`). So an INR
    zoo takes part in `standard` like any zoo, and the cross tasks pair it only with zoos of
    the same signal set (cross_arch) or of the INR family (cross_dataset). Missing values do
    not count as a dataset; a zoo with none is matched by no cross task.
    """
    datasets = sorted(set(zoo.table["dataset"].dropna().astype(str)))
    families = sorted({a.family or a.name for a in zoo.architectures.values()})
    return ZooInfo(
        datasets[0] if len(datasets) == 1 else None, families[0] if len(families) == 1 else None
    )


# Bookkeeping columns that are numbers but not properties of a network.
NOT_PROPERTIES = ("network_id", "weight_offset")


def property_columns(zoo: Zoo) -> list[str]:
    """The zoo's columns a suite may predict: numeric (not boolean), bookkeeping left out.

    Order: the known properties (`Zoo.properties`), other measured columns (e.g. an INR
    zoo's `frequency`), then the descriptive ones (`epoch`, `n_params`, numeric `hp_*`).
    """
    numeric = [
        c for c in zoo.table.columns
        if c not in NOT_PROPERTIES and pd.api.types.is_numeric_dtype(zoo.table[c])
        and not pd.api.types.is_bool_dtype(zoo.table[c])
    ]
    known = [p for p in zoo.properties if p in numeric]
    descriptive = [c for c in numeric if c in REQUIRED_COLUMNS or c.startswith("hp_")]
    measured = [c for c in numeric if c not in known and c not in descriptive]
    return [*known, *measured, *descriptive]


@dataclass(frozen=True, eq=False)
class Cell:
    """One thing to score: fit on `train` (early-stop on `val`) of `source`, test on `target`."""

    task: str
    source: str
    target: str
    seed: int
    property: str
    epochs: str
    train: Zoo
    val: Zoo
    test: Zoo
    train_sha256: str
    val_sha256: str
    test_sha256: str
    source_split: Split
    target_split: Split

    @property
    def fit_key(self) -> tuple[str, int, str, str, str]:
        """Cells with equal keys train on the same data for the same target: fit once."""
        return (self.source, self.seed, self.train_sha256, self.val_sha256, self.property)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(task, source, target, seed): with the method, what a result row is keyed by."""
        return (self.task, self.source, self.target, self.seed)


class Task(ABC):
    """A task: a name, a one-line description, and the (source, target) zoo pairs it scores.

    `version` is recorded in every result row; bump it when the task's pairs or splits change,
    so stored cells of the old definition are recomputed rather than reused.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[int] = 1

    @abstractmethod
    def pairs(self, infos: Mapping[str, ZooInfo]) -> list[tuple[str, str]]:
        """The ordered (source, target) zoo-name pairs this task scores, from zoo metadata."""

    def scored_pairs(
        self, infos: Mapping[str, ZooInfo], options: Mapping[str, Any] | None = None
    ) -> list[tuple[str, str]]:
        """`pairs` less those that would train on a zoo of a family the suite marks
        `targets_only` (e.g. the width-varied ctc zoos, scored only as transfer targets) and,
        where the suite lists `pairs_with` families, those with no zoo of one of them (the arch
        suite scores only pairs with a ViT zoo; CNN-only pairs are the default suite's)."""
        only = set((options or {}).get("targets_only", ()))
        wanted = set((options or {}).get("pairs_with", ()))
        return [
            (s, t) for s, t in self.pairs(infos) if infos[s].family not in only
            and (not wanted or {infos[s].family, infos[t].family} & wanted)
        ]

    def split(self, zoo: Zoo, seed: int, epochs: str, root: Path | None, options: Mapping) -> Split:
        """The split a cell of this task uses on `zoo` (the standard one unless overridden)."""
        return standard_split(zoo, seed, epochs=epochs, root=root)

    def cells(
        self,
        zoos: Mapping[str, Zoo],
        seed: int,
        property: str = DEFAULT_PROPERTY,
        epochs: str = "final",
        split_root: str | os.PathLike | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> list[Cell]:
        """The cells of this task on the suite's zoos ({name: Zoo}) for one seed."""
        options = dict(options or {})
        root = Path(split_root) if split_root is not None else None
        pairs = self.scored_pairs({name: zoo_info(z) for name, z in zoos.items()}, options)
        splits: dict[str, Split] = {}
        cells = []
        for source, target in pairs:
            for name in (source, target):
                if name not in splits:
                    check_property(zoos[name], name, property)
                    splits[name] = self.split(zoos[name], seed, epochs, root, options)
            src, tgt = splits[source], splits[target]
            views = {
                "train": src.view(zoos[source], "train"),
                "val": src.view(zoos[source], "val"),
                "test": tgt.view(zoos[target], "test"),
            }
            for part, view in views.items():
                _check_targets(view, part, property)
            cells.append(
                Cell(
                    task=self.name, source=source, target=target, seed=int(seed),
                    property=property, epochs=epochs, **views,
                    train_sha256=src.sha256["train"], val_sha256=src.sha256["val"],
                    test_sha256=tgt.sha256["test"], source_split=src, target_split=tgt,
                )
            )
        return cells


_INSTANCES: dict[type[Task], Task] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a Task subclass under its `name` (plug-ins may instead use the
    entry-point group `zoo_bench.tasks`)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise RegistryError(f"task class {getattr(cls, '__name__', cls)} needs a non-empty string "
                            "`name`")
    return TASKS.register(name, cls, f"{cls.__module__}.{cls.__qualname__} (decorator)")


def get_task(name: str) -> Task:
    """The registered task called `name` (one instance per class); a typo gets a did-you-mean."""
    cls = TASKS.get(name)
    if cls not in _INSTANCES:
        _INSTANCES[cls] = cls()
    return _INSTANCES[cls]


def list_tasks() -> list[Task]:
    """Every registered task: built-ins first, in their order, then the others by name."""
    names = [*builtin_tasks(), *(n for n in TASKS.names() if n not in builtin_tasks())]
    return [get_task(n) for n in names]


@register_task
class Standard(Task):
    name = "standard"
    description = (
        "Train, validate and test inside one zoo, on disjoint training runs "
        "(60/20/20 % of the runs, seeded)."
    )

    def pairs(self, infos: Mapping[str, ZooInfo]) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(infos)]


@register_task
class CrossDataset(Task):
    name = "cross_dataset"
    description = (
        "Train/validate on one dataset's zoo, test on another dataset's zoo of the same "
        "architecture family: every ordered pair, diagonal (= standard) included."
    )

    def pairs(self, infos: Mapping[str, ZooInfo]) -> list[tuple[str, str]]:
        return _matrix(infos, same="family", differ="dataset")


@register_task
class CrossArch(Task):
    name = "cross_arch"
    description = (
        "Train/validate on one architecture family's zoo, test on another family's zoo of the "
        "same dataset: both directions, diagonal (= standard) included."
    )

    def pairs(self, infos: Mapping[str, ZooInfo]) -> list[tuple[str, str]]:
        return _matrix(infos, same="dataset", differ="family")


@register_task
class NFN(Task):
    name = "nfn"
    description = (
        "Small CNN Zoo with the split of NFN / ScaleGMN (fixed permutation, epoch 86, "
        "test = second half); needs each zoo's index file in [suites.<name>.permutations]."
    )

    def pairs(self, infos: Mapping[str, ZooInfo]) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(infos)]

    def split(self, zoo: Zoo, seed: int, epochs: str, root: Path | None, options: Mapping) -> Split:
        perms = options.get("permutations") or {}
        if zoo.name not in perms:
            raise TaskError(
                f"task nfn needs the permutation file of zoo {zoo.name}: pass "
                f"options={{'permutations': {{'{zoo.name}': PATH}}}} or set it in benchmark.toml "
                "under [suites.<name>.permutations]"
            )
        return nfn_split(zoo, perms[zoo.name], root=root)


def _matrix(infos: Mapping[str, ZooInfo], same: str, differ: str) -> list[tuple[str, str]]:
    """Ordered pairs of zoos equal in `same` and unequal in `differ`, plus each zoo with itself.

    Mixed zoos (several datasets or families: None) take no part.
    """
    pure = {n: i for n, i in sorted(infos.items()) if None not in i}

    def matches(a: ZooInfo, b: ZooInfo) -> bool:
        return getattr(a, same) == getattr(b, same) and getattr(a, differ) != getattr(b, differ)

    return [
        (a, b) for a, ia in pure.items() for b, ib in pure.items() if a == b or matches(ia, ib)
    ]


def check_property(zoo: Zoo, name: str, prop: str) -> None:
    """Raise TaskError unless `prop` is a numeric column of the zoo (`property_columns`); the
    error names the zoo and the columns it could be."""
    columns = property_columns(zoo)
    if prop not in zoo.table.columns:
        raise TaskError(
            f"zoo {name} has no property {prop!r}{did_you_mean(prop, columns)} Set the suite's "
            f"`property` to one of its numeric columns: {columns}"
        )
    if prop not in columns:
        raise TaskError(
            f"zoo {name}: column {prop!r} ({zoo.table[prop].dtype}) is not a property: a "
            f"property must be a numeric column; set the suite's `property` to one of {columns}"
        )


def _check_targets(view: Zoo, part: str, prop: str) -> None:
    bad = int((~np.isfinite(view.table[prop].to_numpy(dtype=np.float64))).sum())
    if bad:
        raise TaskError(
            f"zoo {view.name}: {bad} networks of the {part} part have no finite {prop}; "
            "choose another property or re-create the zoo"
        )


def builtin_tasks() -> dict[str, type[Task]]:
    """The tasks defined here, in order (the task registry loads them as its built-ins)."""
    return {c.name: c for c in (Standard, CrossDataset, CrossArch, NFN)}
