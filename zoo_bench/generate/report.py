"""How spread out a generated zoo is: quantiles of final test accuracy (test loss for a zoo
without accuracies, e.g. INRs), and diverged runs."""

from __future__ import annotations

from typing import Any

from zoo_bench.store import Zoo

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def accuracy_spread(zoo: Zoo) -> dict[str, Any]:
    """Final-epoch quantiles (q0 .. q100) of test accuracy, or of test loss where the zoo has
    no accuracy (INR fits); which one under `property`; run count and diverged runs."""
    t = zoo.table
    final = t[t["epoch"] == t["epoch"].max()]
    prop = "test_accuracy" if "test_accuracy" in t.columns else "test_loss"
    q = final[prop].quantile(list(QUANTILES))
    out: dict[str, Any] = {"runs": int(final["run_id"].nunique()), "property": prop}
    out.update({f"q{round(k * 100)}": float(v) for k, v in q.items()})
    bad = final["diverged"] if "diverged" in final.columns else final["nonfinite"]
    out["diverged"] = int(bad.sum())
    return out
