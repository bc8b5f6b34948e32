"""`--executor ray`: same rows as the local executor, zoo verification on the worker, a worker
killed mid-fit retried, Ctrl-C on the driver leaving only complete cells.

Ray runs as a local instance the tests start (2 CPUs, no dashboard); the waits are generous so
a busy machine does not fail them. Without Ray these tests skip, except under CI=true, where a
missing Ray is a failure (CI installs it: scripts/env.sh).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import HANG_SECONDS

from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.results import read_cells, read_predictions
from zoo_bench.runner import plan_jobs, run_jobs
from zoo_bench.store import Zoo
from zoo_bench.suite import load_suite

HERE = Path(__file__).resolve().parent
FAST = Evaluator(n_boot=50)

try:
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("ray is not installed (pip install 'zoo-bench[ray]')", allow_module_level=True)

from ray_plugin import register  # noqa: E402  (after the skip: needs nothing of Ray, but pairs)

from zoo_bench.ray_executor import RayExecutor, ZooRef, open_verified  # noqa: E402

register()
RUNTIME_ENV = {"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])},
               "worker_process_setup_hook": "ray_plugin.register"}
INIT = dict(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=RUNTIME_ENV,
            _system_config={"health_check_timeout_ms": 60_000})


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module's in-process tests."""
    ray.init(**INIT)
    yield
    ray.shutdown()


