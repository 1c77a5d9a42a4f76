"""The examples in README.md and docs/*.md, read as the tests run them.

Every fenced block names its language, and its language says what happens to it
(docs/testing.md, "Docs whose examples run"):

- ``console``: run. A line ``$ command`` is a command (a line ending in ``\\``
  continues it); the lines after it, up to the next ``$``, are its output,
  compared with the real output once ids, keys, tokens and times are masked.
  ``…`` in shown output stands for any text within a line, and a line that is
  ``…`` alone for any number of lines.
- ``sh``: run, one command at a time (a line ending in ``\\`` continues it);
  every command must succeed. It shows no output.
- ``python``: run (tests/integration/test_docs_python.py, with pytest-examples),
  unless ``<!-- excerpt: PATH -->`` names the source file it is a verbatim
  part of (at any indentation).
- ``nginx``, ``ini``, ``toml``, ``yaml``: configuration. The comment before it,
  ``<!-- shipped: PATH -->`` or ``<!-- excerpt: PATH -->``, names the shipped file
  it equals or is a verbatim part of.
- ``json``, ``text``, ``dotenv``: shapes and listings, never run.

A block that cannot run here (root, systemd, another machine) carries the
comment ``<!-- not run: REASON -->`` on the line before its fence.
"""

from __future__ import annotations

import re
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = frozenset({"console", "sh"})
PYTHON = frozenset({"python"})
CONFIGURATION = frozenset({"nginx", "ini", "toml", "yaml"})
SHOWN = frozenset({"json", "text", "dotenv"})
LANGUAGES = RUN | PYTHON | CONFIGURATION | SHOWN

_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not run|shipped|excerpt):\s*(?P<value>.*?)\s*-->\s*$")


