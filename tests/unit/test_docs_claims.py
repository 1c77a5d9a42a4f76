"""Every test the docs name as holding a promise exists (docs/testing.md)."""

from __future__ import annotations

import re

from tests.docs_examples import ROOT, documents

_NAMED = re.compile(r"\btests/[\w/]+\.py(?:::\w+\*?)?")  # name_* names a family


def _named_tests() -> dict[str, list[str]]:
    """Each ``tests/…py::name`` (or ``tests/…py``) in the docs, with where it is named."""
    found: dict[str, list[str]] = {}
    for path in documents():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for reference in _NAMED.findall(line):
                found.setdefault(reference, []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def _exists(reference: str) -> bool:
    file, _, name = reference.partition("::")
    source = ROOT / file
    if not source.is_file():
        return False
    if not name:
        return True
    pattern = rf"{name[:-1]}\w*" if name.endswith("*") else name
    return re.search(rf"^(?:async )?def {pattern}\(", source.read_text(), re.MULTILINE) is not None


def test_every_test_the_docs_name_exists() -> None:
    missing = [
        f"{reference} (named at {', '.join(places)})"
        for reference, places in sorted(_named_tests().items())
        if not _exists(reference)
    ]
    assert missing == [], "\n".join(missing)


def test_the_promises_table_names_tests() -> None:
    table = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    section = table[table.index("## Numbers the docs promise") : table.index("## Mutation testing")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 25


def test_a_renamed_test_is_noticed() -> None:
    assert _exists("tests/unit/test_docs_claims.py::test_a_renamed_test_is_noticed")
    assert not _exists("tests/unit/test_docs_claims.py::test_that_was_renamed")
    assert not _exists("tests/unit/no_such_file.py")
    assert _exists("tests/unit/test_docs_claims.py::test_a_renamed_*")
    assert not _exists("tests/unit/test_docs_claims.py::test_never_*")
