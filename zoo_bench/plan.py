"""What a run will do and about what it will cost, known before it starts.

`plan_run` counts, without making or fitting anything, the zoos a suite still has to generate
(with their training runs), the fits (one per method, seed and training split, as the runner
groups cells) and the cells, how many are already stored, and estimates the time from measured
figures: each fit from `fit_costs.toml` (the committed results' `fit_seconds`, written by
`scripts/fit_costs.py`), each preset's zoos from `MEASURED_GENERATION`. Both were measured on a
2-core CPU VM (one torch thread per fit), so the estimate is for such a machine; where nothing
was measured for a method the estimate says so instead of guessing.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from zoo_bench.spec import Suite, ZooInfo

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

logger = logging.getLogger(__name__)

TRAIN_SHARE = 0.6  # the standard split trains on 60 % of the runs (zoo_bench.splits)
FAMILY_SAMPLES = 4  # architectures drawn per generated family to ask `supports`
MACHINE = "a 2-core CPU VM (AMD EPYC, torch 2.13 CPU build, one torch thread per fit)"


@dataclass(frozen=True)
class GenerationCost:
    """A measured `zoo-bench zoo generate --preset P` from scratch: wall seconds for `runs`
    training runs of `epochs` epochs on `workers` worker processes, and where it was measured."""

    seconds: float
    runs: int
    epochs: int
    workers: int
    families: tuple[str, ...]
    source: str

    @property
    def per_run_epoch(self) -> float:
        return self.seconds / self.runs / self.epochs


# Wall times of the presets' generation from scratch on the 2-core VM, 2 workers (docs/zoos.md).
MEASURED_GENERATION = {
    "ci": GenerationCost(47.7, 288, 4, 2, ("ctc", "cnn_small"), "commit 1f06c97, idle VM"),
    "default": GenerationCost(1623.0, 7200, 8, 2, ("ctc", "cnn_small", "ctc_widths"),
                              "2026-12-02, idle VM"),
    "vit": GenerationCost(1594.0, 3000, 8, 2, ("vit",), "commit c40a345, 2026-12-06, idle VM"),
    "inr": GenerationCost(113.0, 1000, 4, 2, ("inr",),
                          "VM partly busy"),
}


@dataclass(frozen=True)
class FitCost:
    """One entry of fit_costs.toml: what fits of a method under a budget cost on a suite."""

    suite: str
    method: str
    budget: str
    fits: int
    not_fitted: int
    seconds: float
    predict_seconds: float
    n_train: int
    commits: tuple[str, ...]
    measured: tuple[str, ...]


@cache
def fit_costs() -> tuple[FitCost, ...]:
    """The measured fit costs shipped with the package (`zoo_bench/fit_costs.toml`)."""
    text = resources.files("zoo_bench").joinpath("fit_costs.toml").read_text()
    return tuple(
        FitCost(**{**e, "commits": tuple(e["commits"]), "measured": tuple(e["measured"])})
        for e in tomllib.loads(text).get("fit", [])
    )


def step_budgeted(budget: Mapping[str, Any], hparams: Mapping[str, Any]) -> bool:
    """Whether a fit's length is a step count (then it does not grow with the training
    networks): `max_steps` in its budget or among the method's hyperparameters."""
    return "max_steps" in budget or "max_steps" in hparams


@dataclass(frozen=True)
class Estimate:
    """Estimated seconds of one fit, and what they rest on; `fitted` False when the measured
    runs of this suite never fitted the method (every cell not applicable)."""

    seconds: float | None
    basis: str
    fitted: bool = True


def estimate_fit(suite: str, method: str, budget: Mapping[str, Any], n_train: int,
                 steps: bool) -> Estimate:
    """One fit's seconds from the closest measurement: this suite and budget, else the same
    budget on another suite, else another budget (rough); epoch-budgeted fits scale linearly
    with the training networks, step-budgeted ones do not."""
    text = json.dumps(dict(budget), sort_keys=True)
    mine = [c for c in fit_costs() if c.method == method]
    same_suite = [c for c in mine if c.suite == suite and c.budget == text]
    same_budget = [c for c in mine if c.budget == text and c.fits]
    for found, how in ((same_suite, ""), (same_budget, ""), ([c for c in mine if c.fits],
                                                              "another budget: rough")):
        if not found:
            continue
        ref = min(found, key=lambda c: (abs(c.n_train - n_train), c.suite))
        if not ref.fits:
            return Estimate(0.0, f"results/{ref.suite}: not applicable, never fitted", False)
        scale = 1.0 if steps or not ref.n_train else n_train / ref.n_train
        note = f"results/{ref.suite}: {ref.fits} fits, {ref.n_train} networks"
        if scale != 1.0:
            note += f", scaled to {n_train}"
        return Estimate(ref.seconds * scale, f"{note}{'; ' + how if how else ''}")
    return Estimate(None, "not measured")


