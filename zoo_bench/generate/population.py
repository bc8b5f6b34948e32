"""Generate zoos: plan groups of runs, train them (in worker processes), keep finished groups as
shards, and assemble each zoo with `ZooWriter` once all its groups are done.

Work in progress lives in a hidden folder beside the zoo, ``.<name>.work/``: the plan (the
configuration's hash) and one shard per finished group (``group-00012.npy`` weights, then
``group-00012.json`` metrics, written atomically, the JSON last). An interrupted generation
rerun with the same configuration trains only the groups without a shard, and yields the same
zoo, bit for bit, as an uninterrupted one: every group is trained on one CPU thread from seeds
fixed by the plan, whichever process or order it runs in.

Float kernels differ by CPU instruction set: PyTorch's own (ATen), oneDNN's convolutions and
MKL's matrix products each pick AVX-512, AVX2 or SSE code at run time, and each choice changes
the trained weights. Worker processes therefore run with `PINNED_ENV`, whatever the caller's
environment: every library capped at its baseline x86-64 code path (ATen `default`, oneDNN
SSE4.1, MKL's conditional numerical reproducibility `COMPATIBLE,STRICT`), strict float maths and
one thread, so the same seed gives the same zoo bytes on any x86-64 CPU with SSE4.1 and the same
torch build.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo_bench.arch import Architecture
from zoo_bench.atomic import replace_atomic, write_text_atomic
from zoo_bench.errors import ZooBenchError, ZooFormatError
from zoo_bench.generate.datasets import load_dataset, load_signal
from zoo_bench.generate.hyper import INR_FAMILIES, InrRunSpec, RunSpec, sample_runs
from zoo_bench.generate.inr import train_inr_group
from zoo_bench.generate.presets import ZooConfig
from zoo_bench.generate.trainer import train_group
from zoo_bench.store import MANIFEST, ZooWriter

GENERATOR = "zoo_bench.generate"
PLAN = "plan.json"
WORKER_TAG = "zoo-bench-worker:"  # marks a worker's protocol lines among anything else it prints
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "default",  # PyTorch's vectorised kernels: no AVX2 / AVX-512 paths
    "ONEDNN_MAX_CPU_ISA": "SSE41",  # oneDNN (convolutions): its lowest code path
    "DNNL_MAX_CPU_ISA": "SSE41",  # the same, by oneDNN's older name
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",  # no implicit bf16 / tf32 down-conversion
    "DNNL_DEFAULT_FPMATH_MODE": "STRICT",
    "MKL_CBWR": "COMPATIBLE,STRICT",  # MKL (matrix products): one code path on every x86 CPU
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


TaskRunner = Callable[[Sequence["GroupTask"], int, Callable[[str, int], None]], None]


class GenerationError(ZooBenchError):
    """A zoo cannot be generated as asked (conflicting existing zoo or work folder, bad input)."""


@dataclass(frozen=True)
class DataSource:
    """Where vision datasets are read from (built-in ones need nothing)."""

    root: str | None = None
    download: bool = False


@dataclass(frozen=True)
class GroupTask:
    """One group of runs of one zoo: what a worker needs to train it and write its shard."""

    config: ZooConfig
    group: int
    run_indices: tuple[int, ...]
    work: Path
    device: str
    data: DataSource
    cost: float = 0.0


def zoo_runs(config: ZooConfig, data: DataSource = DataSource()) -> list[RunSpec | InrRunSpec]:
    """The zoo's runs, each with its sampled architecture and hyperparameters."""
    if config.family in INR_FAMILIES:
        signal = load_signal(config.dataset)
        return sample_runs(config.runs, config.family, config.dataset, config.seed,
                           signal.in_features, 0, config.space)
    d = load_dataset(config.dataset, data.root, download=False)
    return sample_runs(
        config.runs, config.family, config.dataset, config.seed, d.in_channels, d.image_size,
        config.space,
    )


