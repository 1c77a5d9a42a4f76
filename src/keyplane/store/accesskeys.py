"""Access keys. Lookups by token go through the unique ``token_hash`` index."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, tuple_, update
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.domain.networks import networks_from_json, networks_to_json
from keyplane.domain.records import Accesskey
from keyplane.domain.scopes import scopes_from_json, scopes_to_json
from keyplane.store.tables import accesskeys, customers, expiry_notices

_COLUMNS = tuple(accesskeys.columns)
_NAMES = tuple(column.name for column in _COLUMNS)

# The reads run on every authenticated request (get) and every cache miss
# (get_by_hash): built once here, so a call only binds its value and SQLAlchemy
# finds the compiled form in its cache, instead of building the statement again.
_GET = select(*_COLUMNS).where(accesskeys.c.id == bindparam("key_id"))
_GET_BY_HASH = (
    select(*_COLUMNS)
    .join(customers, customers.c.id == accesskeys.c.customer_id)
    .where(accesskeys.c.token_hash == bindparam("token_hash"), customers.c.tm_delete.is_(None))
)


def _to_record(row: RowMapping | Row[Any]) -> Accesskey:
    """A row of ``_COLUMNS`` (by position or by name) as a record."""
    values = dict(zip(_NAMES, row, strict=True)) if isinstance(row, Row) else dict(row)
    values["scopes"] = scopes_from_json(values["scopes"])
    values["allowed_networks"] = networks_from_json(values["allowed_networks"])
    return Accesskey(**values)


class AccesskeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(self, key: Accesskey) -> None:
        await self._conn.execute(
            insert(accesskeys).values(
                id=key.id,
                customer_id=key.customer_id,
                name=key.name,
                detail=key.detail,
                token_hash=key.token_hash,
                token_prefix=key.token_prefix,
                tm_expire=key.tm_expire,
                tm_create=key.tm_create,
                tm_update=key.tm_update,
                tm_delete=key.tm_delete,
                scopes=scopes_to_json(key.scopes),
                allowed_networks=networks_to_json(key.allowed_networks),
            )
        )

    async def get(self, key_id: uuid.UUID) -> Accesskey | None:
        row = (await self._conn.execute(_GET, {"key_id": key_id})).first()
        return _to_record(row) if row is not None else None

    async def get_by_hash(self, token_hash: str) -> Accesskey | None:
        """The key with this hash whose customer still exists (deleted or expired included)."""
        row = (await self._conn.execute(_GET_BY_HASH, {"token_hash": token_hash})).first()
        return _to_record(row) if row is not None else None

    async def list_live(
        self,
        customer_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID | None] | None = None,
    ) -> list[Accesskey]:
        """Newest first by ``(tm_create, id)``; ``before`` is the last key already seen.

        With no id in ``before`` (a VoIPBIN timestamp cursor), every key created at
        that exact moment counts as seen. Either way the cursor is one range of the
        live-key listing index (``ix_accesskeys_live_listing``): a page costs its
        own rows, however deep it is, and deleted keys are not in the index at all.
        """
        query = select(*_COLUMNS).where(
            accesskeys.c.customer_id == customer_id, accesskeys.c.tm_delete.is_(None)
        )
        if before is not None:
            moment, last_id = before
            if last_id is None:
                query = query.where(accesskeys.c.tm_create < moment)
            else:
                # A row value, not "a < m OR (a = m AND b < l)": both databases seek
                # to a row value in an index; the OR form scanned from the newest key.
                query = query.where(
                    tuple_(accesskeys.c.tm_create, accesskeys.c.id) < tuple_(moment, last_id)
                )
        query = query.order_by(accesskeys.c.tm_create.desc(), accesskeys.c.id.desc()).limit(limit)
        return [_to_record(row) for row in (await self._conn.execute(query)).mappings()]

    async def list_live_by_prefix(
        self, customer_id: uuid.UUID, token_prefix: str, *, limit: int
    ) -> list[Accesskey]:
        """A customer's live keys with this display prefix, newest first.

        One seek of ``ix_accesskeys_live_prefix``: its matches, already in order.
        """
        query = (
            select(*_COLUMNS)
            .where(
                accesskeys.c.customer_id == customer_id,
                accesskeys.c.token_prefix == token_prefix,
                accesskeys.c.tm_delete.is_(None),
            )
            .order_by(accesskeys.c.tm_create.desc(), accesskeys.c.id.desc())
            .limit(limit)
        )
        return [_to_record(row) for row in (await self._conn.execute(query)).mappings()]

    async def update_text(
        self, key_id: uuid.UUID, *, name: str, detail: str, now: datetime
    ) -> Accesskey | None:
        """Rename a live key; ``None`` when it does not exist or is deleted."""
        return await self._change(key_id, now, name=name, detail=detail)

    async def set_disabled(
        self, key_id: uuid.UUID, *, disabled_since: datetime | None, now: datetime
    ) -> Accesskey | None:
        """Disable (a moment) or enable (``None``) a key that is not deleted."""
        return await self._change(key_id, now, tm_disable=disabled_since)

    async def set_expire(
        self, key_id: uuid.UUID, *, tm_expire: datetime, now: datetime
    ) -> Accesskey | None:
        return await self._change(key_id, now, tm_expire=tm_expire)

    async def mark_rotated(
        self, key_id: uuid.UUID, *, rotated_to: uuid.UUID, tm_expire: datetime, now: datetime
    ) -> Accesskey | None:
        """The old key of a rotation: replaced, and ending at the end of the grace.

        ``None`` when it is deleted or was rotated meanwhile (one rotation per key).
        """
        return await self._change(
            key_id,
            now,
            accesskeys.c.rotated_to.is_(None),
            rotated_to=rotated_to,
            tm_expire=tm_expire,
        )

    async def _change(
        self, key_id: uuid.UUID, now: datetime, *conditions: Any, **values: Any
    ) -> Accesskey | None:
        """Change a key that is not deleted and set ``tm_update``; ``None`` if there is none."""
        query = (
            update(accesskeys)
            .where(accesskeys.c.id == key_id, accesskeys.c.tm_delete.is_(None), *conditions)
            .values(tm_update=now, **values)
            .returning(*_COLUMNS)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return _to_record(row) if row is not None else None

    async def soft_delete(self, key_id: uuid.UUID, *, now: datetime) -> Accesskey | None:
        """Mark a live key deleted; ``None`` when it does not exist or is already deleted."""
        query = (
            update(accesskeys)
            .where(accesskeys.c.id == key_id, accesskeys.c.tm_delete.is_(None))
            .values(tm_delete=now, tm_update=now)
            .returning(*_COLUMNS)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return _to_record(row) if row is not None else None

    async def touch_last_used(self, moments: dict[uuid.UUID, datetime]) -> None:
        """Move ``tm_last_used`` forward; rows another writer holds are skipped, not waited on."""
        locked = accesskeys.alias("locked")
        free_row = (
            select(locked.c.id)
            .where(locked.c.id == bindparam("key_id"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        query = (
            update(accesskeys)
            .where(
                accesskeys.c.id == free_row,
                or_(
                    accesskeys.c.tm_last_used.is_(None),
                    accesskeys.c.tm_last_used < bindparam("moment"),
                ),
            )
            .values(tm_last_used=bindparam("moment"))
        )
        await self._conn.execute(
            query, [{"key_id": key_id, "moment": moment} for key_id, moment in moments.items()]
        )

    async def last_used(self, key_id: uuid.UUID) -> datetime | None:
        result = await self._conn.execute(
            select(accesskeys.c.tm_last_used).where(accesskeys.c.id == key_id)
        )
        value = result.scalar_one_or_none()
        assert value is None or isinstance(value, datetime)
        return value

    async def expiring_without_notice(
        self, now: datetime, lead: timedelta, *, limit: int
    ) -> list[Accesskey]:
        """Live keys expiring within ``lead`` that have had no notice for it, soonest first."""
        noticed = (
            select(expiry_notices.c.accesskey_id)
            .where(
                expiry_notices.c.accesskey_id == accesskeys.c.id,
                expiry_notices.c.lead_seconds == int(lead.total_seconds()),
            )
            .exists()
        )
        query = (
            select(*_COLUMNS)
            .where(
                accesskeys.c.tm_delete.is_(None),
                accesskeys.c.tm_disable.is_(None),
                accesskeys.c.rotated_to.is_(None),
                accesskeys.c.tm_expire > now,
                accesskeys.c.tm_expire <= now + lead,
                ~noticed,
            )
            .order_by(accesskeys.c.tm_expire)
            .limit(limit)
        )
        return [_to_record(row) for row in (await self._conn.execute(query)).mappings()]

    async def notices_sent(self, key_id: uuid.UUID) -> set[timedelta]:
        query = select(expiry_notices.c.lead_seconds).where(expiry_notices.c.accesskey_id == key_id)
        return {timedelta(seconds=s) for s in (await self._conn.execute(query)).scalars()}

    async def record_notice(self, key_id: uuid.UUID, lead: timedelta, now: datetime) -> None:
        """Refused (``AlreadyExists``) when this notice was already recorded."""
        await self._conn.execute(
            insert(expiry_notices).values(
                accesskey_id=key_id, lead_seconds=int(lead.total_seconds()), tm_create=now
            )
        )
