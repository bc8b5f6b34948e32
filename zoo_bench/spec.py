"""Suites, generation presets and expected cells as pure data: read from TOML, checked, frozen.

This module reads benchmark.toml (or a private suite file) and nothing else: no torch, no
generation, no zoo I/O. Orchestration (`zoo_bench.suite`: getting or generating zoos, checking
names against the registries) and reporting (`zoo_bench.leaderboard`) read what it returns.

File format (see docs/suites.md, "Suites and suite files"):
    [generate.<preset>]        a zoo population `zoo-bench zoo generate --preset` makes
    [suites.<name>]            zoos, tasks, methods, seeds, property, epochs, extends, version,
                               targets_only, pairs_with
                               (zoos: "generate:<preset>", a list of such presets, or a list
                               of catalog zoo names; property: any numeric zoo column)
    [suites.<name>.budgets.<method>]   max_epochs, max_seconds, num_cpus, num_gpus and
                                       hyperparameters; the method
                                       `default` applies to every method without its own table
    [suites.<name>.permutations]       zoo name -> index file (the nfn task)

`extends = "<suite>"` inherits every key of that suite (looked up in the same file, else in the
repository's benchmark.toml), together with the `[generate.*]` presets of the file it comes
from. The extending table's own lists (zoos, tasks, methods, seeds) replace the inherited ones;
its budgets (a method's table replaces that method's inherited table), permutations (per zoo)
and the file's own `[generate.*]` (per preset) add to the inherited ones or override them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from zoo_bench.errors import ZooBenchError
from zoo_bench.registry import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FILE_NAME = "benchmark.toml"
GENERATE_PREFIX = "generate:"
SUITE_KEYS = (
    "zoos", "tasks", "methods", "seeds", "property", "epochs", "budgets", "permutations",
    "extends", "version", "targets_only", "pairs_with",
)
REQUIRED_SUITE_KEYS = ("zoos", "tasks", "methods", "seeds")
PRESET_KEYS = (
    "datasets", "families", "runs", "epochs", "checkpoints", "batch_size", "seed", "group_size",
    "space", "family_runs",
)
REQUIRED_PRESET_KEYS = ("datasets", "families", "runs", "epochs", "checkpoints")
BUDGET_LIMITS = ("max_epochs", "max_seconds")
# What one fit of a method holds while it runs: CPUs (also its thread count, on every
# executor) and GPUs (on `--executor ray`, what Ray reserves for the task).
RESOURCE_KEYS = ("num_cpus", "num_gpus")
DEFAULT_BUDGET = "default"
# Suggestions only (zoo_bench.store.PROPERTIES: classifier zoos' columns, then INR zoos'
# frequency and phase). A suite's `property` may name any numeric column of its zoos; that is
# checked where the zoos are known (`zoo_bench.tasks`), not here.
PROPERTIES = (
    "test_accuracy", "train_accuracy", "test_loss", "train_loss", "generalization_gap",
    "frequency", "phase",
)
EPOCHS = ("final", "all")
DEFAULT_PROPERTY = "test_accuracy"
OVERWRITE_MODES = ("only-missing", "never", "always")  # how `zoo-bench run` treats stored cells


class SuiteError(ZooBenchError):
    """benchmark.toml is missing, or a suite in it is unknown or malformed."""


def zoo_name(preset: str, dataset: str, family: str) -> str:
    """The name of a generated zoo: ``<preset>-<dataset>-<family>``."""
    return f"{preset}-{dataset}-{family}"


class ZooInfo(NamedTuple):
    """What tasks match zoos on: the dataset and the architecture family (None when mixed)."""

    dataset: str | None
    family: str | None


@dataclass(frozen=True)
class Suite:
    """One `[suites.<name>]` table, resolved (extends applied) and checked: pure data."""

    name: str
    zoos: str | tuple[str, ...]
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    property: str
    epochs: str = "final"
    budgets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    permutations: Mapping[str, Path] = field(default_factory=dict)
    generate: Mapping[str, Any] | None = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    generates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    extends: str | None = None
    version: int = 1
    targets_only: tuple[str, ...] = ()
    pairs_with: tuple[str, ...] = ()

    @property
    def preset_names(self) -> tuple[str, ...]:
        """The generation presets the suite's zoos come from (empty for catalog suites)."""
        return tuple(self.generates)

    @property
    def preset(self) -> str | None:
        """The generation preset when the suite has exactly one, else None."""
        return self.preset_names[0] if len(self.generates) == 1 else None

    def zoo_names(self) -> list[str]:
        """The suite's zoo names; generated ones are ``<preset>-<dataset>-<family>``."""
        return sorted(self.expected_infos()) if self.generates else list(self.zoos)

    def zoo_presets(self) -> dict[str, str]:
        """Generated zoo name -> the preset that makes it (empty for catalog suites)."""
        return {
            zoo_name(p, d, f): p
            for p, g in self.generates.items()
            for d in g.get("datasets", [])
            for f in g.get("families", [])
        }

    def expected_infos(self) -> dict[str, ZooInfo]:
        """Dataset and family of each generated zoo, known before it exists (empty otherwise)."""
        return {
            zoo_name(p, d, f): ZooInfo(d, f)
            for p, g in self.generates.items()
            for d in g.get("datasets", [])
            for f in g.get("families", [])
        }

    def expected_runs(self, family: str, preset: str | None = None) -> int | None:
        """Runs of a generated zoo of `family` (`family_runs` or `runs`) made by `preset`
        (default: the suite's only preset), None for catalog suites."""
        g = self._preset_table(preset)
        if g is None:
            return None
        return int(dict(g.get("family_runs", {})).get(family, g["runs"]))

    def expected_networks(self, family: str, preset: str | None = None) -> int | None:
        """Networks of a generated zoo of `family` made by `preset` (runs x stored
        checkpoints), None for catalog suites."""
        g = self._preset_table(preset)
        if g is None:
            return None
        epochs = int(g["epochs"])
        checkpoints = {int(e) for e in g["checkpoints"] if int(e) <= epochs} | {0, epochs}
        return int(self.expected_runs(family, preset) or 0) * len(checkpoints)

    def _preset_table(self, preset: str | None) -> Mapping[str, Any] | None:
        if preset is None:
            return self.generate
        if preset not in self.generates:
            raise SuiteError(f"suite {self.name} has no preset {preset!r}; its presets: "
                             f"{list(self.generates)}")
        return self.generates[preset]

    def budget(self, method: str) -> dict[str, Any]:
        """The method's budget table, else the suite's `[budgets.default]`; may be {}."""
        table = self.budgets.get(method, self.budgets.get(DEFAULT_BUDGET, {}))
        return dict(table)

    def task_options(self) -> dict[str, Any]:
        """Options handed to `Task.cells`: the nfn task's permutation files, the families whose
        zoos are only tested on, never trained on (`targets_only`), and those every scored pair
        must have a zoo of (`pairs_with`)."""
        options: dict[str, Any] = {}
        if self.permutations:
            options["permutations"] = dict(self.permutations)
        if self.targets_only:
            options["targets_only"] = tuple(self.targets_only)
        if self.pairs_with:
            options["pairs_with"] = tuple(self.pairs_with)
        return options


