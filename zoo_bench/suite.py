"""Suites in use: the pure-data spec (`zoo_bench.spec`) checked against the registries, their
zoos got or generated, each method's budget resolved, and the cells a complete run stores.

`load_suite` reads a suite (from benchmark.toml or a private `--suite-file`, `extends`
resolved) and checks every name and key before any work: tasks, methods, the generation
preset's datasets and families, and each budget key against the method's declared
hyperparameters and the budget limits (max_epochs, max_seconds), all with a did-you-mean.

benchmark.toml is looked up in the working directory, then at the repository root next to the
package (an editable install), then inside the package (a copy shipped as package data).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from zoo_bench.errors import RegistryError, ZooFormatError
from zoo_bench.paths import zoo_path
from zoo_bench.registry import DATASETS, FAMILIES, PREDICTORS, TASKS, did_you_mean
from zoo_bench.spec import (
    BUDGET_LIMITS,
    DEFAULT_BUDGET,
    FILE_NAME,
    GENERATE_PREFIX,
    RESOURCE_KEYS,
    Expected,
    Suite,
    SuiteError,
    ZooInfo,
    find_benchmark_toml,
    load_spec,
    read_benchmark_toml,
    resource_problem,
    suite_names,
)
from zoo_bench.store import Zoo

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = [
    "BUDGET_LIMITS", "FILE_NAME", "GENERATE_PREFIX", "Suite", "SuiteError", "budget_keys",
    "check_budget", "current_versions", "ensure_zoos", "expected_for_suite",
    "find_benchmark_toml", "load_suite", "method_budget", "parse_overrides", "present_zoos",
    "read_benchmark_toml", "suite_names", "variant_label",
]


def load_suite(name: str | None, path: str | os.PathLike | None = None) -> Suite:
    """The suite `name` (None: the file's only suite), with every name and key checked."""
    suite = load_spec(name, path)
    where = f"{suite.path} [suites.{suite.name}]"
    absent = PREDICTORS.missing_extras()  # methods whose optional extra is not installed: the
    # suite still loads; `zoo-bench run` skips them and names the extra to install
    try:
        for task in suite.tasks:
            TASKS.get(task)
        for method in suite.methods:
            if method not in absent:
                PREDICTORS.get(method)
        for table in suite.generates.values():
            for d in table["datasets"]:
                DATASETS.get(d)
            for f in table["families"]:
                FAMILIES.get(f)
    except RegistryError as e:
        raise SuiteError(f"{where}: {e}") from None
    for method, table in suite.budgets.items():
        if method == DEFAULT_BUDGET:
            _check_default_budget(table, f"{where} budgets.{method}")
            for m in suite.methods:
                if m not in suite.budgets and m not in absent:
                    check_budget(m, table, f"{where} budgets.{method}")
        elif method not in absent:
            check_budget(method, table, f"{where} budgets.{method}")
    return suite


def _check_default_budget(table: Mapping[str, Any], where: str) -> None:
    """`[budgets.default]` applies to methods not known yet: each key must be a budget limit or
    a hyperparameter some registered method declares (the method run is checked again)."""
    known = {*BUDGET_LIMITS, *RESOURCE_KEYS,
             *(k for cls in PREDICTORS.available().values() for k in cls.defaults)}
    for key in table:
        if key not in known:
            raise SuiteError(
                f"{where}: no registered method has a hyperparameter or budget key {key!r}"
                f"{did_you_mean(key, sorted(known))} "
                f"Budget keys: {', '.join(BUDGET_LIMITS + RESOURCE_KEYS)}"
            )


def budget_keys(method: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The method's declared hyperparameters (with defaults) and the budget keys (limits and
    resources)."""
    try:
        cls = PREDICTORS.get(method)
    except RegistryError as e:
        raise SuiteError(str(e)) from None
    return dict(cls.defaults), BUDGET_LIMITS + RESOURCE_KEYS


def check_budget(method: str, table: Mapping[str, Any], where: str) -> None:
    """Every key of a budget table is a declared hyperparameter of `method`, a limit or a
    resource (with a valid value)."""
    hparams, limits = budget_keys(method)
    problem = resource_problem(table)
    if problem:
        raise SuiteError(f"{where}: {problem}")
    known = [*hparams, *limits]
    for key in table:
        if key not in known:
            raise SuiteError(
                f"{where}: {method} has no hyperparameter or budget key {key!r}"
                f"{did_you_mean(key, known)} Its hyperparameters: "
                f"{', '.join(sorted(hparams)) or 'none'}; budget keys: {', '.join(limits)}"
            )


def parse_overrides(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--set KEY=VALUE` (every chosen method) and `--set METHOD.KEY=VALUE`, checked per method.

    VALUE is read as a TOML value (`0.01`, `true`, `[1, 2]`, `"text"`), else kept as a string.
    """
    out: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for item in items:
        lhs, eq, text = item.partition("=")
        if not eq or not lhs.strip():
            raise SuiteError(f"--set {item!r}: write KEY=VALUE or METHOD.KEY=VALUE")
        lhs = lhs.strip()
        method, dot, key = lhs.rpartition(".")
        targets = [method] if dot else list(methods)
        if dot and method not in out:
            raise SuiteError(
                f"--set {item!r}: method {method!r} is not being run"
                f"{did_you_mean(method, methods)} Running: {', '.join(methods)}"
            )
        value = _toml_value(text.strip())
        for m in targets:
            check_budget(m, {key: value}, f"--set {item}")
            out[m][key] = value
    return {m: table for m, table in out.items() if table}


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def variant_label(overrides: Mapping[str, Any]) -> str:
    """Canonical text of a variant's overrides, e.g. `lr=0.01,max_epochs=5` ("" for none)."""
    return ",".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(overrides.items()))


