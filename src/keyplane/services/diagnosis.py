"""Why a credential is refused, for the operator at the database (``keyplane verify``).

The HTTP API gives one answer to every invalid credential so that a guesser
learns nothing; the operator, who can read the database anyway, is told
which rule refused it. Nothing here marks a key as used.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyplane.domain import tokens
from keyplane.domain.records import Accesskey
from keyplane.domain.timefmt import format_timestamp
from keyplane.services.container import Services


@dataclass(frozen=True, slots=True)
class Diagnosis:
    valid: bool
    why: str
    key: Accesskey | None = None


MALFORMED = "malformed: an access key is vb_ followed by 32 letters and digits"


async def diagnose_accesskey(services: Services, token: str) -> Diagnosis:
    if not tokens.is_wellformed(token):
        return Diagnosis(False, MALFORMED)
    async with services.database.reader() as repos:
        key = await repos.accesskeys.get_by_hash(tokens.hash_token(token))
    now = services.clock.now()
    if key is None:
        return Diagnosis(False, "unknown: no key has this token (or its customer was deleted)")
    if key.tm_delete is not None:
        return Diagnosis(False, f"deleted at {format_timestamp(key.tm_delete)}", key)
    if key.tm_disable is not None:
        return Diagnosis(False, f"disabled at {format_timestamp(key.tm_disable)}", key)
    if key.tm_expire <= now:
        return Diagnosis(False, f"expired at {format_timestamp(key.tm_expire)}", key)
    if key.is_live(now):
        return Diagnosis(True, f"active until {format_timestamp(key.tm_expire)}", key)
    return Diagnosis(False, "refused", key)
