"""A slow test predictor for tests/test_ray.py, registered on Ray workers too: the tests start
Ray with this folder on PYTHONPATH and `ray_plugin.register` as the worker set-up hook (the way
a plug-in that is not installed on the nodes reaches them through Ray's runtime environment)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from zoo_bench.predictor import Predictor, register_predictor


class SlowMean(Predictor):
    """Predicts a network's mean weight; its fit writes `<marks>/<pid>-<n>` holding its torch
    thread count, then sleeps `sleep` s (so a test can find the worker and kill it mid-fit).
    With `gate` (a folder), only the first fit of all proceeds: every later one waits until
    `<gate>/open` exists, so a test can interrupt a run that cannot have finished. With `say`,
    its fit logs that text as a warning."""

    defaults = {"sleep": 0.0, "marks": "", "gate": "", "say": ""}

    def fit(self, train, val, target, ctx):
        h = self.hparams()
        if h["say"]:  # a log record from inside the fit (on a Ray worker: forwarded)
            logging.getLogger(__name__).warning("%s", h["say"])
        if h["marks"]:
            marks = Path(h["marks"])
            n = len(list(marks.glob(f"{os.getpid()}-*")))
            (marks / f"{os.getpid()}-{n}").write_text(str(torch.get_num_threads()))
        if h["gate"]:
            gate = Path(h["gate"])
            try:
                os.close(os.open(gate / "first", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                while not (gate / "open").exists():
                    time.sleep(0.05)
        time.sleep(h["sleep"])

    def predict(self, zoo):
        return np.array([float(np.mean(zoo.flat(i))) for i in range(len(zoo))])


def register() -> None:
    """Register `ray-slow` (idempotent: the driver and every worker call it)."""
    register_predictor("ray-slow")(SlowMean)
