"""Untrusted text is handled in linear time, with bounded work per log line.

Every case of the adversarial corpus must finish far inside a generous bound
(0.5 s) where the quadratic code took seconds to minutes; the margin keeps
the tests stable on a loaded machine. No test here measures a speed.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyplane.domain import tokens
from keyplane.domain.pagination import decode_cursor, encode_cursor
from keyplane.domain.timefmt import parse_timestamp
from keyplane.redaction import (
    CUT_MARKER,
    FIELD_LIMIT,
    REDACTED,
    TRACEBACK_LIMIT,
    cut,
    redact_shapes,
    redact_text,
)
from keyplane.web.credentials import MALFORMED_COOKIE, canonical_cookie_header, parse_cookies
from keyplane.web.middleware import _incoming_request_id
from tests.adversarial import KIB, corpus, known_attacks
from tests.logcapture import captured_logging

BOUND = 0.5
CORPUS = corpus(64 * KIB)
COOKIE_CORPUS = {**corpus(128 * KIB), **{f"64k-{k}": v for k, v in corpus(64 * KIB).items()}}
KEY = "vb_" + "Q7dK2mXc9pLr4TzW8nYb3HfV6sJa1GeU"  # fixed: test ids must agree across workers
JWT = "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiJ4In0" + "." + "c2lnbmF0dXJlLXBhcnQ"
KEY_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
CUT = re.compile(re.escape(CUT_MARKER).replace(r"\{\}", r"[0-9]+"))


def finishes_quickly(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND, f"took {elapsed:.2f} s"
    return elapsed


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_redaction_is_linear_on_the_corpus(name: str) -> None:
    text = CORPUS[name]
    # Uncapped, to show the scans themselves are linear; and as logging uses it.
    finishes_quickly(lambda: redact_text(text, limit=len(text)))
    finishes_quickly(lambda: redact_shapes(text))
    finishes_quickly(lambda: redact_text(text))


@pytest.mark.parametrize("name", sorted(COOKIE_CORPUS))
def test_cookie_parser_is_linear_on_the_corpus(name: str) -> None:
    for header in (COOKIE_CORPUS[name], "token=" + COOKIE_CORPUS[name]):
        finishes_quickly(lambda header=header: parse_cookies(header))
        finishes_quickly(lambda header=header: canonical_cookie_header(header))


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("name", sorted(known_attacks()))
def test_every_log_path_is_bounded_and_linear(fmt: str, name: str) -> None:
    text = known_attacks(64 * KIB)[name]
    with captured_logging(fmt) as stream:

        def log_everywhere() -> None:
            logging.getLogger("uvicorn.access").info(
                '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/x?" + text, "1.1", 200
            )
            logging.getLogger("uvicorn.error").error("failed for %s", text)
            structlog.stdlib.get_logger("keyplane.access").info(
                "request", path="/" + text, query=text, headers={"x": text}
            )
            try:
                raise ValueError(text)
            except ValueError:
                logging.getLogger("keyplane.error").exception("unhandled_error")

        finishes_quickly(log_everywhere)
    lines = stream.getvalue()
    assert CUT.search(lines)
    # Three values of at most FIELD_LIMIT, escaping at most quadruples each.
    assert len(lines) < 4 * (TRACEBACK_LIMIT + 12 * FIELD_LIMIT)


def test_request_ids_cursors_timestamps_and_json_depth_are_bounded() -> None:
    for text in CORPUS.values():
        scope = {"headers": [(b"x-request-id", text.encode())]}
        finishes_quickly(lambda scope=scope: _incoming_request_id(scope))
        for parse in (decode_cursor, parse_timestamp):
            started = time.perf_counter()
            with pytest.raises(ValueError, match="not a"):
                parse(text)
            assert time.perf_counter() - started < BOUND
        finishes_quickly(lambda text=text: parse_cookies(text))
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, KEY_ID)).tm_create == moment
    for nested in ("[" * 64 * KIB, '{"a":' * 12 * KIB):
        started = time.perf_counter()
        with pytest.raises((ValueError, RecursionError)):
            json.loads(nested)
        assert time.perf_counter() - started < BOUND


def test_a_long_value_is_cut_and_marked() -> None:
    text = "x " * FIELD_LIMIT
    redacted = redact_text(text)
    assert len(redacted) <= FIELD_LIMIT + 40
    kept, marker = cut(text)
    assert redacted == kept + marker
    assert marker == CUT_MARKER.format(len(text) - len(kept))
    assert redact_text("short") == "short"


@pytest.mark.parametrize(
    "secret",
    [
        KEY,
        KEY.replace("_", "%5F"),
        JWT,
        "accesskey=" + "guess" * 10,
        "password%3D" + "hunter2" * 10,
        "Bearer " + KEY,
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    ],
)
def test_a_cut_never_reveals_part_of_a_secret(secret: str) -> None:
    hidden = secret.rsplit("=", 1)[-1].rsplit(" ", 1)[-1].rsplit("$", 1)[-1]
    for offset in range(1, len(secret)):
        text = "a" * (FIELD_LIMIT - offset) + " " + secret + " tail"
        redacted = redact_text(text)
        assert CUT.search(redacted), offset
        # Not even the first characters of the secret's own part are left.
        assert hidden[:4] not in redacted.replace(REDACTED, ""), (offset, redacted[-80:])


def test_the_record_factory_bounds_messages_and_tracebacks() -> None:
    with captured_logging("json") as stream:
        logging.getLogger("uvicorn.error").error("x" * (4 * FIELD_LIMIT))
        try:
            raise ValueError("y" * (4 * TRACEBACK_LIMIT))
        except ValueError:
            logging.getLogger("keyplane.error").exception("boom")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert len(first["event"]) < FIELD_LIMIT + 40
    assert CUT.search(first["event"])
    assert len(second["exception"]) < TRACEBACK_LIMIT + 40
    assert CUT.search(second["exception"])


# A Hypothesis property: on any text up to 64 KiB, redaction finishes, adds
# nothing but its markers, and removes every token planted in the text.
PIECES = st.one_of(
    st.text(max_size=64),
    st.sampled_from(["%25", "%3", "%3D", "=", "vb", "vb_", "eyJ", ".", '"\\x', "Bearer ", "&"]),
    st.text(alphabet='%25=3Dvb_eyJ.x\\"&; ', max_size=32),
)
PLANTED = st.one_of(
    st.text(alphabet=tokens.ALPHABET, min_size=32, max_size=32).map(lambda b: "vb" + "_" + b),
    st.tuples(*[st.text(alphabet=tokens.ALPHABET + "_-", min_size=4, max_size=40)] * 3).map(
        lambda parts: "eyJ" + ".".join(parts)
    ),
)


def only_markers_added(original: str, redacted: str) -> bool:
    position = 0
    for piece in re.split(re.escape(REDACTED) + "|" + CUT.pattern, redacted):
        found = original.find(piece, position)
        if found == -1:
            return False
        position = found + len(piece)
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(PIECES, max_size=40),
    planted=st.lists(PLANTED, min_size=1, max_size=5),
    repeat=st.integers(min_value=1, max_value=1500),
    data=st.data(),
)
def test_redaction_property(
    pieces: list[str], planted: list[str], repeat: int, data: st.DataObject
) -> None:
    filler = "".join(pieces) * repeat
    filler = filler[: 64 * KIB - 400]
    for token in planted:
        at = data.draw(st.integers(min_value=0, max_value=len(filler)))
        filler = filler[:at] + " " + token + " " + filler[at:]
    for limit in (FIELD_LIMIT, len(filler)):
        started = time.perf_counter()
        redacted = redact_text(filler, limit=limit)
        assert time.perf_counter() - started < BOUND
        assert only_markers_added(filler, redacted)
        for token in planted:
            assert token not in redacted


def test_malformed_credential_cookies_stay_present_but_never_raw() -> None:
    header = 'a="\\x\\x"; token="' + JWT + '"; accesskey=bad\x1bvalue; other=1; token=' + JWT
    assert parse_cookies(header) == {"token": JWT, "accesskey": "bad\x1bvalue"}
    assert canonical_cookie_header(header) == f"token={JWT}; accesskey={MALFORMED_COOKIE}"
    assert parse_cookies(None) == {}
    assert canonical_cookie_header("a=1; b=2") == ""
