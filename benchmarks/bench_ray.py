"""A suite through Ray with W workers vs the local two-lane main job, and what Ray costs per task.

In one sitting, on this machine, into fresh temporary results folders:
  1. local: `zoo-bench run` in two parallel lanes (SNE | the other methods), one thread each,
     each over all seeds (the figures in docs/cluster.md were taken so, before `scripts/main.sh`
     split its lanes into per-seed jobs on a shared queue);
  2. ray: `zoo-bench run --executor ray --ray-cpus W` (one CPU and one thread per fit);
then Ray's cost per task: empty tasks on a warm local instance, and the run's own overhead
(W x wall minus the summed fit and predict times, per task). Finally an on-paper table: the
wall time of the suite over N = 1, 8, 64 workers from the measured per-fit times, and of a
suite over the four real Small CNN Zoo datasets, scaled as stated in the output.

    .venv/bin/python benchmarks/bench_ray.py                           # the ci suite, 2 workers
    .venv/bin/python benchmarks/bench_ray.py --suite default --seeds 0 # a one-seed slice
    .venv/bin/python benchmarks/bench_ray.py --suite-file benchmarks/default_digits.toml --seeds 0
    .venv/bin/python benchmarks/bench_ray.py --methods statnn,mlp --tasks standard --seeds 0
    .venv/bin/python benchmarks/bench_ray.py --suite default --from-results results/default
"""

from __future__ import annotations

import argparse
import heapq
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZB = [str(Path(sys.executable).with_name("zoo-bench"))]  # the CLI of this environment
REAL_NETWORKS = 30_000  # Small CNN Zoo: ~30,000 runs per dataset; final epoch = 1 net per run
REAL_DATASETS = 4  # mnist, fashion-mnist, cifar10-gs, svhn-gs


def run_cmd(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"failed (exit {p.returncode}): {shlex.join(p.args)}\n{err.decode()[-2000:]}")


def common(a: argparse.Namespace, results: Path) -> list[str]:
    out = ["run", "--suite", a.suite, "--results", str(results), "--quiet"]
    if a.suite_file:
        out += ["--suite-file", a.suite_file]
    if a.tasks:
        out += ["--task", a.tasks]
    if a.seeds:
        out += ["--seeds", a.seeds]
    return out


def lanes(methods: list[str]) -> list[str]:
    """The main job's split: the SNE methods in one lane, every other method in the other."""
    sne = [m for m in methods if m in ("sne", "sne_stats")]
    rest = [m for m in methods if m not in sne]
    return [",".join(x) for x in (sne, rest) if x]