def plan_groups(config: ZooConfig, runs: Sequence[RunSpec | InrRunSpec]) -> list[list[int]]:
    """Run indices per group: one architecture and train fraction per group (so every network
    takes the same number of steps; `RunSpec.group_key`), at most `group_size` runs, sizes
    balanced.

    Inside a group runs are ordered by (dropout on, activation), so each kind is contiguous.
    """
    cells: dict[tuple[str, float], list[RunSpec | InrRunSpec]] = {}
    for r in runs:
        cells.setdefault(r.group_key(), []).append(r)
    groups = []
    for key in sorted(cells):
        members = sorted(cells[key], key=lambda r: r.order_key())
        parts = -(-len(members) // config.group_size)
        for chunk in np.array_split(np.arange(len(members)), parts):
            groups.append([members[i].index for i in chunk])
    return groups


def work_dir(out: Path) -> Path:
    """The hidden folder holding an unfinished zoo's plan and shards."""
    return out.parent / f".{out.name}.work"


def _shard_paths(work: Path, group: int) -> tuple[Path, Path]:
    stem = work / f"group-{group:05d}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def arch_macs(arch: Architecture) -> int:
    """Multiply-accumulates of one forward pass of one example (roughly, for a transformer)."""
    if arch.transformer:
        patches, tokens = arch.tokens()
        embed, *rest = arch.layers
        attention = 2 * tokens * tokens * embed.fan_out * sum(la.kind == "attn_q" for la in rest)
        return patches * math.prod(embed.weight_shape) + attention + tokens * sum(
            math.prod(la.weight_shape) for la in rest if la.kind != "layernorm")
    convs = arch.conv_shapes()
    per_layer = [math.prod(la.weight_shape) for la in arch.layers]
    return sum(n * h * w for n, (_, h, w) in zip(per_layer, convs, strict=False)) + sum(
        per_layer[len(convs):]
    )


def group_cost(config: ZooConfig, runs: Sequence[RunSpec | InrRunSpec], n_train: int,
               n_test: int) -> float:
    """Rough compute of training and evaluating a group: examples times MACs (3x in training)."""
    if isinstance(runs[0], InrRunSpec):  # full-batch steps of the longest run
        examples = 3 * max(r.steps for r in runs) * n_train
        return examples * len(runs) * arch_macs(runs[0].arch)
    n_sub = runs[0].train_fraction * n_train
    examples = 3 * config.epochs * n_sub + len(config.checkpoints) * (n_sub + n_test)
    return examples * sum(arch_macs(r.arch) for r in runs)


def run_group(task: GroupTask, on_epoch: Callable[[int], None] | None = None) -> int:
    """Train one group on one CPU thread and write its shard; returns the group index."""
    write_shard(task, *train_shard(task, on_epoch))
    return task.group


def train_shard(task: GroupTask, on_epoch: Callable[[int], None] | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Train one group on one CPU thread: its weights (runs x checkpoints, n_params) and the
    shard's JSON body (group, runs, metrics); nothing is written (a remote worker returns them
    and the driver writes the shard)."""
    config = task.config
    runs = zoo_runs(config, task.data)
    members = [runs[i] for i in task.run_indices]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if config.family in INR_FAMILIES:  # full batch: the preset's batch_size does not apply
            result = train_inr_group(
                members[0].arch, members, load_signal(config.dataset), config.epochs,
                config.checkpoints, device=task.device, on_epoch=on_epoch,
            )
        else:
            result = train_group(
                members[0].arch, members, load_dataset(config.dataset, task.data.root),
                config.epochs, config.checkpoints, config.batch_size,
                seed=config.seed * 1_000_003 + task.group, device=task.device, on_epoch=on_epoch,
            )
    finally:
        torch.set_num_threads(threads)
    body = {
        "group": task.group,
        "runs": list(task.run_indices),
        "metrics": {k: v.tolist() for k, v in result.metrics.items()},
    }
    return result.flats, body


def write_shard(task: GroupTask, flats: np.ndarray, body: dict[str, Any]) -> None:
    """Write a trained group's shard atomically: weights first, the JSON (its done mark) last."""
    npy, meta = _shard_paths(task.work, task.group)
    replace_atomic(npy, lambda f: np.save(f, flats))
    write_text_atomic(meta, json.dumps(body))


# --- worker processes ------------------------------------------------------------------------


def task_to_dict(task: GroupTask) -> dict[str, Any]:
    return {
        "config": task.config.to_dict(), "group": task.group, "runs": list(task.run_indices),
        "work": str(task.work), "device": task.device,
        "data": {"root": task.data.root, "download": False},
    }


def task_from_dict(d: dict[str, Any]) -> GroupTask:
    return GroupTask(
        ZooConfig.from_dict(d["config"]), int(d["group"]), tuple(d["runs"]), Path(d["work"]),
        d["device"], DataSource(**d["data"]),
    )


def _run_tasks(
    tasks: Sequence[GroupTask], workers: int, on_epoch: Callable[[str, int], None],
    isolate: bool = True,
) -> None:
    """Train every task in worker subprocesses with `PINNED_ENV` (or, if not `isolate`, in this
    process with whatever kernels it has).

    Each worker takes the next task when it finishes one; if a worker fails, the others are
    stopped and its error is raised (finished shards stay, so a rerun resumes).
    """
    if not isolate:
        for t in tasks:
            run_group(t, on_epoch=lambda n, name=t.config.name: on_epoch(name, n))
        return
    if not tasks:
        return
    todo = list(reversed(tasks))
    env = {**os.environ, **PINNED_ENV}
    workers_ = [_Worker(env) for _ in range(min(workers, len(tasks)))]
    sel = selectors.DefaultSelector()
    try:
        for w in workers_:
            w.send(todo.pop())
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        while sel.get_map():
            for key, _ in sel.select():
                w = key.data
                lines = w.read_lines()
                if lines is None:
                    raise GenerationError(
                        f"a generation worker failed on group {w.task.group} of "
                        f"{w.task.config.name}:\n{w.error_tail()}"
                    )
                for line in lines:
                    words = line.split()
                    if len(words) != 3 or words[0] != WORKER_TAG:
                        continue
                    if words[1] == "epoch":
                        on_epoch(w.task.config.name, int(words[2]))
                    elif todo:
                        w.send(todo.pop())
                    else:
                        w.proc.stdin.close()
                        sel.unregister(key.fileobj)
    finally:
        for w in workers_:
            w.close()


class _Worker:
    """One `python -m zoo_bench.generate.worker` subprocess and its line protocol."""

    def __init__(self, env: dict[str, str]):
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoo_bench.generate.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.err, env=env,
        )
        self.buffer = b""
        self.task: GroupTask | None = None

    def send(self, task: GroupTask) -> None:
        self.task = task
        self.proc.stdin.write(json.dumps(task_to_dict(task)).encode() + b"\n")
        self.proc.stdin.flush()

    def read_lines(self) -> list[str] | None:
        """Complete lines received so far; None once the worker has exited."""
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode() for line in lines]

    def error_tail(self) -> str:
        self.proc.wait()
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None and not self.proc.stdin.closed:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.err.close()


