"""What the admin page shows: key rows, times for people, and the wording of confirmations.

Pure functions of a record and the current moment, so they are tested without a browser.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from keyplane.domain.records import Accesskey

SOON = timedelta(days=14)  # an expiry closer than this is highlighted
EXPIRY_DAYS = (1, 30, 90, 365)  # the picker's choices; "custom" takes any whole number of days
GRACE_CHOICES = (
    (0, "no grace"),
    (3_600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
)
KeyAction = Literal["rotate", "disable", "enable", "delete"]
ACTIONS: tuple[KeyAction, ...] = ("rotate", "disable", "enable", "delete")
State = Literal["active", "disabled", "rotating", "expired"]


def absolute(moment: datetime | None) -> str:
    """``2026-12-01 10:15 UTC``, or a dash for a moment that has not happened."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def _amount(seconds: float) -> str:
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def relative(moment: datetime | None, now: datetime) -> str:
    """``in 3 days``, ``2 hours ago``; the largest whole unit, rounded down."""
    if moment is None:
        return "never"
    seconds = (moment - now).total_seconds()
    if seconds >= 0:
        return f"in {_amount(seconds)}"
    return f"{_amount(-seconds)} ago"


def state_of(key: Accesskey, now: datetime) -> State:
    """Disabled first (it refuses even before expiry), then a rotation's grace, then expiry."""
    if key.tm_disable is not None:
        return "disabled"
    if key.tm_expire <= now:
        return "expired"
    if key.rotated_to is not None:
        return "rotating"
    return "active"


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: uuid.UUID
    name: str
    detail: str
    token_prefix: str
    created: str
    created_iso: str
    expires: str
    expires_iso: str
    expires_relative: str
    expiry_warning: Literal["", "soon", "expired"]
    last_used: str
    last_used_relative: str
    state: State
    rotated: bool  # replaced by a rotation: it cannot be rotated again

    @property
    def label(self) -> str:
        """How a confirmation names the key: its name, or its prefix when it has none."""
        return f"“{self.name}” ({self.token_prefix}…)" if self.name else f"{self.token_prefix}…"


def key_row(key: Accesskey, now: datetime) -> KeyRow:
    left = key.tm_expire - now
    warning: Literal["", "soon", "expired"] = (
        "expired" if left <= timedelta(0) else "soon" if left < SOON else ""
    )
    return KeyRow(
        id=key.id,
        name=key.name,
        detail=key.detail,
        token_prefix=key.token_prefix,
        created=absolute(key.tm_create),
        created_iso=iso(key.tm_create),
        expires=absolute(key.tm_expire),
        expires_iso=iso(key.tm_expire),
        expires_relative=("expired " if warning == "expired" else "")
        + relative(key.tm_expire, now),
        expiry_warning=warning,
        last_used=absolute(key.tm_last_used),
        last_used_relative=relative(key.tm_last_used, now),
        state=state_of(key, now),
        rotated=key.rotated_to is not None,
    )


def confirmation(action: KeyAction, row: KeyRow, grace: int = 0) -> str:
    """The question each change asks before it is made, naming the key."""
    name = row.label
    if action == "delete":
        return f"Delete the key {name}? It stops working at once and cannot be restored."
    if action == "disable":
        return f"Disable the key {name}? Requests with it are refused until it is enabled again."
    if action == "enable":
        return f"Enable the key {name}? It is accepted again until it expires."
    stops = "at once" if grace == 0 else f"after a grace period of {_amount(grace)}"
    return (
        f"Rotate the key {name}? A new key with a new token replaces it; "
        f"the old token stops working {stops}."
    )


def expire_seconds(choice: str, custom_days: str) -> int | str:
    """The lifetime in seconds the picker asks for, or a plain message saying what is wrong."""
    text = custom_days.strip() if choice == "custom" else choice
    try:
        days = int(text)
    except ValueError:
        return "Give the key's lifetime in whole days (at least 1)."
    if days < 1:
        return "A key lives at least one day: keyplane refuses shorter lifetimes."
    return days * 86_400


ACCESS_CHOICES = ("all", "read_only", "rules")


def scope_rules(access: str, rules: str) -> list[dict[str, object]] | str | None:
    """The create form's access, as the API's ``scopes`` value (checked by ``parse_scopes``).

    ``all``: unrestricted (``None``); ``read_only``; ``rules``: one rule a line,
    methods then a path prefix, as ``GET,POST /v1.0/calls``.
    """
    if access in ("", "all"):
        return None
    if access == "read_only":
        return "read_only"
    if access != "rules":
        return "Choose what the key may do: everything, read only, or the rules given."
    parsed: list[dict[str, object]] = []
    for line in rules.splitlines():
        if not line.strip():
            continue
        methods, _, prefix = line.strip().partition(" ")
        parsed.append(
            {
                "methods": [name for name in methods.replace(",", " ").split() if name],
                "path_prefix": prefix.strip(),
            }
        )
    if not parsed:
        return "Give at least one rule, such as GET,POST /v1.0/calls, or choose another access."
    return parsed


def network_list(text: str) -> list[str] | None:
    """The allowlist field's CIDRs (spaces, commas or lines between them); empty: anywhere."""
    found = [item for item in text.replace(",", " ").split() if item]
    return found or None
