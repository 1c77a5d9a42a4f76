"""JSON for scripts, tables for people, and the one way the CLI writes anything.

Every byte the command line prints goes through :func:`write` (the lint step
``scripts/check_terminal_output.py`` refuses any other ``print``, ``echo`` or
stream write in ``src/``). Values reach the terminal as plain text, never as
markup: table cells are rich ``Text`` objects, and every control character in
them (ESC, CSI, OSC, C1, line breaks) is shown as an escape such as ``\\x1b``
(``keyplane.terminal.visible``). JSON escapes control characters itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from keyplane.terminal import visible

UUID_WIDTH = 36

# The exit statuses (docs/cli.md lists them).
EXIT_OK = 0
EXIT_REFUSED = 1  # not found, refused, invalid, or a check that failed
EXIT_USAGE = 2  # wrong arguments or configuration
EXIT_UNAVAILABLE = 3  # the server or the database cannot be reached, or the server cannot start
EXIT_UNAUTHENTICATED = 4  # remote mode: not logged in, or the credential was refused


def wants_json(flag: bool) -> bool:
    return flag or not sys.stdout.isatty()


def write(text: str, *, err: bool = False) -> None:
    """Write ``text`` as it is. Callers pass JSON, a rendered table, or :func:`say`'s lines."""
    target = sys.stderr if err else sys.stdout
    target.write(text)
    target.flush()


def say(*lines: object, err: bool = False) -> None:
    """Plain lines of text, each value made visible (no control character passes)."""
    write("".join(visible(line) + "\n" for line in lines), err=err)


