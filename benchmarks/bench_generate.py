"""The cost of reproducible generation: wall time of `zoo generate` with the workers' kernels
pinned to the baseline x86-64 code paths (the default, `PINNED_ENV`) against the same workers
running the kernels this CPU would pick by itself, side by side in one run.

Both sides use the same worker processes, thread counts, preset and output handling; only the
kernel variables differ (the unpinned side keeps one thread per worker). Repeats alternate
(A B B A ...), each into a fresh folder, and the median is reported, so a shared machine's
drifting load hits both sides alike. It also says whether the two sides' zoos differ.

    .venv/bin/python benchmarks/bench_generate.py                 # ci preset, 2 repeats each
    .venv/bin/python benchmarks/bench_generate.py --preset ci --only digits --repeats 3
    .venv/bin/python benchmarks/bench_generate.py --preset default --only cnn_small --runs 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from machine import describe, load_now

import zoo_bench.generate.population as population
from zoo_bench.generate import generate_preset

PINNED = dict(population.PINNED_ENV)
UNPINNED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one thread per worker, as pinned


def run_once(preset: str, only: list[str] | None, workers: int | None, pinned: bool,
             root: Path, overrides: dict[str, int]) -> tuple[float, dict[str, str]]:
    """Generate the preset into a fresh folder; seconds and each zoo's weights sha256."""
    population.PINNED_ENV = PINNED if pinned else UNPINNED
    out = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    paths = generate_preset(preset, out_dir=out, only=only, progress=False, workers=workers,
                            overrides=overrides)
    seconds = time.perf_counter() - start
    shas = {n: json.loads((p / "manifest.json").read_text())["files"]["weights.f32"]
            for n, p in paths.items()}
    return seconds, shas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ci")
    ap.add_argument("--only", nargs="*", default=None, help="zoos, datasets or families")
    ap.add_argument("--workers", type=int, default=None, help="default: one per core")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--runs", type=int, default=None, help="runs per zoo (default: the preset's)")
    args = ap.parse_args()
    overrides = {"runs": args.runs} if args.runs else {}
    print(describe({"preset": args.preset, "only": args.only, "workers": args.workers or "all",
                    "overrides": overrides, "pinned kernels": PINNED}))
    times: dict[bool, list[float]] = {True: [], False: []}
    shas: dict[bool, dict[str, str]] = {}
    order = [k % 4 in (0, 3) for k in range(2 * args.repeats)]  # pinned first, then A B B A
    with tempfile.TemporaryDirectory() as root:
        for pinned in order:
            seconds, shas[pinned] = run_once(args.preset, args.only, args.workers, pinned,
                                             Path(root), overrides)
            times[pinned].append(seconds)
            print(f"{'pinned  ' if pinned else 'unpinned'} {seconds:7.1f} s  ({load_now()})",
                  flush=True)
    pin, free = statistics.median(times[True]), statistics.median(times[False])
    same = sum(shas[True][n] == shas[False][n] for n in shas[True])
    print(f"median: pinned {pin:.1f} s, unpinned {free:.1f} s, pinned/unpinned {pin / free:.2f}x")
    print(f"zoos with identical weights on both sides: {same} of {len(shas[True])}")


if __name__ == "__main__":
    main()
