"""Benchmark suites: the `[suites.<name>]` tables of benchmark.toml, and getting their zoos.

A suite names its zoos (``"generate:<preset>"`` for the zoos `zoo-bench zoo generate` makes
from `[generate.<preset>]`, or a list of catalog names), tasks, methods, seeds, optionally the
target `property` and checkpoint selection `epochs`, per-method budgets
(`[suites.<name>.budgets.<method>]`: max_epochs, max_seconds and any extra hyperparameters)
and, for the nfn task, `[suites.<name>.permutations]` (zoo name -> index file).

benchmark.toml is looked up in the working directory, then at the repository root next to the
package (an editable install), then inside the package (a copy shipped as package data).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_bench.errors import RegistryError, ZooBenchError, ZooFormatError
from zoo_bench.generate.presets import zoo_name
from zoo_bench.paths import zoo_path
from zoo_bench.splits import EPOCHS
from zoo_bench.store import PROPERTIES, Zoo
from zoo_bench.tasks import DEFAULT_PROPERTY, ZooInfo, get_task

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FILE_NAME = "benchmark.toml"
GENERATE_PREFIX = "generate:"
SUITE_KEYS = ("zoos", "tasks", "methods", "seeds", "property", "epochs", "budgets", "permutations")
BUDGET_NUMBERS = ("max_epochs", "max_seconds")


class SuiteError(ZooBenchError):
    """benchmark.toml is missing, or a suite in it is unknown or malformed."""


@dataclass(frozen=True)
class Suite:
    """One `[suites.<name>]` table, checked: what `zoo-bench run --suite NAME` covers."""

    name: str
    zoos: str | tuple[str, ...]
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    property: str
    epochs: str = "final"
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    permutations: dict[str, Path] = field(default_factory=dict)
    generate: dict[str, Any] | None = None
    path: Path | None = None

    @property
    def preset(self) -> str | None:
        """The generation preset for ``zoos = "generate:<preset>"``, else None."""
        return self.zoos[len(GENERATE_PREFIX):] if isinstance(self.zoos, str) else None

    def zoo_names(self) -> list[str]:
        """The suite's zoo names; generated ones are ``<preset>-<dataset>-<family>``."""
        return sorted(self.expected_infos()) if self.preset else list(self.zoos)

    def expected_infos(self) -> dict[str, ZooInfo]:
        """Dataset and family of each generated zoo, known before it exists (empty otherwise)."""
        if not self.preset or self.generate is None:
            return {}
        return {
            zoo_name(self.preset, d, f): ZooInfo(d, f)
            for d in self.generate.get("datasets", [])
            for f in self.generate.get("families", [])
        }

    def budget(self, method: str) -> dict[str, Any]:
        """The method's budget table (max_epochs, max_seconds, extra hyperparameters); may be {}."""
        return dict(self.budgets.get(method, {}))

    def task_options(self) -> dict[str, Any]:
        """Options handed to `Task.cells` (the nfn task's permutation files)."""
        return {"permutations": dict(self.permutations)} if self.permutations else {}


def find_benchmark_toml() -> Path:
    """The benchmark.toml in use: working directory, repository root, then package data."""
    here = Path(__file__).resolve().parent
    for candidate in (Path.cwd() / FILE_NAME, here.parent / FILE_NAME, here / FILE_NAME):
        if candidate.is_file():
            return candidate
    raise SuiteError(
        f"no {FILE_NAME} in {Path.cwd()} or next to the zoo_bench package; run from the "
        "zoo-bench checkout or pass the file's path"
    )


def read_benchmark_toml(path: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]]:
    """The file's path and parsed content."""
    p = Path(path) if path is not None else find_benchmark_toml()
    try:
        return p, tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SuiteError(f"{p} not found; pass the path of a benchmark.toml") from None
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{p} is not valid TOML: {e}") from None


def suite_names(path: str | os.PathLike | None = None) -> list[str]:
    """Names of the suites defined in benchmark.toml."""
    return sorted(read_benchmark_toml(path)[1].get("suites", {}))


