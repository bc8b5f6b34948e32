"""Is a rerun the same, bit for bit? Compare every cell of results folder NEW with the cell of
the same key in OLD: the status, and for an `ok` cell Kendall's tau, the selected epoch and
step and the stored test predictions (network ids and values). Exit 0 when all are equal, 1
otherwise (each difference named), 2 when NEW holds no cells.

    python scripts/compare_results.py /tmp/arch_fresh results/arch
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from zoo_bench.results import read_cells, read_predictions

FIELDS = ("kendall_tau", "best_epoch", "best_step")  # of ok cells


def _same(a: object, b: object) -> bool:
    """Equal, or both missing (a fit without steps has no best step)."""
    return bool(pd.isna(a) and pd.isna(b)) if pd.isna(a) or pd.isna(b) else a == b


def differences(new: Path, old: Path) -> tuple[int, list[str]]:
    """(cells of `new` compared, a line per cell of `new` that differs from `old`)."""
    rows, before = read_cells(new), read_cells(old).set_index("cell_key")
    preds_new, preds_old = (read_predictions(p).groupby("cell_key") for p in (new, old))
    found = []
    for row in rows.itertuples(index=False):
        method = f"{row.method}[{row.variant}]" if row.variant else row.method
        name = f"{method} {row.task} {row.source} -> {row.target} seed {row.seed}"
        if row.cell_key not in before.index:
            found.append(f"{name}: not in {old}")
            continue
        stored = before.loc[row.cell_key]
        if row.status != stored["status"]:
            found.append(f"{name}: status {row.status} != {stored['status']}")
            continue
        if row.status != "ok":
            continue
        diff = [f for f in FIELDS if not _same(getattr(row, f), stored[f])]
        if not diff:
            a, b = (p.get_group(row.cell_key).sort_values("network_id")
                    for p in (preds_new, preds_old))
            if not (a["network_id"].tolist() == b["network_id"].tolist()
                    and np.array_equal(a["y_pred"].to_numpy(), b["y_pred"].to_numpy())):
                diff.append("predictions")
        if diff:
            found.append(f"{name}: {', '.join(diff)} differ")
    return len(rows), found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    new, old = map(Path, argv)
    n, found = differences(new, old)
    if n == 0:
        print(f"{new} holds no result cells", file=sys.stderr)
        return 2
    for line in found:
        print(line)
    print(f"{n - len(found)} of {n} cells of {new} equal to {old}'s, bit for bit")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