def shown_path(path: Path) -> str:
    """A document's path as its reader knows it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def documents() -> list[Path]:
    """README.md and every docs/*.md, in a fixed order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marker: str | None  # "not run", "shipped", "excerpt"
    marker_value: str

    @property
    def where(self) -> str:
        return f"{shown_path(self.path)}:{self.line}"

    def found_in_source(self) -> bool:
        """Whether an excerpt is a verbatim part of the file it names, at some indentation."""
        source = (ROOT / self.marker_value).read_text(encoding="utf-8")
        lines = self.text.split("\n")
        return any(
            "\n".join((" " * indent + line) if line else line for line in lines) in source
            for indent in range(0, 17, 4)
        )

    @property
    def runs(self) -> bool:
        return self.language in RUN and self.marker != "not run"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, with the marker before each."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = len(opening["indent"])
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{shown_path(path)}:{index + 1}: the block never ends")
        body = [
            line[indent:] if line[:indent].strip() == "" else line
            for line in lines[index + 1 : end]
        ]
        marker = _MARKER.match(lines[index - 1]) if index > 0 else None
        found.append(
            Block(
                path=path,
                line=index + 1,
                language=opening["info"].strip(),
                text="\n".join(body) + "\n",
                marker=marker["kind"] if marker else None,
                marker_value=marker["value"] if marker else "",
            )
        )
        index = end + 1
    return found


def problems(block: Block) -> list[str]:
    """Why a block breaks the convention (empty when it keeps it)."""
    where = block.where
    if block.language not in LANGUAGES:
        return [
            f"{where}: a block in {block.language or 'no language'!r}: name one of "
            f"{', '.join(sorted(LANGUAGES))} (docs/testing.md says what each means)"
        ]
    if block.marker == "not run" and not block.marker_value:
        return [f"{where}: 'not run' needs a reason"]
    if block.marker == "not run" and block.language not in RUN | PYTHON:
        return [f"{where}: only shell and Python blocks run, so only they can be 'not run'"]
    if block.language in PYTHON and block.marker == "excerpt":
        if not (ROOT / block.marker_value).is_file():
            return [f"{where}: {block.marker_value} is not a file of this repository"]
    elif block.language in CONFIGURATION:
        if block.marker not in ("shipped", "excerpt"):
            return [
                f"{where}: a {block.language} snippet must be a shipped file: put "
                "<!-- shipped: examples/… --> or <!-- excerpt: examples/… --> before it"
            ]
        if not (ROOT / block.marker_value).is_file():
            return [f"{where}: {block.marker_value} is not a file of this repository"]
    elif block.marker in ("shipped", "excerpt"):
        return [f"{where}: only configuration snippets (and Python excerpts) can be {block.marker}"]
    if block.language == "console" and not block.text.lstrip().startswith("$ "):
        return [f"{where}: a console block starts with a '$ ' command"]
    return []


# --- console blocks: commands and the output they show -------------------------------


@dataclass(frozen=True)
class Step:
    command: str
    shown: str  # the output the document shows, "" for none
    line: int  # of the command, in the document


def steps(block: Block) -> list[Step]:
    """The commands of a ``console`` block, each with the output shown after it."""
    found: list[Step] = []
    command: list[str] = []
    shown: list[str] = []
    start = 0
    lines = block.text.rstrip("\n").split("\n")

    def close() -> None:
        if command:
            found.append(Step("\n".join(command), "\n".join(shown), start))

    continuing = False
    for offset, line in enumerate(lines):
        if continuing:
            command.append(line)
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            close()
            command, shown = [line[2:]], []
            start = block.line + 1 + offset
            continuing = line.endswith("\\")
        else:
            shown.append(line)
    close()
    return found


def sh_steps(block: Block) -> list[Step]:
    """The commands of an ``sh`` block, each on its own (each must succeed); no output shown."""
    found: list[Step] = []
    command: list[str] = []
    start = 0
    for offset, line in enumerate(block.text.rstrip("\n").split("\n")):
        if not command:
            if not line.strip():
                continue
            start = block.line + 1 + offset
        command.append(line)
        if not line.endswith("\\"):
            found.append(Step("\n".join(command), "", start))
            command = []
    if command:
        found.append(Step("\n".join(command), "", start))
    return found


# --- masking and comparing -----------------------------------------------------------

_MASKS = [
    (re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"), "<jwt>"),
    # a whole key; a document writes it "vb_…"
    (re.compile("vb" + r"_(?:[A-Za-z0-9]{32}(?![A-Za-z0-9])|…)"), "<access key>"),
    (re.compile("vb" + r"_[A-Za-z0-9]{8}(?![A-Za-z0-9])"), "<key prefix>"),
    (re.compile("whsec" + r"_[A-Za-z0-9_\-]{20,}"), "<webhook secret>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32}(?![0-9A-Za-z])"), "<request id>"),
    # a paging cursor: URL-safe base64 of a time ("2026-…") and an id
    (re.compile(r"(?<![A-Za-z0-9_\-])MjA[A-Za-z0-9_\-]{20,}=*"), "<page token>"),
]


def mask(text: str) -> str:
    """Text with ids, keys, tokens and times replaced by what they are."""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _pattern(shown: str) -> re.Pattern[str]:
    parts: list[str] = []
    for line in mask(shown).split("\n"):
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        escaped = ".*?".join(re.escape(piece) for piece in line.rstrip().split("…"))
        parts.append(escaped + r"[ \t]*\n")
    return re.compile("".join(parts), re.DOTALL)


def agrees(shown: str, real: str) -> bool:
    """Whether the real output is the output shown, up to masks and ``…``."""
    real_lines = mask(real).rstrip("\n").split("\n")
    real_text = "\n".join(line.rstrip() for line in real_lines) + "\n"
    if shown.strip() == "":
        return real.strip() == ""
    return _pattern(shown.rstrip("\n")).fullmatch(real_text) is not None


# --- a shell that keeps its variables from one command to the next -------------------


class ShellError(AssertionError):
    pass


class Shell:
    """One ``bash`` for one document: the variables a step sets stay for the next."""

    def __init__(self, cwd: Path, env: dict[str, str], timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._serial = 0
        self.run("set -o pipefail")

    def run(self, command: str) -> tuple[int, str]:
        """The exit status and output (standard error included) of ``command``."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self._serial += 1
        sentinel = f"__step_{self._serial}_done__"
        # Commands read /dev/null, not the rest of this script.
        script = (
            f"{{ {command}\n__status=$?; }} </dev/null\n"
            f"printf '\\n{sentinel} %d\\n' \"$__status\"\n"
        )
        self.process.stdin.write(script.encode())
        self.process.stdin.flush()
        output = b""
        deadline = time.monotonic() + self.timeout
        end = re.compile(rb"\n" + sentinel.encode() + rb" (\d+)\n$")
        while (found := end.search(output)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ShellError(
                    f"no end within {self.timeout} s (an unclosed quote?); so far:\n"
                    f"{output.decode()}"
                )
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = self.process.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    raise ShellError(f"the shell exited; output:\n{output.decode()}")
                output += chunk
        return int(found[1]), output[: found.start()].decode("utf-8", errors="replace")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
