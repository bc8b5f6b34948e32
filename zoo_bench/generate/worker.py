"""A generation worker process: `python -m zoo_bench.generate.worker`.

Reads one JSON group task per line on stdin, trains it on one thread, writes its shard, and
reports on stdout: ``epoch <n>`` after each epoch (n networks), ``done <group>`` at the end.
Plain subprocesses rather than multiprocessing, so callers need no ``__main__`` guard.
"""

from __future__ import annotations

import json
import sys

import torch

from zoo_bench.generate.population import run_group, task_from_dict


def main() -> None:
    torch.set_num_threads(1)
    for line in sys.stdin:
        task = task_from_dict(json.loads(line))
        run_group(task, on_epoch=lambda n: print(f"epoch {n}", flush=True))
        print(f"done {task.group}", flush=True)


if __name__ == "__main__":
    main()
