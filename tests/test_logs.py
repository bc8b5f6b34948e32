"""Logging: library modules log, the CLI sends records to the console and a log file, and a
worker's records reach the driver's handlers."""

from __future__ import annotations

import ast
import io
import logging
import pickle
from pathlib import Path

from rich.console import Console

from zoo_bench.logs import captured, replay, setup

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_shows_our_info_and_everyones_warnings_the_file_everything(tmp_path):
    out = io.StringIO()
    setup(tmp_path / "run.log", console=Console(file=out, width=200))
    try:
        logging.getLogger("zoo_bench.runner").info("fitted statnn in 2.0 s")
        logging.getLogger("zoo_bench.runner").debug("a detail for the file")
        logging.getLogger("sne.predictor").warning("a method's warning")
        logging.getLogger("urllib3").info("another library's chatter")
        logging.getLogger("urllib3").warning("another library's warning")
        shown = out.getvalue()
        assert "fitted statnn in 2.0 s" in shown and "warning: a method's warning" in shown
        assert "warning: another library's warning" in shown
        assert "chatter" not in shown and "a detail" not in shown
        kept = (tmp_path / "run.log").read_text()
        for text in ("INFO zoo_bench.runner: fitted statnn", "DEBUG zoo_bench.runner: a detail",
                     "WARNING sne.predictor", "INFO urllib3: another library's chatter"):
            assert text in kept
        setup(console=Console(file=out))  # a second set-up replaces the first's handlers
        ours = [h for h in logging.getLogger().handlers if getattr(h, "_zoo_bench_handler", 0)]
        assert len(ours) == 1
    finally:
        for handler in [h for h in logging.getLogger().handlers
                        if getattr(h, "_zoo_bench_handler", False)]:
            logging.getLogger().removeHandler(handler)


def test_records_caught_in_a_worker_replay_on_the_driver(caplog):
    with captured() as records:
        logging.getLogger("zoo_bench.training").warning("fit %s: kept the last state", "acc")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("baselines.mlp").exception("it broke")
    shipped = pickle.loads(pickle.dumps(records))  # what a Ray task returns travels pickled
    with caplog.at_level(logging.DEBUG):
        replay(shipped)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.endswith("] fit acc: kept the last state") for m in messages), messages
    broke = next(r for r in caplog.records if r.name == "baselines.mlp")
    assert broke.levelno == logging.ERROR and "ValueError: boom" in broke.exc_text


def test_library_code_prints_nothing():
    """No `print(...)` in the core or the built-in methods outside the CLI, progress bars and
    the generation workers' protocol lines: they log (`logging.getLogger(__name__)`)."""
    allowed = {"zoo_bench/progress.py", "zoo_bench/generate/worker.py"}
    found = []
    for folder in ("zoo_bench", "baselines", "sne"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in allowed or rel.startswith("zoo_bench/commands/") or rel.endswith("cli.py"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
                    found.append(f"{rel}:{node.lineno}")
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "print" \
                        and getattr(node.func.value, "id", "") == "console":
                    found.append(f"{rel}:{node.lineno} (console.print)")
    assert not found, found
