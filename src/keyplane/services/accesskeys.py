"""Access key use cases: create, read, list, rename, delete."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from keyplane.cache.invalidation import Invalidation, Invalidator
from keyplane.domain import tokens
from keyplane.domain.clock import Clock
from keyplane.domain.pagination import Cursor, encode_cursor
from keyplane.domain.permissions import Identity, Permission, has_permission
from keyplane.domain.records import Accesskey, Page
from keyplane.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from keyplane.services.events import (
    ACCESSKEY_CREATED,
    ACCESSKEY_DELETED,
    ACCESSKEY_UPDATED,
    record_accesskey_event,
)
from keyplane.services.revocations import record_revocation
from keyplane.store.engine import Database

MIN_EXPIRE = 86_400
# VoIPBIN's ``expire`` is an int32: no other bound unless the operator sets one.
MAX_EXPIRE = 2_147_483_647
REQUIRED = int(Permission.CUSTOMER_ADMIN)


def new_accesskey(
    customer_id: uuid.UUID, name: str, detail: str, expire: int, now: datetime
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
        self, identity: Identity, customer_id: uuid.UUID, *, name: str, detail: str, expire: object
    ) -> tuple[Accesskey, str]:
        """A new key and its token; the token is returned here and never again."""
        self._require_admin_of(identity, customer_id)
        seconds = self.validate_expire(expire)
        key, token = new_accesskey(customer_id, name, detail, seconds, self._clock.now())
        async with self._db.transaction() as repos:
            customer = await repos.customers.get(customer_id)
            if customer is None or customer.tm_delete is not None:
                raise NotFound("The customer was not found.", reason="CUSTOMER_NOT_FOUND")
            await repos.accesskeys.insert(key)
            await record_accesskey_event(repos, ACCESSKEY_CREATED, key, key.tm_create)
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

    async def update(
        self, identity: Identity, key_id: uuid.UUID, *, name: str, detail: str
    ) -> Accesskey:
        async with self._db.transaction() as repos:
            self._visible(identity, await repos.accesskeys.get(key_id))
            now = self._clock.now()
            updated = await repos.accesskeys.update_text(key_id, name=name, detail=detail, now=now)
            if updated is None:
                raise _deleted()  # ours a moment ago, deleted meanwhile
            await record_accesskey_event(repos, ACCESSKEY_UPDATED, updated, now)
            await record_revocation(repos, _change(updated), now)
        await self._invalidator.publish(_change(updated))
        return updated

    async def delete(self, identity: Identity, key_id: uuid.UUID) -> Accesskey:
        """Soft delete: from this instant the key authenticates nowhere."""
        async with self._db.transaction() as repos:
            self._visible(identity, await repos.accesskeys.get(key_id))
            now = self._clock.now()
            deleted = await repos.accesskeys.soft_delete(key_id, now=now)
            if deleted is None:
                raise _deleted()  # ours a moment ago, deleted meanwhile
            await record_accesskey_event(repos, ACCESSKEY_DELETED, deleted, now)
            await record_revocation(repos, _change(deleted), now)
        # After the commit: every replica's cache drops the key at once.
        await self._invalidator.publish(_change(deleted))
        return deleted

    @classmethod
    def _visible(cls, identity: Identity, key: Accesskey | None) -> Accesskey:
        """VoIPBIN's order: the customer (404, never 403), then deletion (409), then permission."""
        if key is None or not _owns(identity, key):
            raise _not_found()
        if key.tm_delete is not None:
            raise _deleted()
        cls._require_admin_of(identity, key.customer_id)
        return key