@dataclass(frozen=True)
class Expected:
    """The cells a complete leaderboard holds: per task, its (source, target) pairs x seeds."""

    property: str
    methods: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    pairs: Mapping[str, frozenset[tuple[str, str]]]
    suite: str | None = None
    inferred: bool = False
    families: Mapping[str, str] = field(default_factory=dict)  # zoo -> architecture family

    def n_cells(self, task: str) -> int:
        """Cells one method needs for `task`: its pairs times the seeds."""
        return len(self.pairs.get(task, ())) * len(self.seeds)


# --- reading files ------------------------------------------------------------------------


def find_benchmark_toml() -> Path:
    """The benchmark.toml in use: working directory, repository root, then package data."""
    here = Path(__file__).resolve().parent
    for candidate in (Path.cwd() / FILE_NAME, here.parent / FILE_NAME, here / FILE_NAME):
        if candidate.is_file():
            return candidate
    raise SuiteError(
        f"no {FILE_NAME} in {Path.cwd()} or next to the zoo_bench package; run from the "
        "zoo-bench checkout or pass the file's path with --suite-file"
    )


def read_benchmark_toml(path: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]]:
    """The file's path and parsed content (the default file when `path` is None)."""
    p = Path(path) if path is not None else find_benchmark_toml()
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SuiteError(f"{p} not found; pass the path of a suite file") from None
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{p} is not valid TOML: {e}") from None
    unknown = sorted(set(doc) - {"generate", "suites"})
    if unknown:
        hint = did_you_mean(unknown[0], ("generate", "suites"))
        raise SuiteError(
            f"{p}: unknown top-level key {unknown[0]!r}{hint}. A suite file holds only "
            "[generate.<preset>] and [suites.<name>] tables"
        )
    return p, doc


