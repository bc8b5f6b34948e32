"""How a CTC-sized zoo opens: time and resident memory, next to the size on disk.

Writes a synthetic zoo of ROWS x 4,970 float32 networks (the Small CNN Zoo net; 270,000 rows is
one full CTC dataset, 5.4 GB) streamed in chunks through ZooWriter, then in a fresh process
measures VmRSS before and after `Zoo.open`, the open time, and VmRSS after reading 256 random
networks. The zoo is deleted afterwards unless --keep.

    .venv/bin/python benchmarks/bench_open.py                 # 20,000 rows, about 0.4 GB
    .venv/bin/python benchmarks/bench_open.py --rows 270000   # full CTC size, a few minutes
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from zoo_bench.families import ctc
from zoo_bench.store import TABLE, WEIGHTS, Zoo, ZooWriter

CHUNK = 8192
EPOCHS = (0, 1, 2, 3, 20, 40, 60, 80, 86)
SAMPLE = 256


def write_zoo(out: Path, rows: int, seed: int = 0) -> float:
    """Stream `rows` random ctc networks (9 checkpoints per run) into a zoo; returns seconds."""
    arch = ctc(size=32)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    columns = (TextColumn("writing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with ZooWriter(out, out.name, [arch], {"kind": "synthetic"}) as w, Progress(*columns) as bar:
        task = bar.add_task("write", total=rows)
        for lo in range(0, rows, CHUNK):
            idx = np.arange(lo, min(lo + CHUNK, rows))
            flats = rng.standard_normal((len(idx), arch.n_params), dtype=np.float32)
            flats *= 0.1
            n = len(idx)
            table = pd.DataFrame({
                "run_id": [f"run{i // len(EPOCHS)}" for i in idx],
                "dataset": "synthetic",
                "epoch": np.asarray(EPOCHS)[idx % len(EPOCHS)],
                "hp_activation": np.where(idx % 2 == 0, "relu", "tanh"),
                "hp_learning_rate": rng.uniform(5e-4, 5e-2, n),
                "hp_optimizer": rng.choice(["adam", "sgd", "rmsprop"], n),
                "test_accuracy": rng.uniform(0.1, 0.6, n),
                "train_accuracy": rng.uniform(0.1, 0.7, n),
                "test_loss": rng.uniform(1, 2.3, n),
                "train_loss": rng.uniform(1, 2.3, n),
            })
            w.add_many(arch.name, flats, table)
            bar.advance(task, n)
    return time.perf_counter() - start


def rss_mb() -> dict[str, float]:
    """This process's resident memory (VmRSS, and its anonymous / file-backed parts) in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(line.split()[1]) / 1024
    if "VmRSS" not in fields:
        raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")
    return fields


def measure(path: Path) -> dict:
    """Run in the fresh process: RSS and time around opening and reading SAMPLE networks."""
    before = rss_mb()
    start = time.perf_counter()
    zoo = Zoo.open(path)
    open_s = time.perf_counter() - start
    after_open = rss_mb()
    pos = np.random.default_rng(0).choice(len(zoo), SAMPLE, replace=False)
    start = time.perf_counter()
    batch = zoo.flat_batch(pos)
    read_s = time.perf_counter() - start
    assert batch.shape == (SAMPLE, 4970) and np.isfinite(batch).all()
    return {"open_s": open_s, "read_s": read_s, "before": before, "after_open": after_open,
            "after_read": rss_mb(), "networks": len(zoo)}


def _rss(fields: dict[str, float]) -> str:
    return (f"{fields['VmRSS']:.0f} MB (anon {fields.get('RssAnon', 0):.0f}, "
            f"file {fields.get('RssFile', 0):.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="networks to write (270000: CTC)")
    parser.add_argument("--dir", type=Path, default=None, help="parent folder (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the zoo afterwards")
    parser.add_argument("--cold", action="store_true",
                        help="evict the zoo's files from the page cache before opening it")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    print(describe())
    root = Path(tempfile.mkdtemp(prefix="bench-open-", dir=args.dir))
    out = root / f"synthetic-{args.rows}"
    try:
        write_s = write_zoo(out, args.rows)
        files = [out / WEIGHTS, out / TABLE]
        if args.cold:
            drop_from_page_cache(files)
        print(f"page cache before the open: {page_cache_state(files)} (--cold evicts it)")
        child = subprocess.run([sys.executable, __file__, "--measure", str(out)],
                               check=True, capture_output=True, text=True)
        m = json.loads(child.stdout)
        weights_gb = (out / WEIGHTS).stat().st_size / 1e9
        table = Table(title=f"Zoo.open on {m['networks']:,} x 4,970 float32 (fresh process)")
        table.add_column("what")
        table.add_column("value", justify="right")
        for what, value in (
            ("weights.f32 on disk", f"{weights_gb:.2f} GB"),
            ("networks.parquet on disk", f"{(out / TABLE).stat().st_size / 1e6:.1f} MB"),
            ("write (streamed, hashed)", f"{write_s:.1f} s ({weights_gb / write_s:.2f} GB/s)"),
            ("Zoo.open", f"{m['open_s']:.3f} s"),
            ("VmRSS before open (imports done)", _rss(m["before"])),
            ("VmRSS after open", _rss(m["after_open"])),
            (f"read {SAMPLE} random networks (flat_batch)", f"{m['read_s'] * 1000:.1f} ms"),
            (f"VmRSS after reading {SAMPLE}", _rss(m["after_read"])),
            ("VmRSS added by open / weights size",
             f"{(m['after_open']['VmRSS'] - m['before']['VmRSS']) / (weights_gb * 1000):.2%}"),
        ):
            table.add_row(what, value)
        Console().print(table)
    finally:
        if args.keep:
            print(f"kept {out}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
