"""Encoder throughput of the weight-space methods, in one run: networks per second.

    .venv/bin/python benchmarks/bench_encoders.py [--threads 1] [--reps 5] [--batch 256]

Inference (no_grad, eval mode) of `--batch` ctc(size=16) networks (4,970 parameters; random
weights) through each predictor's own prediction path, model built by a one-epoch fit on a
random-weight zoo of the same architecture: nfn_np, nfn_hnp, nft (default hyperparameters, or
the default suite's budget tables with `--suite default`), sne, and statnn (its statistics are
computed inside the timed call, as a new zoo needs them). Methods are timed interleaved
(method A, B, ... then again) so a change of machine load hits all of them alike; the table
gives the best and the median of `--reps` rounds. Prints the command, torch version, thread
count and load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from zoo_bench import Budget, FitContext, Zoo, ZooWriter, get_predictor, statnn_features
from zoo_bench.families import ctc
from zoo_bench.runner import make_predictor
from zoo_bench.suite import load_suite
from zoo_bench.training import Batch

METHODS = ("nfn_np", "nfn_hnp", "nft", "sne", "statnn")


def random_zoo(path: Path, n: int, seed: int) -> Zoo:
    """`n` ctc(size=16) networks with He-like random weights and a random target."""
    arch = ctc(size=16)
    rng = np.random.default_rng(seed)
    flats = np.concatenate([
        rng.normal(0, 1 / np.sqrt(np.prod(layer.weight_shape[1:])), (n, layer.n_params))
        for layer in arch.layers
    ], axis=1).astype(np.float32)
    with ZooWriter(path, path.name, [arch], {"kind": "benchmark"}) as w:
        w.add_many(arch.name, flats, [
            dict(run_id=f"r{i}", dataset="toy", epoch=1, hp_activation="relu",
                 test_accuracy=float(a)) for i, a in enumerate(rng.uniform(size=n))
        ])
    return Zoo.open(path)


def encoder_call(method: str, budget: dict, train: Zoo, test: Zoo) -> Callable[[], None]:
    """A call that predicts every network of `test` (one batch) with a fitted `method`."""
    if budget:
        p, _ = make_predictor(method, budget)
    else:
        p = get_predictor(method)()
    p.fit(train, train, "test_accuracy",
          FitContext(seed=0, device="cpu", budget=Budget(max_epochs=1)))
    pos = np.arange(len(test))
    assert p.model is not None
    p.model.eval()
    if method == "statnn":
        k = int(p.hparams()["first_layers"])

        def call() -> None:
            x = p.input_scaler.transform(statnn_features(test, pos, k=k, kinds=p.kinds))
            with torch.no_grad():
                p.model(x)
        return call

    def call() -> None:
        with torch.no_grad():
            p.forward(Batch(test, pos, torch.device("cpu")))
    return call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--suite", default=None, help="take hyperparameters from this suite's budgets")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    budgets = load_suite(args.suite).budgets if args.suite else {}
    with tempfile.TemporaryDirectory() as tmp:
        train = random_zoo(Path(tmp) / "train", 64, seed=0)
        test = random_zoo(Path(tmp) / "test", args.batch, seed=1)
        calls = {}
        for m in methods:
            calls[m] = encoder_call(m, dict(budgets.get(m, {})), train, test)
            calls[m]()  # warm-up
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(args.reps):
            for m in methods:
                t = time.perf_counter()
                calls[m]()
                times[m].append(time.perf_counter() - t)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\n| method | networks/s (best of {args.reps}) | networks/s (median) | "
          f"seconds per batch of {args.batch} (best) |")
    print("|---|---|---|---|")
    for m in methods:
        best, med = min(times[m]), statistics.median(times[m])
        print(f"| {m} | {args.batch / best:,.0f} | {args.batch / med:,.0f} | {best:.3f} |")


if __name__ == "__main__":
    main()
