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


def _cell(value: object) -> Text:
    return Text("" if value is None else visible(value))


def _render(table: Table | Text, *, min_width: int = 0) -> str:
    """The table as the terminal will show it (colours only when stdout is a terminal)."""
    terminal = sys.stdout.isatty()
    buffer = io.StringIO()
    width = max(Console().width if terminal else 200, min_width)
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


def _is_id(column: str) -> bool:
    return column == "id" or column.endswith("_id")


def emit(data: Any, *, as_json: bool, title: str = "", omit: tuple[str, ...] = ()) -> None:
    """``data`` as JSON, or a table: full ids; columns in ``omit`` or always empty left out."""
    if wants_json(as_json):
        write(json.dumps(data, indent=2) + "\n")
        return
    if isinstance(data, list):
        if not data:
            say(f"{title}: none" if title else "none")
            return
        columns = [
            column
            for column in data[0]
            if column not in omit and any(row.get(column) not in (None, "") for row in data)
        ]
        table = Table(title=_cell(title) if title else None)
        for column in columns:
            table.add_column(
                _cell(column),
                no_wrap=_is_id(column),
                min_width=UUID_WIDTH if _is_id(column) else None,
                overflow="fold",
            )
        for row in data:
            table.add_row(*(_cell(row.get(column)) for column in columns))
        write(_render(table))
        return
    table = Table(title=_cell(title) if title else None, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold", min_width=UUID_WIDTH)
    for key, value in data.items():
        table.add_row(_cell(key), _cell(value))
    write(_render(table))


def terminal_width() -> int:
    """The width tables are laid out for: the terminal's, or 200 when piped."""
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