def suite_names(path: str | os.PathLike | None = None) -> list[str]:
    """Names of the suites defined in the file."""
    return sorted(read_benchmark_toml(path)[1].get("suites", {}))


def preset_tables(path: str | os.PathLike | None = None) -> tuple[Path, dict[str, dict]]:
    """The `[generate.*]` tables of the file, each checked (`check_preset`)."""
    p, doc = read_benchmark_toml(path)
    presets = doc.get("generate", {})
    for name, table in presets.items():
        check_preset(name, table, p)
    return p, {name: dict(t) for name, t in presets.items()}


def check_preset(name: str, table: Any, path: Path | str) -> None:
    """Keys of one `[generate.<name>]` table: known (with did-you-mean) and the required ones."""
    where = f"{path} [generate.{name}]"
    if not isinstance(table, dict):
        raise SuiteError(f"{where} must be a table")
    for key in table:
        if key not in PRESET_KEYS:
            raise SuiteError(
                f"{where}: unknown key {key!r}{did_you_mean(key, PRESET_KEYS)} "
                f"Keys: {list(PRESET_KEYS)}"
            )
    for key in REQUIRED_PRESET_KEYS:
        if key not in table:
            raise SuiteError(f"{where}: missing key {key!r}")
    for key in ("datasets", "families"):
        if not _str_list(table[key]):
            raise SuiteError(f"{where}: {key} must be a non-empty list of names")
    for key in ("runs", "epochs", "batch_size", "seed", "group_size"):
        value = table.get(key)
        if value is not None and (type(value) is not int or value < 0):
            raise SuiteError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    family_runs = table.get("family_runs", {})
    if not isinstance(family_runs, dict):
        raise SuiteError(f"{where}: family_runs must be a table of family = runs")
    for family, runs in family_runs.items():
        if family not in table["families"]:
            raise SuiteError(f"{where}: family_runs.{family}: {family!r} is not one of the "
                             f"preset's families {table['families']}"
                             f"{did_you_mean(family, table['families'])}")
        if type(runs) is not int or runs < 1:
            raise SuiteError(f"{where}: family_runs.{family} must be a positive integer, "
                             f"got {runs!r}")
    checkpoints = table["checkpoints"]
    if not (isinstance(checkpoints, list) and checkpoints
            and all(type(e) is int for e in checkpoints)):
        raise SuiteError(f"{where}: checkpoints must be a non-empty list of epochs")


def load_spec(name: str | None, path: str | os.PathLike | None = None) -> Suite:
    """The suite `name` of the file (None: its only suite), with `extends` resolved; pure data.

    Names of tasks, methods, datasets and families are not checked here (that needs the
    registries): `zoo_bench.suite.load_suite` does it.
    """
    p, doc = read_benchmark_toml(path)
    suites = doc.get("suites", {})
    if name is None:
        if len(suites) != 1:
            raise SuiteError(f"{p} defines suites {sorted(suites)}; choose one with --suite")
        name = next(iter(suites))
    if name not in suites:
        raise SuiteError(
            f"no suite {name!r} in {p}{did_you_mean(name, suites)} Suites: {sorted(suites)}"
        )
    table, presets = _resolve(name, p, doc, seen=())
    return _parse(name, table, presets, p)