def ray_task_overhead(n: int = 200) -> tuple[float, float]:
    """(seconds to start a local 2-CPU Ray, seconds per empty task on it, warm)."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - start

    @ray.remote(num_cpus=1)
    def noop() -> int:
        return 0

    ray.get([noop.remote() for _ in range(20)])  # warm the workers
    start = time.perf_counter()
    ray.get([noop.remote() for _ in range(n)])
    per = (time.perf_counter() - start) / n
    ray.shutdown()
    return started, per


def lpt_wall(times: list[float], workers: int, overhead: float) -> float:
    """Wall time of independent tasks on `workers` (longest first onto the least loaded)."""
    loads = [0.0] * workers
    for t in sorted(times, reverse=True):
        heapq.heapreplace(loads, loads[0] + t + overhead)
    return max(loads)


def fit_table(rows):
    """One row per fit (fit_key): method, fit seconds, summed predict seconds, networks."""
    return rows.groupby(["method", "fit_key"]).agg(
        fit=("fit_seconds", "first"), predict=("predict_seconds", "sum"),
        n_train=("n_train", "first"), n_test=("n_test", "sum")).reset_index()


def paper_table(fits, suite, overhead: float, n_seeds: int) -> None:
    """The on-paper wall times over N = 1, 8, 64 workers: of the fits given (as measured) and of
    a suite over the four real Small CNN Zoo datasets (scaled as printed)."""
    per_method = fits.groupby("method").agg(fit=("fit", "mean"), predict=("predict", "sum"),
                                            n_train=("n_train", "mean"),
                                            n_test=("n_test", "sum"))
    print("\nOn paper (not measured): independent fits scheduled longest first on N workers, "
          f"each paying a per-task overhead of {overhead:.2f} s.")
    print("Assumption: a fit's time grows linearly with its training networks for "
          "epoch-budgeted methods (max_epochs) and stays fixed for step-budgeted ones "
          "(max_steps); prediction time grows linearly with test networks. Real suite: "
          f"{REAL_NETWORKS:,} networks per dataset (final epoch), 60/20/20 split, "
          f"{REAL_DATASETS} datasets, one family, standard + cross_dataset (each fit predicts "
          f"the {REAL_DATASETS} datasets' test splits), the suite's seeds and methods.")
    suite_times = list(fits["fit"] + fits["predict"])
    real_times = []
    for method, r in per_method.iterrows():
        steps = "max_steps" in suite.budget(method)
        scale = 1.0 if steps else REAL_NETWORKS * 0.6 / r["n_train"]
        predict = r["predict"] / r["n_test"] * REAL_DATASETS * REAL_NETWORKS * 0.2
        t = r["fit"] * scale + predict
        real_times += [t] * (REAL_DATASETS * len(suite.seeds))
        print(f"  {method}: measured fit {r['fit']:.1f} s on {r['n_train']:.0f} networks -> "
              f"{t:.0f} s per real fit ({'steps: not scaled' if steps else f'x{scale:.0f}'})")
    print(f"\n{'N workers':>10} {'these fits':>14} {'real (4 datasets)':>20}")
    for n in (1, 8, 64):
        print(f"{n:>10} {lpt_wall(suite_times, n, overhead):>13.0f}s "
              f"{lpt_wall(real_times, n, overhead) / 3600:>18.1f}h")
    print(f"(these fits: {len(fits)} over {n_seeds} seed(s); real: {len(real_times)} fits = "
          f"{len(per_method)} methods x {REAL_DATASETS} datasets x {len(suite.seeds)} seeds)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="ci")
    p.add_argument("--suite-file", default=None,
                   help="a suite file of your own (e.g. one that `extends` the default suite "
                        "with fewer zoos: a slice)")
    p.add_argument("--methods", default=None, help="comma separated (default: the suite's)")
    p.add_argument("--tasks", default=None, help="comma separated (default: the suite's)")
    p.add_argument("--seeds", default=None, help="e.g. 0 or 0-1 (default: the suite's)")
    p.add_argument("--workers", type=int, default=2, help="Ray CPUs (= parallel fits)")
    p.add_argument("--from-results", metavar="DIR", default=None,
                   help="run nothing: the on-paper table from the fit times stored in DIR "
                        "(e.g. results/default after bash scripts/main.sh)")
    p.add_argument("--overhead", type=float, default=1.7,
                   help="with --from-results: Ray's overhead per fit task in seconds (default: "
                        "the 1.7 s this script measured on the ci suite, idle 2-core VM)")
    a = p.parse_args()

    import torch

    from zoo_bench.results import read_cells
    from zoo_bench.suite import ensure_zoos, load_suite

    suite = load_suite(a.suite, a.suite_file)
    methods = a.methods.split(",") if a.methods else list(suite.methods)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    if a.from_results:
        rows = read_cells(a.from_results)
        rows = rows[(rows["status"] == "ok") & rows["method"].isin(methods)]
        if rows.empty:
            sys.exit(f"no ok cells of {methods} in {a.from_results}")
        print(f"fit times from {a.from_results}: {len(rows)} cells, measured there (see its "
              "rows' git commit and device)")
        paper_table(fit_table(rows), suite, a.overhead, int(rows["seed"].nunique()))
        return
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; zoos from the cache "
          "(generated first if absent, not timed)")
    ensure_zoos(suite, progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        local, remote = Path(tmp) / "local", Path(tmp) / "ray"
        start = time.perf_counter()
        wait_all([run_cmd([*ZB, *common(a, local), "--method", lane], env)
                  for lane in lanes(methods)])
        t_local = time.perf_counter() - start
        start = time.perf_counter()
        wait_all([run_cmd([*ZB, *common(a, remote), "--method", ",".join(methods),
                           "--executor", "ray", "--ray-cpus", str(a.workers)], env)])
        t_ray = time.perf_counter() - start
        rows, n_local = read_cells(remote), len(read_cells(local))
    if rows.empty or n_local != len(rows):
        sys.exit("the runs stored no cells (or different numbers): nothing to compare")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} after the runs")
    fits = fit_table(rows)
    busy = float((fits["fit"] + fits["predict"]).sum())
    started, per_task = ray_task_overhead()
    print(f"\n{len(rows)} cells, {len(fits)} fits ({', '.join(methods)})")
    print(f"  local, {len(lanes(methods))} lanes (main.sh): {t_local:8.1f} s")
    print(f"  ray, {a.workers} workers:             {t_ray:8.1f} s   "
          f"(ray/local {t_ray / t_local:.2f})")
    print(f"  fit+predict time summed over fits: {busy:.1f} s")
    print(f"Ray overhead: start of a local instance {started:.1f} s; an empty task "
          f"{per_task * 1e3:.1f} ms warm; in this run "
          f"{(a.workers * t_ray - busy) / len(fits):.2f} s per fit task "
          "(workers x wall - summed fit and predict, per task: start-up, zoo verification, "
          "idle tail included)")

    overhead = max((a.workers * t_ray - busy) / len(fits), 0.0)
    paper_table(fits, suite, overhead, int(rows["seed"].nunique()))


if __name__ == "__main__":
    main()
