"""Scopes of a restricted access key: which requests it may make.

A key without scopes may do whatever its customer admin identity may. A key
with scopes may make a request only when one of its rules allows the method
and the path. ``"read_only"`` is shorthand for one rule: GET, HEAD and
OPTIONS anywhere.

A path prefix matches whole segments: ``/v1.0/calls`` allows ``/v1.0/calls``
and ``/v1.0/calls/…``, not ``/v1.0/callsign``. A path that could mean
something else to the server behind a gateway (a dot segment, an empty
segment, a backslash, an encoded slash, dot or percent sign) matches no
prefix: a restricted key is refused rather than guessed about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

READ_ONLY = "read_only"
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_RULES = 50
MAX_PREFIX_LENGTH = 512
_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")
_AMBIGUOUS_ESCAPES = re.compile(r"%(2e|2f|5c|25)", re.IGNORECASE)


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


def _canonical_path(raw: str) -> str | None:
    """The path as a server will read it, or ``None`` when that is in doubt."""
    path = raw.partition("?")[0]
    if not path.startswith("/") or "\\" in path or _AMBIGUOUS_ESCAPES.search(path):
        return None
    path = unquote(path)
    segments = path.split("/")[1:]
    if any(segment in (".", "..") for segment in segments) or "" in segments[:-1]:
        return None
    return path


def allows(scopes: Scopes, method: str, path: str) -> bool:
    """May a key with ``scopes`` make this request? ``path`` may carry a query."""
    canonical = _canonical_path(path)
    if canonical is None:
        return False
    method = method.upper()
    return any(rule.allows(method, canonical) for rule in scopes)


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
    if (
        not isinstance(prefix, str)
        or len(prefix) > MAX_PREFIX_LENGTH
        or not _PREFIX.fullmatch(prefix)
        or _canonical_path(prefix) != prefix
    ):
        raise ValueError(
            "'path_prefix' must be a plain absolute path such as /v1.0/calls "
            "(no query, no dot or empty segments, no percent-encoding)"
        )
    return Rule(frozenset(names), prefix)


def scopes_to_json(scopes: Scopes | None) -> list[dict[str, Any]] | None:
    return None if scopes is None else [rule.to_json() for rule in scopes]


def scopes_from_json(stored: Iterable[dict[str, Any]] | None) -> Scopes | None:
    """From the database, where only valid rules are ever written."""
    if stored is None:
        return None
    return tuple(Rule(frozenset(item["methods"]), str(item["path_prefix"])) for item in stored)
