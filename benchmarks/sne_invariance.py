"""Logit Invariance's effect, measured: SNE's invariance error with and without it.

    .venv/bin/python benchmarks/sne_invariance.py [--suite default] [--zoo NAME ...]
        [--seeds 0,1] [--samples 8] [--lambdas 0.1,0]

For each zoo and seed, SNE is fitted twice on the standard task's training split with the
suite's SNE budget, once per Logit Invariance weight lambda (default: SNE's 0.1, and 0 = off).
On the test networks it reports the invariance error, mean |f(w) - f(g.w)| over the networks
and `--samples` transformations g drawn from each network's symmetry group (accuracy units),
next to that error relative to the spread (std) of the predictions, and the test Kendall's tau.
The zoos must exist (`zoo-bench zoo generate --preset default`).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from sne.predictor import SNEPredictor
from sne.symmetry import apply_transform, sample_transform
from zoo_bench.evaluator import kendall_tau
from zoo_bench.predictor import FitContext
from zoo_bench.runner import make_predictor
from zoo_bench.suite import load_suite, present_zoos
from zoo_bench.tasks import get_task
from zoo_bench.training import minibatches


def invariance_error(p: SNEPredictor, zoo, samples: int, seed: int) -> np.ndarray:
    """Per test network: mean over `samples` draws of g of |f(w) - f(g.w)|, in target units."""
    gen = torch.Generator().manual_seed(seed)
    scale = float(p.scaler.std.reshape(-1)[0])
    out = np.zeros(len(zoo))
    acts = zoo.table["hp_activation"].astype(str).to_numpy()
    with torch.no_grad():
        for pos in minibatches(zoo, np.arange(len(zoo)), 256):
            arch = zoo.architecture_of(int(pos[0]))
            flats = torch.from_numpy(np.nan_to_num(zoo.flat_batch(pos)))
            f = p.model([(arch, flats)]).reshape(-1)
            err = torch.zeros_like(f)
            for _ in range(samples):
                g = sample_transform(arch, list(acts[pos]), gen)
                err += (p.model([(arch, apply_transform(arch, flats, g))]).reshape(-1) - f).abs()
            out[pos] = (err / samples * scale).double().numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="default")
    ap.add_argument("--zoo", action="append", help="zoo(s) of the suite (default: all)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--lambdas", default=f"{SNEPredictor.defaults['logit_invariance']},0",
                    help="Logit Invariance weights to compare, comma separated")
    args = ap.parse_args()
    torch.set_num_threads(1)
    suite = load_suite(args.suite)
    zoos = present_zoos(suite)
    names = args.zoo or sorted(zoos)
    budget_table = dict(suite.budget("sne"))
    table = Table(title=f"SNE invariance error on test networks ({args.samples} g each)")
    for col in ("zoo", "seed", "lambda", "inv. error", "error / pred. std", "test tau"):
        table.add_column(col, justify="left" if col == "zoo" else "right", no_wrap=True)
    rows: dict[float, list[tuple[float, float]]] = {}
    for name in names:
        for seed in (int(s) for s in args.seeds.split(",")):
            cell = get_task("standard").cells({name: zoos[name]}, seed)[0]
            for lam in (float(x) for x in args.lambdas.split(",")):
                p, budget = make_predictor("sne", {**budget_table, "logit_invariance": lam})
                p.fit(cell.train, cell.val, cell.property,
                      FitContext(seed=seed, device="cpu", budget=budget, progress=False))
                pred = p.predict(cell.test)
                err = invariance_error(p, cell.test, args.samples, seed)
                rel = float(err.mean() / max(pred.std(), 1e-12))
                tau = kendall_tau(cell.test.targets(cell.property), pred)
                rows.setdefault(lam, []).append((float(err.mean()), rel))
                table.add_row(name, str(seed), f"{lam:g}", f"{err.mean():.3g}", f"{rel:.3g}",
                              f"{tau:.3f}")
    for lam, vals in rows.items():
        e, r = np.mean(vals, axis=0)
        table.add_row("[bold]mean", "", f"{lam:g}", f"{e:.3g}", f"{r:.3g}", "")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
