"""Authentication: login, session tokens and access keys.

Every refusal of a presented credential is the same ``InvalidCredentials``,
whatever the cause, so a guesser learns nothing from the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import anyio
import anyio.to_thread

from keyplane.domain import tokens
from keyplane.domain.clock import Clock
from keyplane.domain.passwords import PasswordHashing
from keyplane.domain.permissions import Identity
from keyplane.domain.records import Accesskey, Agent
from keyplane.domain.sessions import SessionCodec
from keyplane.errors import InvalidCredentials
from keyplane.store.engine import Database

CredentialKind = Literal["session", "accesskey"]


@dataclass(frozen=True, slots=True)
class Credential:
    """A credential as found on a request; ``repr`` never shows its value."""

    kind: CredentialKind
    value: str
    source: str

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r}, source={self.source!r}, value=<redacted>)"


class PasswordWorker:
    """Runs argon2 off the event loop, a bounded number at a time."""

    def __init__(self, hashing: PasswordHashing, concurrency: int) -> None:
        self.hashing = hashing
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self.hashing.hash, password, limiter=self._limiter)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await anyio.to_thread.run_sync(
            self.hashing.verify, password_hash, password, limiter=self._limiter
        )


class AccesskeyLookup:
    """Finds a key by token hash. The seam where a verification cache sits."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def by_hash(self, token_hash: str) -> Accesskey | None:
        async with self._db.reader() as repos:
            return await repos.accesskeys.get_by_hash(token_hash)


class AuthService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        passwords: PasswordWorker,
        sessions: SessionCodec,
        accesskeys: AccesskeyLookup,
    ) -> None:
        self._db = database
        self._clock = clock
        self._passwords = passwords
        self._sessions = sessions
        self._accesskeys = accesskeys

    async def login(self, username: str, password: str) -> tuple[Agent, str]:
        """A session token for a valid username and password."""
        async with self._db.reader() as repos:
            agent = await repos.agents.get_active_by_username(username) if username else None
        # Always verify, against a dummy hash for unknown users: same cost either way.
        ok = await self._passwords.verify(agent.password_hash if agent else None, password)
        if agent is None or not ok:
            raise InvalidCredentials()
        if self._passwords.hashing.needs_rehash(agent.password_hash):
            new_hash = await self._passwords.hash(password)
            async with self._db.transaction() as repos:
                await repos.agents.set_password_hash(agent.id, new_hash)
        token = self._sessions.issue(agent.id, agent.customer_id, self._clock.now())
        return agent, token

    async def authenticate(self, credential: Credential) -> Identity:
        if credential.kind == "accesskey":
            return await self.authenticate_accesskey(credential.value)
        return await self.authenticate_session(credential.value)

    async def authenticate_accesskey(self, token: str) -> Identity:
        # Malformed tokens are refused before any hashing or database work.
        if not tokens.is_wellformed(token):
            raise InvalidCredentials()
        key = await self._accesskeys.by_hash(tokens.hash_token(token))
        if key is None or not key.is_live(self._clock.now()):
            raise InvalidCredentials()
        return Identity.for_accesskey(key.id, key.customer_id)

    async def authenticate_session(self, token: str) -> Identity:
        claims = self._sessions.decode(token, self._clock.now())
        async with self._db.reader() as repos:
            agent = await repos.agents.get_active(claims.agent_id)
        if agent is None or agent.customer_id != claims.customer_id:
            raise InvalidCredentials()
        return Identity("agent", agent.id, agent.customer_id, agent.permission)