def _resolve(name: str, p: Path, doc: Mapping[str, Any],
             seen: tuple[tuple[str, str], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The suite table with its `extends` chain merged in, and the presets visible to it."""
    where = f"{p} [suites.{name}]"
    here = (str(p.resolve()), name)
    if here in seen:
        chain = " -> ".join(n for _, n in (*seen, here))
        raise SuiteError(f"{where}: extends forms a cycle {chain}")
    table = doc["suites"][name]
    if not isinstance(table, dict):
        raise SuiteError(f"{where} must be a table")
    presets = dict(doc.get("generate", {}))
    base_name = table.get("extends")
    if base_name is None:
        return dict(table), presets
    if not isinstance(base_name, str):
        raise SuiteError(f"{where}: extends must be the name of a suite")
    suites = doc.get("suites", {})
    if base_name in suites and base_name != name:
        base, base_presets = _resolve(base_name, p, doc, (*seen, here))
    else:
        default_path, default_doc = read_benchmark_toml(find_benchmark_toml())
        base_suites = default_doc.get("suites", {})
        if base_name not in base_suites:
            raise SuiteError(
                f"{where}: extends {base_name!r}, which is neither in this file nor in "
                f"{default_path}{did_you_mean(base_name, [*suites, *base_suites])}"
            )
        base, base_presets = _resolve(base_name, default_path, default_doc, (*seen, here))
    merged = {**base, **{k: v for k, v in table.items() if k not in ("budgets", "permutations")}}
    for key in ("budgets", "permutations"):
        if key in table:
            if not isinstance(table[key], dict):
                raise SuiteError(f"{where}: {key} must be a table")
            merged[key] = {**base.get(key, {}), **table[key]}
    merged["extends"] = base_name
    return merged, {**base_presets, **presets}


def _parse(name: str, spec: Mapping[str, Any], presets: Mapping[str, Any], path: Path) -> Suite:
    where = f"{path} [suites.{name}]"

    def fail(why: str) -> SuiteError:
        return SuiteError(f"{where}: {why}")

    for key in spec:
        if key not in SUITE_KEYS:
            raise fail(f"unknown key {key!r}{did_you_mean(key, SUITE_KEYS)} "
                       f"Keys: {list(SUITE_KEYS)}")
    for key in REQUIRED_SUITE_KEYS:
        if key not in spec:
            raise fail(f"missing key {key!r}")
    zoos, generates = _zoos(spec["zoos"], presets, path, fail)
    if not _str_list(spec["tasks"]):
        raise fail("tasks must be a non-empty list of task names")
    if not _str_list(spec["methods"]):
        raise fail("methods must be a non-empty list of method names")
    seeds = spec["seeds"]
    if not (isinstance(seeds, list) and seeds and all(type(s) is int for s in seeds)):
        raise fail("seeds must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise fail(f"seeds {seeds} repeat a seed")
    prop = spec.get("property", DEFAULT_PROPERTY)
    if not isinstance(prop, str) or not prop:
        raise fail(f"property {prop!r} must be the name of a numeric column of the suite's "
                   f"zoos (a string), e.g. one of {list(PROPERTIES)} or an INR zoo's "
                   "'frequency'")
    epochs = spec.get("epochs", "final")
    if epochs not in EPOCHS:
        raise fail(f"epochs {epochs!r} is not one of {list(EPOCHS)}")
    version = spec.get("version", 1)
    if type(version) is not int or version < 1:
        raise fail(f"version must be a positive integer, got {version!r}")
    targets_only = _families(spec, "targets_only", generates, fail,
                             "zoos of these families are tested on, never trained on")
    pairs_with = _families(spec, "pairs_with", generates, fail,
                           "every scored pair has a zoo of one of them as source or target")
    budgets = _budgets(spec.get("budgets", {}), fail)
    perms = spec.get("permutations", {})
    if not isinstance(perms, dict) or not all(isinstance(v, str) for v in perms.values()):
        raise fail("permutations must be a table of zoo name = \"path of its index file\"")
    return Suite(
        name=name, zoos=zoos, tasks=tuple(spec["tasks"]), methods=tuple(spec["methods"]),
        seeds=tuple(seeds), property=prop, epochs=epochs,
        budgets=MappingProxyType({m: MappingProxyType(t) for m, t in budgets.items()}),
        permutations=MappingProxyType({z: (path.parent / v) for z, v in perms.items()}),
        generate=MappingProxyType(next(iter(generates.values()))) if len(generates) == 1
        else None,
        presets=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in presets.items()}),
        generates=MappingProxyType({p: MappingProxyType(g) for p, g in generates.items()}),
        path=path, extends=spec.get("extends"), version=version,
        targets_only=targets_only, pairs_with=pairs_with,
    )


def _families(spec: Mapping[str, Any], key: str, generates: Mapping[str, Any], fail: Any,
              meaning: str) -> tuple[str, ...]:
    """A suite key that lists architecture families, checked against the families its presets
    make (catalog suites: any names)."""
    families = spec.get(key, [])
    if not (isinstance(families, list) and all(isinstance(f, str) for f in families)):
        raise fail(f"{key} must be a list of architecture family names ({meaning})")
    if generates:
        made = [f for g in generates.values() for f in g.get("families", [])]
        unknown = sorted(set(families) - set(made))
        if unknown:
            where_made = ", ".join(f"[generate.{p}]" for p in generates)
            raise fail(f"{key} names {unknown}, which {where_made} do not make; "
                       f"their families: {sorted(set(made))}")
    return tuple(families)


def _zoos(zoos: Any, presets: Mapping[str, Any], path: Path,
          fail: Any) -> tuple[str | tuple[str, ...], dict[str, dict[str, Any]]]:
    """`zoos` as stored on the Suite, and the tables of the generation presets it names.

    `"generate:<preset>"` is one preset; a list is either presets (`["generate:vit",
    "generate:inr"]`: the zoos of all of them) or catalog zoo names, never both.
    """
    usage = ('zoos must be "generate:<preset>", a list of "generate:<preset>" entries, or a '
             "non-empty list of catalog zoo names")
    if isinstance(zoos, str):
        if not zoos.startswith(GENERATE_PREFIX):
            raise fail(f'zoos = {zoos!r}: write "generate:<preset>" or a list of catalog names')
        entries = [zoos]
    elif _str_list(zoos):
        entries = list(zoos)
        generated = [z for z in entries if z.startswith(GENERATE_PREFIX)]
        if not generated:
            return tuple(entries), {}
        if len(generated) != len(entries):
            catalog = [z for z in entries if not z.startswith(GENERATE_PREFIX)]
            raise fail(f"zoos mixes generation presets {generated} with catalog names "
                       f"{catalog}; {usage}, not both")
    else:
        raise fail(usage)
    generates: dict[str, dict[str, Any]] = {}
    for entry in entries:
        preset = entry[len(GENERATE_PREFIX):]
        if preset in generates:
            raise fail(f"zoos names {entry!r} twice")
        if preset not in presets:
            raise fail(f"zoos names {entry!r}, but there is no [generate.{preset}]"
                       f"{did_you_mean(preset, presets)} Presets: {sorted(presets)}")
        check_preset(preset, presets[preset], path)
        generates[preset] = dict(presets[preset])
    names: dict[str, str] = {}
    for preset, table in generates.items():
        for d in table["datasets"]:
            for f in table["families"]:
                name = zoo_name(preset, d, f)
                if name in names:
                    raise fail(f"presets {names[name]!r} and {preset!r} both make zoo {name}")
                names[name] = preset
    return (zoos if isinstance(zoos, str) else tuple(zoos)), generates


def _budgets(spec: Any, fail: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(spec, dict):
        raise fail("budgets must be tables [suites.<name>.budgets.<method>]")
    out = {}
    for method, table in spec.items():
        if not isinstance(table, dict):
            raise fail(f"budgets.{method} must be a table")
        for key in BUDGET_LIMITS:
            value = table.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or value <= 0):
                raise fail(f"budgets.{method}.{key} must be a positive number, got {value!r}")
        problem = resource_problem(table)
        if problem:
            raise fail(f"budgets.{method}.{problem}")
        out[method] = dict(table)
    return out


def resource_problem(table: Mapping[str, Any]) -> str:
    """What is wrong with a budget table's resource keys ("" when nothing): `num_cpus` a
    positive integer, `num_gpus` a number >= 0."""
    cpus, gpus = table.get("num_cpus"), table.get("num_gpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1):
        return f"num_cpus must be a positive integer (CPUs, and threads, per fit), got {cpus!r}"
    if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int | float)
                             or gpus < 0):
        return f"num_gpus must be a number >= 0 (GPUs per fit), got {gpus!r}"
    return ""


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