def estimate_generation(preset: str, table: Mapping[str, Any], runs: int) -> Estimate:
    """Wall seconds to generate `runs` runs of a preset: its own measurement, else one of a
    measured preset with a family in common (else the default preset's), per run and epoch."""
    epochs = int(table.get("epochs", 1))
    if preset in MEASURED_GENERATION:
        ref, how = MEASURED_GENERATION[preset], f"measured, preset {preset}"
    else:
        families = set(table.get("families", ()))
        like = [p for p, c in MEASURED_GENERATION.items() if families & set(c.families)]
        like = like or ["default"]
        ref, how = MEASURED_GENERATION[like[0]], f"rough, scaled from preset {like[0]}"
    return Estimate(ref.per_run_epoch * runs * epochs,
                    f"{how}: {ref.seconds / ref.runs:.2f} s/run ({ref.epochs} epochs, "
                    f"{ref.workers} workers), {ref.source}")


@dataclass
class ZooPlan:
    """One zoo of the suite: present in the cache, or to be generated / downloaded."""

    name: str
    present: bool
    preset: str | None
    runs: int | None


@dataclass
class MethodPlan:
    """One method's share of the run."""

    method: str
    fits: int = 0
    fits_todo: int = 0
    not_fitted: int = 0
    cells: int = 0
    stored: int = 0
    fit: Estimate = Estimate(None, "not measured")
    predict_seconds: float = 0.0
    n_train: int = 0

    @property
    def seconds(self) -> float | None:
        if self.fit.seconds is None:
            return None
        return self.fits_todo * self.fit.seconds + (self.cells - self.stored) * \
            self.predict_seconds


@dataclass
class Plan:
    """What `zoo-bench run` will do: zoos, fits, cells, stored cells, and the estimate."""

    suite: Suite
    methods: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    zoos: list[ZooPlan]
    per_method: dict[str, MethodPlan]
    generation: dict[str, Estimate] = field(default_factory=dict)
    unknown_zoos: list[str] = field(default_factory=list)
    results: Path | None = None

    @property
    def fits(self) -> int:
        return sum(m.fits for m in self.per_method.values())

    @property
    def cells(self) -> int:
        return sum(m.cells for m in self.per_method.values())

    @property
    def stored(self) -> int:
        return sum(m.stored for m in self.per_method.values())

    @property
    def to_generate(self) -> list[ZooPlan]:
        return [z for z in self.zoos if not z.present and z.preset is not None]

    @property
    def to_download(self) -> list[ZooPlan]:
        return [z for z in self.zoos if not z.present and z.preset is None]

    @property
    def generation_seconds(self) -> float:
        return sum(e.seconds or 0.0 for e in self.generation.values())

    @property
    def fit_seconds(self) -> float:
        return sum(m.seconds or 0.0 for m in self.per_method.values())

    @property
    def unmeasured(self) -> list[str]:
        return [m for m, p in self.per_method.items() if p.seconds is None and p.fits_todo]

    @property
    def total_seconds(self) -> float:
        return self.generation_seconds + self.fit_seconds

    @property
    def whole_seconds(self) -> float:
        """The estimate with nothing stored: every fit run."""
        fits = sum(p.fits * (p.fit.seconds or 0.0) + p.cells * p.predict_seconds
                   for p in self.per_method.values())
        return self.generation_seconds + fits

    def cell_seconds(self, method: str) -> float:
        """The estimated cost of computing one of `method`'s cells (its fits spread over its
        cells, stored or not: a stale one is computed again), for a progress display weighted
        by cost; an unmeasured method gets the mean of the measured ones (1 s if none is)."""
        known = {m: (p.fits * p.fit.seconds + p.cells * p.predict_seconds) / max(p.cells, 1)
                 for m, p in self.per_method.items() if p.fit.seconds is not None}
        if known.get(method):
            return known[method]
        positive = [v for v in known.values() if v > 0]
        return sum(positive) / len(positive) if positive else 1.0

    def lines(self) -> list[str]:
        """The plan as plain text lines (what `zoo-bench run` prints before it starts)."""
        out = [f"Plan: {_n(len(self.methods), 'method')} x {_n(len(self.tasks), 'task')} x "
               f"{_n(len(self.seeds), 'seed')} ({', '.join(map(str, self.seeds))})",
               f"  tasks: {', '.join(self.tasks)}"]
        gen = self.to_generate
        present = len(self.zoos) - len(gen) - len(self.to_download)
        parts = [f"{len(gen)} to generate ({sum(z.runs or 0 for z in gen):,} training runs)"
                 ] if gen else []
        parts += [f"{len(self.to_download)} to download"] if self.to_download else []
        out.append(f"  zoos:  {', '.join([*parts, f'{present} present'])}")
        todo = sum(m.fits_todo for m in self.per_method.values())
        unfit = sum(m.not_fitted for m in self.per_method.values())
        out.append(f"  fits:  {self.fits:,} (one per method, seed and training zoo), "
                   f"{self.fits - todo:,} already done")
        if unfit:
            out.append(f"         and {unfit:,} not applicable (never fitted)")
        where = f" in {self.results}" if self.results is not None else ""
        out.append(f"  cells: {self.cells:,}, {self.stored:,} already stored{where}")
        if self.unknown_zoos:
            out.append(f"  (not counted: the cells of {', '.join(self.unknown_zoos)}, not "
                       "downloaded yet)")
        whole = self.whole_seconds
        out.append(f"Estimate for a 2-core CPU machine: {about(self.total_seconds)}"
                   + (" for the measured methods" if self.unmeasured else "")
                   + (f" (from scratch: {about(whole)})" if whole > self.total_seconds + 60
                      else ""))
        for preset, est in self.generation.items():
            out.append(f"  generating the {preset} zoos: {duration(est.seconds or 0.0)}")
            out.append(f"    ({est.basis})")
        out.append(f"  fits, one after another: {duration(self.fit_seconds)}")
        width = max([6, *(len(m) for m in self.per_method)])
        out.append(f"    {'method':<{width}} {'fits':>5} {'s/fit':>6} {'total':>10}  "
                   "measured on")
        for m, p in self.per_method.items():
            each = "?" if p.fit.seconds is None else f"{p.fit.seconds:.1f}"
            total = "?" if p.seconds is None else "-" if not p.fits_todo else \
                duration(p.seconds, short=True)
            out.append(f"    {m:<{width}} {p.fits_todo:>5} {each:>6} {total:>10}  "
                       f"{p.fit.basis}")
        if self.unmeasured:
            out.append(f"  not measured, not in the estimate: {', '.join(self.unmeasured)}")
        out += ["  Measured: fit_seconds of the committed results, one torch thread per fit",
                "  (zoo_bench/fit_costs.toml), and zoo generation (docs/zoos.md), on a 2-core",
                "  AMD EPYC VM. scripts/main.sh runs one fit per core at a time."]
        return out


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def about(seconds: float) -> str:
    """`about 12 min`, or `under a minute`."""
    text = duration(seconds)
    return text if seconds < 60 else f"about {text}"


