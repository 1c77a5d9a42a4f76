from __future__ import annotations

import json
import logging

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from keyplane.domain import tokens
from keyplane.redaction import REDACTED, cut, redact_shapes, redact_text, redact_value
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


def percent_encoded(text: str, hex_format: str = "%{:02X}", every: int = 1) -> str:
    """``text`` with every ``every``-th character percent-encoded."""
    return "".join(hex_format.format(ord(c)) if i % every == 0 else c for i, c in enumerate(text))


ENCODINGS = {
    "all, upper case": lambda s: percent_encoded(s),
    "all, lower case": lambda s: percent_encoded(s, "%{:02x}"),
    "every third": lambda s: percent_encoded(s, every=3),
    "twice": lambda s: percent_encoded(s).replace("%", "%25"),
    "three times": lambda s: percent_encoded(s, "%{:02x}").replace("%", "%2525"),
}
PLACES = [
    "GET /v1.0/nothing/{} HTTP/1.1",
    "GET /v1.0/accesskeys?unread={}&page_size=1 HTTP/1.1",
    '{{"path": "/a/{}/b"}}',
    "/a;{};b",
]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("secret", [KEY, JWT], ids=["key", "jwt"])
def test_a_percent_encoded_credential_is_removed_wherever_it_stands(
    secret: str, encoding: str, place: str
) -> None:
    encoded = ENCODINGS[encoding](secret)
    line = place.format(encoded)
    for redacted in (redact_text(line), redact_shapes(line)):
        assert encoded not in redacted
        assert redacted == place.format(REDACTED)


def test_percent_encoded_ordinary_text_is_kept() -> None:
    for line in ("/a%20b/c%2Fd?q=%41bc&v=%76%62", "/x/" + percent_encoded("vb_short")):
        assert redact_text(line) == line


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


def test_the_extra_fields_of_a_standard_library_record_are_redacted() -> None:
    """A structlog event is redacted as its record is made; a record's extras later."""
    with captured_logging("json") as stream:
        library = logging.getLogger("some.library")
        library.info("plain", extra={"token": "opaque-value", "note": f"Bearer {JWT}"})
        library.info({"event": "a dict message"}, extra={"password": "hunter2-plain"})
        structlog.stdlib.get_logger("keyplane.test").info("event", accesskey="x", note=KEY)
    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["token"] == REDACTED
    assert KEY not in output
    assert JWT not in output
    assert "opaque-value" not in output
    assert "hunter2-plain" not in output
    assert lines[2]["accesskey"] == REDACTED


# Exactly what a log line becomes: the secret goes, everything around it stays.
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f"GET /x?accesskey={KEY}&page_size=5 HTTP/1.1",
            "GET /x?accesskey=##&page_size=5 HTTP/1.1",
        ),
        ("?to%6Ben=abc", "?to%6Ben=##"),
        ("?to%256Ben=abc", "?to%256Ben=##"),  # the name encoded twice
        ("?to%25256Ben=abc", "?to%25256Ben=##"),  # three times
        ("?accesskey%3Dvalue", "?accesskey%3D##"),
        ("?accesskey%253Dvalue", "?accesskey%253D##"),
        ("?a%26token=secret", "?a%26token=##"),  # the name proper follows the decoded `&`
        ("a%2Btoken=y", "a%2Btoken=##"),
        ("+token=abc", "+token=##"),
        ("Access_Token=xyz&PASSWORD=x", "Access_Token=##&PASSWORD=##"),
        ("x=password=secret", "x=password=##"),
        ("page=1%3Dtoken=x", "page=1%3Dtoken=##"),
        # An `=` encoded four times right after another `=` (or first in the text)
        # still ends the name before it: the name that follows is `password` alone.
        ("q=%2525253Dpassword=secret", "q=%2525253Dpassword=##"),
        ("%2525253Dpassword=secret", "%2525253Dpassword=##"),
        ("token=abc;def", "token=##;def"),
        ("token=a=b&password=c", "token=##&password=##"),  # an `=` inside a value
        ("a=1&password=&token=x", "a=1&password=&token=##"),
        ("token=a%26b&c=d", "token=##&c=d"),
        # A quoted value is hidden whole, up to its closing quote or the line's end.
        ('password="hunter 2" next', 'password="##" next'),
        ("token='a b'&c=d", "token='##'&c=d"),
        ('password="open to the end\nnext=1', 'password="##\nnext=1'),
        ('password="" token=x', 'password="" token=##'),
        ('note="a=b" password="x=y token=z"', 'note="a=b" password="##"'),
        ('token=abc password="x y" rest', 'token=## password="##" rest'),  # both, all else kept
        ("a=1&password=", "a=1&password="),  # nothing to hide
        ("token= x", "token= x"),
        ("myaccesskey=x&tok.en=y&x.token=z", "myaccesskey=x&tok.en=y&x.token=z"),
        ("a%3Db=c", "a%3Db=c"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ##"),
        ("BEARER  abc def", "BEARER  ## def"),
        ("basic%20dXNlcjpwYXNz", "basic%20##"),
        ("Bearer+tok", "Bearer+##"),
        ("bearerx abc, abearer abc", "bearerx abc, abearer abc"),
        ("hash $argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA end", "hash ## end"),
        ("$argon2i$x y $argon2d$x'y $argon2$x", "## y ##'y $argon2$x"),
        (f"jwt {JWT} rest", "jwt ## rest"),
        (f"{JWT} and {JWT}, eyJx {KEY}", "## and ##, eyJx ##"),
        ("eyJa%2EeyJb%2Esig", "##"),
        ("eyJa%252EeyJb%252Esig", "##"),
        ("eyJnotajwt and eyJa.b.c", "eyJnotajwt and ##"),
        ("eyJ eyJa.b xeyJa.b.c", "eyJ eyJa.b x##"),
        (
            "vb_abcde vb_abcdef vb%5Fabcdef vb%255Fabcdef vb%2Fabcdef",
            "vb_abcde ## ## ## vb%2Fabcdef",
        ),
    ],
)
def test_exactly_the_secret_is_replaced(line: str, expected: str) -> None:
    assert redact_text(line) == expected.replace("##", REDACTED)


def test_a_cut_ends_at_a_character_no_secret_contains() -> None:
    assert cut("abcd", 4) == ("abcd", "")
    assert cut("abc def", 5) == ("abc ", "[CUT 3 characters]")
    assert cut("ab\tcd", 4) == ("ab\t", "[CUT 2 characters]")
    assert cut("abcdefgh", 4) == ("", "[CUT 8 characters]")
    assert redact_text("token=abc def", limit=10) == f"token={REDACTED} [CUT 3 characters]"


def test_structured_values_keep_their_types_and_unnamed_fields() -> None:
    event = {
        1: "a",
        "Set-Cookie": "x",
        "Proxy-Authorization": "Basic x",
        "JWT_SECRET": "y",
        "secret": "z",
        "access_token": "t",
        "n": [("token=q",)],
        "i": 5,
        "b": b"raw",
    }
    assert redact_value(event) == {
        1: "a",
        "Set-Cookie": REDACTED,
        "Proxy-Authorization": REDACTED,
        "JWT_SECRET": REDACTED,
        "secret": REDACTED,
        "access_token": REDACTED,
        "n": [(f"token={REDACTED}",)],
        "i": 5,
        "b": b"raw",
    }
