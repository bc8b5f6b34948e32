"""The leaderboard: per method and task, Kendall's tau as mean +- std over seeds, ranked.

It reads only result rows and the expected cells (`zoo_bench.spec.Expected`). Every method
with rows is shown, listed in the suite or not (plug-ins and variants included: a variant, a
run with `--set` overrides, is its own row `method[key=value]`), with the seeds it has.

How a number is made (the outputs repeat this):
1. per (method, task, seed): the mean tau over all of that task's cells for that seed
   (every (source, target) zoo pair the task defines);
2. per (method, task): mean and unbiased std of those per-seed values over the seeds.
A (method, task) is *complete* when every expected cell (all seeds x all pairs) is stored with
status `ok`; *partial* when every cell is stored but some are not applicable: its mean is over
its k of n applicable cells, marked so, and ranked apart from the complete ones; *incomplete*
when cells are missing (nothing is averaged); *n/a* when no cell applies.
Complete methods are ranked by mean tau; a dagger marks a lead over the next-ranked method
that is not significant (`zoo_bench.stats.paired_comparison` over the seeds).

Zoo versions: a cell's row names the sha256 of its source and target zoos. For each zoo one
version is shown (the current zoo's when given, else the one of the newest row); rows made on
another version of a zoo are left out (they score other networks) and counted in the notes.
Likewise, given each method's current configuration, rows made with another budget,
hyperparameters or code version (stale cells) are left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from zoo_bench.errors import ZooBenchError
from zoo_bench.results import (
    STATUS_NOT_APPLICABLE,
    STATUS_OK,
    MethodConfig,
    config_mismatch,
    method_label,
)
from zoo_bench.spec import Expected
from zoo_bench.stats import aggregate, paired_comparison
from zoo_bench.terminal import name_column

COMPLETE = "complete"
PARTIAL = "partial"
INCOMPLETE = "incomplete"
NOT_APPLICABLE = "not_applicable"
NOT_SIGNIFICANT = "\u2020"
PAIR_HEADER = ("method", "task", "source", "target", "tau mean", "tau std", "seeds")
METHOD_NOTE = (
    "Kendall's tau on each task's test networks. Per seed, the mean over all of the task's "
    "(source, target) cells; then mean \u00b1 unbiased std over the seeds. A method missing "
    "any expected cell is shown as incomplete and not averaged over what exists; one whose "
    "missing cells are all not applicable is shown as partial (k/n cells), averaged over its "
    "applicable cells and ranked apart (P#k). "
    f"(#k) is the rank; {NOT_SIGNIFICANT} marks a lead over the next-ranked method that is not "
    "significant (paired test over seeds, p \u2265 0.05). method[key=value] is a variant: a "
    "run with hyperparameter or budget overrides."
)

__all__ = [
    "COMPLETE", "INCOMPLETE", "NOT_APPLICABLE", "PARTIAL", "Entry", "Expected", "Leaderboard",
    "build_leaderboard", "expected_from_rows", "rich_table", "to_markdown", "zoo_versions",
]


def expected_from_rows(
    rows: pd.DataFrame,
    property: str | None = None,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    suite: str | None = None,
) -> Expected:
    """Infer what is expected from stored rows: each task's pairs are those any method has."""
    props = sorted(set(rows["property"]))
    if property is None:
        if len(props) > 1:
            raise ZooBenchError(
                f"the results hold several properties {props}; choose one with --property"
            )
        property = props[0] if props else "test_accuracy"
    rows = rows[rows["property"] == property]
    tasks = tuple(tasks) if tasks is not None else tuple(dict.fromkeys(rows["task"]))
    pairs = {
        t: frozenset(zip(g["source"], g["target"], strict=True))
        for t, g in rows[rows["task"].isin(tasks)].groupby("task")
    }
    labels = [method_label(m, v) for m, v in zip(rows["method"], rows["variant"], strict=True)]
    return Expected(
        property=property,
        methods=tuple(dict.fromkeys(labels)),
        tasks=tasks,
        seeds=tuple(seeds) if seeds else tuple(sorted(set(rows["seed"]))),
        pairs={t: pairs.get(t, frozenset()) for t in tasks},
        suite=suite,
        inferred=True,
    )


