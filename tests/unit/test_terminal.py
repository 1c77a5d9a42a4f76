"""Values shown in a terminal cannot drive it; terminal output has one way out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from keyplane.terminal import visible, visible_lines

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("\x9b1A", "\\x9b1A"),
        ("a\r\nforged row", "a\\r\\nforged row"),
        ("\x00\x7f\x85", "\\x00\\x7f\\x85"),
        ("\u2028\u202e", "\\u2028\\u202e"),
        ("tab\tkept [b]markup[/b] é", "tab\tkept [b]markup[/b] é"),
    ],
)
def test_control_characters_are_made_visible(raw: str, shown: str) -> None:
    assert visible(raw) == shown


def test_every_c0_del_and_c1_character_is_escaped() -> None:
    controls = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if c != 0x09)
    escaped = visible(controls)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in escaped)
    assert visible_lines("a\nb\x1b") == "a\nb\\x1b"


def _checker() -> object:
    spec = importlib.util.spec_from_file_location(
        "check_terminal_output", ROOT / "scripts" / "check_terminal_output.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "source",
    [
        "print('x')",
        "import sys\nsys.stdout.write('x')",
        "import sys\nsys.stderr.buffer.write(b'x')",
        "from sys import stderr",
        "import typer\ntyper.echo('x')",
        "from rich.console import Console\nConsole().print('x')",
        "import rich\nrich.print('x')",
        "import os\nos.write(1, b'x')",
    ],
)
def test_the_lint_refuses_terminal_output_elsewhere(source: str) -> None:
    assert _checker().findings(Path("x.py"), source)  # type: ignore[attr-defined]


def test_the_lint_passes_on_the_source_tree() -> None:
    assert _checker().main([str(ROOT / "src" / "keyplane")]) == 0  # type: ignore[attr-defined]
    assert not _checker().findings(  # type: ignore[attr-defined]
        Path("x.py"), "with open('f', 'w') as handle:\n    handle.write('x')"
    )
