"""Options and helpers every command group shares."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from keyplane.cli.output import EXIT_USAGE, fail

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (default when piped).")]


def group(help_text: str) -> typer.Typer:
    """A command group with plain help (no rich markup)."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


class IdCommand(TyperCommand):
    """A command whose help names its arguments (``ID``) without a ``<str>`` after them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = _no_type_shown  # type: ignore[method-assign]


def _no_type_shown(ctx: object) -> str | None:
    return None


def read_secret_stdin(what: str) -> str:
    """A password or token from standard input, without one trailing newline
    (as ``docker login --password-stdin`` reads it)."""
    data = sys.stdin.read()
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    if not data:
        fail(f"no {what} on standard input", code=EXIT_USAGE)
    return data
