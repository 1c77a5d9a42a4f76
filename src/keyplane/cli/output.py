"""JSON for scripts, tables for people."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table


def wants_json(flag: bool) -> bool:
    return flag or not sys.stdout.isatty()


def emit(data: Any, *, as_json: bool, title: str = "") -> None:
    if wants_json(as_json):
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        sys.stdout.flush()
        return
    console = Console()
    if isinstance(data, list):
        if not data:
            console.print(f"{title}: none" if title else "none")
            return
        table = Table(title=title or None)
        for column in data[0]:
            table.add_column(column)
        for row in data:
            table.add_row(*("" if value is None else str(value) for value in row.values()))
        console.print(table)
        return
    table = Table(title=title or None, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


def fail(message: str, *, hint: str = "", code: int = 1) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()
    raise SystemExit(code)
