from __future__ import annotations

import json
import logging

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from keyplane.domain import tokens
from keyplane.redaction import REDACTED, redact_text, redact_value
from tests.logcapture import captured_logging

KEY = "vb_" + "Q7dK2mXc9pLr4TzW8nYb3HfV6sJa1GeU"  # fixed: test ids must agree across workers
JWT = "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiJ4In0" + "." + "c2lnbmF0dXJlLXBhcnQ"


@pytest.mark.parametrize(
    "line",
    [
        f"GET /v1.0/accesskeys?accesskey={KEY} HTTP/1.1",
        f"GET /v1.0/accesskeys?page_size=5&accesskey={KEY}&x=1",
        f"GET /v1.0/accesskeys?ACCESSKEY={KEY}",
        f"GET /v1.0/accesskeys?access%6Bey={KEY}",
        f"GET /v1.0/accesskeys?%61%63%63%65%73%73%6b%65%79={KEY[:10]}",
        f"GET /v1.0/accesskeys?accesskey={KEY.replace('_', '%5F')}",
        f"GET /v1.0/accesskeys?token={JWT}",
        f"GET /v1.0/accesskeys?to%6Ben={JWT}",
        f"GET /v1.0/accesskeys/{KEY}",
        f"Authorization: Bearer {KEY}",
        f"authorization: bearer {JWT}",
        "Authorization: Basic dXNlcjpwYXNz",
        f"Cookie: token={JWT}; accesskey={KEY}",
        f'{{"password": "x", "url": "/?accesskey={KEY}"}}',
        f"redirect to /x?accesskey%3D{KEY}",
    ],
)
def test_credentials_are_removed_from_text(line: str) -> None:
    redacted = redact_text(line)
    assert KEY not in redacted
    assert KEY[3:] not in redacted
    assert JWT not in redacted
    assert "dXNlcjpwYXNz" not in redacted
    assert REDACTED in redacted


def test_partial_accesskey_values_are_removed_by_parameter_name() -> None:
    assert "short-guess" not in redact_text("/v1.0/accesskeys?accesskey=short-guess")
    assert "hunter2" not in redact_text("/login?password=hunter2")


def test_ordinary_text_is_kept() -> None:
    line = "GET /v1.0/accesskeys?page_size=10&page_token=abc HTTP/1.1 200"
    assert redact_text(line) == line
    assert redact_text("the token was refused") == "the token was refused"


def test_structured_values_are_redacted_by_field_name_and_content() -> None:
    event = {
        "headers": {"Authorization": "Bearer x", "Cookie": "a=b", "Accept": "*/*"},
        "password": "hunter2",
        "items": [f"key {KEY}", 3],
        "nested": ({"token": JWT},),
    }
    redacted = redact_value(event)
    assert redacted["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED, "Accept": "*/*"}
    assert redacted["password"] == REDACTED
    assert redacted["items"] == [f"key {REDACTED}", 3]
    assert redacted["nested"] == ({"token": REDACTED},)


@given(st.text(alphabet=tokens.ALPHABET, min_size=32, max_size=32), st.text(max_size=20))
def test_any_token_anywhere_is_removed(body: str, around: str) -> None:
    key = "vb" + "_" + body
    assert key not in redact_text(f"{around}{key}{around}")


def test_every_logger_goes_through_redaction() -> None:
    with captured_logging("json") as stream:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/x?accesskey={KEY}", "1.1", 200
        )
        logging.getLogger("uvicorn.error").error("failed for %s", f"Bearer {JWT}")
        structlog.stdlib.get_logger("keyplane.test").info("event", token=JWT, note=f"k={KEY}")
        try:
            raise RuntimeError(f"boom {KEY}")
        except RuntimeError:
            logging.getLogger("sqlalchemy").exception("with traceback")
    output = stream.getvalue()
    assert KEY not in output
    assert JWT not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 4
    assert lines[0]["logger"] == "uvicorn.access"
    assert REDACTED in lines[0]["event"]
