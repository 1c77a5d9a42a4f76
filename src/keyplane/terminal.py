"""Text that is safe to show in a terminal: nothing in it can drive the terminal.

Stored values (names, details, usernames) and request data (paths, query
strings) are chosen by people who are not the operator. Shown raw, an ESC,
CSI or OSC sequence could clear the screen, move the cursor, set the window
title or emit a hyperlink, and a line break could forge a table row or a log
line. ``visible`` makes every such character visible instead:

- C0 controls except tab, DEL and C1 controls become ``\\x1b``-style escapes;
- line breaks become ``\\n``/``\\r`` (and U+2028/U+2029 ``\\u2028``-style);
- bidirectional overrides and isolates become ``\\u202e``-style escapes, so
  text cannot appear in an order other than the one it is stored in.

It is one ``str.translate``: linear in the length of the text.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r"}
_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)


def _escape(code: int) -> str:
    return _NAMED.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


_VISIBLE = {
    code: _escape(code)
    for code in (*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *_BIDI)
    if code != 0x09
}
_VISIBLE_KEEPING_NEWLINES = {code: text for code, text in _VISIBLE.items() if code != 0x0A}


def visible(value: object) -> str:
    """``value`` as text on one line, every control character shown as an escape."""
    return str(value).translate(_VISIBLE)


def visible_lines(value: object) -> str:
    """As :func:`visible`, but line feeds stay (for tracebacks, which span lines)."""
    return str(value).translate(_VISIBLE_KEEPING_NEWLINES)