@pytest.fixture
def toy(make_zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    return {n: make_zoo(runs=12, seed=i, name=n, dataset=d)
            for i, (n, d) in enumerate([("toy-d1-ctc", "d1"), ("toy-d2-ctc", "d2")])}


def _cells(results: Path) -> pd.DataFrame:
    return read_cells(results).sort_values("cell_key").reset_index(drop=True)


def _same_scores(a: Path, b: Path) -> None:
    """Equal rows (status, tau and its interval, fit sharing) and bit-equal predictions."""
    ra, rb = _cells(a), _cells(b)
    cols = ["cell_key", "status", "kendall_tau", "kendall_tau_lo", "kendall_tau_hi",
            "fit_key", "fit_shared_by", "n_test", "hparams", "budget"]
    pd.testing.assert_frame_equal(ra[cols], rb[cols])
    pa = read_predictions(a).sort_values(["cell_key", "network_id"]).reset_index(drop=True)
    pb = read_predictions(b).sort_values(["cell_key", "network_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(pa, pb)


def test_a_ci_slice_through_ray_gives_the_local_rows(ci_zoos, local_ray, tmp_path):
    suite = load_suite("ci")
    ctc = {name: zoo for name, zoo in ci_zoos.items() if name.endswith("-ctc")}  # 2 fits/method
    jobs = plan_jobs(ctc, ["statnn", "mlp"], ["standard", "cross_dataset"], [0], suite.property)
    kw = {"device": "cpu", "progress": False, "evaluator": FAST, "suite": suite}
    local = run_jobs(jobs, tmp_path / "local", **kw)
    remote = run_jobs(jobs, tmp_path / "ray", executor=RayExecutor(), **kw)
    assert not local.errors and not remote.errors
    assert {k.digest for k in remote.computed} == {j.key.digest for j in jobs}
    assert len(remote.computed) == len(local.computed) == len(jobs)
    _same_scores(tmp_path / "local", tmp_path / "ray")
    rows = _cells(tmp_path / "ray")
    assert rows["run_id"].nunique() == 1 and rows["cell_key"].is_unique
    again = run_jobs(jobs, tmp_path / "ray", executor=RayExecutor(), **kw)
    assert len(again.skipped) == len(jobs) and not again.computed  # resume as with local


def test_a_workers_log_records_reach_the_drivers_handlers(toy, local_ray, tmp_path, caplog):
    jobs = plan_jobs(toy, ["ray-slow"], ["standard"], [0], "test_accuracy")
    with caplog.at_level(logging.INFO):
        report = run_jobs(jobs, tmp_path / "r", device="cpu", progress=False, evaluator=FAST,
                          budgets={"ray-slow": {"say": "hello from a worker"}},
                          executor=RayExecutor())
    assert not report.errors
    said = [r for r in caplog.records if r.getMessage().endswith("] hello from a worker")]
    assert len(said) == len(toy)  # one record per fit, each sent back by its Ray task
    assert all(r.name == "ray_plugin" and "pid" in r.getMessage() for r in said)


def test_a_worker_seeing_other_zoo_bytes_fails_clearly(toy, local_ray, tmp_path):
    zoo = next(iter(toy.values()))
    open_verified(ZooRef(zoo.name, str(zoo.path), zoo.manifest_sha256))
    with pytest.raises(ZooBenchError, match="driver's has 0000000000000000"):
        open_verified(ZooRef(zoo.name, str(zoo.path), "0" * 64))
    jobs = plan_jobs(toy, ["ray-slow"], ["standard"], [0], "test_accuracy")
    (zoo.path / "weights.f32").write_bytes(b"\0" * (zoo.path / "weights.f32").stat().st_size)
    with pytest.raises(ZooBenchError, match="sha256 differs from the manifest"):
        run_jobs(jobs, tmp_path / "r", device="cpu", progress=False, evaluator=FAST,
                 executor=RayExecutor())
    # The other zoo's fit runs beside it and may land first: its cell is whole and right.
    # Nothing was scored on the damaged zoo.
    stored = read_cells(tmp_path / "r")
    assert zoo.name not in set(stored.get("source", ())) and len(stored) < len(jobs)


def test_a_worker_killed_mid_fit_is_retried_and_each_cell_written_once(toy, local_ray,
                                                                        tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = plan_jobs(toy, ["ray-slow"], ["standard", "cross_dataset"], [0], "test_accuracy")
    budgets = {"ray-slow": {"sleep": 3.0, "marks": str(marks)}}
    killed: list[int] = []

    def kill_first_fit() -> None:
        deadline = time.monotonic() + HANG_SECONDS
        while not list(marks.iterdir()):
            assert time.monotonic() < deadline, f"no fit started in {HANG_SECONDS} s: hung?"
            time.sleep(0.05)
        pid = int(sorted(marks.iterdir())[0].name.split("-")[0])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    import threading

    killer = threading.Thread(target=kill_first_fit)
    killer.start()
    report = run_jobs(jobs, tmp_path / "r", device="cpu", progress=False, evaluator=FAST,
                      budgets=budgets, executor=RayExecutor(max_retries=3))
    killer.join(timeout=HANG_SECONDS + 10)
    assert killed, "the killer thread found no fit to kill"
    assert not report.errors and len(report.computed) == len(jobs)
    rows = read_cells(tmp_path / "r")
    assert len(rows) == len(jobs) and rows["cell_key"].is_unique
    assert set(rows["status"]) == {"ok"}
    fits = sorted(p.name for p in marks.iterdir())
    assert len(fits) == len({j.fit_key for j in jobs}) + 1, fits  # one fit ran twice
    preds = read_predictions(tmp_path / "r")
    assert set(preds["cell_key"]) == set(rows["cell_key"])
    assert not preds.duplicated(["cell_key", "network_id"]).any()


CHILD = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the parent ignores Ctrl-C
sys.path.insert(0, {tests!r})
import ray
from ray_plugin import register
from test_ray import INIT
from zoo_bench.evaluator import Evaluator
from zoo_bench.ray_executor import RayExecutor
from zoo_bench.runner import plan_jobs, run_jobs
from zoo_bench.store import Zoo

register()
ray.init(**INIT)
zoos = {{p.split('/')[-1]: Zoo.open(p) for p in {zoo_paths!r}}}
jobs = plan_jobs(zoos, ["ray-slow"], ["standard", "cross_dataset"], [0, 1], "test_accuracy")
run_jobs(jobs, {results!r}, device="cpu", progress=False, evaluator=Evaluator(n_boot=50),
         budgets={{"ray-slow": {{"gate": {gate!r}}}}}, executor=RayExecutor())
"""


def test_ctrl_c_cancels_the_tasks_and_leaves_only_complete_cells(toy, tmp_path):
    results, gate = tmp_path / "r", tmp_path / "gate"
    gate.mkdir()  # only the first fit runs; the others wait for a gate that never opens
    script = CHILD.format(tests=str(HERE), zoo_paths=[str(z.path) for z in toy.values()],
                          results=str(results), gate=str(gate))
    child = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + HANG_SECONDS
    while not list((results / "cells").rglob("*.parquet")):
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, f"no cell appeared in {HANG_SECONDS} s: hung?"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=HANG_SECONDS)
    assert child.returncode != 0 and b"KeyboardInterrupt" in err, err.decode()[-3000:]
    stored = read_cells(results)
    jobs = plan_jobs(toy, ["ray-slow"], ["standard", "cross_dataset"], [0, 1], "test_accuracy")
    assert 1 <= len(stored) < len(jobs), "Ctrl-C came after the first fit, before the last"
    assert set(stored["status"]) == {"ok"} and stored["cell_key"].is_unique
    # A cell's predictions are written before its row, and the row is what stores the cell: a
    # Ctrl-C between the two leaves predictions without a row, which readers of stored cells
    # (read_predictions of their keys, rescore) never see and the resumed run rewrites.
    assert set(stored["cell_key"]) <= set(read_predictions(results)["cell_key"])
    preds = read_predictions(results, stored["cell_key"])
    assert set(preds["cell_key"]) == set(stored["cell_key"])  # every stored cell is whole
    for key, part in preds.groupby("cell_key"):
        assert len(part) == int(stored.set_index("cell_key").loc[key, "n_test"])
    assert not list(results.rglob("*.tmp*")), "a half-written file was left behind"

    (gate / "open").touch()  # the same configuration, now free to finish
    report = run_jobs(jobs, results, device="cpu", progress=False, evaluator=FAST,
                      budgets={"ray-slow": {"gate": str(gate)}})
    assert {k.digest for k in report.skipped} == set(stored["cell_key"])
    assert len(report.computed) == len(jobs) - len(stored)
    rows = read_cells(results)
    assert len(rows) == len(jobs) and rows["cell_key"].is_unique


def test_cli_without_ray_names_the_extra(monkeypatch):
    import importlib.util

    from zoo_bench.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    out = CliRunner().invoke(main, ["run", "--suite", "ci", "--executor", "ray"])
    assert out.exit_code != 0 and "pip install 'zoo-bench[ray]'" in out.output
    out = CliRunner().invoke(main, ["run", "--suite", "ci", "--address", "auto"])
    assert out.exit_code != 0 and "--address and --ray-cpus need --executor ray" in out.output


def test_an_address_nobody_answers_fails_at_once_with_the_fix():
    from zoo_bench.ray_executor import _check_reachable

    with pytest.raises(ZooBenchError, match="no Ray cluster answers at 127.0.0.1:1.*ray start"):
        _check_reachable("127.0.0.1:1")
    _check_reachable("auto")  # left to Ray


def test_resource_keys_are_validated_like_every_budget_key(tmp_path):
    from zoo_bench.suite import SuiteError

    bad = tmp_path / "suite.toml"
    bad.write_text('[suites.s]\nzoos = ["a"]\ntasks = ["standard"]\nmethods = ["statnn"]\n'
                   'seeds = [0]\n[suites.s.budgets.statnn]\nnum_cpus = 0\n')
    with pytest.raises(SuiteError, match="num_cpus must be a positive integer"):
        load_suite("s", bad)
    bad.write_text(bad.read_text().replace("num_cpus = 0", "num_gpus = -1"))
    with pytest.raises(SuiteError, match="num_gpus must be a number >= 0"):
        load_suite("s", bad)
    bad.write_text(bad.read_text().replace("num_gpus = -1", "num_cpu = 2"))
    with pytest.raises(SuiteError, match="did you mean 'num_cpus'"):
        load_suite("s", bad)
    good = bad.read_text().replace("num_cpu = 2", "num_cpus = 2\nnum_gpus = 0.5")
    bad.write_text(good)
    assert load_suite("s", bad).budgets["statnn"]["num_cpus"] == 2


def test_a_fit_runs_on_one_thread_per_cpu_it_holds_on_both_executors(toy, local_ray,
                                                                       tmp_path):
    def threads(executor, budget):
        marks = tmp_path / f"marks-{len(list(tmp_path.iterdir()))}"
        marks.mkdir()
        jobs = plan_jobs(toy, ["ray-slow"], ["standard"], [0], "test_accuracy")
        run_jobs(jobs, marks / "r", device="cpu", progress=False, evaluator=FAST,
                 budgets={"ray-slow": {"marks": str(marks), **budget}}, executor=executor)
        return {p.read_text() for p in marks.iterdir() if p.is_file()}

    assert threads(None, {"num_cpus": 2}) == {"2"}
    assert threads(RayExecutor(), {"num_cpus": 2}) == {"2"}
    assert threads(RayExecutor(), {}) == {"1"}  # Ray's default: one CPU, one thread


def test_generation_through_ray_gives_the_local_bytes(local_ray, tmp_path):
    from zoo_bench.generate import generate_preset
    from zoo_bench.ray_executor import RayGroupRunner

    tiny = {"datasets": ["digits"], "families": ["ctc"], "runs": 6, "epochs": 2,
            "group_size": 2}

    def make(name, **kw):
        out = generate_preset("ci", out_dir=tmp_path / name, progress=False, overrides=tiny,
                              **kw)["ci-digits-ctc"]
        return (out / "weights.f32").read_bytes(), Zoo.open(out).table

    local_bytes, local_table = make("local", workers=2)
    ray_bytes, ray_table = make("ray", runner=RayGroupRunner())
    assert len(local_bytes) > 0 and ray_bytes == local_bytes
    pd.testing.assert_frame_equal(ray_table, local_table)
