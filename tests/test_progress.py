"""`zoo_bench.progress`: a rich bar on a terminal; in a log file, plain periodic lines and no
cursor codes or fragments."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from zoo_bench.progress import PlainProgress, progress_bar


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_file_gets_plain_lines_every_tenth_and_at_the_end():
    out, clock = io.StringIO(), Clock()
    with PlainProgress(out, every_s=1e9, every_frac=0.1, clock=clock) as bar:
        task = bar.add_task("cells", total=50, runs="")
        for _ in range(50):
            clock.now += 2.0
            bar.advance(task, 1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # at the start, then 10 %, 20 %, ... 100 %, once each
    assert lines[0] == "[progress] cells: 0/50 (0%) elapsed 0:00:00 eta estimating"
    assert lines[1] == "[progress] cells: 5/50 (10%) elapsed 0:00:10 eta 0:01:30"
    assert lines[-1] == "[progress] cells: 50/50 (100%) elapsed 0:01:40"
    assert "\x1b" not in out.getvalue() and "…" not in out.getvalue()


def test_slow_tasks_get_a_line_every_period_and_fields_are_shown():
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(out, every_s=30, every_frac=0.5, clock=clock)
    task = bar.add_task("all zoos", total=1000, runs="0/6 runs")
    for _ in range(9):
        clock.now += 10.0
        bar.update(task, advance=1, runs="1/6 runs")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at the start, then at 30, 60 and 90 seconds
    start = "[progress] all zoos: 0/1000 (0%) elapsed 0:00:00 eta estimating runs=0/6 runs"
    assert lines[0] == start
    assert lines[1] == "[progress] all zoos: 3/1000 (0%) elapsed 0:00:30 eta estimating " \
        "runs=1/6 runs"


def test_the_eta_follows_the_weighted_work_not_the_item_count():
    """Ten cells whose first two are cheap (2 s fits) and the rest dear: counted by cells the
    eta after the cheap ones would say seconds; weighted by their measured cost it says what is
    left, and it stays put while the work goes at the measured pace."""
    out, clock = io.StringIO(), Clock()
    costs = [2.0, 2.0] + [100.0] * 8
    total, done = sum(costs), 0.0
    with PlainProgress(out, every_s=1e9, every_frac=0.1, clock=clock) as bar:
        task = bar.add_task("cells", total=len(costs))
        for cost in costs:
            clock.now += cost
            done += cost
            bar.update(task, advance=1, work=done / total)
    lines = out.getvalue().splitlines()
    assert lines[2].endswith("eta estimating")  # 4 s of 804 done: under 5 % of the work
    h_m_s = [line.split(" eta ")[1].split(":") for line in lines[3:-1]]
    left = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in h_m_s]
    assert all(abs(a - b) <= 1 for a, b in zip(left, range(700, 0, -100), strict=True)), left
    assert "work=" not in out.getvalue()


def test_byte_amounts_read_as_sizes():
    out = io.StringIO()
    with PlainProgress(out, unit="bytes") as bar:
        task = bar.add_task("cifar10.tar.xz", total=2_000_000)
        bar.advance(task, 2_000_000)
    assert "2.0 MB/2.0 MB (100%)" in out.getvalue()


def test_the_factory_picks_by_where_the_output_goes():
    log = Console(file=io.StringIO(), force_terminal=False)
    tty = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(progress_bar(TextColumn("x"), BarColumn(), console=log), PlainProgress)
    assert isinstance(progress_bar(TextColumn("x"), console=tty), Progress)


def test_generation_into_a_log_writes_plain_progress_lines(tmp_path, capsys):
    from zoo_bench.generate import generate_preset

    generate_preset("ci", out_dir=tmp_path, progress=True, workers=1, isolate=False,
                    overrides={"datasets": ["digits"], "families": ["ctc"], "runs": 2,
                               "epochs": 1})
    err = capsys.readouterr().err
    assert "[progress] ci-digits-ctc: 2/2 (100%)" in err
    assert "[progress] all zoos: 2/2 (100%)" in err
    assert "\x1b" not in err