# --- zoo state: complete, in progress, assembled -------------------------------------------


def source_of(
    config: ZooConfig, preset: str | None, device: str, data: DataSource, pinned: bool = True,
) -> dict[str, Any]:
    """The manifest's `source` entry for a generated zoo; `kernels` records the pinned
    environment the workers trained under (null: the caller's own kernels)."""
    return {
        "kind": "generated",
        "generator": GENERATOR,
        "preset": preset,
        "config": config.to_dict(),
        "config_sha256": config.sha256(),
        "dataset_sha256": load_dataset(config.dataset, data.root).sha256(),
        "device": device,
        "torch": torch.__version__,
        "kernels": dict(PINNED_ENV) if pinned else None,
    }


def is_complete(config: ZooConfig, out: Path) -> bool:
    """True if `out` holds a finished zoo made from this configuration.

    A finished zoo from another configuration is an error unless it is to be overwritten.
    """
    manifest = out / MANIFEST
    if not manifest.is_file():
        return False
    try:
        body = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        raise ZooFormatError(
            f"{manifest} is not valid JSON; delete {out} and generate again"
        ) from None
    source = body.get("source") if isinstance(body, dict) else None
    if not isinstance(source, dict):
        raise ZooFormatError(
            f"{manifest} is not a zoo-bench manifest (no `source` object); delete {out} and "
            "generate again"
        )
    return source.get("config_sha256") == config.sha256()


