"""The request's origin, as the audit trail reads it."""

from __future__ import annotations

import contextvars

from keyplane.domain.audit import Origin, current_origin, set_origin


def test_without_an_origin_entries_have_an_empty_one() -> None:
    """The command line names no origin: its entries have no request id and no address."""
    assert contextvars.Context().run(current_origin) == Origin("", "")


def test_the_origin_set_is_the_one_read_in_the_same_context() -> None:
    def request() -> Origin:
        set_origin(Origin(request_id="req-1", address="203.0.113.7"))
        return current_origin()

    assert contextvars.Context().run(request) == Origin("req-1", "203.0.113.7")
    assert contextvars.Context().run(current_origin) == Origin()
