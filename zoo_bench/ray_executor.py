"""`zoo-bench run --executor ray`: each fit group (one fit key) as a Ray task.

The driver plans, skips and stores exactly as with the local executor; only the fits move.
A task gets its jobs without zoo data (cells hold their splits, i.e. network ids and hashes),
re-opens the zoos by path on the worker, verifies their content (every file's sha256 and the
nonfinite flags, cached per worker process and file state) and checks that their manifest
sha256 equals the driver's, so a node that sees other bytes at that path fails the task with a
clear error instead of scoring the wrong zoo. It fits and predicts with one thread per CPU it
holds (`num_cpus` of the method's budget, default 1) and returns each cell's row and
predictions; only the driver writes them, with the same atomic per-cell writer, as they land.

Faults: a worker process that dies mid-fit is retried by Ray (`max_retries`); its cells are
written once, when a try returns. Ctrl-C on the driver cancels every task still running; the
results folder then holds only complete cells, and the next run finishes the rest.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.logs import captured, replay
from zoo_bench.results import MethodConfig
from zoo_bench.runner import Job, RunReport, _Runner, fit_threads
from zoo_bench.store import Zoo

INSTALL_HINT = "pip install 'zoo-bench[ray]'"
DEFAULT_RETRIES = 3


class ZooMismatchError(ZooBenchError):
    """A worker sees other zoo content at a path than the driver does."""


def require_ray() -> None:
    """Raise a clear error when Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise ZooBenchError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}")


@dataclasses.dataclass(frozen=True)
class ZooRef:
    """Where a zoo lies (a path every node can read) and what its manifest hashes to."""

    name: str
    path: str
    manifest_sha256: str


def _light(job: Job) -> Job:
    """The job without its Zoo views (tables and weight maps stay behind; splits travel)."""
    return Job(job.method, dataclasses.replace(job.cell, train=None, val=None, test=None),
               job.overrides)


def _refs(group: list[Job]) -> list[ZooRef]:
    refs = {}
    for job in group:
        c = job.cell
        refs[c.source] = ZooRef(c.source, str(c.train.path), c.source_split.zoo_manifest_sha256)
        refs[c.target] = ZooRef(c.target, str(c.test.path), c.target_split.zoo_manifest_sha256)
    return list(refs.values())


_OPENED: dict[tuple[str, str, tuple[int, ...]], Zoo] = {}  # per worker process


def _state(path: Path) -> tuple[int, ...]:
    """The zoo folder's file state: (size, mtime) of each file, so edits invalidate the cache."""
    out: list[int] = []
    for f in sorted(path.iterdir()):
        st = f.stat()
        out += [st.st_size, st.st_mtime_ns]
    return tuple(out)


def open_verified(ref: ZooRef) -> Zoo:
    """The zoo at `ref.path`, fully verified, and holding the driver's content (else raise)."""
    path = Path(ref.path)
    host = socket.gethostname()
    if not path.is_dir():
        raise ZooMismatchError(
            f"worker {host}: zoo {ref.name} is not at {path}; the zoos must lie at the same path "
            "on every node (a shared filesystem), see docs/cluster.md"
        )
    key = (ref.path, ref.manifest_sha256, _state(path))
    if key in _OPENED:
        return _OPENED[key]
    zoo = Zoo.open(path)
    zoo.verify_cached()
    if zoo.manifest_sha256 != ref.manifest_sha256:
        raise ZooMismatchError(
            f"worker {host}: zoo {ref.name} at {path} has manifest sha256 "
            f"{zoo.manifest_sha256[:16]}, the driver's has {ref.manifest_sha256[:16]}; every node "
            "must see the same zoo bytes at that path (a shared filesystem, or identical copies)"
        )
    _OPENED[key] = zoo
    return zoo


