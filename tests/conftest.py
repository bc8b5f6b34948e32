"""Shared test fixtures: small zoos written with the public ZooWriter."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from zoo_bench import Zoo, ZooWriter
from zoo_bench.families import ctc

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
# Wall-clock limits in tests exist only to end a hung child: far above what any of them takes on
# a machine starved by other work (a test waits on events, never on how fast they come).
HANG_SECONDS = 1800


@pytest.fixture
def make_zoo(tmp_path):
    """Factory: a random-weight ctc zoo (`units` hidden channels) with `runs` runs x `epochs`
    checkpoints, opened."""

    def make(runs: int = 6, epochs: tuple[int, ...] = (0, 2), seed: int = 0, name: str = "toy",
             dataset: str = "toy", units: int = 16) -> Zoo:
        arch = ctc(units=units, size=16)
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


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Every test runs its torch work on one intra-op thread. Float sums change with the thread
    count, so a fit compared bit for bit with another must run on the same count: pinning it for
    the whole session makes that hold for every comparison, whatever the machine's core count.
    (For these tiny tensors extra threads only add synchronisation on a busy machine.)"""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory):
    """Tests never read or write the user's zoo cache: ZOO_BENCH_HOME points at a folder of
    this session (of this xdist worker); tests that need another home set their own."""
    before = os.environ.get("ZOO_BENCH_HOME")
    os.environ["ZOO_BENCH_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if before is None:
        os.environ.pop("ZOO_BENCH_HOME", None)
    else:
        os.environ["ZOO_BENCH_HOME"] = before


@pytest.fixture(scope="session")
def ci_zoos(tmp_path_factory) -> dict[str, Zoo]:
    """The ci preset's digits and mnist1d zoos (ctc and cnn_small), generated once per test run
    and shared by every test that needs a real trained zoo. Under pytest-xdist (`scripts/test.sh`
    runs one worker per core) the workers share one copy: the first generates it under a file
    lock, the others find the zoos complete and open them."""
    paths = _shared_ci_zoos(tmp_path_factory, only=["digits", "mnist1d"])
    return {name: Zoo.open(path) for name, path in paths.items()}


@pytest.fixture(scope="session")
def ci_zoo_folder(tmp_path_factory) -> Path:
    """A folder holding every zoo of the ci preset (the shared digits and mnist1d ones, plus
    shapes): link it as `<home>/zoos` to run the whole ci suite without generating it again."""
    paths = _shared_ci_zoos(tmp_path_factory, only=None)
    return next(iter(paths.values())).parent


def _shared_ci_zoos(tmp_path_factory, only: list[str] | None) -> dict[str, Path]:
    """Generate (once per test run, under a file lock shared by the xdist workers) the ci
    preset's zoos for `only` these datasets (None: all) into one folder; zoos already complete
    there are skipped."""
    from filelock import FileLock

    from zoo_bench.generate import generate_preset

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above every worker's own
    with FileLock(str(base / "ci_zoos.lock")):
        return generate_preset("ci", out_dir=base / "ci_zoos", only=only, progress=False)


def _weight_statistic(zoo: Zoo, name: str) -> np.ndarray:
    """One number per network: the mean |w| or the L2 norm of all its weights."""
    flats = zoo.flat_batch(np.arange(len(zoo)))  # (N, P); one architecture per zoo here
    return np.abs(flats).mean(1) if name == "mean_abs" else np.linalg.norm(flats, axis=1)


@pytest.fixture(scope="session")
def trivial_tau():
    """Mean test tau over `cells` of the better of two predictors with no parameters (mean |w|
    and L2 norm of a network's weights), each with its sign chosen on the cell's training split:
    the bar a learned method must clear on the same cells."""
    from zoo_bench.evaluator import kendall_tau

    def score(cells, prop: str = "test_accuracy") -> float:
        best = -1.0
        for name in ("mean_abs", "l2"):
            taus = []
            for cell in cells:
                sign = np.sign(kendall_tau(cell.train.targets(prop),
                                           _weight_statistic(cell.train, name))) or 1.0
                taus.append(kendall_tau(cell.test.targets(prop),
                                        sign * _weight_statistic(cell.test, name)))
            best = max(best, float(np.mean(taus)))
        return best

    return score
