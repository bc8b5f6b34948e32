"""Shared test fixtures: small zoos written with the public ZooWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo_bench import Zoo, ZooWriter
from zoo_bench.families import ctc

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture
def make_zoo(tmp_path):
    """Factory: a random-weight ctc zoo with `runs` runs x `epochs` checkpoints, opened."""

    def make(runs: int = 6, epochs: tuple[int, ...] = (0, 2), seed: int = 0, name: str = "toy",
             dataset: str = "toy") -> Zoo:
        arch = ctc(size=16)
        rng = np.random.default_rng(seed)
        out = tmp_path / name
        with ZooWriter(out, name, [arch], {"kind": "test"}) as w:
            for r in range(runs):
                flats = rng.normal(0, 0.3, size=(len(epochs), arch.n_params)).astype(np.float32)
                rows = [
                    dict(run_id=f"run{r}", dataset=dataset, epoch=e, hp_activation="relu",
                         hp_learning_rate=float(rng.uniform(1e-4, 1e-1)),
                         test_accuracy=float(rng.uniform()), train_accuracy=float(rng.uniform()),
                         test_loss=float(rng.uniform()), train_loss=float(rng.uniform()))
                    for e in epochs
                ]
                w.add_many(arch.name, flats, rows)
        return Zoo.open(out)

    return make


@pytest.fixture
def one_thread():
    """Run a test's torch work on one intra-op thread (restored after): for tiny tensors extra
    threads only add synchronisation, which costs seconds on a busy shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
