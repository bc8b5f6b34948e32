"""How fast a Small CNN Zoo imports, and in how much memory: wall time and peak RSS.

Builds a synthetic CTC source folder of ROWS checkpoints (weights.npy written through a memory
map, metrics.csv.gz, the real layout.csv), then runs `zoo-bench zoo import ctc` in a fresh
process and reports its wall time, throughput and peak resident memory (its own VmHWM: a forked
child's ru_maxrss would count the parent's memory) next to the source size.
Everything is deleted afterwards unless --keep.

    .venv/bin/python benchmarks/bench_import_ctc.py                 # 20,000 rows, about 0.4 GB
    .venv/bin/python benchmarks/bench_import_ctc.py --rows 270000   # a full CTC dataset, 5.4 GB
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from machine import describe, drop_from_page_cache, page_cache_state
from rich.console import Console
from rich.table import Table

from zoo_bench.store import Zoo

LAYOUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "ctc" / "layout.csv"
EPOCHS = (0, 1, 2, 3, 20, 40, 60, 80, 86)
CHUNK = 8192


def write_source(src: Path, rows: int, seed: int = 0) -> None:
    """A Small CNN Zoo folder with random weights and plausible metrics."""
    src.mkdir(parents=True)
    shutil.copy(LAYOUT, src / "layout.csv")
    rng = np.random.default_rng(seed)
    weights = np.lib.format.open_memmap(src / "weights.npy", mode="w+", dtype=np.float32,
                                        shape=(rows, 4970))
    for lo in range(0, rows, CHUNK):
        hi = min(lo + CHUNK, rows)
        weights[lo:hi] = rng.standard_normal((hi - lo, 4970), dtype=np.float32) * 0.1
    weights.flush()
    del weights
    idx = np.arange(rows)
    pd.DataFrame({
        "config.activation": np.where(idx // 9 % 2 == 0, "relu", "tanh"),
        "config.b_init": "zeros",
        "config.dataset": "cifar10",
        "config.dropout": rng.uniform(0, 0.7, rows),
        "config.init_std": rng.uniform(1e-3, 0.5, rows),
        "config.l2reg": rng.uniform(1e-8, 1e-2, rows),
        "config.learning_rate": rng.uniform(5e-4, 5e-2, rows),
        "config.optimizer": rng.choice(["adam", "sgd", "rmsprop"], rows),
        "config.train_fraction": rng.choice([0.1, 0.25, 0.5, 1.0], rows),
        "config.w_init": rng.choice(["he_normal", "orthogonal", "glorot_normal"], rows),
        "modeldir": [f"/cifar10/run{i // 9}" for i in idx],
        "step": np.asarray(EPOCHS)[idx % 9],
        "test_accuracy": rng.uniform(0.1, 0.6, rows),
        "test_loss": rng.uniform(1, 2.3, rows),
        "train_accuracy": rng.uniform(0.1, 0.7, rows),
        "train_loss": rng.uniform(1, 2.3, rows),
    }).to_csv(src / "metrics.csv.gz", index=False)


def run_import(src: Path, out: Path) -> dict:
    """In the fresh process: the CLI import, then this process's peak RSS (VmHWM)."""
    from zoo_bench.cli import main as cli

    cli(["zoo", "import", "ctc", str(src), str(out)], standalone_mode=False)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return {"peak_mb": int(line.split()[1]) / 1024}
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="checkpoints (270000: CTC)")
    parser.add_argument("--dir", type=Path, default=None, help="parent folder (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep source and zoo afterwards")
    parser.add_argument("--cold", action="store_true",
                        help="evict the source files from the page cache before importing")
    parser.add_argument("--child", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_import(*args.child)))
        return
    print(describe())
    root = Path(tempfile.mkdtemp(prefix="bench-import-ctc-", dir=args.dir))
    try:
        write_source(root / "src", args.rows)
        src_gb = sum(p.stat().st_size for p in (root / "src").iterdir()) / 1e9
        files = list((root / "src").iterdir())
        if args.cold:
            drop_from_page_cache(files)
        print(f"page cache before the import: {page_cache_state(files)} (--cold evicts it)")
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(root / "src"), str(root / "zoo")],
            check=True, stdout=subprocess.PIPE, text=True,
        )
        wall = time.perf_counter() - start
        peak_mb = json.loads(child.stdout.strip().splitlines()[-1])["peak_mb"]
        zoo = Zoo.open(root / "zoo")
        table = Table(title=f"zoo-bench zoo import ctc: {len(zoo):,} checkpoints")
        table.add_column("what")
        table.add_column("value", justify="right")
        for what, value in (
            ("source size (weights.npy + metrics + layout)", f"{src_gb:.2f} GB"),
            ("import wall time (fresh process)", f"{wall:.1f} s"),
            ("throughput", f"{len(zoo) / wall:,.0f} networks/s ({src_gb / wall:.2f} GB/s)"),
            ("peak RSS of the import process (VmHWM)", f"{peak_mb:.0f} MB"),
        ):
            table.add_row(what, value)
        Console().print(table)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
