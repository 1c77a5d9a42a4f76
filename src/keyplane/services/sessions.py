"""Ending a session (a logout) on every replica, within the revocation bound.

A session token is a signed JWT, good until its ``exp`` wherever the secret is
known. A logout records the token's ``jti`` in ``revoked_sessions`` until that
``exp``, and appends a ``session`` entry to the revocation log in the same
transaction; after the commit it publishes the invalidation. Every replica
forgets what it cached about the session at once (Redis) or within a quarter of
a second (the log), and then finds it ended: one primary key seek, cached
afterwards (``VerificationLookups.session_revoked``). Rows are forgotten a day
after their token expired (``RevokedSessionRetention``), when the token is
refused by its ``exp`` anyway.
"""

from __future__ import annotations

from datetime import datetime

from keyplane.cache.invalidation import Invalidation, Invalidator
from keyplane.domain.clock import Clock
from keyplane.domain.permissions import Identity
from keyplane.domain.sessions import SessionCodec
from keyplane.errors import AlreadyExists, InvalidCredentials, PermissionDenied
from keyplane.services.audit import record_audit
from keyplane.services.pruning import Retention
from keyplane.services.revocations import record_revocation
from keyplane.store.engine import Database
from keyplane.store.repositories import Repositories

# Rows outlive their token by a day, so a replica whose clock runs a little
# behind still finds the session ended until it sees the token as expired.
KEEP_AFTER_EXPIRY_DAYS = 1


class SessionService:
    def __init__(
        self, database: Database, clock: Clock, codec: SessionCodec, invalidator: Invalidator
    ) -> None:
        self._db = database
        self._clock = clock
        self._codec = codec
        self._invalidator = invalidator

    async def end(self, identity: Identity, token: str) -> None:
        """End the session ``token``, with which ``identity`` was authenticated, everywhere.

        ``PermissionDenied`` for an access key, which is no session;
        ``InvalidCredentials`` for a token that is not a session of ``identity``.
        Ending a session again changes nothing.
        """
        if identity.type != "agent":
            raise PermissionDenied(
                "Only a session token can be logged out. An access key stays valid until it "
                "expires or is deleted (DELETE /v1.0/accesskeys/{id}).",
                reason="PERMISSION_DENIED",
            )
        now = self._clock.now()
        claims = self._codec.decode(token, now)
        if identity.id != claims.agent_id:
            raise InvalidCredentials()
        change = Invalidation("session", claims.session_id)
        try:
            async with self._db.transaction() as repos:
                await repos.revocations.revoke_session(
                    claims.session_id,
                    agent_id=claims.agent_id,
                    customer_id=claims.customer_id,
                    expires_at=claims.expires_at,
                    now=now,
                )
                await record_revocation(repos, change, now)
                await record_audit(
                    repos,
                    identity,
                    "session_ended",
                    customer_id=claims.customer_id,
                    subject_id=claims.agent_id,
                    now=now,
                )
        except AlreadyExists:
            return  # ended already (another tab, another replica): nothing more to do
        # After the commit: every replica's cache forgets the session at once.
        await self._invalidator.publish(change)


class RevokedSessionRetention(Retention):
    """Forgets ended sessions a day after their token expired (``retention_days``)."""

    task_name = "keyplane-session-retention"
    logger = "keyplane.sessions"
    failed_event = "revoked_sessions_prune_failed"

    async def forget(self, repos: Repositories, before: datetime, limit: int) -> int:
        return await repos.revocations.prune_sessions(before, limit=limit)
