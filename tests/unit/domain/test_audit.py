"""The request's origin, as the audit trail reads it, and the types of entries."""

from __future__ import annotations

import contextvars
import re

import pytest

from keyplane.domain.audit import (
    AUDIT_TYPES,
    Origin,
    audit_types_from_query,
    current_origin,
    set_origin,
)
from tests.docs_examples import ROOT


def test_without_an_origin_entries_have_an_empty_one() -> None:
    """The command line names no origin: its entries have no request id and no address."""
    assert contextvars.Context().run(current_origin) == Origin("", "")


def test_the_origin_set_is_the_one_read_in_the_same_context() -> None:
    def request() -> Origin:
        set_origin(Origin(request_id="req-1", address="203.0.113.7"))
        return current_origin()

    assert contextvars.Context().run(request) == Origin("req-1", "203.0.113.7")
    assert contextvars.Context().run(current_origin) == Origin()


def _documented_types() -> list[str]:
    text = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    bullet = text.split("- **Types**:", 1)[1].split("\n- ", 1)[0]
    names = re.findall(r"`([a-z]+(?:_[a-z]+)+)`", bullet)  # `type` and `PUT …` are not types
    return list(dict.fromkeys(names))  # each at its first mention


def test_the_documented_types_are_the_types_the_code_records() -> None:
    """docs/audit.md lists every type, in the code's order, and nothing else."""
    assert _documented_types() == list(AUDIT_TYPES)
    assert "agent_password_changed" in AUDIT_TYPES
    assert "session_ended" in AUDIT_TYPES


def test_the_type_filter_takes_known_types_separated_by_commas() -> None:
    assert audit_types_from_query(None) == frozenset()
    assert audit_types_from_query(" , ") == frozenset()
    assert audit_types_from_query("accesskey_deleted, session_ended") == {
        "accesskey_deleted",
        "session_ended",
    }


def test_an_unknown_type_is_refused_naming_every_known_one() -> None:
    with pytest.raises(ValueError, match="nope") as refused:
        audit_types_from_query("accesskey_deleted,nope")
    for name in AUDIT_TYPES:
        assert name in str(refused.value)
