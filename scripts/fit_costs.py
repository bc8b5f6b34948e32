"""Write zoo_bench/fit_costs.toml: the measured cost of one fit per (suite, method, budget),
from the committed results' rows, for `zoo-bench run`'s plan and `zoo-bench suites`.

    .venv/bin/python scripts/fit_costs.py [results/ci results/default ...]

Per suite folder (default: every folder under results/ that holds results) and per method with
its budget (rows of --set variants are left out: their runs shared the machine in ways the rows
do not record), it keeps the number of fits (one per fit key), the mean `fit_seconds` per fit,
the mean `predict_seconds` per cell, the median training networks per fit, the fit groups stored
without a fit (not applicable), the commits and the dates. The figures are as measured by the
runs that made the results (see each results/<suite>/README.md for the machine and its load).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "zoo_bench" / "fit_costs.toml"
HEADER = """\
# Measured fit costs, one entry per (suite, method, budget) of the committed results/<suite>/
# rows (variants left out). Written by `python scripts/fit_costs.py`; do not edit by hand.
# seconds: mean fit_seconds per fit (one torch thread per fit, on the 2-core CPU VM that made
# the results, whose READMEs state its load); predict_seconds: mean per cell; n_train: median
# training networks per fit; not_fitted: fit groups stored as not applicable without a fit.
"""


def entries(folder: Path) -> list[dict]:
    """The cost entries of one results folder."""
    from zoo_bench.results import read_cells

    rows = read_cells(folder)
    if rows.empty:
        return []
    rows = rows[rows["variant"].fillna("") == ""]
    out = []
    for (suite, method, budget), group in rows.groupby(["suite", "method", "budget"], sort=True):
        fitted = group.dropna(subset=["fit_seconds"]).drop_duplicates("fit_key")
        unfitted = group[group["fit_seconds"].isna()]["fit_key"].nunique()
        ok = group.dropna(subset=["predict_seconds"])
        entry = {
            "suite": str(suite), "method": str(method),
            "budget": json.dumps(json.loads(budget), sort_keys=True),
            "fits": int(len(fitted)), "not_fitted": int(unfitted),
            "seconds": round(float(fitted["fit_seconds"].mean()), 2) if len(fitted) else 0.0,
            "predict_seconds": round(float(ok["predict_seconds"].mean()), 3) if len(ok) else 0.0,
            "n_train": int(fitted["n_train"].median()) if len(fitted) else
            int(group["n_train"].median()),
            "commits": sorted({str(c)[:7] for c in group["git_commit"].dropna()}),
            "measured": sorted({t.strftime("%Y-%m-%d") for t in group["timestamp"]}),
        }
        out.append(entry)
    return out


def to_toml(items: list[dict]) -> str:
    """The entries as TOML `[[fit]]` tables (strings and lists written as JSON, which TOML
    reads the same)."""
    lines = [HEADER]
    for e in items:
        lines.append("[[fit]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in e.items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="*", type=Path, help="results folders (default: results/*)")
    p.add_argument("--out", type=Path, default=OUT, help=f"where to write (default: {OUT})")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the file differs from what the results give")
    a = p.parse_args()
    folders = a.folders or sorted(f for f in (ROOT / "results").iterdir() if f.is_dir())
    text = to_toml([e for f in folders for e in entries(f)])
    if a.check:
        same = a.out.is_file() and a.out.read_text() == text
        print(f"{a.out}: {'up to date' if same else 'differs from the results; rerun the script'}")
        sys.exit(0 if same else 1)
    from zoo_bench.atomic import write_text_atomic

    write_text_atomic(a.out, text)
    print(f"wrote {a.out} ({text.count('[[fit]]')} entries from {len(folders)} folders)")


if __name__ == "__main__":
    main()