def _rebuild(job: Job, zoos: Mapping[str, Zoo]) -> Job:
    """The job with its cell's views made again from the zoos opened on this worker."""
    c = job.cell
    src, tgt = zoos[c.source], zoos[c.target]
    cell = dataclasses.replace(
        c, train=c.source_split.view(src, "train"), val=c.source_split.view(src, "val"),
        test=c.target_split.view(tgt, "test"),
    )
    return Job(job.method, cell, job.overrides)


class _Collecting(_Runner):
    """A runner on a worker: makes each cell's row and predictions and keeps them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cells: list[tuple[int, str, dict[str, Any], pd.DataFrame | None, str | None]] = []
        self.index: dict[Any, int] = {}

    def store(self, job: Job, status: str, row: dict[str, Any], preds: pd.DataFrame | None,
              error: str | None = None) -> None:
        self.cells.append((self.index[job.key], status, row, preds, error))


def fit_group(jobs: list[Job], refs: list[ZooRef], config: MethodConfig, device: str,
              suite: str | None, evaluator: Evaluator,
              run_id: str) -> tuple[list[tuple], list[dict]]:
    """The Ray task body: verify zoos, fit once, score each cell; returns
    [(job index, status, row, predictions, error)] for the driver to store, and the log
    records of the fit (`zoo_bench.logs.captured`). Rows carry the driver's `run_id` and this
    worker's own facts (torch version, device, memory)."""
    zoos = {r.name: open_verified(r) for r in refs}
    group = [_rebuild(j, zoos) for j in jobs]
    first = group[0]
    runner = _Collecting(Path("."), device, {(first.method, first.overrides): config}, suite,
                         evaluator, False, RunReport(Path("."), []), lambda job, status: None)
    runner.prov = dataclasses.replace(runner.prov, run_id=run_id)
    runner.default_threads = 1
    runner.index = {j.key: i for i, j in enumerate(group)}
    with captured() as records:  # the worker's log records travel back with its cells
        runner.run_group(group)
    return runner.cells, records


def _resources(config: MethodConfig, device: str) -> dict[str, float]:
    """What a fit holds: `num_cpus` (default 1); `num_gpus` (default 1 when the run's device
    is CUDA, else 0)."""
    cuda = device.startswith("cuda") or (device == "auto" and _cuda_available())
    return {"num_cpus": float(fit_threads(config.budget, 1) or 1),
            "num_gpus": float(config.budget.get("num_gpus", 1 if cuda else 0))}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class RayExecutor:
    """Runs fit groups as Ray tasks: a local Ray instance (`num_cpus` CPUs, no dashboard)
    unless `address` names a running cluster; reuses Ray when it is already initialised."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 max_retries: int = DEFAULT_RETRIES) -> None:
        require_ray()
        self.address, self.num_cpus, self.max_retries = address, num_cpus, max_retries

    def _init(self) -> bool:
        import ray

        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ZooBenchError(
                    f"cannot join the Ray cluster at {self.address!r} ({e}); start one with "
                    "`ray start --head` or leave out --address for a local Ray instance"
                ) from None
        else:
            ray.init(num_cpus=self.num_cpus or os.cpu_count() or 1, **kwargs)
        return True

    def run(self, runner: _Runner, groups: list[list[Job]],
            status: Callable[[str], None]) -> None:
        """Submit every group, store cells as their tasks return, cancel all on Ctrl-C."""
        import ray

        if not groups:
            return
        started = self._init()
        try:
            remote = ray.remote(fit_group)
            pending: dict[Any, list[Job]] = {}
            for group in groups:
                first = group[0]
                config = runner.configs[(first.method, first.overrides)]
                ref = remote.options(
                    max_retries=self.max_retries, retry_exceptions=False,
                    name=f"zoo-bench fit {first.method} {first.cell.source} seed "
                    f"{first.cell.seed}", **_resources(config, runner.device),
                ).remote([_light(j) for j in group], _refs(group), config, runner.device,
                         runner.suite, runner.evaluator, runner.prov.run_id)
                pending[ref] = group

            def store(group: list[Job], result: tuple[list[tuple], list[dict]]) -> None:
                cells, records = result
                replay(records)
                for index, st, row, preds, error in cells:
                    runner.store(group[index], st, row, preds, error)

            _drain(ray, pending, store, on_wait=lambda n: status(f"{n} fits on Ray"))
        finally:
            if started:
                ray.shutdown()


WAIT_S = 0.5  # the longest the driver waits inside Ray before Python can see a Ctrl-C


def _wait_one(ray: Any, pending: Mapping[Any, Any]) -> Any | None:
    """One finished task's ref, or None after `WAIT_S`: a blocking `ray.wait` holds the driver
    in native code, where a Ctrl-C is not seen until some task returns, which may be never."""
    done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
    return done[0] if done else None


def _drain(ray: Any, pending: dict[Any, Any], handle: Callable[[Any, Any], None],
           on_wait: Callable[[int], None] | None = None) -> None:
    """Hand each task's item and result to `handle` as tasks finish (the driver alone writes);
    on any error or Ctrl-C cancel every task still pending, then re-raise."""
    try:
        while pending:
            if on_wait is not None:
                on_wait(len(pending))
            done = _wait_one(ray, pending)
            if done is not None:
                handle(pending.pop(done), _result(ray, done))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """A `host:port` address answers a TCP connect within `timeout` s (Ray itself retries an
    unreachable one for many minutes); `auto` and `ray://` addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or address.startswith("ray://") or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ZooBenchError(
            f"no Ray cluster answers at {address} ({e}); start one with `ray start --head` "
            "and pass the address it prints, or leave out --address for a local Ray instance"
        ) from None


