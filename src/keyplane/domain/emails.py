"""A contact email address: a pragmatic check of its shape, never of its mailbox.

Deliverability needs DNS and a message; this refuses only what cannot be an
address (RFC 5321's lengths, one ``@``, a dotted domain, no spaces or
control characters), so a typo such as a missing ``@`` is caught at once.
"""

from __future__ import annotations

MAX_EMAIL_LENGTH = 254  # RFC 5321's path limit, less the angle brackets
MAX_LOCAL_LENGTH = 64


def email_problem(email: str) -> str | None:
    """What is wrong with ``email`` (to follow "'email' "), or ``None``; empty is allowed."""
    if email == "":
        return None
    if len(email) > MAX_EMAIL_LENGTH:
        return f"is longer than {MAX_EMAIL_LENGTH} characters"
    if any(ch.isspace() or not ch.isprintable() for ch in email):
        return "contains a space or a control character"
    local, at, domain = email.rpartition("@")
    if not at or "@" in local:
        return "must contain exactly one '@'"
    if not local:
        return "has nothing before the '@'"
    if len(local) > MAX_LOCAL_LENGTH:
        return f"has more than {MAX_LOCAL_LENGTH} characters before the '@'"
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        return "needs a domain with a dot after the '@', such as example.com"
    return None
