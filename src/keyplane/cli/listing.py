"""Long lists printed as they arrive: page by page, in flat memory.

A :class:`RowStream` takes rows one page at a time and writes each page at
once: as a table (the columns have fixed widths, so pages line up under one
header), as blocks of ``name  value`` lines when the table would not fit the
terminal (an id, a state or a time is never cut), or, for scripts, as one
JSON array streamed element by element (one object per line, so
``json.load`` reads the whole and line tools read each).
Nothing is kept after its page is written. On a terminal, a progress bar
appears when the list takes longer than a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from rich import box
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from keyplane.cli.output import (
    COLUMN_GAP,
    PROGRESS_AFTER_SECONDS,
    cell_text,
    fits_as_table,
    progress_bar,
    render_table,
    say,
    stacked,
    terminal_width,
    wants_json,
    write,
)
from keyplane.terminal import visible


@dataclass(frozen=True, slots=True)
class ListColumn:
    """A table column of fixed width; ``value`` computes a cell the row does not hold.

    A ``no_wrap`` column (an id, a state, a time) is as wide as its longest value and is
    never cut; the others fold a long value onto more lines.
    """

    name: str
    width: int
    no_wrap: bool = False
    value: Callable[[dict[str, Any]], object] | None = None
    flexible: bool = False  # takes the terminal's spare width (at least ``width``)
    wants: int = 0  # a flexible column's width when the terminal has room for it

    def cell(self, row: dict[str, Any]) -> str:
        found = self.value(row) if self.value is not None else row.get(self.name)
        return cell_text(found)


class RowStream:
    """Write rows of a long list page by page (use as a context manager)."""

    def __init__(
        self,
        columns: Sequence[ListColumn],
        *,
        as_json: bool,
        title: str,
        total: int | None = None,
        clock: Any = time.monotonic,
        hide_empty: bool = False,
    ) -> None:
        """``hide_empty``: the whole list comes as one page, so a column empty in
        every row of it is left out."""
        self._width = terminal_width()
        self._declared = list(columns)
        self._columns = _fit(self._declared, self._width)
        self._hide_empty = hide_empty
        self._stacked = not fits_as_table([column.width for column in columns], self._width)
        self._json = wants_json(as_json)
        self._title = title
        self._total = total
        self._clock = clock
        self._started = clock()
        self._count = 0
        self._progress: Progress | None = None
        self._task: Any = None

    @property
    def count(self) -> int:
        return self._count

    def __enter__(self) -> RowStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if exc_type is None:
            self._finish()

    def page(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write one page of rows now."""
        rows = list(rows)
        if not rows:
            return
        if self._json:
            self._write_json(rows)
        else:
            self._write_table(rows)
        self._count += len(rows)
        self._advance()

    def _write_json(self, rows: list[dict[str, Any]]) -> None:
        parts: list[str] = []
        for row in rows:
            parts.append(("[\n  " if self._count == 0 and not parts else ",\n  ") + json.dumps(row))
        write("".join(parts))

    def _write_table(self, rows: list[dict[str, Any]]) -> None:
        first = self._count == 0
        if first and self._hide_empty:
            kept = [column for column in self._declared if any(column.cell(row) for row in rows)]
            self._columns = _fit(kept, self._width)
            self._stacked = not fits_as_table([column.width for column in kept], self._width)
        if self._stacked:
            blocks = [[(column.name, column.cell(row)) for column in self._columns] for row in rows]
            write(
                ("" if first else "\n")
                + stacked(blocks, self._width, title=self._title if first else "")
            )
            return
        table = Table(
            title=Text(visible(self._title)) if first and self._title else None,
            show_header=first,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
        )
        for column in self._columns:
            table.add_column(
                Text(column.name), width=column.width, no_wrap=column.no_wrap, overflow="fold"
            )
        for row in rows:
            table.add_row(*(Text(column.cell(row)) for column in self._columns))
        write(render_table(table))

    def _finish(self) -> None:
        if self._json:
            write("[]\n" if self._count == 0 else "\n]\n")
        elif self._count == 0:
            say(f"{self._title}: none" if self._title else "none")

    def _advance(self) -> None:
        if self._progress is None:
            if self._clock() - self._started < PROGRESS_AFTER_SECONDS:
                return
            self._progress = progress_bar(self._total)
            if self._progress is None:  # nobody is watching
                self._started = float("inf")
                return
            self._task = self._progress.add_task(self._title or "listing", total=self._total)
            self._progress.start()
        self._progress.update(self._task, completed=self._count)


def _fit(columns: list[ListColumn], available: int) -> list[ListColumn]:
    """Widths fixed for the whole list (so pages line up), the flexible ones widened to fill
    the terminal: each first up to the width it ``wants``, then the first one that wants no
    limit (the name) takes the rest. A long name is shown whole on a wide terminal and folds
    on a narrow one."""
    spare = available - sum(column.width + COLUMN_GAP for column in columns) + COLUMN_GAP
    widths = [column.width for column in columns]
    for index, column in enumerate(columns):
        if column.flexible and spare > 0:
            grown = min(spare, max(0, column.wants - column.width))
            widths[index] += grown
            spare -= grown
    unbounded = [i for i, column in enumerate(columns) if column.flexible and not column.wants]
    if unbounded and spare > 0:
        widths[unbounded[0]] += spare
    return [replace(column, width=width) for column, width in zip(columns, widths, strict=True)]
