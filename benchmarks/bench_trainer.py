"""Networks trained per second: the population trainer vs a plain one-network-at-a-time loop.

Both train the same networks (same sampled hyperparameters, initial weights, training subsets
and per-epoch example order from `run_start`) on the same data for the same epochs and batch
size; only the loop differs. The plain loop is what one would write by hand: an `nn.Module`
per network, `torch.optim.SGD/Adam/RMSprop`, one network after another. Timings alternate
between the two (equal repeats, interleaved A B B A, median reported), on the same number of
threads, so the ratio holds on a shared machine even when absolute times wander. Evaluation is
not timed. `--machine` adds the whole machine, where both sides get the same resources: the
networks are split over one one-thread process per core for the batched trainer and for the
plain loop alike. The first lines printed say the command, torch version, threads and load.

    .venv/bin/python benchmarks/bench_trainer.py                      # ctc, batch 8/16/32
    .venv/bin/python benchmarks/bench_trainer.py --family cnn_small --batch-sizes 8
    .venv/bin/python benchmarks/bench_trainer.py --machine            # + both cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from machine import describe, load_now
from torch import nn
from torch.nn import functional as F

from zoo_bench.arch import Architecture, functional_forward
from zoo_bench.generate.datasets import load_dataset
from zoo_bench.generate.hyper import RunSpec, sample_runs
from zoo_bench.generate.trainer import accuracy, run_start, train_group


class PlainNet(nn.Module):
    """The architecture as ordinary layers: Conv2d/Linear, activation, Dropout, pooling."""

    def __init__(self, arch: Architecture, activation: str, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        for i, la in enumerate(arch.layers):
            if la.kind == "conv2d":
                o, c, kh, _ = la.weight_shape
                layers.append(nn.Conv2d(c, o, kh, stride=la.stride, padding=la.padding))
            else:
                layers.append(nn.Linear(la.fan_in, la.fan_out))
            if i == len(arch.layers) - 1:
                break
            layers += [act(), nn.Dropout(dropout)]
            if la.pool == "max2":
                layers.append(nn.MaxPool2d(2))
            elif la.pool == "gap":
                layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            elif la.pool == "flatten":
                layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def load_flat(self, arch: Architecture, flat: torch.Tensor) -> None:
        weighted = [m for m in self.net if isinstance(m, nn.Conv2d | nn.Linear)]
        with torch.no_grad():
            for m, (w, b) in zip(weighted, arch.unflatten(flat), strict=True):
                m.weight.copy_(w)
                m.bias.copy_(b)

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()])


def plain_optimizer(net: PlainNet, run: RunSpec) -> torch.optim.Optimizer:
    """torch.optim with PyTorch defaults; L2 on kernels only, as the population trainer does."""
    kernels = [p for p in net.parameters() if p.dim() > 1]
    biases = [p for p in net.parameters() if p.dim() == 1]
    groups = [{"params": kernels, "weight_decay": 2 * run.l2reg}, {"params": biases}]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    return cls[run.optimizer](groups, lr=run.learning_rate)


def plain_epochs(net: nn.Module, opt: torch.optim.Optimizer, start, x: torch.Tensor,
                 y: torch.Tensor, epochs: int, batch_size: int) -> None:
    """The plain torch loop: `epochs` passes over the run's own data order, cross-entropy."""
    for _ in range(epochs):
        order = start.epoch_order()
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def train_plain(runs, data, epochs: int, batch_size: int) -> list[torch.Tensor]:
    """One network after another, each with its own module, optimizer and data order."""
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    finals = []
    for run in runs:
        start = run_start(run, len(y))
        net = PlainNet(run.arch, run.activation, run.dropout)
        net.load_flat(run.arch, start.flat)
        opt = plain_optimizer(net, run)
        net.train()
        plain_epochs(net, opt, start, x, y, epochs, batch_size)
        finals.append(net.flat())
    return finals


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def mean_test_accuracy(runs, flats, data) -> float:
    x = torch.tensor(data.x_test)
    with torch.no_grad():
        accs = [
            accuracy(functional_forward(r.arch, r.arch.unflatten(torch.as_tensor(f)), x,
                                        r.activation), data.y_test)
            for r, f in zip(runs, flats, strict=True)
        ]
    return float(np.mean(accs))


