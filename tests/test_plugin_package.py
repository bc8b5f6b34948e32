"""docs/plugins.md's own package, verbatim and offline: the files it shows are the example
plug-in package's (tests/plugin_example); pip-install it, run it with --set on a suite file that
extends ci with only its own method and one [generate] table, and find its row in the
leaderboard."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import HANG_SECONDS
from test_plugin_example import section_blocks

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "docs" / "plugins.md"
HEADING = "## Your own package, complete"
PACKAGE = ROOT / "tests" / "plugin_example"


def test_the_example_package_imports_only_top_level_zoo_bench_names():
    source = (PACKAGE / "zb_example_plugin" / "__init__.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoo_bench"):
            assert node.module == "zoo_bench", f"imports from {node.module}"
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("zoo_bench.") for a in node.names)


def test_the_guide_shows_the_example_packages_files_whole():
    text = README.read_text()
    assert (PACKAGE / "pyproject.toml").read_text() in section_blocks(text, HEADING, "toml")
    module = (PACKAGE / "zb_example_plugin" / "__init__.py").read_text()
    assert module in section_blocks(text, HEADING, "python")


def test_readme_outside_route_runs_verbatim(tmp_path):
    """Each command of the guide runs as written, in a fresh folder; pip installs into a target
    folder (PIP_TARGET) on PYTHONPATH instead of the shared venv, from the local sources only."""
    suite_file = next(b for b in section_blocks(README.read_text(), HEADING, "toml")
                      if b.startswith("# my-suite.toml"))
    (commands,) = section_blocks(README.read_text(), HEADING, "bash")
    (tmp_path / "my-suite.toml").write_text(suite_file)
    shutil.copytree(PACKAGE, tmp_path / "tests" / "plugin_example",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ, "PIP_TARGET": str(site), "PYTHONPATH": str(site),
        "PIP_NO_INDEX": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ZOO_BENCH_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "COLUMNS": "250",
    }
    outputs = []
    for line in filter(None, map(str.strip, commands.splitlines())):
        argv = shlex.split(line)
        out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=HANG_SECONDS)
        assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
        outputs.append(out.stdout)

    assert list(site.glob("zb_example_plugin-0.1.0.dist-info"))
    assert "example-norm" in outputs[1] and "zb-example-plugin" in outputs[1]
    board = (tmp_path / "results" / "mine" / "leaderboard.md").read_text()
    row = next(r for r in board.splitlines() if r.startswith("| example-norm[order=1] |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # three tasks, each complete with its one zoo pair x the two inherited ci seeds
    assert all(re.fullmatch(r"[+-]?\d\.\d{3} \u00b1 \S+ \(#1\)", c) for c in cells[1:4]), row
    assert cells[4] == "0, 1"
    # the default configuration was never run: shown, with no cell and no seeds
    default = next(r for r in board.splitlines() if r.startswith("| example-norm |"))
    assert "incomplete (0/2)" in default and default.rstrip(" |").endswith("none")
    assert "mine-digits-ctc" in board  # the zoo version shown