def method_budget(suite: Suite | None, method: str,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The budget table a method runs with: the suite's (or its `default`), then overrides."""
    base = suite.budget(method) if suite is not None else {}
    return {**base, **dict(overrides or {})}


def present_zoos(suite: Suite) -> dict[str, Zoo]:
    """The suite's zoos already in the cache (nothing is fetched or generated)."""
    zoos = {}
    for name in suite.zoo_names():
        try:
            zoos[name] = Zoo.open(zoo_path(name))
        except ZooFormatError:
            continue
    return zoos


def current_versions(suite: Suite) -> dict[str, str]:
    """Zoo name -> manifest sha256 of the suite's zoos in the cache (the versions to show)."""
    return {name: zoo.manifest_sha256 for name, zoo in present_zoos(suite).items()}


def ensure_zoos(suite: Suite, progress: bool = True) -> dict[str, Zoo]:
    """Every zoo of the suite, opened and its content checked against its manifest (a pass is
    cached per zoo and file state); generated or downloaded first where missing. A damaged zoo
    raises ZooFormatError here, before any fit, so nothing is ever scored on it."""
    if suite.generates:
        from zoo_bench.generate import generate_preset

        paths = {}
        for preset, table in suite.generates.items():
            paths.update(generate_preset(preset, out_dir=None, only=None, progress=progress,
                                         table=table))
    else:
        from zoo_bench.catalog import ensure_zoo

        paths = {name: ensure_zoo(name, progress=progress) for name in suite.zoo_names()}
    return {name: _checked(Zoo.open(path)) for name, path in sorted(paths.items())}


def _checked(zoo: Zoo) -> Zoo:
    zoo.verify_cached()
    return zoo


def suite_infos(suite: Suite) -> dict[str, ZooInfo]:
    """Dataset and family of every zoo of the suite that is known now (generated or present)."""
    from zoo_bench.tasks import zoo_info

    infos = suite.expected_infos()
    if not infos:
        infos = {name: zoo_info(z) for name, z in present_zoos(suite).items()}
    return infos


def expected_for_suite(suite: Suite, rows: Any, seeds: Sequence[int] | None = None) -> Expected:
    """What a complete run of `suite` stores: each task's pairs from the task definitions.

    A generated suite knows every zoo's dataset and family up front; a catalog suite knows those
    of the zoos in the cache, so pairs of zoos not present are taken from the stored rows (and
    the leaderboard says the cell list was partly inferred).
    """
    from zoo_bench.tasks import get_task

    infos = suite_infos(suite)
    unknown = set(suite.zoo_names()) - set(infos)
    pairs = {}
    for task in suite.tasks:
        defined = set(get_task(task).scored_pairs(infos, suite.task_options()))
        if unknown:
            seen = rows[(rows["task"] == task) & (rows["property"] == suite.property)]
            defined |= {
                (s, t) for s, t in zip(seen["source"], seen["target"], strict=True)
                if {s, t} & unknown and {s, t} <= set(suite.zoo_names())
            }
        pairs[task] = frozenset(defined)
    return Expected(
        property=suite.property, methods=suite.methods, tasks=suite.tasks,
        seeds=tuple(seeds) if seeds else suite.seeds, pairs=pairs, suite=suite.name,
        inferred=bool(unknown), families={name: info.family for name, info in infos.items()},
    )
