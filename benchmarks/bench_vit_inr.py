"""Networks trained per second for the vit and inr families: the batched group trainers vs a
plain one-network-at-a-time loop, both families in one run.

Both sides train the same networks from the same start (sampled hyperparameters, initial
weights, training subsets and example order): vit networks for `--epochs` epochs on a training
subset, SIRENs for their sampled number of full-batch Adam steps. The plain loop is what one
would write by hand: per network a module holding its weights as parameters, run through
`functional_forward` (dropout included), and `torch.optim` (SGD / Adam / RMSprop, L2 on the
weight matrices but not on biases or layer-norm gains, as the batched trainer applies it).
Repeats alternate A B B A and the median is reported; evaluation is not timed. Everything runs on
`--threads` threads (default 1); the first lines say the command, torch version and the load.

    .venv/bin/python benchmarks/bench_vit_inr.py                     # 32 nets each, 1 thread
    .venv/bin/python benchmarks/bench_vit_inr.py --nets 64 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import torch
from bench_trainer import plain_epochs
from machine import describe
from torch import nn

from zoo_bench.arch import Architecture, functional_forward
from zoo_bench.families import siren_with_omega
from zoo_bench.generate.datasets import load_dataset, load_signal
from zoo_bench.generate.hyper import InrRunSpec, RunSpec, sample_runs
from zoo_bench.generate.inr import sine_wave, siren_init, train_inr_group
from zoo_bench.generate.trainer import run_start, train_group


class FlatNet(nn.Module):
    """One network's weights as parameters, run by `functional_forward`."""

    def __init__(self, arch: Architecture, flat: torch.Tensor, activation: str, dropout: float):
        super().__init__()
        self.arch, self.activation, self.dropout = arch, activation, dropout
        self.kinds = [la.kind for la in arch.layers]
        self.weights = nn.ParameterList(nn.Parameter(w.clone()) for w, _ in arch.unflatten(flat))
        self.biases = nn.ParameterList(nn.Parameter(b.clone()) for _, b in arch.unflatten(flat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = list(zip(self.weights, self.biases, strict=True))
        return functional_forward(self.arch, params, x, self.activation, self.dropout,
                                  training=True)


def plain_vit(runs: list[RunSpec], data, epochs: int, batch_size: int) -> None:
    """One vit network after another, each with its own module and torch.optim optimizer."""
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    for run in runs:
        start = run_start(run, len(y))
        net = FlatNet(run.arch, start.flat, run.activation, run.dropout)
        kernels = [w for w, k in zip(net.weights, net.kinds, strict=True) if k != "layernorm"]
        rest = [w for w, k in zip(net.weights, net.kinds, strict=True) if k == "layernorm"]
        groups = [{"params": kernels, "weight_decay": 2 * run.l2reg},
                  {"params": rest + list(net.biases)}]
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
        opt = cls[run.optimizer](groups, lr=run.learning_rate)
        plain_epochs(net, opt, start, x, y, epochs, batch_size)


def plain_inr(runs: list[InrRunSpec], signal) -> None:
    """One SIREN after another (as trained: the run's omega_0), each with its own module and
    torch.optim.Adam."""
    x = torch.from_numpy(signal.x_train.copy())
    for run in runs:
        target = sine_wave(x, run.frequency, run.phase)
        trained = siren_with_omega(run.arch, run.omega_0)
        net = FlatNet(trained, siren_init(trained, torch.Generator().manual_seed(run.seed)),
                      "sine", 0.0)
        opt = torch.optim.Adam(net.parameters(), lr=run.learning_rate)
        for _ in range(run.steps):
            loss = ((net(x) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


def median_ab(batched: Callable[[], object], plain: Callable[[], object], repeats: int
              ) -> tuple[float, float]:
    """Median wall seconds of each side, interleaved A B B A."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for k in range(2 * repeats):
        side = k % 4 in (0, 3)
        start = time.perf_counter()
        (batched if side else plain)()
        times[side].append(time.perf_counter() - start)
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=32, help="networks per family (one group)")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=1, help="vit epochs")
    ap.add_argument("--train-fraction", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100, help="SIREN steps per network")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(describe({"threads": args.threads, "repeats (A B B A, median)": args.repeats}))

    data = load_dataset(args.dataset)
    first = sample_runs(1, "vit", args.dataset, 0, 1, data.image_size)[0].arch
    vit_runs = sorted(
        (dataclasses.replace(r, arch=first, train_fraction=args.train_fraction)
         for r in sample_runs(args.nets, "vit", args.dataset, 0, 1, data.image_size)),
        key=lambda r: r.order_key(),
    )
    bw, pw = median_ab(
        lambda: train_group(first, vit_runs, data, args.epochs, [], args.batch_size, seed=0),
        lambda: plain_vit(vit_runs, data, args.epochs, args.batch_size), args.repeats)
    n_sub = round(args.train_fraction * len(data.y_train))
    print(f"vit {first.name} ({first.n_params} params) on {args.dataset}: {args.nets} nets x "
          f"{args.epochs} epoch(s) x {n_sub} examples, batch {args.batch_size}: batched "
          f"{args.nets / bw:.1f} nets/s, one at a time {args.nets / pw:.1f} nets/s, "
          f"speed-up {pw / bw:.1f}x")

    signal = load_signal("sines")
    first_inr = sample_runs(1, "inr", "sines", 0, 1, 0)[0]
    arch = first_inr.arch
    inr_runs = [dataclasses.replace(r, arch=arch, steps=args.steps, omega_0=first_inr.omega_0)
                for r in sample_runs(args.nets, "inr", "sines", 0, 1, 0)]
    bw, pw = median_ab(
        lambda: train_inr_group(arch, inr_runs, signal, 1, []),
        lambda: plain_inr(inr_runs, signal), args.repeats)
    print(f"inr {arch.name} ({arch.n_params} params) on sines: {args.nets} nets x {args.steps} "
          f"full-batch steps x {len(signal.x_train)} coordinates: batched {args.nets / bw:.1f} "
          f"nets/s, one at a time {args.nets / pw:.1f} nets/s, speed-up {pw / bw:.1f}x")


if __name__ == "__main__":
    main()
