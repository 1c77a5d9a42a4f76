"""Hypothesis: the path a restricted key's rules judge is the one every server reads.

For any generated path, the canonical form keyplane checks equals what a strict
RFC 3986 normaliser (written here, from the RFC) makes of it, and a path is
allowed only when that form lies under the rule's prefix. Every path that some
common server could read otherwise is refused.
"""

from __future__ import annotations

import re
import string
import unicodedata
from urllib.parse import unquote_to_bytes

from hypothesis import given
from hypothesis import strategies as st

from keyplane.domain.scopes import allows, canonical_path, parse_scopes

PREFIX = "/v1.0/calls"
CALLS = parse_scopes([{"methods": ["GET"], "path_prefix": PREFIX}]) or ()

# RFC 3986 section 2.3.
RFC_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, step by step."""
    source, output = path, ""
    while source:
        if source.startswith("../"):  # A
            source = source[3:]
        elif source.startswith("./"):
            source = source[2:]
        elif source.startswith("/./"):  # B
            source = "/" + source[3:]
        elif source == "/.":
            source = "/"
        elif source.startswith("/../"):  # C
            source = "/" + source[4:]
            output = output[: output.rfind("/")] if "/" in output else ""
        elif source == "/..":
            source = "/"
            output = output[: output.rfind("/")] if "/" in output else ""
        elif source in (".", ".."):  # D
            source = ""
        else:  # E: the first segment, with its leading "/", moves to the output
            end = source.find("/", 1)
            end = len(source) if end == -1 else end
            output, source = output + source[:end], source[end:]
    return output


def rfc3986_normalise(path: str) -> str:
    """Percent-decoding of unreserved characters only (6.2.2.2), other escapes in
    upper case (6.2.2.1), then remove_dot_segments (6.2.2.3)."""

    def escape(match: re.Match[str]) -> str:
        character = chr(int(match.group(1), 16))
        return character if character in RFC_UNRESERVED else "%" + match.group(1).upper()

    return remove_dot_segments(re.sub("%([0-9A-Fa-f]{2})", escape, path))


def under_prefix(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


_OVERLONG_DOTS = (b"\xc0\xae", b"\xe0\x80\xae", b"\xf0\x80\x80\xae")


def _read_loosely(segment: str) -> str:
    """A segment as the loosest server would read it: %u escapes, every escape
    decoded, overlong UTF-8 taken, NFKC, cut at ";", whitespace and "+" trimmed."""
    segment = re.sub("%u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), segment)
    raw = unquote_to_bytes(segment.encode("utf-8", "surrogatepass"))
    for overlong in _OVERLONG_DOTS:
        raw = raw.replace(overlong, b".")
    text = unicodedata.normalize("NFKC", raw.decode("utf-8", "ignore"))
    return text.partition(";")[0].strip(" \t\r\n\x00\x0b\x0c+")


def some_server_reads_otherwise(path: str) -> bool:
    """A ``;``, non-ASCII text or bytes, whitespace or a control character (raw or
    encoded), an encoded slash or backslash, or a dot segment in any spelling."""
    escaped = [int(code, 16) for code in re.findall("%([0-9A-Fa-f]{2})", path)]
    if ";" in path or "\\" in path or any(not " " < c < "\x7f" for c in path):
        return True
    if any(byte >= 0x80 or byte <= 0x20 or byte == 0x7F for byte in escaped):
        return True
    if any(chr(byte) in "/\\;%" for byte in escaped):
        return True
    segments = path.split("/")[1:]
    return any(set(_read_loosely(segment)) == {"."} for segment in segments)


SAFE = st.sampled_from(list(string.ascii_letters + string.digits + "-._~!$&'()*,="))
TRICKY = st.sampled_from(
    [
        ".",
        "..",
        "...",
        ";",
        ";x=1",
        "%2e",
        "%2E",
        ".%2E",
        "%3b",
        "%3B",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "\\",
        "%25",
        "%c0%ae",
        "%C0%AE",
        "%e0%80%ae",
        "%u002e",
        "\uff0e",
        "\u2024",
        "%EF%BC%8E",
        "%E2%80%A4",
        " ",
        "\t",
        "\x00",
        "\x7f",
        "%20",
        "%09",
        "%00",
        "%0A",
        "+",
        "\u00e9",
        "%C3%A9",
        ":",
        "@",
        "#",
        "/",
        "//",
    ]
)
ANY_ESCAPE = st.integers(0, 255).flatmap(
    lambda byte: st.sampled_from([f"%{byte:02x}", f"%{byte:02X}"])
)
NON_ASCII = st.characters(min_codepoint=0x80, exclude_categories=["Cs"])
# A path made of safe characters and escapes of unreserved characters only.
PLAIN_SEGMENT = st.lists(
    st.one_of(SAFE, st.sampled_from(sorted(RFC_UNRESERVED)).map(lambda c: f"%{ord(c):02X}")),
    min_size=1,
    max_size=6,
).map("".join)
MIXED_SEGMENT = st.lists(
    st.one_of(SAFE, SAFE, SAFE, TRICKY, ANY_ESCAPE, NON_ASCII), max_size=6
).map("".join)
# Most segments plain, so that many paths are allowed and compared with the RFC's.
SEGMENT = st.one_of(PLAIN_SEGMENT, PLAIN_SEGMENT, PLAIN_SEGMENT, PLAIN_SEGMENT, MIXED_SEGMENT)
START = st.sampled_from([PREFIX, PREFIX, PREFIX + "/7", "/v1.0", "", "/"])
PATHS = st.builds(
    lambda start, segments: start + "".join("/" + s for s in segments),
    START,
    st.lists(SEGMENT, max_size=5),
)


@given(PATHS)
def test_the_checked_path_is_the_rfc_3986_path_and_nothing_in_doubt_passes(path: str) -> None:
    canonical = canonical_path(path)
    allowed = allows(CALLS, "GET", path)
    if canonical is not None:
        assert canonical == rfc3986_normalise(path)
    if allowed:
        assert canonical is not None
        assert under_prefix(canonical)
        assert under_prefix(rfc3986_normalise(path))
    else:
        assert canonical is None or not under_prefix(canonical)
    if some_server_reads_otherwise(path):
        assert not allowed
        assert canonical is None


DOT_SEGMENTS = st.sampled_from(
    [
        ".",
        "..",
        "..;",
        "..;x",
        "..%3b",
        "..%3B",
        "%2e%2e",
        "%2E.",
        "%c0%ae%c0%ae",
        "%C0%AE.",
        "%e0%80%ae",
        "\uff0e\uff0e",
        "%EF%BC%8E%EF%BC%8E",
        "\u2025",  # the two-dot leader, ".." after NFKC
        "..%20",
        "..%09",
        ".. ",
        "..\t",
        "..+",
        "%u002e%u002e",
        "...",
    ]
)


@given(
    st.lists(PLAIN_SEGMENT, max_size=4),
    st.lists(PLAIN_SEGMENT, max_size=4),
    DOT_SEGMENTS,
)
def test_a_dot_segment_in_any_spelling_anywhere_is_refused(
    before: list[str], after: list[str], dots: str
) -> None:
    plain = PREFIX + "".join("/" + s for s in before + after)
    path = PREFIX + "".join("/" + s for s in [*before, dots, *after])
    if all(set(_read_loosely(s)) != {"."} for s in before + after):
        assert allows(CALLS, "GET", plain)
        assert canonical_path(plain) == rfc3986_normalise(plain)
    assert some_server_reads_otherwise(path)
    assert not allows(CALLS, "GET", path)
    assert canonical_path(path) is None


def test_the_normaliser_here_follows_the_rfc() -> None:
    """The examples of RFC 3986 section 5.2.4, and its unreserved decoding."""
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g"
    assert remove_dot_segments("mid/content=5/../6") == "mid/6"
    assert remove_dot_segments("/a/..") == "/"
    assert rfc3986_normalise("/%7Euser/%2e%2e/x%2fy") == "/x%2Fy"
    assert some_server_reads_otherwise("/v1.0/calls/..;/x")
    assert not some_server_reads_otherwise("/v1.0/calls/a.b")
