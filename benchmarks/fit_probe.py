"""Fit one method on one zoo's standard split (the suite's property) and report validation only.

    .venv/bin/python benchmarks/fit_probe.py ZOO [--method sne] [--suite default] [--seed 0]
        [--set max_steps=2500 --set batch_size=32 ...]

Starts from the suite's budget for the method, applies `--set` overrides (checked and read as
`zoo-bench run --set` reads them: TOML values such as `0.01` or `false`), fits on the training
part and prints fit seconds, epochs and steps run, the selected epoch, its validation Kendall's
tau and prediction spread (std / the targets' std), and whether the fit converged: the best
validation tau of the last quarter of the steps no more than `--rise` above the best before it.
`--history FILE` appends the per-epoch history as one JSON line. The test split is never
scored, so settings picked with this are not tuned on test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from zoo_bench.predictor import FitContext
from zoo_bench.runner import make_predictor
from zoo_bench.spec import SuiteError
from zoo_bench.suite import load_suite, method_budget, parse_overrides, present_zoos
from zoo_bench.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo")
    ap.add_argument("--method", default="sne")
    ap.add_argument("--suite", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rise", type=float, default=0.01,
                    help="val tau rise over the last quarter that still counts as rising")
    ap.add_argument("--history", help="append {label, history} as a JSON line to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    zoos = present_zoos(suite)
    if args.zoo not in zoos:
        raise SystemExit(f"zoo {args.zoo} is not in the cache; generate the suite's zoos first")
    cell = get_task("standard").cells({args.zoo: zoos[args.zoo]}, args.seed, suite.property)[0]
    try:
        extra = parse_overrides(args.set, [args.method]).get(args.method, {})
    except SuiteError as e:
        raise SystemExit(f"fit_probe: {e}") from None
    predictor, budget = make_predictor(args.method, method_budget(suite, args.method, extra))
    start = time.perf_counter()
    predictor.fit(cell.train, cell.val, cell.property,
                  FitContext(seed=args.seed, device="cpu", budget=budget, progress=False))
    seconds = time.perf_counter() - start
    r = getattr(predictor, "train_result", None)
    label = f"{args.method} on {args.zoo} seed {args.seed}" + (f" {extra}" if extra else "")
    trained = ""
    if r is not None:
        h = r.history
        sel = h[r.best_epoch - 1]
        trained = (f", {r.epochs} epochs / {r.steps} steps ({r.stopped_by}), best epoch "
                   f"{r.best_epoch} (step {sel['step']}), val tau {r.best_val_tau:.3f}, "
                   f"spread {sel['val_spread']:.3f}" + (" DEGENERATE" if r.degenerate else ""))
        tail = [e for e in h if e["step"] > 0.75 * r.steps]
        head = [e for e in h if e["step"] <= 0.75 * r.steps]
        if tail and head:
            late = max(e["val_tau"] for e in tail)
            early = max(e["val_tau"] for e in head)
            verdict = "converged" if late <= early + args.rise else "still rising"
            trained += f"; best val tau before / in the last quarter {early:.3f} / {late:.3f}: "
            trained += verdict
        if args.history:
            with open(args.history, "a") as f:
                f.write(json.dumps({"label": label, "argv": sys.argv[1:], "seconds": seconds,
                                    "history": h}) + "\n")
    print(f"{label}: fit {seconds:.1f} s, "
          f"{len(cell.train)} train / {len(cell.val)} val networks" + trained, flush=True)


if __name__ == "__main__":
    main()
