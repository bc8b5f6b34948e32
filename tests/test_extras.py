"""A missing optional extra never breaks what does not need it: with `nfn` not importable (as
after `pip install -e .` without the extra), a suite that lists the NFN methods still runs its
other methods, stores nothing for those, and says once which extra to install; `methods` shows
the install command; asking for such a method by name fails with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_SECONDS

from zoo_bench.registry import extra_providing
from zoo_bench.results import read_cells

HINT = "pip install 'zoo-bench[nfn]'"
# The CLI in an interpreter where `import nfn` fails as if the package were not installed.
WITHOUT_NFN = [sys.executable, "-c",
               "import sys; sys.modules['nfn'] = None; from zoo_bench.cli import main; main()"]
SUITE = """
[generate.tinyx]
datasets = ["digits"]
families = ["ctc"]
runs = 10
epochs = 1
checkpoints = [0, 1]
batch_size = 8

[suites.tinyx]
zoos = "generate:tinyx"
tasks = ["standard"]
methods = ["statnn", "sne", "nfn_np", "nft"]
seeds = [0]

[suites.tinyx.budgets.statnn]
max_epochs = 2
[suites.tinyx.budgets.sne]
max_steps = 3
patience_steps = 3
min_steps = 0
[suites.tinyx.budgets.nfn_np]
max_epochs = 2
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The suite file, and an environment whose cache holds its one tiny zoo."""
    from zoo_bench.generate import generate_preset
    from zoo_bench.spec import read_benchmark_toml

    root = tmp_path_factory.mktemp("extras")
    (root / "suite.toml").write_text(SUITE)
    table = read_benchmark_toml(root / "suite.toml")[1]["generate"]["tinyx"]
    generate_preset("tinyx", out_dir=root / "home" / "zoos", table=table, progress=False,
                    isolate=False)
    env = {**os.environ, "ZOO_BENCH_HOME": str(root / "home"), "COLUMNS": "80",
           "OMP_NUM_THREADS": "1"}
    return root, env


def without_nfn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*WITHOUT_NFN, *args], env=env, capture_output=True, text=True,
                          timeout=HANG_SECONDS)


def test_the_extra_is_found_from_the_distributions_metadata():
    from importlib import metadata

    dist = metadata.distribution("zoo-bench")
    assert extra_providing(dist, "nfn.common") == "nfn"
    assert extra_providing(dist, "ray") == "ray"
    assert extra_providing(dist, "numpy") == ""  # a core dependency: no extra to name


def test_a_suite_runs_without_the_extra_of_some_of_its_methods(home):
    root, env = home
    suite = ["--suite-file", str(root / "suite.toml"), "--results", str(root / "r"),
             "--quiet", "--bootstrap-iters", "20"]
    sne = without_nfn("run", *suite, "--method", "sne", env=env)
    assert sne.returncode == 0, sne.stderr[-3000:] + sne.stdout[-3000:]
    assert "nfn" not in sne.stdout + sne.stderr  # nothing about a method it did not ask for

    every = without_nfn("run", *suite, env=env)
    out = every.stdout + every.stderr
    assert every.returncode == 0, out[-3000:]
    assert out.count(HINT) == 1, out  # said once, for both methods
    assert "Skipping nfn_np, nft: they need an optional extra" in out
    rows = read_cells(root / "r")
    assert sorted(rows["method"]) == ["sne", "statnn"]  # nothing stored for the nfn methods

    named = without_nfn("run", *suite, "--method", "nfn_np", env=env)
    assert named.returncode == 1
    assert "method 'nfn_np' needs the optional extra 'nfn'" in named.stderr
    assert HINT in named.stderr


def test_methods_shows_the_install_command_instead_of_an_import_failure(home):
    _, env = home
    listing = without_nfn("methods", env=env)
    assert listing.returncode == 0, listing.stderr[-3000:]
    block = listing.stdout.split("\nnft")[1]
    assert HINT in block and "import failed" not in listing.stdout
    assert "\nstatnn" in listing.stdout  # the others are listed as usual
