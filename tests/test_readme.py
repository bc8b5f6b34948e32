"""The documentation's examples run as written: README.md, every page under docs/ and every
results README. Each file's Python blocks run verbatim on small generated zoos, and every command
shown is at least invoked.

Blocks are found generically (other sections change), so a new example is tested as soon as it
is written. A file's Python blocks run in order in one fresh interpreter (later blocks use names
from earlier ones, as a reader would run them), with `ZOO_BENCH_HOME` pointing at a cache that
holds small zoos under the names the docs use. Commands: `zoo-bench ...` lines run for real where
they are quick and offline (`tasks`, `methods`, `suites`, `zoo list`, `--help`, a `run` with
`--dry-run`); anything that needs hours, a network, an argument placeholder (NAME, SRC ...) or
writes into the checkout is called with `--help` instead, which still fails for a subcommand or
option that does not exist. `python benchmarks/...` lines are called with `--help`;
`bash scripts/...` and `python scripts/...` files must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import HANG_SECONDS

from zoo_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# Every page whose examples are tested: the README, docs/ (new pages included as they come) and
# the results READMEs.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
         *sorted((ROOT / "results").glob("README.md")),
         *sorted((ROOT / "results").glob("*/README.md"))]
TEXTS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in PAGES}
RUN_FOR_REAL = {("tasks",), ("methods",), ("suites",), ("zoo", "list"), ()}  # quick, offline
DRY = ("--dry-run", "--plan")  # a run that only prints its plan: quick, writes nothing


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def command_lines(text: str) -> list[str]:
    """Shell lines from indented and fenced (non-Python, non-TOML) blocks, and inline code
    spans that start with `zoo-bench `; trailing `# comments` dropped."""
    lines: list[str] = []
    in_fence, lang = False, ""
    prev_blank = True
    indented = False
    for raw in text.splitlines():
        if raw.startswith("```"):
            in_fence, lang = (not in_fence), raw[3:].strip()
            continue
        if in_fence:
            if lang in ("", "bash", "sh", "console"):
                lines.append(raw)
            continue
        if raw.startswith("    ") and (prev_blank or indented) and raw.strip():
            indented = True
            lines.append(raw.strip())
        elif raw.strip():
            indented = False
        prev_blank = not raw.strip()
    lines += re.findall(r"`(zoo-bench [^`]+)`", text)
    out = []
    for line in lines:
        line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
        if line.startswith(("zoo-bench", "python benchmarks/", "python scripts/", "bash ",
                            "SUITE=", ".venv/bin/python benchmarks/")):
            out.append(line)
    return list(dict.fromkeys(out))


def is_placeholder(token: str) -> bool:
    return not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", token)


def cli_invocation(line: str) -> tuple[list[str], bool]:
    """The arguments to pass to `main` and whether they run the real thing (else --help)."""
    tokens = shlex.split(line.replace("[", " [ ").replace("]", " ] "))[1:]
    tokens = [t for t in tokens if t not in ("[", "]")]
    path: list[str] = []
    for t in tokens:
        if t.startswith("-") or is_placeholder(t) or len(path) == 2:
            break
        path.append(t)
    group = path[:1] if path[:1] != ["zoo"] else path[:2]
    quick = tuple(group) in RUN_FOR_REAL or (group == ["run"] and any(d in tokens for d in DRY))
    real = (quick and tuple(path) == tuple(group)
            and not any(is_placeholder(t) and not t.startswith("-") for t in tokens)
            and "[" not in line)
    return (tokens if real else [*group, "--help"]), real


@pytest.fixture(scope="module")
def readme_home(tmp_path_factory) -> Path:
    """A cache holding small zoos under the names the README's examples open."""
    from zoo_bench.generate import generate_preset

    home = tmp_path_factory.mktemp("readme_home")
    small = {"datasets": ["digits"], "families": ["ctc"], "runs": 20, "epochs": 2}
    for preset in ("default", "ci"):
        generate_preset(preset, out_dir=home / "zoos", progress=False, overrides=small,
                        isolate=False)
    return home


def test_the_docs_have_examples_to_run():
    assert any(c.startswith("zoo-bench run") for c in command_lines(README))
    assert len(python_blocks(TEXTS["docs/plugins.md"])) >= 2
    assert any(c.startswith("zoo-bench zoo generate") for c in command_lines(TEXTS["docs/zoos.md"]))


GUIDES = ("running", "suites", "zoos", "plugins", "cluster", "benchmarks", "testing", "design")


def test_the_readme_stays_short_and_links_the_guides():
    """Pages other branches add are linked when they land (the README's list has a place)."""
    assert len(README.splitlines()) <= 300
    for name in GUIDES:
        assert f"(docs/{name}.md)" in README, f"README.md does not link docs/{name}.md"


WITH_PYTHON = [page for page, text in TEXTS.items() if python_blocks(text)]


@pytest.mark.parametrize("page", WITH_PYTHON)
def test_every_python_block_runs_verbatim_in_order(page, readme_home, tmp_path):
    blocks = python_blocks(TEXTS[page])
    script = ["import sys, traceback"]
    for k, block in enumerate(blocks):
        script += [
            f"print('--- block {k}', flush=True)",
            f"exec(compile({block!r}, '{page} python block {k}', 'exec'), globals())",
        ]
    (tmp_path / "readme_blocks.py").write_text("\n".join(script) + "\n")
    env = {**os.environ, "ZOO_BENCH_HOME": str(readme_home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(tmp_path / "readme_blocks.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert f"--- block {len(blocks) - 1}" in done.stdout


COMMANDS = list(dict.fromkeys(c for text in TEXTS.values() for c in command_lines(text)))


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("zoo-bench")])
def test_every_zoo_bench_command_is_invoked(line, readme_home, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(readme_home))
    args, real = cli_invocation(line)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, f"{line!r} as {args}: {result.output}"
    if not real:
        assert "Usage:" in result.output


OTHER = [c for c in COMMANDS if not c.startswith("zoo-bench")]


@pytest.mark.parametrize("line", OTHER)
def test_every_script_the_readme_names_exists_and_benchmarks_answer_help(line):
    words = shlex.split(line)
    script = next(w for w in words if w.endswith((".py", ".sh")) or w.startswith(".ci/"))
    assert (ROOT / script).is_file(), f"{line!r}: {script} does not exist"
    if script.startswith("benchmarks/"):
        done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=HANG_SECONDS)
        assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr[-2000:]