def load_suite(name: str, path: str | os.PathLike | None = None) -> Suite:
    """The suite `name` from benchmark.toml (found as described in the module docstring)."""
    p, doc = read_benchmark_toml(path)
    suites = doc.get("suites", {})
    if name not in suites:
        close = difflib.get_close_matches(name, list(suites), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SuiteError(f"no suite {name!r} in {p}.{hint} Suites: {sorted(suites)}")
    return _parse(name, suites[name], doc.get("generate", {}), p)


def _parse(name: str, spec: Mapping[str, Any], generate: Mapping[str, Any], path: Path) -> Suite:
    where = f"{path} [suites.{name}]"

    def fail(why: str) -> SuiteError:
        return SuiteError(f"{where}: {why}")

    for key in spec:
        if key not in SUITE_KEYS:
            close = difflib.get_close_matches(key, SUITE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail(f"unknown key {key!r}{hint}; keys are {list(SUITE_KEYS)}")
    for key in ("zoos", "tasks", "methods", "seeds"):
        if key not in spec:
            raise fail(f"missing key {key!r}")
    zoos = spec["zoos"]
    preset_spec = None
    if isinstance(zoos, str):
        if not zoos.startswith(GENERATE_PREFIX):
            raise fail(f'zoos = {zoos!r}: write "generate:<preset>" or a list of catalog names')
        preset = zoos[len(GENERATE_PREFIX):]
        if preset not in generate:
            raise fail(f"zoos = {zoos!r}, but there is no [generate.{preset}]; "
                       f"presets: {sorted(generate)}")
        preset_spec = dict(generate[preset])
    elif not _str_list(zoos):
        raise fail("zoos must be \"generate:<preset>\" or a non-empty list of zoo names")
    else:
        zoos = tuple(zoos)
    if not _str_list(spec["tasks"]):
        raise fail("tasks must be a non-empty list of task names")
    for task in spec["tasks"]:
        try:
            get_task(task)
        except RegistryError as e:
            raise fail(str(e)) from None
    if not _str_list(spec["methods"]):
        raise fail("methods must be a non-empty list of method names")
    seeds = spec["seeds"]
    if not (isinstance(seeds, list) and seeds and all(type(s) is int for s in seeds)):
        raise fail("seeds must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise fail(f"seeds {seeds} repeat a seed")
    prop = spec.get("property", DEFAULT_PROPERTY)
    if prop not in PROPERTIES:
        raise fail(f"property {prop!r} is not one of {list(PROPERTIES)}")
    epochs = spec.get("epochs", "final")
    if epochs not in EPOCHS:
        raise fail(f"epochs {epochs!r} is not one of {list(EPOCHS)}")
    budgets = _budgets(spec.get("budgets", {}), spec["methods"], fail)
    perms = spec.get("permutations", {})
    if not isinstance(perms, dict) or not all(isinstance(v, str) for v in perms.values()):
        raise fail("permutations must be a table of zoo name = \"path of its index file\"")
    return Suite(
        name=name,
        zoos=zoos,
        tasks=tuple(spec["tasks"]),
        methods=tuple(spec["methods"]),
        seeds=tuple(seeds),
        property=prop,
        epochs=epochs,
        budgets=budgets,
        permutations={z: (path.parent / v) for z, v in perms.items()},
        generate=preset_spec,
        path=path,
    )


def _budgets(spec: Any, methods: list[str], fail: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(spec, dict):
        raise fail("budgets must be tables [suites.<name>.budgets.<method>]")
    out = {}
    for method, table in spec.items():
        if method not in methods:
            raise fail(f"budget for {method!r}, which is not among methods {methods}")
        if not isinstance(table, dict):
            raise fail(f"budgets.{method} must be a table")
        for key in BUDGET_NUMBERS:
            value = table.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or value <= 0):
                raise fail(f"budgets.{method}.{key} must be a positive number, got {value!r}")
        out[method] = dict(table)
    return out


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def present_zoos(suite: Suite) -> dict[str, Zoo]:
    """The suite's zoos already in the cache (nothing is fetched or generated)."""
    zoos = {}
    for name in suite.zoo_names():
        try:
            zoos[name] = Zoo.open(zoo_path(name))
        except ZooFormatError:
            continue
    return zoos


def ensure_zoos(suite: Suite, progress: bool = True) -> dict[str, Zoo]:
    """Every zoo of the suite, opened; generated or downloaded first where missing."""
    if suite.preset is not None:
        from zoo_bench.generate import generate_preset

        paths = generate_preset(suite.preset, out_dir=None, only=None, progress=progress)
        return {name: Zoo.open(p) for name, p in sorted(paths.items())}
    from zoo_bench.catalog import ensure_zoo

    return {name: Zoo.open(ensure_zoo(name, progress=progress)) for name in suite.zoo_names()}
