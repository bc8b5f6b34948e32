"""Terminal output that fits the terminal: names a user must type are never cut.

The CLI's listings (methods, suites, tasks, the leaderboard) show names that are typed back on
the command line (`-m probe_last_layer`, a variant `sne[max_steps=1500]`). rich shrinks a table
that is too wide by cutting cells with an ellipsis; here the name column is kept whole
(`name_column`: never wrapped, as wide as its longest entry) and the other columns wrap, and
`Fitted` shows a table whose other columns would get too narrow as one block per row instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

INDENT = 2
MIN_OTHER = 8  # narrowest a wrapped column may get before a table turns into blocks


def make_console(stderr: bool = False) -> Console:
    """A command's console: the terminal's width, else $COLUMNS, else 80 columns (a pipe or a
    file); no automatic highlighting of numbers and paths."""
    return Console(highlight=False, stderr=stderr)


def name_column(table: Table, header: str, names: Iterable[str], **kwargs: Any) -> None:
    """Add the column of typed names: never wrapped or cut, as wide as the longest name."""
    width = max([len(header), *(len(n) for n in names)])
    table.add_column(header, no_wrap=True, min_width=width, **kwargs)


class Block:
    """One entry as a block: its title line, then `label: text` lines wrapped under an indent
    (continuation lines indented two more); nothing is cut, and no line carries padding."""

    def __init__(self, title: Text | str, lines: Sequence[tuple[str, Any]]) -> None:
        self.title = title if isinstance(title, Text) else Text(title, style="bold")
        self.lines = []
        for label, text in lines:
            line = Text(f"{label}: ", style="dim") if label else Text()
            line.append(text if isinstance(text, (str, Text)) else str(text))
            self.lines.append(line)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.title
        width = max(options.max_width - INDENT - 2, 20)
        for line in self.lines:
            for k, part in enumerate(line.wrap(console, width)):
                part.rstrip()
                yield Text(" " * (INDENT + (2 if k else 0))) + part


def block(title: Text | str, lines: Sequence[tuple[str, Any]]) -> Block:
    """See `Block`."""
    return Block(title, lines)


class Fitted:
    """A table whose first column holds names, laid out so that no word is cut: the names'
    column as wide as its longest name, every other column at least as wide as its longest word
    (and `MIN_OTHER`, where its text is longer), the widest columns narrowed first when the
    console is too narrow for all; when even that does not fit, one block per row (title: the
    name; lines: header: cell)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.words = [[_plain(c) for c in (column.header, *column.cells)]
                      for column in table.columns]

    def widths(self, available: int) -> list[int] | None:
        """Each column's text width for a table `available` cells wide, or None if it cannot
        fit without cutting a word (or squeezing a column under `MIN_OTHER`)."""
        space = available - 3 * len(self.table.columns) - 1  # padding and borders
        longest = [max(len(line) for t in texts for line in t.splitlines() or [""])
                   for texts in self.words]
        words = [max((len(w) for t in texts for w in t.split()), default=0)
                 for texts in self.words]
        floor = [longest[0], *(max(w, min(MIN_OTHER, m))
                               for w, m in zip(words[1:], longest[1:], strict=True))]
        if sum(floor) > space:
            return None
        widths = list(longest)
        while sum(widths) > space:  # narrow the widest column that can still give
            k = max(range(1, len(widths)), key=lambda i: (widths[i] - floor[i], widths[i]))
            widths[k] -= 1
        return widths

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self.widths(options.max_width)
        if widths is not None:
            for column, width in zip(self.table.columns, widths, strict=True):
                column.width = width
            yield self.table
            return
        if self.table.title:
            yield Text.from_markup(str(self.table.title), style="italic")
        first, *others = self.table.columns
        columns = [list(c.cells) for c in others]
        for k, name in enumerate(first.cells):
            lines = [(_plain(c.header), _markup(cells[k])) for c, cells in zip(others, columns,
                                                                                strict=True)]
            yield block(_markup(name, style="bold"), lines)
        if self.table.caption:
            yield Text.from_markup(str(self.table.caption), style="dim")


def _markup(cell: Any, style: str = "") -> Text:
    return Text.from_markup(cell, style=style) if isinstance(cell, str) else Text(str(cell),
                                                                                  style=style)


def _plain(cell: Any) -> str:
    return _markup(cell).plain
