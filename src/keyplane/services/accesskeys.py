"""Access key use cases: create, read, list, rename, delete, and the lifecycle beyond VoIPBIN:
disable and enable, rotation with a grace period, shortening the expiry.

Every change that verification must see (deletion, disabling, enabling, a new
expiry) is appended to the revocation log in its transaction and published
after the commit, so every replica's cache learns of it within the bound.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from keyplane.cache.invalidation import Invalidation, Invalidator
from keyplane.domain import networks, scopes, tokens
from keyplane.domain.clock import Clock
from keyplane.domain.networks import Networks
from keyplane.domain.pagination import Cursor, encode_cursor
from keyplane.domain.permissions import Identity, Permission, has_permission
from keyplane.domain.records import Accesskey, Page
from keyplane.domain.scopes import Scopes
from keyplane.domain.timefmt import format_timestamp
from keyplane.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from keyplane.services.audit import record_audit
from keyplane.services.events import (
    ACCESSKEY_CREATED,
    ACCESSKEY_DELETED,
    ACCESSKEY_DISABLED,
    ACCESSKEY_ENABLED,
    ACCESSKEY_ROTATED,
    ACCESSKEY_UPDATED,
    record_accesskey_event,
)
from keyplane.services.revocations import record_revocation
from keyplane.store.engine import Database
from keyplane.store.repositories import Repositories

MIN_EXPIRE = 86_400
# VoIPBIN's ``expire`` is an int32: no other bound unless the operator sets one.
MAX_EXPIRE = 2_147_483_647
REQUIRED = int(Permission.CUSTOMER_ADMIN)
MAX_GRACE = 7 * 86_400
PREFIX_MATCHES = 100  # keys sharing a display prefix, at most (8 characters: a rare event)
_DISPLAY_PREFIX = re.compile(
    re.escape(tokens.TOKEN_PREFIX)
    + f"[A-Za-z0-9]{{{tokens.DISPLAY_PREFIX_LENGTH - len(tokens.TOKEN_PREFIX)}}}"
)

# A change of a key read in the same transaction: the changed key, the same
# object when there was nothing to change, or None when it was deleted meanwhile.
Revision = Callable[[Repositories, Accesskey, datetime], Awaitable[Accesskey | None]]


def new_accesskey(
    customer_id: uuid.UUID,
    name: str,
    detail: str,
    expire: int,
    now: datetime,
    scopes: Scopes | None = None,
    allowed_networks: Networks | None = None,
) -> tuple[Accesskey, str]:
    """A key record and its token; only the hash and the display prefix are kept."""
    token = tokens.generate_token()
    key = Accesskey(
        id=uuid.uuid4(),
        customer_id=customer_id,
        name=name,
        detail=detail,
        token_hash=tokens.hash_token(token),
        token_prefix=tokens.display_prefix(token),
        tm_expire=now + timedelta(seconds=expire),
        tm_create=now,
        tm_update=None,
        tm_delete=None,
        scopes=scopes,
        allowed_networks=allowed_networks,
    )
    return key, token


def _change(key: Accesskey) -> Invalidation:
    return Invalidation("accesskey", key.id, key.token_hash)


def _not_found() -> NotFound:
    return NotFound("The access key was not found.", reason="RESOURCE_NOT_FOUND")


def _deleted() -> FailedPrecondition:
    return FailedPrecondition(
        "The access key is deleted; it can no longer be read, changed or deleted.",
        reason="STATE_INVALID",
    )


def _require_within_own_restrictions(
    identity: Identity, wanted_scopes: Scopes | None, wanted_networks: Networks | None
) -> None:
    """A restricted key never makes, renews or changes a key that may do more than itself.

    Changing such a key (enabling one an admin disabled, say) would undo what
    the key's holder was never trusted with.
    """
    if not scopes.covers(identity.scopes, wanted_scopes):
        raise PermissionDenied(
            "A restricted access key can only make or change keys whose scopes are within "
            "its own (an unrestricted key is more than any restricted one).",
            reason="PERMISSION_DENIED",
        )
    if not networks.covers(identity.allowed_networks, wanted_networks):
        raise PermissionDenied(
            "An access key with an IP allowlist can only make or change keys whose allowlist "
            "is within its own (a key without an allowlist is usable from anywhere).",
            reason="PERMISSION_DENIED",
        )


def _latest_expiry(identity: Identity, wanted: datetime) -> datetime:
    """``wanted``, or a restricted caller's own expiry when that comes first.

    A key that a restricted access key makes, renews or gives a new expiry
    never outlives that access key: a restricted key stolen for a day stays a
    day's worth. An unrestricted key may do all its customer admin may, as
    VoIPBIN's keys do, longer keys included.
    """
    if not identity.restricted or identity.tm_expire is None or wanted <= identity.tm_expire:
        return wanted
    return identity.tm_expire


def _require_no_later_than_caller(
    identity: Identity, wanted: datetime, now: datetime, *, asked: Literal["expire", "tm_expire"]
) -> None:
    """Refuse an expiry later than the calling access key's own, saying the most it may ask.

    ``asked`` is the field the caller gave: ``expire`` (seconds) or ``tm_expire`` (a moment).
    """
    latest = _latest_expiry(identity, wanted)
    if latest == wanted:
        return
    until = format_timestamp(latest)
    left = int((latest - now).total_seconds())
    if asked == "tm_expire":
        message = (
            "'tm_expire' is later than the expiry of the restricted access key making this "
            f"request: at most {until}, since a key never outlives the restricted key that "
            "sets its expiry."
        )
    elif left < MIN_EXPIRE:
        message = (
            f"The restricted access key making this request expires at {until}, in less than "
            "one day, and a key lives at least one day but never outlives the restricted key "
            "that makes it: make this key with a session or an unrestricted key."
        )
    else:
        message = (
            f"'expire' would outlive the restricted access key making this request: at most "
            f"{left} seconds (it expires at {until}), since a key never outlives the restricted "
            "key that makes it."
        )
    raise InvalidArgument(message, reason="EXPIRE_ABOVE_MAXIMUM")


async def _audit(
    repos: Repositories, identity: Identity, event: str, key: Accesskey, now: datetime
) -> None:
    await record_audit(
        repos, identity, event, customer_id=key.customer_id, subject_id=key.id, now=now
    )


def _already_rotated() -> FailedPrecondition:
    return FailedPrecondition(
        "The access key was already rotated (or deleted): rotate its replacement instead.",
        reason="STATE_INVALID",
    )


def _owns(identity: Identity, key: Accesskey) -> bool:
    """The key's customer is the caller's (the command line's operator owns every customer).

    Compared before any permission check, as VoIPBIN does: another customer's
    key is 404 for everyone, project super admins included.
    """
    return identity.type == "operator" or identity.customer_id == key.customer_id


class AccesskeyService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        invalidator: Invalidator,
        *,
        max_expire: int | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._invalidator = invalidator
        self.max_expire = max_expire

    def validate_expire(self, expire: object) -> int:
        """Whole seconds from one day to 2147483647, or to the operator's lower maximum."""
        if isinstance(expire, bool) or not isinstance(expire, int):
            raise InvalidArgument(self._expire_message("must be an integer"))
        if not MIN_EXPIRE <= expire <= MAX_EXPIRE:
            raise InvalidArgument(self._expire_message("is out of range"))
        if self.max_expire is not None and expire > self.max_expire:
            raise InvalidArgument(
                f"'expire' is longer than this server allows: at most {self.max_expire} "
                "seconds (KEYPLANE_ACCESSKEY_MAX_EXPIRE, set by the operator).",
                reason="EXPIRE_ABOVE_MAXIMUM",
            )
        return expire

    def _expire_message(self, problem: str) -> str:
        upper = MAX_EXPIRE if self.max_expire is None else self.max_expire
        return (
            f"'expire' {problem}: give the lifetime in whole seconds, "
            f"from {MIN_EXPIRE} (one day) to {upper}."
        )

    @staticmethod
    def _require_admin_of(identity: Identity, customer_id: uuid.UUID) -> None:
        if not has_permission(identity, customer_id, REQUIRED):
            raise PermissionDenied(
                "Managing access keys needs the customer admin permission.",
                reason="PERMISSION_DENIED",
            )

    async def create(
        self,
        identity: Identity,
        customer_id: uuid.UUID,
        *,
        name: str,
        detail: str,
        expire: object,
        scopes: Scopes | None = None,
        allowed_networks: Networks | None = None,
    ) -> tuple[Accesskey, str]:
        """A new key and its token; the token is returned here and never again.

        ``scopes`` and ``allowed_networks`` restrict the key; never to more
        than the creator holds.
        """
        self._require_admin_of(identity, customer_id)
        seconds = self.validate_expire(expire)
        _require_within_own_restrictions(identity, scopes, allowed_networks)
        now = self._clock.now()
        wanted = now + timedelta(seconds=seconds)
        _require_no_later_than_caller(identity, wanted, now, asked="expire")
        key, token = new_accesskey(
            customer_id, name, detail, seconds, now, scopes, allowed_networks
        )
        async with self._db.transaction() as repos:
            customer = await repos.customers.get(customer_id)
            if customer is None or customer.tm_delete is not None:
                raise NotFound("The customer was not found.", reason="CUSTOMER_NOT_FOUND")
            await repos.accesskeys.insert(key)
            await record_accesskey_event(repos, ACCESSKEY_CREATED, key, key.tm_create)
            await _audit(repos, identity, ACCESSKEY_CREATED, key, key.tm_create)
        return key, token

    async def get(self, identity: Identity, key_id: uuid.UUID) -> Accesskey:
        async with self._db.reader() as repos:
            key = await repos.accesskeys.get(key_id)
        return self._visible(identity, key)

    async def list_page(
        self, identity: Identity, customer_id: uuid.UUID, *, page_size: int, cursor: Cursor | None
    ) -> Page:
        """Live keys (expired ones included), newest first."""
        self._require_admin_of(identity, customer_id)
        before = None if cursor is None else (cursor.tm_create, cursor.id)
        async with self._db.reader() as repos:
            items = await repos.accesskeys.list_live(customer_id, limit=page_size, before=before)
        # A cursor whenever the page has items: clients that page until an empty
        # result and clients that stop at an empty token both end correctly.
        # "" (never null) on an empty page, as VoIPBIN sends.
        next_token = encode_cursor(items[-1].tm_create, items[-1].id) if items else ""
        return Page(items, next_token)

    async def find_by_prefix(
        self, identity: Identity, customer_id: uuid.UUID, token_prefix: str
    ) -> list[Accesskey]:
        """Live keys whose display prefix is ``token_prefix`` (``vb_`` and 8 characters),
        newest first: how a leaked token is matched to its key."""
        self._require_admin_of(identity, customer_id)
        if not _DISPLAY_PREFIX.fullmatch(token_prefix):
            raise InvalidArgument(
                "A token prefix is vb_ and the 8 letters or digits after it, as the list shows it.",
                reason="INVALID_ARGUMENT",
            )
        async with self._db.reader() as repos:
            return await repos.accesskeys.list_live_by_prefix(
                customer_id, token_prefix, limit=PREFIX_MATCHES
            )

    async def update(
        self, identity: Identity, key_id: uuid.UUID, *, name: str, detail: str
    ) -> Accesskey:
        async def rename(repos: Repositories, _: Accesskey, now: datetime) -> Accesskey | None:
            return await repos.accesskeys.update_text(key_id, name=name, detail=detail, now=now)

        return await self._revise(identity, key_id, rename, ACCESSKEY_UPDATED)

    async def delete(self, identity: Identity, key_id: uuid.UUID) -> Accesskey:
        """Soft delete: from this instant the key authenticates nowhere."""

        async def delete(repos: Repositories, _: Accesskey, now: datetime) -> Accesskey | None:
            return await repos.accesskeys.soft_delete(key_id, now=now)

        return await self._revise(identity, key_id, delete, ACCESSKEY_DELETED)

    async def disable(self, identity: Identity, key_id: uuid.UUID) -> Accesskey:
        """Refused everywhere (401, like any refused credential) until enabled; idempotent."""

        async def disable(repos: Repositories, key: Accesskey, now: datetime) -> Accesskey | None:
            if key.tm_disable is not None:
                return key
            return await repos.accesskeys.set_disabled(key_id, disabled_since=now, now=now)

        return await self._revise(identity, key_id, disable, ACCESSKEY_DISABLED)

    async def enable(self, identity: Identity, key_id: uuid.UUID) -> Accesskey:
        """Undo ``disable``; idempotent."""

        async def enable(repos: Repositories, key: Accesskey, now: datetime) -> Accesskey | None:
            if key.tm_disable is None:
                return key
            return await repos.accesskeys.set_disabled(key_id, disabled_since=None, now=now)

        return await self._revise(identity, key_id, enable, ACCESSKEY_ENABLED)

    async def shorten_expiry(
        self, identity: Identity, key_id: uuid.UUID, tm_expire: datetime
    ) -> Accesskey:
        """Move ``tm_expire`` earlier (not before now); lengthening is refused: rotate instead."""

        async def shorten(repos: Repositories, key: Accesskey, now: datetime) -> Accesskey | None:
            if tm_expire < now:
                raise InvalidArgument(
                    "'tm_expire' is in the past: give a moment from now on "
                    "(to stop a key at once, disable or delete it).",
                    reason="EXPIRE_IN_THE_PAST",
                )
            if tm_expire > key.tm_expire:
                raise InvalidArgument(
                    "'tm_expire' is later than the key's expiry: an expiry can only be "
                    "shortened; rotate the key to get one with a new lifetime.",
                    reason="EXPIRE_NOT_SHORTER",
                )
            _require_no_later_than_caller(identity, tm_expire, now, asked="tm_expire")
            if tm_expire == key.tm_expire:
                return key
            return await repos.accesskeys.set_expire(key_id, tm_expire=tm_expire, now=now)

        return await self._revise(identity, key_id, shorten, ACCESSKEY_UPDATED)

    @staticmethod
    def validate_grace(grace: object) -> int:
        """Whole seconds from 0 to 7 days; missing means 0 (the old key stops at once)."""
        if grace is None:
            return 0
        if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE:
            raise InvalidArgument(
                f"'grace' must be a whole number of seconds from 0 to {MAX_GRACE} (7 days)."
            )
        return grace

    def _rotation_lifetime(self, key: Accesskey) -> int:
        """The old key's lifetime, within the bounds a new key may have."""
        seconds = int((key.tm_expire - key.tm_create).total_seconds())
        upper = MAX_EXPIRE if self.max_expire is None else self.max_expire
        return max(MIN_EXPIRE, min(seconds, upper))

    async def rotate(
        self, identity: Identity, key_id: uuid.UUID, *, grace: object
    ) -> tuple[Accesskey, str, Accesskey]:
        """A new key with the old one's name, detail and lifetime; the old one ends after ``grace``.

        Rotated by an access key, the new key expires no later than that key.
        Returns the new key, its token (shown once) and the old key as it now is.
        """
        seconds = self.validate_grace(grace)
        async with self._db.transaction() as repos:
            old = self._actionable(identity, await repos.accesskeys.get(key_id))
            if old.rotated_to is not None:
                raise _already_rotated()
            if old.tm_disable is not None:
                raise FailedPrecondition(
                    "The access key is disabled: enable it before rotating it.",
                    reason="STATE_INVALID",
                )
            now = self._clock.now()
            new, token = new_accesskey(
                old.customer_id,
                old.name,
                old.detail,
                self._rotation_lifetime(old),
                now,
                old.scopes,
                old.allowed_networks,
            )
            new = replace(new, tm_expire=_latest_expiry(identity, new.tm_expire))
            await repos.accesskeys.insert(new)
            end = min(old.tm_expire, now + timedelta(seconds=seconds))
            rotated = await repos.accesskeys.mark_rotated(
                key_id, rotated_to=new.id, tm_expire=end, now=now
            )
            if rotated is None:
                raise _already_rotated()  # deleted or rotated meanwhile: nothing is kept
            await record_accesskey_event(repos, ACCESSKEY_CREATED, new, now)
            await record_accesskey_event(repos, ACCESSKEY_ROTATED, rotated, now)
            await _audit(repos, identity, ACCESSKEY_CREATED, new, now)
            await _audit(repos, identity, ACCESSKEY_ROTATED, rotated, now)
            await record_revocation(repos, _change(rotated), now)
        # Every replica reloads the old key with its new expiry, checked on each use.
        await self._invalidator.publish(_change(rotated))
        return new, token, rotated

    async def _revise(
        self, identity: Identity, key_id: uuid.UUID, revise: Revision, event: str
    ) -> Accesskey:
        """Change one visible key, record the event and the revocation, tell every replica."""
        async with self._db.transaction() as repos:
            current = self._actionable(identity, await repos.accesskeys.get(key_id))
            now = self._clock.now()
            changed = await revise(repos, current, now)
            if changed is None:
                raise _deleted()  # ours a moment ago, deleted meanwhile
            if changed is current:
                return current  # nothing to change
            await record_accesskey_event(repos, event, changed, now)
            await _audit(repos, identity, event, changed, now)
            await record_revocation(repos, _change(changed), now)
        # After the commit: every replica's cache drops the key at once.
        await self._invalidator.publish(_change(changed))
        return changed

    @classmethod
    def _visible(cls, identity: Identity, key: Accesskey | None) -> Accesskey:
        """VoIPBIN's order: the customer (404, never 403), then deletion (409), then permission."""
        if key is None or not _owns(identity, key):
            raise _not_found()
        if key.tm_delete is not None:
            raise _deleted()
        cls._require_admin_of(identity, key.customer_id)
        return key

    @classmethod
    def _actionable(cls, identity: Identity, key: Accesskey | None) -> Accesskey:
        """A key the caller may change: visible, and within a restricted caller's restrictions.

        Every change goes through here (update, delete, disable, enable, a new
        expiry, rotation); reading and listing do not.
        """
        visible = cls._visible(identity, key)
        _require_within_own_restrictions(identity, visible.scopes, visible.allowed_networks)
        return visible
