"""Logit Invariance's effect, measured on validation networks: SNE with and without it.

    .venv/bin/python benchmarks/sne_invariance.py [--suite default] [--zoo NAME ...]
        [--seeds 0] [--samples 8] [--lambdas 0.1,0] [--set KEY=VALUE ...]

For each zoo and seed, SNE is fitted once per Logit Invariance weight lambda (default: SNE's
0.1, and 0 = off) on the standard task's training split with the suite's SNE budget (plus
`--set` overrides). On the *validation* networks (choices are made on these; the test split is
never scored) it reports:

- the invariance error: mean |f(w) - f(g.w)| over the networks and `--samples` transformations
  g drawn from each network's symmetry group (accuracy units), and that error relative to the
  spread (std) of the predictions;
- the validation Kendall's tau;
- the train/eval mismatch of chunk subsampling: predictions from a training-mode subsample of
  `train_chunks` chunks per layer (the model's own setting, and `--mismatch-chunks` others)
  against the all-chunk evaluation, as mean square and mean difference (bias), in standardised
  target units, averaged over `--samples` draws.

The zoos must exist (`zoo-bench zoo generate --preset default`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys

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
    """Per network: mean over `samples` draws of g of |f(w) - f(g.w)|, in target units."""
    gen = torch.Generator().manual_seed(seed)
    scale = float(p.scaler.std.reshape(-1)[0])
    out = np.zeros(len(zoo))
    acts = zoo.table["hp_activation"].astype(str).to_numpy()
    p.model.eval()
    with torch.no_grad():
        for pos in minibatches(zoo, np.arange(len(zoo)), 256):
            arch = zoo.architecture_of(int(pos[0]))
            flats = torch.from_numpy(np.nan_to_num(zoo.flat_batch(pos)))
            f = p.logits(p.model, arch, flats)
            err = torch.zeros_like(f)
            for _ in range(samples):
                g = sample_transform(arch, list(acts[pos]), gen)
                err += (p.logits(p.model, arch, apply_transform(arch, flats, g)) - f).abs()
            out[pos] = (err / samples * scale).double().numpy()
    return out


def subsample_mismatch(
    p: SNEPredictor, zoo, train_chunks: int, samples: int, seed: int
) -> tuple[float, float]:
    """(mean square, mean) of f_subsample(w) - f_all(w) over the networks of `zoo` and `samples`
    subsample draws with `train_chunks` chunks per layer, standardised units."""
    torch.manual_seed(seed)
    model = p.model
    enc = getattr(model, "encoder", model)
    old = enc.config
    diffs = []
    with torch.no_grad():
        for pos in minibatches(zoo, np.arange(len(zoo)), 256):
            arch = zoo.architecture_of(int(pos[0]))
            flats = torch.from_numpy(np.nan_to_num(zoo.flat_batch(pos)))
            model.eval()
            full = p.logits(model, arch, flats)
            enc.config = dataclasses.replace(old, train_chunks=train_chunks)
            model.train()
            for _ in range(samples):
                diffs.append((p.logits(model, arch, flats) - full).double().numpy())
            enc.config = old
    model.eval()
    d = np.concatenate(diffs)
    return float(np.mean(d**2)), float(np.mean(d))


def parse_set(items: list[str]) -> dict:
    """`key=value` pairs; values read as Python literals where they parse."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="default")
    ap.add_argument("--zoo", action="append", help="zoo(s) of the suite (default: all)")
    ap.add_argument("--method", default="sne", help="sne or sne_stats")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--lambdas", default=f"{SNEPredictor.defaults['logit_invariance']},0",
                    help="Logit Invariance weights to compare, comma separated")
    ap.add_argument("--mismatch-chunks", default="16,32",
                    help="subsample sizes (chunks per layer) whose mismatch is also reported")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(" ".join(sys.argv), f"| torch {torch.__version__}, 1 thread")
    suite = load_suite(args.suite)
    zoos = present_zoos(suite)
    names = args.zoo or sorted(zoos)
    budget_table = {**suite.budget(args.method), **parse_set(args.set)}
    table = Table(title=f"SNE on validation networks ({args.samples} draws each)")
    cols = ("zoo", "seed", "lambda", "inv. error", "error / pred. std", "val tau",
            "subsample k", "mismatch MS", "bias")
    for col in cols:
        table.add_column(col, justify="left" if col == "zoo" else "right", no_wrap=True)
    rows: dict[float, list[tuple[float, float, float]]] = {}
    for name in names:
        for seed in (int(s) for s in args.seeds.split(",")):
            cell = get_task("standard").cells({name: zoos[name]}, seed)[0]
            val = cell.val
            for lam in (float(x) for x in args.lambdas.split(",")):
                p, budget = make_predictor(args.method, {**budget_table, "logit_invariance": lam})
                p.fit(cell.train, val, cell.property,
                      FitContext(seed=seed, device="cpu", budget=budget, progress=False))
                pred = p.predict(val)
                err = invariance_error(p, val, args.samples, seed)
                rel = float(err.mean() / max(pred.std(), 1e-12))
                tau = kendall_tau(val.targets(cell.property), pred)
                rows.setdefault(lam, []).append((float(err.mean()), rel, tau))
                ks = sorted({p.config.train_chunks, *map(int, args.mismatch_chunks.split(","))})
                for i, k in enumerate(k for k in ks if k > 0):
                    ms, bias = subsample_mismatch(p, val, k, args.samples, seed)
                    first = (name, str(seed), f"{lam:g}", f"{err.mean():.3g}", f"{rel:.3g}",
                             f"{tau:.3f}") if i == 0 else ("",) * 6
                    table.add_row(*first, str(k), f"{ms:.3g}", f"{bias:+.3f}")
    for lam, vals in rows.items():
        e, r, t = np.mean(vals, axis=0)
        table.add_row("[bold]mean", "", f"{lam:g}", f"{e:.3g}", f"{r:.3g}", f"{t:.3f}",
                      "", "", "")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
