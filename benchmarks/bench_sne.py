"""SNE speed and memory benchmark: one command, prints tables.

    .venv/bin/python benchmarks/bench_sne.py [--threads 1] [--quick]

1. Peak memory encoding (inference) one network of ~0.1M, ~1M and ~11.5M parameters, each in a
   fresh subprocess: growth of the peak resident set (VmHWM, reset before encoding) beyond the
   weights themselves, for two chunk budgets; plus one training step on 64 ctc networks with
   every chunk (with and without per-group checkpointing) and with `train_chunks` per layer.
2. Throughput: ctc(size=16) networks encoded per second (inference, batch 256), and seconds per
   training epoch on a zoo of 1,000 random-weight ctc networks (with and without Logit
   Invariance; the epoch includes the validation pass over 100 networks), and on the default
   suite's zoo `--zoo` (standard split, seed 0) when it is in the cache.
3. Achieved FLOP/s of inference (matmul/attention FLOPs counted by FlopCounterMode) as a share
   of what torch.matmul reaches on this machine in the same run.
4. Speed-up over the naive per-network, per-layer loop (sne/naive.py), same model and weights;
   the outputs are asserted equal. Both get the same number of repeats, interleaved (batched,
   naive, batched, ...), so a change in machine load hits both alike; the best of each is shown.

The header prints the command line, torch version, thread count and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from sne.encoder import SNEConfig, SNEEncoder
from sne.naive import naive_forward
from zoo_bench.arch import Architecture, LayerSpec
from zoo_bench.families import ctc

MB = 2**20


def mlp(name: str, widths: list[int]) -> Architecture:
    pairs = zip(widths, widths[1:], strict=False)
    layers = tuple(LayerSpec("linear", (o, i), (o,)) for i, o in pairs)
    return Architecture(name, layers, (widths[0],))


def resnet18_shapes() -> Architecture:
    """ResNet-18's convolution and classifier shapes as one plain stack (no shortcuts)."""
    convs = [(64, 3, 7)] + [(64, 64, 3)] * 4
    for c_in, c in ((64, 128), (128, 256), (256, 512)):
        convs += [(c, c_in, 3)] + [(c, c, 3)] * 3
    layers = [LayerSpec("conv2d", (o, i, k, k), (o,)) for o, i, k in convs[:-1]]
    layers.append(LayerSpec("conv2d", (512, 512, 3, 3), (512,), pool="gap"))
    layers.append(LayerSpec("linear", (1000, 512), (1000,)))
    return Architecture("resnet18-shapes", tuple(layers), (3, 224, 224))


SIZES = {  # name -> (architecture, networks encoded together)
    "0.1M": lambda: (mlp("mlp-0.1M", [784, 128, 10]), 1),
    "1M": lambda: (mlp("mlp-1M", [784, 1000, 200, 10]), 1),
    "11.5M": lambda: (resnet18_shapes(), 1),
    "64 ctc": lambda: (ctc(size=16), 64),
}


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory_child(size: str, budget: int, train: bool, checkpoint: bool, train_chunks: int) -> dict:
    """Runs in a fresh process: peak RSS growth while encoding the networks of `size`."""
    arch, n = SIZES[size]()
    torch.manual_seed(0)
    cfg = SNEConfig(chunk_budget=budget, checkpoint=checkpoint, train_chunks=train_chunks)
    model = SNEEncoder(cfg).train(train)
    flats = 0.05 * torch.randn(n, arch.n_params)
    small = ctc(size=16)
    warm = model([(small, torch.randn(1, small.n_params))])  # allocator and kernels warm
    warm.sum().backward()
    model.zero_grad(set_to_none=True)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS:")
    start = time.perf_counter()
    if train:
        model([(arch, flats)]).sum().backward()
    else:
        with torch.no_grad():
            model([(arch, flats)])
    seconds = time.perf_counter() - start
    return {
        "params": n * arch.n_params, "weights_mb": n * arch.n_params * 4 / MB,
        "growth_mb": (_status("VmHWM:") - before) / MB, "seconds": seconds,
    }