@contextmanager
def _locked(work: Path) -> Iterator[None]:
    """Hold the work folder's lock: one process generates a given zoo at a time.

    A work folder that holds nothing but the lock when we let go (the zoo was complete, or
    nothing was started) is removed with it, so no empty ``.<name>.work/`` is left behind.
    """
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(f, fcntl.LOCK_EX)  # another process is at it: wait for it
        try:
            yield
        finally:
            if work.is_dir() and [p.name for p in work.iterdir()] == ["lock"]:
                (work / "lock").unlink(missing_ok=True)
                with suppress(OSError):
                    work.rmdir()


def _prepare(config: ZooConfig, work: Path, overwrite: bool, data: DataSource) -> set[int]:
    """Check or write the plan; return the groups that already have a shard."""
    plan = work / PLAN
    want = {
        "name": config.name, "config_sha256": config.sha256(), "config": config.to_dict(),
        "dataset_sha256": load_dataset(config.dataset, data.root).sha256(),
    }
    if plan.exists():
        have = json.loads(plan.read_text())
        same = all(have.get(k) == want[k] for k in ("config_sha256", "dataset_sha256"))
        if not same:
            if not overwrite:
                raise GenerationError(
                    f"{work} holds an unfinished generation of {config.name} with another "
                    "configuration or dataset; delete that folder or pass overwrite "
                    "(--overwrite) to restart"
                )
            for p in work.iterdir():
                if p.name != "lock":
                    p.unlink()
    write_text_atomic(plan, json.dumps(want, indent=2))
    return {
        int(p.stem.split("-")[1]) for p in work.glob("group-*.json")
        if _shard_paths(work, int(p.stem.split("-")[1]))[0].exists()
    }


def assemble(
    config: ZooConfig, runs: Sequence[RunSpec], groups: Sequence[Sequence[int]], work: Path,
    out: Path, source: dict[str, Any], overwrite: bool = False,
) -> Path:
    """Write the zoo from its shards, runs in index order, checkpoints in epoch order."""
    where: dict[int, tuple[np.ndarray, dict[str, list], int]] = {}
    for g in range(len(groups)):
        npy, meta = _shard_paths(work, g)
        body = json.loads(meta.read_text())
        flats = np.load(npy, mmap_mode="r")
        for pos, i in enumerate(body["runs"]):
            where[i] = (flats, body["metrics"], pos)
    archs = {r.arch.name: r.arch for r in runs}
    with ZooWriter(out, config.name, archs.values(), source, overwrite=overwrite) as w:
        for r in runs:
            flats, metrics, pos = where[r.index]
            hp = r.hp_columns()
            rows = []
            for k, epoch in enumerate(config.checkpoints):
                m = {name: float(values[k][pos]) for name, values in metrics.items()}
                finite = bool(np.isfinite(flats[k, pos]).all())
                rows.append({
                    "run_id": f"{config.name}-r{r.index:05d}",
                    "dataset": config.dataset,
                    "epoch": epoch,
                    **hp,
                    **r.property_columns(),
                    **m,
                    "diverged": not (finite and np.isfinite(m["train_loss"])
                                     and np.isfinite(m["test_loss"])),
                })
            w.add_many(r.arch.name, np.asarray(flats[:, pos]), pd.DataFrame(rows))
    return out


