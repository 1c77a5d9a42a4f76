"""docs/api.md's error table and README.md's status list name every error the code answers.

The reasons are read from the source, so a new one cannot go undocumented:
each ``reason="…"`` given to a domain error (whose class gives the HTTP
status), each class's default reason where it is raised without one, and the
web layer's own envelopes (``error_response``/``envelope`` with a literal
status and reason, and ``envelope.py``'s table of HTTP codes).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import keyplane.web.app  # noqa: F401  (defines every error class, the web layer's too)
from keyplane.errors import KeyplaneError
from keyplane.web.envelope import HTTP_STATUS
from tests.docs_examples import ROOT

SOURCE = ROOT / "src" / "keyplane"
# Libraries for other programs, not keyplane's API: the client reads envelopes,
# and the gateway's own answers are in docs/gateway.md.
NOT_THE_API = ("client", "gateway")
ENVELOPE_WRITERS = {"error_response", "envelope", "_envelope_bytes"}

Error = tuple[int, str, str]  # HTTP code, status, reason


def _error_classes() -> dict[str, type[KeyplaneError]]:
    found: dict[str, type[KeyplaneError]] = {}
    pending: list[type[KeyplaneError]] = [KeyplaneError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _text(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _http_codes_in(function: ast.AST) -> set[int]:
    return {
        node.value
        for node in ast.walk(function)
        if isinstance(node, ast.Constant) and type(node.value) is int and 400 <= node.value <= 599
    }


def _errors_in(tree: ast.Module, classes: dict[str, type[KeyplaneError]]) -> Iterator[Error]:
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = _name(node.func)
            given = next((k.value for k in node.keywords if k.arg == "reason"), None)
            if callee in classes:
                cls = classes[callee]
                reason = cls.default_reason if given is None else _text(given)
                if reason is not None:  # else passed on from a caller, whose literal is found
                    yield HTTP_STATUS[cls.status], cls.status, reason
            elif callee in ENVELOPE_WRITERS and len(node.args) >= 2:
                status, reason = _text(node.args[0]), _text(node.args[1])
                if status is None or reason is None:
                    continue
                code = next((k.value for k in node.keywords if k.arg == "http_status"), None)
                if isinstance(code, ast.Constant) and isinstance(code.value, int):
                    yield code.value, status, reason
                    continue
                # Written out by hand with its code (431): the one code in the function.
                around = [f for f in functions if node in ast.walk(f)]
                codes = _http_codes_in(around[-1]) if around else set()
                yield (codes.pop() if len(codes) == 1 else HTTP_STATUS[status]), status, reason
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Name):
            cls = classes.get(node.exc.id)  # `raise SomeError`, without a call
            if cls is not None:
                yield HTTP_STATUS[cls.status], cls.status, cls.default_reason
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                # envelope.py's {408: ("INVALID_ARGUMENT", "BODY_TIMEOUT", "…"), …}
                if (
                    isinstance(key, ast.Constant)
                    and type(key.value) is int
                    and isinstance(value, ast.Tuple)
                    and len(value.elts) >= 2
                ):
                    status, reason = _text(value.elts[0]), _text(value.elts[1])
                    if status is not None and reason is not None:
                        yield key.value, status, reason


def _source_files() -> list[Path]:
    return [
        path
        for path in sorted(SOURCE.rglob("*.py"))
        if path.relative_to(SOURCE).parts[0] not in NOT_THE_API
    ]


def errors_in_the_code() -> set[Error]:
    classes = _error_classes()
    found: set[Error] = set()
    for path in _source_files():
        found.update(_errors_in(ast.parse(path.read_text(encoding="utf-8")), classes))
    return found


def documented_errors() -> set[Error]:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text[text.index("| HTTP | status | reason | when |") :].split("\n\n", 1)[0]
    row = re.compile(r"^\| (\d{3}) \| `([A-Z_]+)` \| `([A-Z_]+)` \|", re.MULTILINE)
    return {(int(code), status, reason) for code, status, reason in row.findall(section)}


def test_the_collector_finds_the_kinds_of_error_there_are() -> None:
    found = errors_in_the_code()
    assert (400, "INVALID_ARGUMENT", "INVALID_WEBHOOK_URI") in found  # reason= on a class
    assert (401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED") in found  # a class's default
    assert (413, "INVALID_ARGUMENT", "BODY_TOO_LARGE") in found  # the web layer's own
    assert (431, "INVALID_ARGUMENT", "HEADERS_TOO_LARGE") in found  # written by hand
    assert (408, "INVALID_ARGUMENT", "BODY_TIMEOUT") in found  # envelope.py's table
    assert (429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED") in found
    assert all(re.fullmatch(r"[A-Z]+(_[A-Z]+)*", reason) for _, _, reason in found)


def test_every_error_the_code_answers_is_in_the_table_of_docs_api() -> None:
    missing = sorted(errors_in_the_code() - documented_errors())
    assert missing == [], f"add to docs/api.md's error table (HTTP, status, reason): {missing}"


def test_the_table_of_docs_api_names_no_error_the_code_lacks() -> None:
    stale = sorted(documented_errors() - errors_in_the_code())
    assert stale == [], f"docs/api.md's error table names what the code never answers: {stale}"


def test_the_status_list_of_the_readme_covers_every_status_the_api_answers() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("`status` maps to the HTTP code (")
    listed = text[start : text.index(").", start)]
    codes = {int(code) for code in re.findall(r"\b\d{3}\b", listed)}
    statuses = set(re.findall(r"`([A-Z_]+)`", listed))
    answered = errors_in_the_code()
    assert {code for code, _, _ in answered} - codes == set()
    assert {status for _, status, _ in answered} - statuses == set()
