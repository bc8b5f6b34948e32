"""The leaderboard as one self-contained HTML page: inline CSS, figures as embedded PNGs.

Figures are drawn with matplotlib's object API (no pyplot, no display needed): bars of mean
tau +- std per task, and for each task with cross-zoo cells a source x target heat map per method;
every figure names the suite's property (a suite may predict any numeric column).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from zoo_bench.atomic import write_text_atomic
from zoo_bench.leaderboard import (
    COMPLETE,
    INCOMPLETE,
    PAIR_HEADER,
    PARTIAL,
    Leaderboard,
    notes,
    title,
    to_markdown,
)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.35em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f3f7; }
td.rank1 { background: #e3f4e1; font-weight: 600; }
td.incomplete { color: #9a6700; background: #fff8e1; }
td.partial { color: #05596b; background: #e6f6f9; }
td.na { color: #888; }
p.note { color: #555; font-size: 0.92em; max-width: 60em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def bars_figure(lb: Leaderboard) -> Figure:
    """Grouped bars: mean tau per task and method, error bars = std over seeds (complete only)."""
    exp = lb.expected
    fig = Figure(figsize=(max(6.0, 1.8 * len(exp.tasks) + 2.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(lb.methods))
    x = np.arange(len(exp.tasks))
    for i, m in enumerate(lb.methods):
        entries = [lb.entry(m, t) for t in exp.tasks]
        means = [e.mean if e.state == COMPLETE else math.nan for e in entries]
        stds = [0.0 if math.isnan(e.std) else e.std for e in entries]
        ax.bar(x + (i - (len(lb.methods) - 1) / 2) * width, means, width, yerr=stds,
               capsize=3, label=m)
    ax.set_xticks(x, [f"{t}" for t in exp.tasks])
    ax.axhline(0, color="#444", linewidth=0.8)
    ax.set_ylabel(f"Kendall's tau on {exp.property} (mean \u00b1 std over seeds)")
    ax.set_title(f"predicting {exp.property}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _zoo_order(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Zoo names grouped into the task's connected blocks (e.g. one family each), then by name."""
    parent: dict[str, str] = {}

    def root(z: str) -> str:
        while parent.setdefault(z, z) != z:
            z = parent[z]
        return z

    for s, t in pairs:
        parent[root(s)] = root(t)
    blocks: dict[str, list[str]] = {}
    for z in sorted(parent):
        blocks.setdefault(root(z), []).append(z)
    return [z for block in sorted(blocks.values()) for z in block]


def _short_names(names: Sequence[str]) -> tuple[list[str], str]:
    """Names without their shared leading part up to a '-' (e.g. `ci-`), and that part."""
    common = os.path.commonprefix(list(names)) if len(names) > 1 else ""
    prefix = common[: common.rfind("-") + 1]
    return [n[len(prefix):] for n in names], prefix


def heatmap_methods(lb: Leaderboard, task: str) -> list[str]:
    """Methods with at least one (source, target) mean for the task (all seeds stored)."""
    sel = lb.pairs[(lb.pairs["task"] == task) & lb.pairs["mean"].notna()]
    return [m for m in lb.methods if m in set(sel["method"])]


