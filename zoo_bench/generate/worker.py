"""A generation worker process: `python -m zoo_bench.generate.worker`.

Started by `population._run_tasks` with `population.PINNED_ENV` in its environment, so its
kernels are the same on every x86-64 CPU. Reads one JSON group task per line on stdin, trains it
on one thread, writes its shard, and
reports on stdout: ``<TAG> epoch <n>`` after each epoch (n networks), ``<TAG> done <group>`` at
the end; other output lines are ignored. Plain subprocesses rather than multiprocessing, so
callers need no ``__main__`` guard.
"""

from __future__ import annotations

import json
import sys

import torch

from zoo_bench.generate.population import WORKER_TAG, run_group, task_from_dict


def main() -> None:
    torch.set_num_threads(1)
    for line in sys.stdin:
        task = task_from_dict(json.loads(line))
        run_group(task, on_epoch=lambda n: print(f"{WORKER_TAG} epoch {n}", flush=True))
        print(f"{WORKER_TAG} done {task.group}", flush=True)


if __name__ == "__main__":
    main()
