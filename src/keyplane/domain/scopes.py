"""Scopes of a restricted access key: which requests it may make.

A key without scopes may do whatever its customer admin identity may. A key
with scopes may make a request only when its rules allow every method the
request could run as on its path. ``"read_only"`` is shorthand for one rule:
GET, HEAD and OPTIONS anywhere.

A path prefix matches whole segments: ``/v1.0/calls`` allows ``/v1.0/calls``
and ``/v1.0/calls/…``, not ``/v1.0/callsign``.

The path is read on an allow-list, so that every common server reads it the
same way (``canonical_path``): percent-escapes of unreserved characters are
decoded, and then each segment must consist of letters, digits and
``-._~!$&'()*,=`` only, and be neither a dot segment (``.``, ``..``, or
dots alone) nor empty (but the last). Anything else (``;`` and its segment
parameters, ``+``, ``:``, ``@``, whitespace, control characters, non-ASCII
text, any other percent-escape: encoded slashes, backslashes, ``%``, bytes of
0x80 and above) matches no rule: a path in doubt is refused, never guessed.

A request may run as another method than its own when a framework behind a
gateway honours a method override (Rails, Laravel, Symfony, Express,
Spring...). A restricted key's request is checked as every method it could
run as: its own, and each one an override header
(``METHOD_OVERRIDE_HEADERS``, ``_`` read as ``-``) or a ``_method`` query
parameter names. A form body (``FORM_TYPES``, any ``multipart/*``) may carry
a ``_method`` no gateway can read: such a request is refused.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

READ_ONLY = "read_only"
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_RULES = 50
MAX_PREFIX_LENGTH = 512

UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# RFC 3986 sub-delims but ";" (path parameters: Tomcat, Jetty and Spring read
# "..;" as "..") and "+" (a space to some decoders, and ".. " trimmed is "..").
SEGMENT_CHARACTERS = UNRESERVED | frozenset("!$&'()*,=")
_PLAIN_PATH = re.compile("(?:/[" + re.escape("".join(sorted(SEGMENT_CHARACTERS))) + "]*)+")
_HEX = frozenset(string.hexdigits)

METHOD_OVERRIDE_HEADERS = frozenset(
    {"x-http-method-override", "x-http-method", "x-method-override"}
)
METHOD_OVERRIDE_PARAMETER = "_method"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _spellings(name: str) -> set[str]:
    """``name`` with each ``-`` also as ``_``: CGI-style servers (Rack, PHP) read both alike."""
    parts = name.split("-")
    return {
        "".join(itertools.chain.from_iterable(zip(parts, (*seps, ""), strict=True)))
        for seps in itertools.product("-_", repeat=len(parts) - 1)
    }


# The request headers the scopes read, in lower case: the web layer hands these over.
HEADER_NAMES = frozenset(
    {"content-type", *itertools.chain.from_iterable(map(_spellings, METHOD_OVERRIDE_HEADERS))}
)


@dataclass(frozen=True, slots=True)
class Rule:
    methods: frozenset[str]
    path_prefix: str

    def allows(self, method: str, path: str) -> bool:
        return method in self.methods and _under(path, self.path_prefix)

    def covers(self, other: Rule) -> bool:
        """Everything ``other`` allows, this allows too."""
        return other.methods <= self.methods and _under(other.path_prefix, self.path_prefix)

    def to_json(self) -> dict[str, Any]:
        return {"methods": sorted(self.methods), "path_prefix": self.path_prefix}


Scopes = tuple[Rule, ...]
READ_ONLY_SCOPES: Scopes = (Rule(READ_METHODS, "/"),)


def _under(path: str, prefix: str) -> bool:
    if prefix == "/" or path == prefix:
        return True
    return path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def canonical_path(path: str) -> str | None:
    """``path`` (without its query) as every common server reads it, or ``None``.

    Percent-escapes of unreserved characters are decoded (``/v1.0/call%73`` is
    ``/v1.0/calls``); any other escape, and any character outside
    ``SEGMENT_CHARACTERS``, makes the path one that some server reads
    differently. So do dot segments in any spelling (``..``, ``%2e%2e``, and
    segments of dots alone, which Windows trims) and empty segments but the last.
    """
    if "%" in path:
        decoded = _decode_unreserved(path)
        if decoded is None:
            return None
        path = decoded
    if not _PLAIN_PATH.fullmatch(path):
        return None
    segments = path.split("/")
    last = len(segments) - 1
    for index, segment in enumerate(segments[1:], start=1):
        if segment.strip(".") == "" and (segment or index < last):
            return None
    return path


def _decode_unreserved(path: str) -> str | None:
    """Each ``%XX`` of an unreserved character decoded, once; ``None`` for any other escape."""
    pieces = path.split("%")
    decoded = [pieces[0]]
    for piece in pieces[1:]:
        if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
            return None
        character = chr(int(piece[:2], 16))
        if character not in UNRESERVED:
            return None
        decoded.append(character)
        decoded.append(piece[2:])
    return "".join(decoded)


def request_methods(
    method: str, query: str, headers: Iterable[tuple[str, str]]
) -> frozenset[str] | None:
    """Every method a request could run as behind a gateway, upper case; ``None``: any.

    Its own; each value of a method override header (``METHOD_OVERRIDE_HEADERS``,
    with ``_`` for ``-``) and of a ``_method`` query parameter, whose name is read
    as frameworks read it (percent-decoded, ``+`` a space, any case, leading
    spaces dropped, a space or dot inside as ``_``, as PHP does; ``&`` and ``;``
    separate parameters, as Rack 2 does). A form body (``FORM_TYPES``, any
    ``multipart/*``) could name any method: ``None``.
    """
    methods = {method.upper()}
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-type":
            media_type = value.partition(";")[0].strip().lower()
            if media_type in FORM_TYPES or media_type.startswith("multipart/"):
                return None
        elif lowered.replace("_", "-") in METHOD_OVERRIDE_HEADERS:
            methods.add(value.strip().upper())
    if query:
        for parameter in re.split("[&;]", query):
            name, _, value = parameter.partition("=")
            if _parameter_name(name) == METHOD_OVERRIDE_PARAMETER:
                methods.add(unquote_plus(value, errors="replace").strip().upper())
    return frozenset(methods)


def _parameter_name(raw: str) -> str:
    name = unquote_plus(raw, errors="replace").lstrip(" ").lower()
    return name.replace(" ", "_").replace(".", "_")


def allows(
    scopes: Scopes, method: str, target: str, headers: Iterable[tuple[str, str]] = ()
) -> bool:
    """May a key with ``scopes`` make this request?

    ``target`` is the path, with its query if it has one; ``headers`` are the
    request's headers among ``HEADER_NAMES`` (any other is ignored). Every
    method the request could run as (``request_methods``) must be allowed on
    its canonical path (``canonical_path``).
    """
    path, _, query = target.partition("?")
    canonical = canonical_path(path)
    if canonical is None:
        return False
    methods = request_methods(method, query, headers)
    if methods is None:
        return False
    return all(any(rule.allows(each, canonical) for rule in scopes) for each in methods)


def covers(holder: Scopes | None, wanted: Scopes | None) -> bool:
    """A key with ``wanted`` holds no more than ``holder`` (``None``: unrestricted)."""
    if holder is None:
        return True
    if wanted is None:
        return False
    return all(any(mine.covers(rule) for mine in holder) for rule in wanted)


def parse_scopes(raw: object) -> Scopes | None:
    """``None`` (unrestricted), ``"read_only"``, or a list of rules; ``ValueError`` otherwise."""
    if raw is None:
        return None
    if raw == READ_ONLY:
        return READ_ONLY_SCOPES
    if not isinstance(raw, list) or not raw:
        raise ValueError('give "read_only" or a non-empty list of rules')
    if len(raw) > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES} rules")
    return tuple(_parse_rule(item) for item in raw)


def _parse_rule(item: object) -> Rule:
    if not isinstance(item, dict):
        raise ValueError('each rule is an object {"methods": [...], "path_prefix": "/..."}')
    methods = item.get("methods")
    prefix = item.get("path_prefix")
    if not isinstance(methods, list) or not methods:
        raise ValueError("'methods' must be a non-empty list of HTTP methods")
    names = {method.upper() for method in methods if isinstance(method, str)}
    if len(names) != len({str(method).upper() for method in methods}) or not names <= METHODS:
        raise ValueError(f"'methods' may hold only {', '.join(sorted(METHODS))}")
    # A prefix no path could match is refused, not kept: the same allow-list as paths.
    if (
        not isinstance(prefix, str)
        or len(prefix) > MAX_PREFIX_LENGTH
        or canonical_path(prefix) != prefix
    ):
        raise ValueError(
            "'path_prefix' must be a plain absolute path such as /v1.0/calls "
            "(letters, digits and -._~!$&'()*,= between slashes; no query, "
            "no dot or empty segments, no percent-encoding)"
        )
    return Rule(frozenset(names), prefix)


def scopes_to_json(scopes: Scopes | None) -> list[dict[str, Any]] | None:
    return None if scopes is None else [rule.to_json() for rule in scopes]


def scopes_from_json(stored: Iterable[dict[str, Any]] | None) -> Scopes | None:
    """From the database, where only valid rules are ever written."""
    if stored is None:
        return None
    return tuple(Rule(frozenset(item["methods"]), str(item["path_prefix"])) for item in stored)
