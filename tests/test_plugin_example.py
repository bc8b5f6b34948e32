"""docs/plugins.md's "A predictor in a few lines" runs verbatim: its python blocks, in order, in
a fresh interpreter, on a zoo called ci-digits-ctc in a temporary ZOO_BENCH_HOME."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from zoo_bench import ZooWriter
from zoo_bench.families import ctc

README = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HEADING = "## A predictor in a few lines"


def section_blocks(text: str, heading: str, lang: str = "python") -> list[str]:
    """The ```lang blocks between `heading` and the next level-2 heading."""
    start = text.index(heading) + len(heading)
    end = text.find("\n## ", start)
    section = text[start : end if end >= 0 else len(text)]
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def write_ci_like_zoo(path: Path, runs: int = 20) -> None:
    """A small ctc zoo whose accuracy grows with the first layer's weight scale."""
    arch = ctc(size=16)
    rng = np.random.default_rng(0)
    with ZooWriter(path, path.name, [arch], {"kind": "test"}) as w:
        for r in range(runs):
            scale = rng.uniform(0.1, 1.0)
            flats = rng.normal(0, 0.3, size=(2, arch.n_params)).astype(np.float32)
            flats[:, :144] *= scale
            rows = [
                dict(run_id=f"run{r}", dataset="digits", epoch=e, hp_activation="relu",
                     test_accuracy=float(0.1 + 0.8 * scale * e / 4), train_accuracy=0.5,
                     test_loss=1.0, train_loss=1.0)
                for e in (0, 4)
            ]
            w.add_many(arch.name, flats, rows)


def test_readme_has_the_section_and_its_first_block_registers_a_predictor():
    blocks = section_blocks(README.read_text(), HEADING)
    assert blocks, f"docs/plugins.md has no ```python block under {HEADING!r}"
    assert "register_predictor" in blocks[0] and ".fit(" in blocks[0] and ".predict(" in blocks[0]


def test_readme_predictor_example_runs_verbatim(tmp_path):
    home = tmp_path / "home"
    write_ci_like_zoo(home / "zoos" / "ci-digits-ctc")
    script = tmp_path / "example.py"
    script.write_text("\n".join(section_blocks(README.read_text(), HEADING)))
    env = {**os.environ, "ZOO_BENCH_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"weight-norm \{'order': 1\}: Kendall's tau [+-]\d\.\d{3}", lines[0])
    assert lines[1].startswith("layer-norms ")