def heatmap_figure(lb: Leaderboard, task: str) -> Figure | None:
    """Source x target mean tau per method for one task; None without cross-zoo pairs or data."""
    pairs = lb.expected.pairs.get(task, frozenset())
    methods = heatmap_methods(lb, task)
    if not any(s != t for s, t in pairs) or not methods:
        return None
    zoos = _zoo_order(pairs)
    labels, prefix = _short_names(zoos)
    cols = min(3, len(methods))
    nrows = math.ceil(len(methods) / cols)
    fig = Figure(figsize=(4.2 * cols + 0.8, (0.45 * len(zoos) + 1.8) * nrows + 0.4),
                 layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False)
    image = None
    for ax, m in zip(axes.flat, methods, strict=False):
        grid = _matrix(lb.pairs, m, task, zoos, zoos)
        image = ax.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for (r, c), v in np.ndenumerate(grid):
            in_task = (zoos[r], zoos[c]) in pairs
            label = f"{v:.2f}" if not math.isnan(v) else ("\u2013" if in_task else "")
            ax.text(c, r, label, ha="center", va="center", fontsize=8)
        entry = lb.entry(m, task)
        ax.set_title(m if entry.state == COMPLETE else f"{m}: {entry.text()}", fontsize=10)
        ax.set_xticks(range(len(zoos)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(zoos)), labels, fontsize=7)
        ax.set_xlabel(f"target zoo ({prefix}\u2026)" if prefix else "target zoo", fontsize=8)
        ax.set_ylabel(f"source zoo ({prefix}\u2026)" if prefix else "source zoo", fontsize=8)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8,
                     label=f"Kendall's tau on {lb.expected.property}")
    fig.suptitle(f"{task}: predicting {lb.expected.property}", fontsize=11)
    return fig


def _matrix(
    pairs: pd.DataFrame, method: str, task: str, sources: Sequence[str], targets: Sequence[str]
) -> np.ndarray:
    sel = pairs[(pairs["method"] == method) & (pairs["task"] == task)]
    grid = sel.pivot(index="source", columns="target", values="mean")
    return grid.reindex(index=list(sources), columns=list(targets)).to_numpy(dtype=np.float64)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], classes: Any = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = classes[i] if classes is not None else [""] * len(row)
        cells = "".join(
            f"<td{f' class={c!r}' if c else ''}>{html.escape(str(v))}</td>"
            for v, c in zip(row, cls, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell_class(lb: Leaderboard, method: str, task: str) -> str:
    e = lb.entry(method, task)
    if e.state == COMPLETE:
        return "rank1" if e.rank == 1 else ""
    if e.state == PARTIAL:
        return "partial"
    return "incomplete" if e.state == INCOMPLETE else "na"


def _figure(fig: Figure, alt: str, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render_html(lb: Leaderboard) -> str:
    """The whole page: leaderboard table, notes, figures, per-pair details and provenance."""
    exp = lb.expected
    board = _table(
        lb.board_header(),
        lb.board_rows(),
        [["", *(_cell_class(lb, m, t) for t in exp.tasks), ""] for m in lb.methods],
    )
    parts = [f"<h1>{html.escape(title(lb))}</h1>", board]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes(lb)]
    parts += [
        f"<h2>Kendall's tau per task (property {html.escape(exp.property)})</h2>",
        _figure(bars_figure(lb),
                f"bar chart of mean Kendall's tau on {exp.property} per task and method",
                "Bars: mean over seeds; error bars: unbiased std. Only complete entries have a "
                "bar (partial and incomplete ones have none)."),
    ]
    for task in exp.tasks:
        fig = heatmap_figure(lb, task)
        if fig is not None:
            absent = [m for m in lb.methods if m not in heatmap_methods(lb, task)]
            missing = f" No complete cell stored for: {', '.join(absent)}." if absent else ""
            parts += [
                f"<h2>Task {html.escape(task)}: tau on {html.escape(exp.property)} per "
                "source and target zoo</h2>",
                _figure(fig, f"heat maps of Kendall's tau on {exp.property} for task {task}",
                        "Mean tau over seeds of each (source, target) cell; \u2013 marks a cell "
                        "without every seed stored; blank cells are not part of the task."
                        + missing),
            ]
    parts += [
        "<h2>Per zoo pair</h2>",
        _table(PAIR_HEADER, lb.pair_rows()),
        "<h2>Provenance</h2>",
        _table(["", ""], lb.provenance().items()),
    ]
    body = "\n".join(parts)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title(lb))}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_outputs(lb: Leaderboard, out: Path) -> dict[str, Path]:
    """Write leaderboard.md and the self-contained leaderboard.html into `out` (atomically)."""
    out = Path(out)
    paths = {"markdown": out / "leaderboard.md", "html": out / "leaderboard.html"}
    write_text_atomic(paths["markdown"], to_markdown(lb))
    write_text_atomic(paths["html"], render_html(lb))
    return paths