def on_all_cores(args: argparse.Namespace, b: int, workers: int, loop: str) -> float:
    """Wall seconds to train the networks split over `workers` one-thread processes with the
    `loop` (batched or plain), as `zoo-bench zoo generate` splits groups (interpreter start-up
    excluded: it is paid once per zoo set). Both loops get exactly the same processes."""
    cmd = [sys.executable, __file__, "--dataset", args.dataset, "--family", args.family,
           "--nets", str(args.nets), "--epochs", str(args.epochs), "--loop", loop,
           "--train-fraction", str(args.train_fraction), "--parts", str(workers)]
    procs = [subprocess.Popen([*cmd, "--part", str(k), "--batch-sizes", str(b)],
                              stdout=subprocess.PIPE, text=True) for k in range(workers)]
    spans = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return max(e for _, e in spans) - min(s for s, _ in spans)


def make_runs(args: argparse.Namespace, data) -> list[RunSpec]:
    runs = sample_runs(args.nets, args.family, args.dataset, 0, 1, data.image_size)
    return sorted(
        (dataclasses.replace(r, train_fraction=args.train_fraction) for r in runs),
        key=lambda r: (r.dropout > 0, r.activation, r.index),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist1d")
    ap.add_argument("--family", default="ctc", choices=["ctc", "cnn_small"])
    ap.add_argument("--nets", type=int, default=64, help="networks (one group)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-fraction", type=float, default=0.25)
    ap.add_argument("--batch-sizes", default="8,16,32")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both loops")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--machine", action="store_true",
                    help="also the whole machine: each loop in one one-thread process per core")
    ap.add_argument("--part", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="batched", help=argparse.SUPPRESS)
    ap.add_argument("--parts", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = load_dataset(args.dataset)
    runs = make_runs(args, data)
    arch = runs[0].arch
    if args.part is not None:  # one worker of batched_on_all_cores
        torch.set_num_threads(1)
        mine = runs[args.part :: args.parts]
        start = time.time()
        if args.loop == "plain":
            train_plain(mine, data, args.epochs, int(args.batch_sizes))
        else:
            train_group(arch, mine, data, args.epochs, [], int(args.batch_sizes), seed=args.part)
        print(json.dumps([start, time.time()]))
        return
    print(describe({"page cache": "n/a (built-in dataset in memory)"}))
    torch.set_num_threads(args.threads)
    n_sub = round(args.train_fraction * len(data.y_train))
    print(f"{args.family} ({arch.n_params} params) on {args.dataset}: {args.nets} networks x "
          f"{args.epochs} epochs x {n_sub} examples, {args.threads} thread(s), "
          f"median of {args.repeats} interleaved repeats; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'batch':>5} {'batched nets/s':>15} {'plain nets/s':>13} {'speed-up':>9} "
          f"{'(cpu-time speed-up)':>20} {'test acc batched / plain':>25}")
    for b in (int(v) for v in args.batch_sizes.split(",")):
        batched, plain = [], []
        for k in range(2 * args.repeats):
            if k % 4 in (0, 3):  # A B B A: neither side always runs first
                res, wall, cpu = timed(
                    lambda b=b: train_group(arch, runs, data, args.epochs, [], b, seed=0)
                )
                batched.append((wall, cpu))
            else:
                finals, wall, cpu = timed(lambda b=b: train_plain(runs, data, args.epochs, b))
                plain.append((wall, cpu))
        bw, bc = (statistics.median(t[k] for t in batched) for k in (0, 1))
        pw, pc = (statistics.median(t[k] for t in plain) for k in (0, 1))
        acc_b = mean_test_accuracy(runs, res.final, data)
        acc_p = mean_test_accuracy(runs, finals, data)
        print(f"{b:>5} {args.nets / bw:>15.1f} {args.nets / pw:>13.1f} {pw / bw:>8.1f}x "
              f"{pc / bc:>19.1f}x {acc_b:>12.3f} / {acc_p:.3f}")
    if not args.machine:
        return
    workers = len(os.sched_getaffinity(0))
    print(f"whole machine: each loop in {workers} one-thread processes, the networks split "
          f"between them; {load_now()}")
    for b in (int(v) for v in args.batch_sizes.split(",")):
        batched, plain = [], []
        for k in range(2 * args.repeats):
            loop, times = ("batched", batched) if k % 4 in (0, 3) else ("plain", plain)
            times.append(on_all_cores(args, b, workers, loop))
        bw, pw = statistics.median(batched), statistics.median(plain)
        print(f"{b:>5} {args.nets / bw:>15.1f} {args.nets / pw:>13.1f} {pw / bw:>8.1f}x "
              f"({load_now()})")


if __name__ == "__main__":
    main()
