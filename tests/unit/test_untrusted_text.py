"""Untrusted text is handled in linear time, with bounded work per log line.

Every case of the adversarial corpus must take about 4 times as long on 4
times the input (``tests.linearity``), where the quadratic code took 16 times
as long, and seconds to minutes at 64 KiB. No test here reads a clock's
absolute value, so a busy machine cannot fail them.
"""

from __future__ import annotations

import json
import logging
import re
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
from tests.linearity import LARGE, SMALL, assert_linear
from tests.logcapture import captured_logging

CORPUS = {size: corpus(size) for size in (SMALL, LARGE)}
# Cookies reach 128 KiB: the cookie corpus at 32 and 128 KiB too, named apart.
COOKIE_CORPUS = {
    size: {**corpus(size), **{f"x2-{k}": v for k, v in corpus(2 * size).items()}}
    for size in (SMALL, LARGE)
}
KEY = "vb_" + "Q7dK2mXc9pLr4TzW8nYb3HfV6sJa1GeU"  # fixed: test ids must agree across workers
JWT = "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiJ4In0" + "." + "c2lnbmF0dXJlLXBhcnQ"
KEY_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
CUT = re.compile(re.escape(CUT_MARKER).replace(r"\{\}", r"[0-9]+"))


def on_corpus(
    cases: dict[int, dict[str, str]], name: str, work: Callable[[str], object]
) -> Callable[[int], Callable[[], object]]:
    """``assert_linear``'s work: ``work`` on the case ``name`` of the corpus of each size."""
    return lambda size: lambda: work(cases[size][name])


@pytest.mark.parametrize("name", sorted(CORPUS[LARGE]))
def test_redaction_is_linear_on_the_corpus(name: str) -> None:
    # Uncapped, to show the scans themselves are linear; and capped, as logging uses it.
    assert_linear(on_corpus(CORPUS, name, lambda text: redact_text(text, limit=len(text))))
    assert_linear(on_corpus(CORPUS, name, redact_shapes))
    assert_linear(on_corpus(CORPUS, name, redact_text))


@pytest.mark.parametrize("name", sorted(COOKIE_CORPUS[LARGE]))
def test_cookie_parser_is_linear_on_the_corpus(name: str) -> None:
    for prefix in ("", "token="):
        for parse in (parse_cookies, canonical_cookie_header):
            assert_linear(
                on_corpus(
                    COOKIE_CORPUS, name, lambda text, p=parse, before=prefix: p(before + text)
                )
            )


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("name", sorted(known_attacks()))
def test_every_log_path_is_bounded_and_linear(fmt: str, name: str) -> None:
    attacks = {size: known_attacks(size)[name] for size in (SMALL, LARGE)}
    with captured_logging(fmt) as stream:

        def log_everywhere(text: str) -> None:
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

        assert_linear(lambda size: lambda: log_everywhere(attacks[size]))
        lines_before = len(stream.getvalue().splitlines())
        log_everywhere(attacks[LARGE])
    lines = "\n".join(stream.getvalue().splitlines()[lines_before:])
    assert CUT.search(lines)
    # Three values of at most FIELD_LIMIT, escaping at most quadruples each.
    assert len(lines) < 4 * (TRACEBACK_LIMIT + 12 * FIELD_LIMIT)


def refused(parse: Callable[[str], object], text: str, *errors: type[Exception]) -> None:
    with pytest.raises(errors or (ValueError,)):
        parse(text)


@pytest.mark.parametrize("name", sorted(CORPUS[LARGE]))
def test_request_ids_cursors_and_timestamps_are_linear(name: str) -> None:
    def request_id(text: str) -> object:
        return _incoming_request_id({"headers": [(b"x-request-id", text.encode())]})

    assert_linear(on_corpus(CORPUS, name, request_id))
    for parse in (decode_cursor, parse_timestamp):
        refused(parse, CORPUS[LARGE][name])
        assert_linear(on_corpus(CORPUS, name, lambda text, p=parse: refused(p, text)))


def test_a_cursor_round_trips_and_json_depth_is_bounded() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, KEY_ID)).tm_create == moment
    for unit in ("[", '{"a":'):
        assert_linear(
            lambda size, unit=unit: (
                lambda: refused(json.loads, unit * (size // len(unit)), ValueError, RecursionError)
            )
        )


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


# A Hypothesis property: on any text up to 64 KiB, redaction adds nothing but
# its markers, removes every token planted in the text, and takes linear time.
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
        redacted = redact_text(filler, limit=limit)
        assert only_markers_added(filler, redacted)
        for token in planted:
            assert token not in redacted
    assert_linear(lambda size: lambda: redact_text((filler * (size // len(filler) + 1))[:size]))


def test_malformed_credential_cookies_stay_present_but_never_raw() -> None:
    header = 'a="\\x\\x"; token="' + JWT + '"; accesskey=bad\x1bvalue; other=1; token=' + JWT
    assert parse_cookies(header) == {"token": JWT, "accesskey": "bad\x1bvalue"}
    assert canonical_cookie_header(header) == f"token={JWT}; accesskey={MALFORMED_COOKIE}"
    assert parse_cookies(None) == {}
    assert canonical_cookie_header("a=1; b=2") == ""