def cell_text(value: object) -> str:
    """A value as a person reads it in a table: an actor as ``agent UUID``, a mapping as
    ``key: value`` pairs, a list comma-separated, ``true``/``false``; never Python's repr."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        if set(value) == {"type", "id"}:
            return f"{cell_text(value['type'])} {cell_text(value['id'])}"
        return ", ".join(f"{key}: {cell_text(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(item) for item in value)
    return visible(value)


def _cell(value: object) -> Text:
    return Text(cell_text(value))


def _render(table: Table | Text, *, min_width: int = 0) -> str:
    """The table as the terminal will show it (colours only when stdout is a terminal)."""
    terminal = sys.stdout.isatty()
    buffer = io.StringIO()
    width = max(terminal_width(), min_width)
    console = Console(
        file=buffer,
        force_terminal=terminal,
        width=width,
        highlight=False,
        emoji=False,
        markup=False,
    )
    console.print(table)
    return buffer.getvalue()


def is_whole(column: str) -> bool:
    """A column whose values are never cut nor wrapped: ids, times, states, prefixes."""
    return (
        column == "id"
        or column.endswith("_id")
        or column.startswith("tm_")
        or column in WHOLE_COLUMNS
    )


WHOLE_COLUMNS = frozenset(
    {"state", "status", "check", "token_prefix", "permission", "attempts", "actor"}
)
# Between two columns of a table: a space of padding on each side and the divider.
COLUMN_GAP = 3
# The narrowest a column of free text gets in a table before the rows are stacked.
MIN_TEXT_WIDTH = 12


def fits_as_table(widths: list[int], width: int) -> bool:
    """Whether columns of these (least) widths fit side by side in ``width``."""
    return sum(widths) + COLUMN_GAP * (len(widths) - 1) <= width


def stacked(rows: list[list[tuple[str, str]]], width: int, *, title: str = "") -> str:
    """Rows as blocks of ``name  value`` lines, one blank line apart: the layout of a list
    too wide for the terminal. A value longer than the line folds onto the next ones."""
    names = [name for row in rows for name, _ in row]
    label = max((len(name) for name in names), default=0)
    room = max(1, width - label - 2)
    lines: list[str] = [visible(title), ""] if title else []
    for index, row in enumerate(rows):
        if index:
            lines.append("")
        for name, value in row:
            pieces = [value[i : i + room] for i in range(0, len(value), room)] or [""]
            lines.append(f"{name:<{label}}  {pieces[0]}".rstrip())
            lines.extend(" " * (label + 2) + piece for piece in pieces[1:])
    return "".join(line + "\n" for line in lines)


def emit(data: Any, *, as_json: bool, title: str = "", omit: tuple[str, ...] = ()) -> None:
    """``data`` as JSON, or a table: ids, states and times whole; columns in ``omit`` or
    empty in every row left out; rows stacked when the table would not fit the terminal."""
    if wants_json(as_json):
        write(json.dumps(data, indent=2) + "\n")
        return
    width = terminal_width()
    if isinstance(data, list):
        if not data:
            say(f"{title}: none" if title else "none")
            return
        texts = [{key: cell_text(value) for key, value in row.items()} for row in data]
        columns = [
            column
            for column in data[0]
            if column not in omit and any(row.get(column) for row in texts)
        ]
        longest = {
            column: max([len(column)] + [len(row.get(column, "")) for row in texts])
            for column in columns
        }
        least = [
            longest[column] if is_whole(column) else min(longest[column], MIN_TEXT_WIDTH)
            for column in columns
        ]
        if not fits_as_table(least, width):
            blocks = [[(column, row.get(column, "")) for column in columns] for row in texts]
            write(stacked(blocks, width, title=title))
            return
        table = Table(
            title=_cell(title) if title else None,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
        )
        for column, smallest in zip(columns, least, strict=True):
            table.add_column(
                _cell(column),
                no_wrap=is_whole(column),
                min_width=smallest,
                overflow="fold",
            )
        for row in texts:
            table.add_row(*(Text(row.get(column, "")) for column in columns))
        write(_render(table))
        return
    fields = [(key, cell_text(value)) for key, value in data.items() if key not in omit]
    label = max((len(key) for key, _ in fields), default=0)
    if label + COLUMN_GAP + UUID_WIDTH + 4 > width:
        write(stacked([fields], width, title=title))
        return
    table = Table(title=_cell(title) if title else None, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold", min_width=UUID_WIDTH)
    for key, value in fields:
        table.add_row(Text(key), Text(value))
    write(_render(table))


def terminal_width() -> int:
    """The width tables are laid out for: the terminal's (``COLUMNS`` when set), or 200
    when piped."""
    return Console().width if sys.stdout.isatty() else 200


def render_table(table: Table, *, min_width: int = 0) -> str:
    """A table rendered at least ``min_width`` wide (so fixed-width columns are never cut)."""
    return _render(table, min_width=min_width)


def progress_bar(total: int | None) -> Progress | None:
    """A transient progress bar when a person is watching, else ``None``.

    It goes to standard output when the rows go there (they print above the
    bar), else to standard error, so piped output stays clean.
    """
    if not sys.stderr.isatty():
        return None
    stdout_is_terminal = sys.stdout.isatty()
    console = Console(file=sys.stdout if stdout_is_terminal else sys.stderr, highlight=False)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn() if total is not None else TextColumn(""),
        MofNCompleteColumn() if total is not None else TextColumn("{task.completed} rows"),
        console=console,
        transient=True,
        redirect_stdout=stdout_is_terminal,
        redirect_stderr=False,
    )


PROGRESS_AFTER_SECONDS = 1.0


@contextlib.contextmanager
def spinner(description: str, *, after: float = PROGRESS_AFTER_SECONDS) -> Iterator[None]:
    """A spinner for work of unknown length, shown only if it lasts more than ``after`` s
    and a person is watching."""
    bar = progress_bar(None)
    if bar is None:
        yield
        return
    bar.add_task(description, total=None)
    timer = threading.Timer(after, bar.start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        bar.stop()


def fail(message: str, *, hint: str = "", code: int = EXIT_REFUSED) -> NoReturn:
    say(f"error: {message}", *([f"hint: {hint}"] if hint else []), err=True)
    raise SystemExit(code)
