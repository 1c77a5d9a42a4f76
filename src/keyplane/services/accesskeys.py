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
from keyplane.errors import InvalidArgument, NotFound, PermissionDenied
from keyplane.services.events import (
    ACCESSKEY_CREATED,
    ACCESSKEY_DELETED,
    ACCESSKEY_UPDATED,
    record_accesskey_event,
)
from keyplane.services.revocations import record_revocation
from keyplane.store.engine import Database

MIN_EXPIRE = 86_400
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
    return NotFound("The access key was not found.", reason="ACCESSKEY_NOT_FOUND")


class AccesskeyService:
    def __init__(
        self, database: Database, clock: Clock, invalidator: Invalidator, *, max_expire: int
    ) -> None:
        self._db = database
        self._clock = clock
        self._invalidator = invalidator
        self.max_expire = max_expire

    def validate_expire(self, expire: object) -> int:
        """An integer number of seconds from one day to the configured maximum."""
        if isinstance(expire, bool) or not isinstance(expire, int):
            raise InvalidArgument(
                self._expire_message("must be an integer"), reason="INVALID_EXPIRE"
            )
        if not MIN_EXPIRE <= expire <= self.max_expire:
            raise InvalidArgument(self._expire_message("is out of range"), reason="INVALID_EXPIRE")
        return expire

    def _expire_message(self, problem: str) -> str:
        return (
            f"'expire' {problem}: give the lifetime in whole seconds, "
            f"from {MIN_EXPIRE} (one day) to {self.max_expire}."
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
        self._require_admin_of(identity, identity.customer_id)
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
        next_token = encode_cursor(items[-1].tm_create, items[-1].id) if items else None
        return Page(items, next_token)

    async def update(
        self, identity: Identity, key_id: uuid.UUID, *, name: str, detail: str
    ) -> Accesskey:
        self._require_admin_of(identity, identity.customer_id)
        async with self._db.transaction() as repos:
            self._visible(identity, await repos.accesskeys.get(key_id))
            now = self._clock.now()
            updated = await repos.accesskeys.update_text(key_id, name=name, detail=detail, now=now)
            if updated is None:
                raise _not_found()
            await record_accesskey_event(repos, ACCESSKEY_UPDATED, updated, now)
            await record_revocation(repos, _change(updated), now)
        await self._invalidator.publish(_change(updated))
        return updated

    async def delete(self, identity: Identity, key_id: uuid.UUID) -> Accesskey:
        """Soft delete: from this instant the key authenticates nowhere."""
        self._require_admin_of(identity, identity.customer_id)
        async with self._db.transaction() as repos:
            self._visible(identity, await repos.accesskeys.get(key_id))
            now = self._clock.now()
            deleted = await repos.accesskeys.soft_delete(key_id, now=now)
            if deleted is None:
                raise _not_found()
            await record_accesskey_event(repos, ACCESSKEY_DELETED, deleted, now)
            await record_revocation(repos, _change(deleted), now)
        # After the commit: every replica's cache drops the key at once.
        await self._invalidator.publish(_change(deleted))
        return deleted

    @staticmethod
    def _visible(identity: Identity, key: Accesskey | None) -> Accesskey:
        """Deleted keys and keys of other customers are 404, never 403."""
        if key is None or key.tm_delete is not None:
            raise _not_found()
        if not has_permission(identity, key.customer_id, REQUIRED):
            raise _not_found()
        return key