def duration(seconds: float, short: bool = False) -> str:
    """A rounded duration: `under a minute` (`<1 min` when short), `12 min`, `4 h 40 min`."""
    if seconds < 60:
        return "<1 min" if short else "under a minute"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _family_archs(family: str) -> list[Any]:
    """A few architectures a generated family makes (enough to ask `supports` about kinds)."""
    import numpy as np

    from zoo_bench.generate.hyper import SearchSpace
    from zoo_bench.registry import FAMILIES

    sample = FAMILIES.get(family)
    rng = np.random.default_rng(0)
    return [sample(rng, SearchSpace(), 1, 16) for _ in range(FAMILY_SAMPLES)]


def _training_networks(runs: int | None, checkpoints: int) -> int:
    return int(round(TRAIN_SHARE * (runs or 0))) * checkpoints


def plan_run(suite: Suite, methods: Sequence[str], tasks: Sequence[str], seeds: Sequence[int],
             overrides: Mapping[str, Mapping[str, Any]] | None = None,
             results: Path | None = None) -> Plan:
    """The plan of `zoo-bench run` on `suite` for these methods, tasks and seeds (nothing is
    generated, downloaded or fitted); `results`: the folder whose stored cells count as done."""
    from zoo_bench.runner import make_predictor
    from zoo_bench.suite import method_budget, present_zoos
    from zoo_bench.tasks import Task, get_task, zoo_info

    overrides = overrides or {}
    present = present_zoos(suite)
    made_by = suite.zoo_presets()
    infos: dict[str, ZooInfo] = suite.expected_infos()
    zoos, archs, runs = [], {}, {}
    for name in suite.zoo_names():
        zoo = present.get(name)
        preset = made_by.get(name)
        if zoo is not None:
            infos[name] = zoo_info(zoo)
            archs[name] = list(zoo.architectures.values())
            runs[name] = int(zoo.table["run_id"].nunique())
        elif preset is not None:
            runs[name] = suite.expected_runs(infos[name].family, preset)
            archs[name] = _family_archs(str(infos[name].family))
        zoos.append(ZooPlan(name, zoo is not None, preset, runs.get(name)))
    generation: dict[str, Estimate] = {}
    for preset in dict.fromkeys(z.preset for z in zoos if not z.present and z.preset):
        todo = sum(z.runs or 0 for z in zoos if z.preset == preset and not z.present)
        generation[preset] = estimate_generation(preset, suite.generates[preset], todo)
    checkpoints = 1 if suite.epochs == "final" else _checkpoints(suite)
    stored = _stored_keys(results) if methods else set()
    per_method = {}
    for method in methods:
        budget = method_budget(suite, method, overrides.get(method))
        predictor, _ = make_predictor(method, budget)
        variant = _variant(overrides.get(method))
        plan = MethodPlan(method)
        groups: dict[tuple, list[tuple]] = {}
        for seed in seeds:
            for task_name in tasks:
                task = get_task(task_name)
                kind = task_name if type(task).split is not Task.split else "standard"
                for source, target in task.scored_pairs(infos, suite.task_options()):
                    groups.setdefault((seed, source, kind), []).append(
                        (task_name, source, target, seed))
        for (_, source, _), cells in groups.items():
            done = _stored(stored, method, variant, cells, suite.property)
            plan.cells += len(cells)
            plan.stored += done
            if not _fitted(predictor, archs, source, [t for _, _, t, _ in cells]):
                plan.not_fitted += 1
                continue
            plan.fits += 1
            plan.fits_todo += done < len(cells)
            plan.n_train = max(plan.n_train, _training_networks(runs.get(source), checkpoints))
        plan.fit = estimate_fit(suite.name, method, budget, plan.n_train,
                                step_budgeted(budget, predictor.hparams()))
        if not plan.fit.fitted:  # measured: this suite's zoos never let the method fit
            plan.not_fitted, plan.fits, plan.fits_todo = plan.not_fitted + plan.fits, 0, 0
        plan.predict_seconds = _predict_seconds(suite.name, method, budget)
        per_method[method] = plan
    return Plan(suite, tuple(methods), tuple(tasks), tuple(seeds), zoos, per_method, generation,
                [n for n in suite.zoo_names() if n not in infos], results)