def run_child(size: str, budget: int, threads: int, train: bool = False,
              checkpoint: bool = False, train_chunks: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--threads", str(threads), "--child",
           json.dumps([size, budget, train, checkpoint, train_chunks])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def best_time(fn, reps: int) -> float:
    """Fastest of `reps` calls (after one warm-up call), in seconds."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved_best(fns: list, reps: int) -> list[float]:
    """Fastest of `reps` calls of each function, the calls interleaved (after one warm-up each)."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def matmul_flops(reps: int) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return 2 * 1024**3 / best_time(lambda: a @ b, reps)


def random_zoo(path: Path, n: int, seed: int):
    from zoo_bench import Zoo, ZooWriter

    arch = ctc(size=16)
    rng = np.random.default_rng(seed)
    with ZooWriter(path, path.name, [arch], {"kind": "benchmark"}) as w:
        flats = rng.normal(0, 0.2, size=(n, arch.n_params)).astype(np.float32)
        rows = [dict(run_id=f"r{i}", dataset="bench", epoch=0,
                     hp_activation="relu" if i % 2 else "tanh",
                     test_accuracy=float(rng.uniform()), train_accuracy=0.5,
                     test_loss=1.0, train_loss=1.0) for i in range(n)]
        w.add_many(arch.name, flats, rows)
    return Zoo.open(path)


def epoch_seconds(train, val, lam: float, **hparams) -> tuple[float, float]:
    """(seconds of one fit epoch incl. validation, seconds of the validation pass alone)."""
    from sne.predictor import SNEPredictor
    from zoo_bench.predictor import Budget, FitContext

    p = SNEPredictor(logit_invariance=lam, **hparams)
    p.fit(train, val, "test_accuracy", FitContext(seed=0, device="cpu",
                                                  budget=Budget(max_epochs=1)))
    t = time.perf_counter()
    p.predict(val)
    return p.train_result.seconds, time.perf_counter() - t


def default_zoo_split(name: str):
    """(train, val, SNE budget hyperparameters) of the default suite's standard split of `name`,
    or None when that zoo is not in the cache."""
    from zoo_bench.suite import load_suite, present_zoos
    from zoo_bench.tasks import get_task

    suite = load_suite("default")
    zoos = present_zoos(suite)
    if name not in zoos:
        return None
    cell = get_task("standard").cells({name: zoos[name]}, 0)[0]
    budget = {k: v for k, v in suite.budget("sne").items() if k in ("batch_size", "lr")}
    return cell.train, cell.val, budget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller zoo")
    ap.add_argument("--zoo", default="default-digits-ctc",
                    help="default-suite zoo for the training-epoch figure (if cached)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(memory_child(*json.loads(args.child))))
        return
    reps = 2 if args.quick else 5
    cfg = SNEConfig()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"SNE benchmark: torch {torch.__version__}, {args.threads} thread(s), "
          f"{os.cpu_count()} CPUs, load average {load}; defaults {cfg}\n")

    print("1. Peak memory encoding one network (fresh process each; growth of VmHWM beyond the")
    print("   RSS before encoding, which already holds the weights)")
    print(f"{'networks':>8} {'params':>11} {'weights MB':>11} {'budget':>7} {'mode':>30} "
          f"{'growth MB':>10} {'seconds':>8}")
    rows = [(s, b, False, False, 0) for s in ("0.1M", "1M", "11.5M") for b in (512, 4096)]
    rows += [("64 ctc", 512, True, False, 0), ("64 ctc", 512, True, True, 0),
             ("64 ctc", 512, True, False, cfg.train_chunks)]
    for size, budget, train, ckpt, per_layer in rows:
        r = run_child(size, budget, args.threads, train, ckpt, per_layer)
        mode = "inference"
        if train:
            mode = "train step, " + (f"{per_layer} chunks/layer" if per_layer else "all chunks")
            mode += " + ckpt" if ckpt else ""
        print(f"{size:>8} {r['params']:>11,} {r['weights_mb']:>11.1f} {budget:>7} {mode:>30} "
              f"{r['growth_mb']:>10.1f} {r['seconds']:>8.2f}")

    torch.manual_seed(0)
    model = SNEEncoder(cfg).eval()
    arch = ctc(size=16)
    flats = 0.2 * torch.randn(256, arch.n_params)
    batch = [(arch, flats)]
    with FlopCounterMode(display=False) as counter:
        model(batch)  # same FLOPs as under no_grad (no set of this batch is streamed)
    flops = counter.get_total_flops()
    with torch.no_grad():
        t_fast = best_time(lambda: model(batch), reps)
        peak = matmul_flops(reps)
        small = [(arch, flats[:32])]
        t_small, t_naive = interleaved_best(
            [lambda: model(small), lambda: naive_forward(model, small)], reps)
        torch.testing.assert_close(model(small), naive_forward(model, small), rtol=1e-5, atol=1e-6)

    print(f"\n2. Throughput, ctc(size=16) ({arch.n_params:,} parameters)")
    print(f"   inference, batch 256: {256 / t_fast:,.0f} networks/s ({t_fast * 1e3:.0f} ms/batch)")
    n_train = 300 if args.quick else 1000
    from sne.predictor import SNEPredictor

    lams = (SNEPredictor.defaults["logit_invariance"], 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        train = random_zoo(Path(tmp) / "train", n_train, 0)
        val = random_zoo(Path(tmp) / "val", 100, 1)
        for lam in lams:
            total, v = epoch_seconds(train, val, lam)
            print(f"   training epoch on {n_train} random ctc networks, logit_invariance={lam}: "
                  f"{total:.1f} s (of which validation on 100 networks {v:.1f} s)")
    split = default_zoo_split(args.zoo)
    if split is None:
        print(f"   (zoo {args.zoo} is not in the cache: `zoo-bench zoo generate --preset default`"
              " adds the default-zoo epoch)")
    else:
        train, val, hp = split
        for lam in lams:
            total, v = epoch_seconds(train, val, lam, **hp)
            print(f"   training epoch on {args.zoo} (standard split, {len(train)} train / "
                  f"{len(val)} val networks, default-suite budget {hp}), logit_invariance={lam}: "
                  f"{total:.1f} s (of which validation {v:.1f} s)")

    print("\n3. Achieved FLOP/s (inference, batch 256)")
    print(f"   model FLOPs per network {flops / 256 / 1e6:.1f} M (FlopCounterMode: matmuls and "
          "attention)")
    print(f"   SNE {flops / t_fast / 1e9:.2f} GFLOP/s; torch.matmul 1024^2 "
          f"{peak / 1e9:.2f} GFLOP/s; share {flops / t_fast / peak:.1%}")

    print("\n4. Batched vs naive loop over networks and layers (32 ctc networks, outputs equal)")
    print(f"   batched {t_small * 1e3:.0f} ms, naive {t_naive * 1e3:.0f} ms (best of {reps} "
          f"interleaved repeats each), speed-up {t_naive / t_small:.1f}x")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at the end: {load}")


if __name__ == "__main__":
    main()
