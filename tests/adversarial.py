"""The adversarial corpus: text built to make parsers and redaction super-linear.

Each case is named, so a failure says which input was slow. Sizes are those
a request can reach within the server's limits (a 64 KiB query or path, a
128 KiB cookie).
"""

from __future__ import annotations

import itertools

KIB = 1024
# The pieces the backtracking patterns restarted or looped on.
ATOMS = ("%25", "%3", "=", "vb", "eyJ", ".", '"\\x', "Bearer ")
# One representative of each character class the patterns distinguish.
CLASSES = ("a", "Z", "7", "_", "-", "~", "%", "+", "=", "&", ";", ",", " ", '"', "\\", "$", ".")


def repeat_to(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def known_attacks(size: int = 64 * KIB) -> dict[str, str]:
    """The inputs that stalled the server before redaction was made linear."""
    return {
        "percent25-then-3x": repeat_to("%25" * 5 + "%3x", size),
        "3-then-percent25": "%3" + repeat_to("%25", size - 2),
        "percent25-path-3x": repeat_to("%25", size - 3) + "%3x",
        "eyJ-run": repeat_to("eyJ", size),
        "cookie-backslash-x": 'a="' + repeat_to("\\x", size - 4) + '"',
        # Quoted values of sensitive names, opened and never closed, or closed at once.
        "quoted-open-runs": repeat_to("password=\"token='", size),
        "quoted-empty-runs": repeat_to('token=""', size),
    }


def corpus(size: int = 64 * KIB) -> dict[str, str]:
    """Known attacks, long runs of each character class, and alternations of the atoms."""
    cases = known_attacks(size)
    for index, character in enumerate(CLASSES):
        cases[f"run-{index}-{character!r}"] = character * size
    for first, second in itertools.product(ATOMS, repeat=2):
        cases[f"alternate-{first!r}-{second!r}"] = repeat_to(first + second, size)
    cases["all-atoms"] = repeat_to("".join(ATOMS), size)
    return cases


# The slowest cases for a live server, as (path and query, headers).
def worst_requests(size: int = 60 * KIB) -> list[tuple[str, dict[str, str]]]:
    attacks = known_attacks(size)
    return [
        ("/v1.0/accesskeys?" + attacks["percent25-then-3x"], {}),
        ("/v1.0/accesskeys?" + attacks["3-then-percent25"], {}),
        ("/v1.0/accesskeys/" + attacks["percent25-path-3x"], {}),
        ("/health/live?x=" + attacks["eyJ-run"], {}),
        ("/v1.0/accesskeys?x=" + repeat_to("eyJ.", size), {}),
        ("/v1.0/accesskeys", {"Cookie": attacks["cookie-backslash-x"]}),
        ("/v1.0/accesskeys", {"Cookie": "token=" + repeat_to('"\\x', size)}),
        # The gateway endpoint reads the original request's URI and cookies.
        ("/auth/verify", {"X-Original-URI": "/calls?" + attacks["3-then-percent25"]}),
        ("/auth/verify", {"X-Forwarded-Uri": "/calls?x=" + attacks["eyJ-run"]}),
        ("/auth/verify", {"Cookie": attacks["cookie-backslash-x"]}),
    ]