def _fitted(predictor: Any, archs: Mapping[str, list[Any]], source: str,
            targets: Sequence[str]) -> bool:
    """Whether the runner would fit this group: the method supports the training zoo's
    architectures and those of at least one target (unknown architectures count as yes)."""
    def takes(zoo: str) -> bool:
        return all(predictor.supports(a) for a in archs.get(zoo, []))

    return takes(source) and any(takes(t) for t in targets)


def _checkpoints(suite: Suite) -> int:
    counts = [len({int(e) for e in g["checkpoints"] if int(e) <= int(g["epochs"])}
                  | {0, int(g["epochs"])}) for g in suite.generates.values()]
    return max(counts, default=1)


def _variant(overrides: Mapping[str, Any] | None) -> str:
    from zoo_bench.suite import variant_label

    return variant_label(dict(overrides or {}))


def _predict_seconds(suite: str, method: str, budget: Mapping[str, Any]) -> float:
    text = json.dumps(dict(budget), sort_keys=True)
    found = [c for c in fit_costs() if c.method == method and c.budget == text]
    mine = [c for c in found if c.suite == suite] or found
    return mine[0].predict_seconds if mine else 0.0


def _stored_keys(results: Path | None) -> set[str]:
    """The keys (`CellKey.digest`) of the cells stored in `results` as ok or not applicable,
    read once (whether still current is checked when the run opens the zoos)."""
    from zoo_bench.results import STATUS_NOT_APPLICABLE, STATUS_OK, read_cells

    if results is None or not Path(results).is_dir():
        return set()
    rows = read_cells(results)
    if rows.empty:
        return set()
    done = rows["status"].isin((STATUS_OK, STATUS_NOT_APPLICABLE))
    return set(rows.loc[done, "cell_key"])


def _stored(keys: set[str], method: str, variant: str, cells: Sequence[tuple],
            prop: str) -> int:
    """How many of the cells ((task, source, target, seed)) have their key in `keys`."""
    from zoo_bench.results import CellKey

    return sum(CellKey(method, *c, prop, variant).digest in keys for c in cells)


def suite_cost(suite: Suite) -> Plan:
    """The whole suite's plan with nothing stored (what `zoo-bench suites` lists)."""
    from zoo_bench.registry import PREDICTORS

    absent = PREDICTORS.missing_extras()
    return plan_run(suite, [m for m in suite.methods if m not in absent], suite.tasks,
                    suite.seeds)