def zoo_versions(rows: pd.DataFrame, current: Mapping[str, str] | None = None) -> dict[str, str]:
    """Zoo name -> the manifest sha256 shown: `current`'s, else that of the newest row."""
    seen: dict[str, tuple[Any, str]] = {}
    for col in ("source", "target"):
        shas = rows[f"{col}_sha256"]
        for name, sha, ts in zip(rows[col], shas, rows["timestamp"], strict=True):
            if isinstance(sha, str) and (name not in seen or ts > seen[name][0]):
                seen[name] = (ts, sha)
    out = {name: sha for name, (_, sha) in seen.items()}
    out.update({k: v for k, v in (current or {}).items() if k in out})
    return out


@dataclass
class Entry:
    """One method on one task: its state, cell counts and (when complete) its score."""

    method: str
    task: str
    state: str
    n_expected: int
    n_ok: int
    n_not_applicable: int
    per_seed: dict[int, float] = field(default_factory=dict)
    mean: float = math.nan
    std: float = math.nan
    rank: int | None = None
    lead_significant: bool | None = None
    lead_p_value: float = math.nan

    @property
    def n_missing(self) -> int:
        return self.n_expected - self.n_ok - self.n_not_applicable

    def text(self) -> str:
        """The entry as a leaderboard cell, e.g. `0.512 ± 0.031 (#1)†`, `incomplete (7/12)` or
        `0.410 ± 0.020 (partial 8/12 cells, P#1)`."""
        if self.state == NOT_APPLICABLE:
            return "n/a"
        if self.state == INCOMPLETE:
            extra = f", {self.n_not_applicable} n/a" if self.n_not_applicable else ""
            return f"incomplete ({self.n_ok}/{self.n_expected}{extra})"
        std = "\u2013" if math.isnan(self.std) else f"{self.std:.3f}"
        mark = NOT_SIGNIFICANT if self.lead_significant is False else ""
        if self.state == PARTIAL:
            return (f"{self.mean:.3f} \u00b1 {std} (partial {self.n_ok}/{self.n_expected} cells, "
                    f"P#{self.rank}){mark}")
        return f"{self.mean:.3f} \u00b1 {std} (#{self.rank}){mark}"