def _result(ray: Any, ref: Any) -> list[tuple]:
    """A task's cells; a task that failed (zoo mismatch, retries used up) raises a clear error."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, ZooBenchError):
            raise ZooBenchError(str(cause)) from None
        raise ZooBenchError(f"a Ray fit task failed: {e}") from None
    except ray.exceptions.RayError as e:
        raise ZooBenchError(
            f"a Ray fit task was lost ({type(e).__name__}: {e}); its cells are not stored, run "
            "again to compute them"
        ) from None


# --- zoo generation ------------------------------------------------------------------------


def _generation_env() -> dict[str, str]:
    """The environment a generation worker trains under: the local workers' kernel pins
    (`population.PINNED_ENV`), so Ray and local generation give the same bytes."""
    from zoo_bench.generate.population import PINNED_ENV

    return dict(PINNED_ENV)


def train_group_task(task: Any) -> tuple[Any, dict[str, Any]]:
    """The Ray task body of generation: train one group, return (weights, shard JSON body)."""
    from zoo_bench.generate.population import train_shard

    return train_shard(task)


class RayGroupRunner:
    """Trains generation groups as Ray tasks (one CPU each, the local workers' environment);
    the driver writes each shard as it lands, so resume and assembly are the local path's."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 max_retries: int = DEFAULT_RETRIES) -> None:
        self._ray = RayExecutor(address, num_cpus, max_retries)

    def __call__(self, tasks: Any, workers: int, on_epoch: Callable[[str, int], None]) -> None:
        """Train every task (`workers` is the cluster's business here and is ignored)."""
        import ray

        from zoo_bench.generate.population import write_shard

        if not tasks:
            return
        started = self._ray._init()
        try:
            remote = ray.remote(train_group_task).options(
                num_cpus=1, max_retries=self._ray.max_retries, retry_exceptions=False,
                runtime_env={"env_vars": _generation_env()},
            )
            pending = {remote.remote(t): t for t in tasks}

            def write(task: Any, shard: tuple[Any, dict[str, Any]]) -> None:
                write_shard(task, *shard)
                on_epoch(task.config.name, len(task.run_indices) * task.config.epochs)

            _drain(ray, pending, write)
        finally:
            if started:
                ray.shutdown()