def generate_zoos(
    configs: Sequence[ZooConfig],
    outs: Sequence[Path],
    preset: str | None = None,
    device: str = "cpu",
    workers: int | None = None,
    data: DataSource = DataSource(),
    overwrite: bool = False,
    progress: bool = True,
    isolate: bool = True,
    runner: TaskRunner | None = None,
) -> dict[str, Path]:
    """Generate every zoo not already complete, resuming unfinished ones; name -> folder.

    `isolate` (the default) trains in worker processes whose kernels are pinned (`PINNED_ENV`),
    so the bytes do not depend on the CPU or the caller's environment; False trains in this
    process with its own kernels (for tests that patch the trainer; the bytes then depend on
    the CPU, and the manifest says so). `runner(tasks, workers, on_epoch)` trains the groups
    elsewhere and writes their shards here (e.g. `zoo_bench.ray_executor.RayGroupRunner`, whose
    tasks get the same pins).
    """
    _check_device(device)
    if device != "cpu":
        workers = 1
    elif workers is None:
        workers = len(os.sched_getaffinity(0))
    result: dict[str, Path] = {}
    todo = []
    for config, out in zip(configs, outs, strict=True):
        if not overwrite and is_complete(config, out):
            result[config.name] = out
        elif out.exists() and not overwrite and (out / MANIFEST).exists():
            raise GenerationError(
                f"{out} holds a zoo {config.name} made with another configuration; delete it, "
                "pass overwrite (--overwrite) or choose another output folder (--out)"
            )
        else:
            todo.append((config, out))
    if not todo:
        return result
    for config, _ in todo:
        load_dataset(config.dataset, data.root, download=data.download)

    with ExitStack() as stack:
        states = []
        tasks = []
        for config, out in todo:
            work = work_dir(out)
            stack.enter_context(_locked(work))
            if not overwrite and is_complete(config, out):  # made meanwhile by another process
                result[config.name] = out
                continue
            runs = zoo_runs(config, data)
            groups = plan_groups(config, runs)
            have = _prepare(config, work, overwrite, data)
            states.append((config, out, work, runs, groups))
            d = load_dataset(config.dataset, data.root)
            tasks += [
                GroupTask(config, g, tuple(groups[g]), work, device, data, group_cost(
                    config, [runs[i] for i in groups[g]], len(d.x_train), len(d.x_test)))
                for g in range(len(groups)) if g not in have
            ]
        tasks.sort(key=lambda t: -t.cost)  # largest first: workers finish close together
        bar = _Progress(states, tasks) if progress else None
        with bar or nullcontext():
            on_epoch = bar.epoch if bar else (lambda name, n: None)
            if runner is not None:
                runner(tasks, workers, on_epoch=on_epoch)
            else:
                _run_tasks(tasks, workers, on_epoch=on_epoch, isolate=isolate and device == "cpu")
        for config, out, work, runs, groups in states:
            source = source_of(config, preset, device, data, pinned=isolate and device == "cpu")
            result[config.name] = assemble(config, runs, groups, work, out, source, overwrite=True)
            shutil.rmtree(work, ignore_errors=True)
    return result


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise GenerationError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GenerationError(f"--device {device}: torch sees no CUDA device; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise GenerationError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")


class _Progress:
    """A rich progress bar per zoo: runs done of total, elapsed time and ETA."""

    def __init__(self, states: Sequence[tuple], tasks: Sequence[GroupTask]):
        from rich.progress import (
            BarColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from zoo_bench.progress import progress_bar

        self.bar = progress_bar(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[runs]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.ids = {}
        self.epochs = {}
        total = sum(c.runs * c.epochs for c, *_ in states)
        left = sum(len(t.run_indices) * t.config.epochs for t in tasks)
        self.all = self.bar.add_task("all zoos", total=total, completed=total - left, runs="")
        for config, *_ in states:
            todo = sum(len(t.run_indices) for t in tasks if t.config.name == config.name)
            done = config.runs - todo
            self.epochs[config.name] = config.epochs
            self.ids[config.name] = self.bar.add_task(
                config.name, total=config.runs * config.epochs, completed=done * config.epochs,
                runs=f"{done}/{config.runs} runs",
            )

    def epoch(self, name: str, n: int) -> None:
        tid = self.ids[name]
        self.bar.advance(tid, n)
        self.bar.advance(self.all, n)
        done = int(self.bar.tasks[tid].completed) // self.epochs[name]
        total = self.bar.tasks[tid].total // self.epochs[name]
        self.bar.update(tid, runs=f"{done}/{total:.0f} runs")

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)