@dataclass
class Leaderboard:
    """Entries per (method, task), per-pair means for the heat maps, and the rows behind them."""

    expected: Expected
    entries: dict[tuple[str, str], Entry]
    pairs: pd.DataFrame
    rows: pd.DataFrame
    methods: tuple[str, ...] = ()
    seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    left_out: int = 0
    stale: int = 0

    def entry(self, method: str, task: str) -> Entry:
        return self.entries[(method, task)]

    def table(self) -> pd.DataFrame:
        """One row per (method, task) with state, counts, mean, std, rank and significance."""
        return pd.DataFrame(
            [
                {
                    "method": e.method, "task": e.task, "state": e.state,
                    "n_expected": e.n_expected, "n_ok": e.n_ok,
                    "n_not_applicable": e.n_not_applicable, "n_missing": e.n_missing,
                    "mean": e.mean, "std": e.std, "rank": e.rank,
                    "lead_significant": e.lead_significant, "lead_p_value": e.lead_p_value,
                }
                for e in self.entries.values()
            ]
        )

    def board_header(self) -> list[str]:
        tasks = (f"{t} ({self.expected.n_cells(t)} cells)" for t in self.expected.tasks)
        return ["method", *tasks, "seeds"]

    def board_rows(self) -> list[list[str]]:
        """The leaderboard's text cells: one row per method, one column per task, its seeds."""
        exp = self.expected
        return [[m, *(self.entry(m, t).text() for t in exp.tasks), self.seeds_text(m)]
                for m in self.methods]

    def seeds_text(self, method: str) -> str:
        """The seeds the method has any stored cell for (of the zoo versions shown, expected
        or not), e.g. `0, 1`; `none` without rows."""
        return ", ".join(map(str, self.seeds.get(method, ()))) or "none"

    def transfer_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the transfer-only view: per method, each cross task's mean over
        its off-diagonal (source != target) pair means (each a mean over seeds), so the
        in-distribution diagonal does not mask how a method transfers. A dash where the
        method's task is incomplete; `(k/n pairs)` where only k pairs are applicable."""
        tasks = [t for t in self.expected.tasks
                 if any(s != g for s, g in self.expected.pairs.get(t, ()))]
        off = self.pairs[self.pairs["source"] != self.pairs["target"]]
        rows = []
        for m in self.methods:
            cells = []
            for t in tasks:
                want = {(s, g) for s, g in self.expected.pairs[t] if s != g}
                mine = off[(off["method"] == m) & (off["task"] == t)]
                got = mine[[(s, g) in want
                            for s, g in zip(mine["source"], mine["target"], strict=True)]]
                if self.entry(m, t).state == INCOMPLETE or got.empty or got["mean"].isna().any():
                    cells.append("\u2013")
                    continue
                n = f" ({len(got)}/{len(want)} pairs)" if len(got) < len(want) else ""
                cells.append(f"{got['mean'].mean():.3f}{n}")
            rows.append([m, *cells])
        header = ["method"] + [
            f"{t} off-diagonal ({sum(s != g for s, g in self.expected.pairs[t])} pairs)"
            for t in tasks
        ]
        return header, rows

    def family_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the view between architecture families (e.g. CNN -> ViT): each
        task's pairs whose source and target families differ, grouped by (source family,
        target family); per method and group, each seed's mean tau over the group's pairs,
        then mean ± std over seeds, ranked as on the board. Empty when no pair crosses
        families or the families are unknown."""
        fam = self.expected.families
        groups: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
        for t in self.expected.tasks:
            for s, g in self.expected.pairs.get(t, ()):
                if s in fam and g in fam and fam[s] != fam[g]:
                    groups.setdefault((t, fam[s], fam[g]), set()).add((s, g))
        if not groups:
            return [], []
        columns = []
        for t, sf, tf in sorted(groups):
            want = groups[(t, sf, tf)]
            sub = replace(self.expected, pairs={t: frozenset(want)})
            in_group = [(s, g) in want for s, g in
                        zip(self.rows["source"], self.rows["target"], strict=True)]
            rows = self.rows[pd.Series(in_group, index=self.rows.index, dtype=bool)
                             & (self.rows["task"] == t)]
            entries = [_entry(m, t, rows[rows["label"] == m], sub) for m in self.methods]
            _rank(entries, COMPLETE)
            _rank(entries, PARTIAL)
            n = f"{len(want)} pair" + ("s" if len(want) > 1 else "")
            columns.append((f"{sf} -> {tf} ({t}, {n})", entries))
        header = ["method"] + [name for name, _ in columns]
        rows_out = [[m] + [entries[i].text() for _, entries in columns]
                    for i, m in enumerate(self.methods)]
        return header, rows_out

    def pair_rows(self) -> list[list[Any]]:
        """Per (method, task, source, target): tau mean and std over seeds, seeds stored."""
        return [
            [r.method, r.task, r.source, r.target, format_tau(r.mean), format_tau(r.std), r.n_seeds]
            for r in self.pairs.itertuples(index=False)
        ]

    def provenance(self) -> dict[str, str]:
        """What produced the rows shown: commits, versions, devices, time span, cell count."""
        r = self.rows
        if r.empty:
            return {"cells": "0"}

        def distinct(col: str) -> str:
            return ", ".join(sorted({str(v) for v in r[col].dropna()})) or "unknown"

        return {
            "cells": str(len(r)),
            "zoo versions": ", ".join(f"{z} {h[:12]}" for z, h in sorted(self.versions.items())),
            "zoo-bench": distinct("zoo_bench_version"),
            "git commit": distinct("git_commit"),
            "torch": distinct("torch_version"),
            "device": distinct("device"),
            "runs": str(r["run_id"].nunique()),
            "first cell": str(r["timestamp"].min()),
            "last cell": str(r["timestamp"].max()),
            "fit + predict seconds": f"{_compute_seconds(r):.1f}",
        }


def _compute_seconds(rows: pd.DataFrame) -> float:
    """Wall seconds spent: each shared fit counted once, plus every prediction."""
    fits = rows.drop_duplicates(["run_id", "method", "fit_key"])["fit_seconds"].fillna(0).sum()
    return float(fits + rows["predict_seconds"].fillna(0).sum())


def build_leaderboard(rows: pd.DataFrame, expected: Expected,
                      current_versions: Mapping[str, str] | None = None,
                      current_configs: Mapping[str, MethodConfig] | None = None) -> Leaderboard:
    """Score every method with rows (and every method `expected` lists) on its tasks.

    `current_versions` (zoo name -> manifest sha256, e.g. of the zoos in the cache) picks the
    zoo versions shown; without it, each zoo's newest version among the rows.
    `current_configs` (method -> its configuration on the suite now): a method's rows without
    overrides made with another budget, hyperparameters or code version are left out (stale:
    `zoo-bench run` would recompute them), so old and new settings never mix in one mean.
    """
    rows = rows.copy()
    if "variant" not in rows:
        rows["variant"] = ""
    rows["label"] = [method_label(m, v) for m, v in
                     zip(rows["method"], rows["variant"].fillna(""), strict=True)]
    wanted = rows[(rows["property"] == expected.property) & rows["task"].isin(expected.tasks)]
    in_pairs = [
        (s, t) in expected.pairs.get(task, ())
        for task, s, t in zip(wanted["task"], wanted["source"], wanted["target"], strict=True)
    ]
    wanted = wanted[pd.Series(in_pairs, index=wanted.index, dtype=bool)]
    fresh = ~_stale(wanted, current_configs or {})
    stale = int((~fresh).sum())
    wanted = wanted[fresh]
    versions = zoo_versions(wanted, current_versions)
    same = [
        versions.get(s) in (None, a) and versions.get(t) in (None, b)
        for s, t, a, b in zip(wanted["source"], wanted["target"], wanted["source_sha256"],
                              wanted["target_sha256"], strict=True)
    ]
    current = wanted[pd.Series(same, index=wanted.index, dtype=bool)]
    seeds = {m: tuple(sorted({int(x) for x in g["seed"]})) for m, g in current.groupby("label")}
    kept = current[current["seed"].isin(expected.seeds)]
    methods = tuple(dict.fromkeys([*expected.methods, *current["label"]]))
    entries = {
        (m, t): _entry(m, t, kept[(kept["label"] == m) & (kept["task"] == t)], expected)
        for m in methods
        for t in expected.tasks
    }
    for task in expected.tasks:
        _rank([entries[(m, task)] for m in methods], COMPLETE)
        _rank([entries[(m, task)] for m in methods], PARTIAL)
    return Leaderboard(expected, entries, _pair_means(kept, expected), kept, methods, seeds,
                       versions, len(wanted) - len(current), stale)


def _stale(rows: pd.DataFrame, configs: Mapping[str, MethodConfig]) -> pd.Series:
    """True for each row without overrides that its method's configuration would not make now;
    judged once per distinct stored (method, version, hyperparameters, budget)."""
    keys = ["method", "method_version", "hparams", "budget"]
    verdicts: dict[tuple[str, ...], bool] = {}
    flags = []
    for row, variant in zip(rows[keys].to_dict("records"), rows["variant"].fillna(""),
                            strict=True):
        if variant or row["method"] not in configs:
            flags.append(False)
            continue
        key = tuple(str(v) for v in row.values())
        if key not in verdicts:
            verdicts[key] = bool(config_mismatch(row, configs[row["method"]]))
        flags.append(verdicts[key])
    return pd.Series(flags, index=rows.index, dtype=bool)


def _entry(method: str, task: str, rows: pd.DataFrame, expected: Expected) -> Entry:
    n_ok = int((rows["status"] == STATUS_OK).sum())
    n_na = int((rows["status"] == STATUS_NOT_APPLICABLE).sum())
    n_expected = expected.n_cells(task)
    if n_expected and n_na == n_expected:
        state = NOT_APPLICABLE
    elif n_expected and n_ok == n_expected:
        state = COMPLETE
    elif n_expected and n_ok and n_ok + n_na == n_expected:
        state = PARTIAL
    else:
        state = INCOMPLETE
    entry = Entry(method, task, state, n_expected, n_ok, n_na)
    if state in (COMPLETE, PARTIAL):
        ok = rows[rows["status"] == STATUS_OK]
        per_seed = ok.groupby("seed")["kendall_tau"].mean()
        entry.per_seed = {int(s): float(v) for s, v in per_seed.items()}
        entry.mean, entry.std, _ = aggregate(entry.per_seed)
    return entry


def _rank(entries: Iterable[Entry], state: str) -> None:
    ranked = sorted((e for e in entries if e.state == state), key=lambda e: (-e.mean, e.method))
    for i, e in enumerate(ranked):
        e.rank = i + 1
        if i + 1 < len(ranked):
            cmp = paired_comparison(e.per_seed, ranked[i + 1].per_seed)
            e.lead_significant, e.lead_p_value = cmp.significant, cmp.p_value


def _pair_means(rows: pd.DataFrame, expected: Expected) -> pd.DataFrame:
    """Mean / std tau over seeds per (method, task, source, target); NaN unless every seed is ok."""
    ok = rows[rows["status"] == STATUS_OK]
    g = ok.groupby(["label", "task", "source", "target"])["kendall_tau"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out = out.rename(columns={"label": "method"})
    short = out["n_seeds"] < len(expected.seeds)
    out.loc[short, ["mean", "std"]] = math.nan
    return out


# --- text outputs --------------------------------------------------------------------------


def title(lb: Leaderboard) -> str:
    suite = f"suite `{lb.expected.suite}`, " if lb.expected.suite else ""
    seeds = ", ".join(map(str, lb.expected.seeds))
    return f"zoo-bench leaderboard: {suite}property `{lb.expected.property}`, seeds {seeds}"


def notes(lb: Leaderboard) -> list[str]:
    """Footnotes every output carries: how numbers are made and what the cell list rests on."""
    out = [METHOD_NOTE]
    if lb.versions:
        out.append(
            "Zoo versions shown (manifest sha256): "
            + ", ".join(f"{z} {sha[:12]}" for z, sha in sorted(lb.versions.items())) + "."
            + (f" {lb.left_out} stored rows made on other versions of these zoos are left out."
               if lb.left_out else "")
        )
    if lb.stale:
        out.append(
            f"{lb.stale} stored rows made with another budget, hyperparameters or code version "
            "than the suite now gives their method are left out (stale: `zoo-bench run` "
            "recomputes them)."
        )
    if lb.expected.inferred:
        out.append(
            "The expected cells were (partly) inferred from the stored results: pairs any method "
            "has count as expected where the task definitions could not be applied."
        )
    return out


def rich_table(lb: Leaderboard) -> Table:
    """The leaderboard as a rich table for the terminal."""
    table = Table(title=escape(title(lb)), caption=escape(" ".join(notes(lb)[:2])),
                  caption_justify="left")
    header = lb.board_header()
    name_column(table, header[0], lb.methods, style="bold")  # names are typed: never cut
    for name in header[1:]:
        table.add_column(name, justify="right")
    for m in lb.methods:
        cells = []
        for t in lb.expected.tasks:
            e = lb.entry(m, t)
            styles = {COMPLETE: "green" if e.rank == 1 else "", INCOMPLETE: "yellow",
                      PARTIAL: "cyan"}
            style = styles.get(e.state, "dim")
            cells.append(f"[{style}]{escape(e.text())}[/]" if style else escape(e.text()))
        table.add_row(escape(m), *cells, lb.seeds_text(m))
    return table


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(lb: Leaderboard) -> str:
    """The leaderboard, per-pair details and provenance as a Markdown page."""
    main = _md_table(lb.board_header(), lb.board_rows())
    pairs = _md_table(PAIR_HEADER, lb.pair_rows())
    prov = _md_table(["", ""], lb.provenance().items())
    parts = [f"# {title(lb)}", main, *notes(lb)]
    header, transfer = lb.transfer_rows()
    if len(header) > 1:
        parts += ["## Transfer only", TRANSFER_NOTE, _md_table(header, transfer)]
    header, between = lb.family_rows()
    if header:
        parts += ["## Between architecture families", FAMILY_NOTE, _md_table(header, between)]
    parts += ["## Per zoo pair", pairs, "## Provenance", prov]
    return "\n\n".join(parts) + "\n"


TRANSFER_NOTE = (
    "Each cross task without its diagonal: the mean Kendall's tau over the (source, target) "
    "pairs with source != target, each pair's tau first averaged over the seeds."
)


FAMILY_NOTE = (
    "The cross-task pairs whose source and target zoos are of different architecture families, "
    "one column per (source family -> target family): per seed the mean Kendall's tau over "
    "the column's pairs (one per dataset), then mean \u00b1 std over the seeds; ranks and "
    f"{NOT_SIGNIFICANT} as on the board."
)


def format_tau(v: float) -> str:
    """Three decimals, or a dash for a missing value."""
    return "\u2013" if v is None or math.isnan(v) else f"{v:.3f}"
