"""Lint: everything keyplane prints to a terminal goes through ``keyplane.cli.output``.

That module is the one that makes values safe to show (no markup, control
characters made visible). Anywhere else in ``src/``, this refuses:

- ``print(...)``, ``input(...)`` with a prompt, ``breakpoint()``;
- ``sys.stdout`` / ``sys.stderr`` / ``sys.__stdout__`` / ``sys.__stderr__``
  used at all (``.write``, ``.buffer``, passed as a file);
- ``os.write``;
- ``typer.echo``, ``typer.secho``, ``click.echo``, ``click.secho``,
  ``rich.print``, and building a rich ``Console``.

Logging is not affected: log lines go to standard error through
``keyplane.logs``, which escapes them for terminals itself.

Usage: ``python scripts/check_terminal_output.py src/keyplane``; exit status 1
with one line per finding.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# keyplane.logs hands standard error to the logging handler; it escapes
# every value for terminals itself (console format) or writes JSON.
ALLOWED = {Path("cli/output.py"), Path("logs.py")}
STREAMS = {"stdout", "stderr", "__stdout__", "__stderr__"}
CALLS = {
    ("typer", "echo"),
    ("typer", "secho"),
    ("click", "echo"),
    ("click", "secho"),
    ("rich", "print"),
    ("os", "write"),
}
NAMES = {"print", "breakpoint", "Console", "input"}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return tuple(reversed(parts))
    return ()


def findings(path: Path, source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr in STREAMS:
            if _dotted(node.value) == ("sys",):
                found.append(f"{where}: sys.{node.attr} outside keyplane.cli.output")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys":
            for alias in node.names:
                if alias.name in STREAMS:
                    found.append(f"{where}: imports sys.{alias.name}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name[-2:] in CALLS or (len(name) == 1 and name[0] in NAMES):
                found.append(f"{where}: {'.'.join(name)}(...) outside keyplane.cli.output")
    return found


def main(roots: list[str]) -> int:
    problems: list[str] = []
    for root in map(Path, roots):
        for path in sorted(root.rglob("*.py")):
            if path.relative_to(root) in ALLOWED:
                continue
            problems += findings(path, path.read_text(encoding="utf-8"))
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if problems:
        sys.stderr.write(
            "terminal output must go through keyplane.cli.output (write, say, emit, fail)\n"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["src/keyplane"]))
