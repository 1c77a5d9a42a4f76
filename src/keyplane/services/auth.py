"""Authentication: login, session tokens and access keys.

Every refusal of a presented credential is the same ``InvalidCredentials``,
whatever the cause, so a guesser learns nothing from the answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

import anyio
import anyio.to_thread

from keyplane.cache.ratelimit import Decision
from keyplane.cache.verification import (
    Miss,
    RevokedSession,
    VerificationCache,
    VerifiedAgent,
    VerifiedKey,
)
from keyplane.domain import networks, scopes, tokens
from keyplane.domain.clock import Clock
from keyplane.domain.passwords import PasswordHashing
from keyplane.domain.permissions import Identity
from keyplane.domain.records import Agent
from keyplane.domain.sessions import SessionCodec
from keyplane.errors import InvalidCredentials, LoginRefused, PermissionDenied
from keyplane.metrics import Metrics, login_result, verify_result
from keyplane.services.admission import MissAdmission
from keyplane.services.audit import record_audit
from keyplane.services.ratelimits import RateLimits
from keyplane.services.usage import LastUsedRecorder
from keyplane.store.engine import Database

CredentialKind = Literal["session", "accesskey"]
S = TypeVar("S")
V = TypeVar("V")


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


class VerificationLookups:
    """Database lookups for verification, behind the per-replica cache."""

    def __init__(
        self, database: Database, cache: VerificationCache, metrics: Metrics | None = None
    ) -> None:
        self._db = database
        self.cache = cache
        self.metrics = metrics or Metrics()

    async def accesskey(self, token_hash: str) -> VerifiedKey | None:
        return await self._through_cache(
            token_hash, self.cache.get_key, self.cache.put_key, self._load_accesskey
        )

    async def agent(self, agent_id: uuid.UUID) -> VerifiedAgent | None:
        return await self._through_cache(
            agent_id, self.cache.get_agent, self.cache.put_agent, self._load_agent
        )

    async def session_revoked(self, session_id: uuid.UUID) -> bool:
        """Whether a logout ended this session; cached either way, and a logout evicts it."""
        found = await self._through_cache(
            session_id, self.cache.get_session, self.cache.put_session, self._load_session
        )
        return found is not None

    async def _through_cache(
        self,
        subject: S,
        get: Callable[[S], V | Miss | None],
        put: Callable[[S, V | None, int], None],
        load: Callable[[S], Awaitable[V | None]],
    ) -> V | None:
        cached = get(subject)
        if not isinstance(cached, Miss):
            self.metrics.cache_hits.inc()
            return cached
        self.metrics.cache_misses.inc()
        # Noted before the read: a revocation arriving meanwhile makes ``put`` drop it.
        generation = self.cache.generation
        found = await load(subject)
        put(subject, found, generation)
        return found

    async def _load_accesskey(self, token_hash: str) -> VerifiedKey | None:
        async with self._db.reader() as repos:
            key = await repos.accesskeys.get_by_hash(token_hash)
        if key is None or key.tm_delete is not None or key.tm_disable is not None:
            return None  # disabled: refused like any other credential
        return VerifiedKey(key.id, key.customer_id, key.tm_expire, key.scopes, key.allowed_networks)

    async def _load_session(self, session_id: uuid.UUID) -> RevokedSession | None:
        async with self._db.reader() as repos:
            revoked = await repos.revocations.session_revoked(session_id)
        return RevokedSession(session_id) if revoked else None

    async def _load_agent(self, agent_id: uuid.UUID) -> VerifiedAgent | None:
        async with self._db.reader() as repos:
            agent = await repos.agents.get_active(agent_id)
        return (
            None if agent is None else VerifiedAgent(agent.id, agent.customer_id, agent.permission)
        )


class AuthService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        passwords: PasswordWorker,
        sessions: SessionCodec,
        lookups: VerificationLookups,
        ratelimits: RateLimits,
        usage: LastUsedRecorder,
        admission: MissAdmission,
    ) -> None:
        self._db = database
        self._clock = clock
        self._passwords = passwords
        self._sessions = sessions
        self._lookups = lookups
        self._ratelimits = ratelimits
        self._usage = usage
        self._metrics = lookups.metrics
        self._admission = admission

    async def login(self, username: str, password: str, *, client: str = "") -> tuple[Agent, str]:
        """A session token for a valid username and password."""
        started = time.perf_counter()
        try:
            found = await self._login(username, password, client)
        except Exception as error:
            self._metrics.logins[login_result(error)].inc()
            raise
        finally:
            self._metrics.login_seconds.observe(time.perf_counter() - started)
        self._metrics.logins["ok"].inc()
        return found

    async def _login(self, username: str, password: str, client: str) -> tuple[Agent, str]:
        # Both budgets (this username from this address, and this address) are
        # spent before the password is checked, so parallel guesses cannot
        # outrun them; a right password, or no verdict at all, gives them back.
        async with self._ratelimits.login_attempt(username, client):
            async with self._db.reader() as repos:
                agent = await repos.agents.get_active_by_username(username) if username else None
            # Always verify, against a dummy hash for unknown users: same cost either way.
            ok = await self._passwords.verify(agent.password_hash if agent else None, password)
            if agent is None or not ok:
                raise LoginRefused()
        if self._passwords.hashing.needs_rehash(agent.password_hash):
            new_hash = await self._passwords.hash(password)
            async with self._db.transaction() as repos:
                await repos.agents.set_password_hash(agent.id, new_hash)
        now = self._clock.now()
        token = self._sessions.issue(agent.id, agent.customer_id, now)
        async with self._db.transaction() as repos:
            await record_audit(
                repos,
                Identity("agent", agent.id, agent.customer_id, agent.permission),
                "session_created",
                customer_id=agent.customer_id,
                subject_id=agent.id,
                now=now,
            )
        return agent, token

    async def authenticate(
        self,
        credential: Credential,
        *,
        client: str = "",
        method: str | None = None,
        path: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[Identity, Decision]:
        """The identity behind a credential, and the customer's rate limit state.

        Raises ``ResourceExhausted`` for an address out of failure budget (before
        looking at the credential) or a customer over its rate, and
        ``PermissionDenied`` when a restricted key's scopes do not allow
        ``method`` on ``path`` (with its query; an unknown method or path allows
        nothing), given the request's ``headers`` among ``scopes.HEADER_NAMES``,
        or its IP allowlist does not hold ``client``.
        """
        started = time.perf_counter()
        try:
            self._ratelimits.ensure_auth_allowed(client)
            identity = self.already_verified(credential)
            if identity is None:
                identity = await self._evaluate(credential, client)
            else:
                self._metrics.cache_hits.inc()
            decision = await self._ratelimits.consume_customer(identity.customer_id)
            self._check_restrictions(identity, client, method, path, headers)
        except Exception as error:
            self._metrics.verifications[verify_result(error)].inc()
            raise
        finally:
            self._metrics.verify_seconds.observe(time.perf_counter() - started)
        self._metrics.verifications["allowed"].inc()
        return identity, decision

    @staticmethod
    def _check_restrictions(
        identity: Identity,
        client: str,
        method: str | None,
        path: str | None,
        headers: Sequence[tuple[str, str]],
    ) -> None:
        """A restricted key's IP allowlist and scopes: ``PermissionDenied`` when they refuse."""
        if identity.allowed_networks is not None and not networks.allows(
            identity.allowed_networks, client
        ):
            raise PermissionDenied(
                "This access key may not be used from this address (its IP allowlist).",
                reason="PERMISSION_DENIED",
            )
        if identity.scopes is not None and not (
            method and path and scopes.allows(identity.scopes, method, path, headers)
        ):
            raise PermissionDenied(
                "This access key's scopes do not allow this method on this path.",
                reason="PERMISSION_DENIED",
            )

    def refused_without_credential(self) -> None:
        """Count a request that carried no credential at all (nothing to verify)."""
        self._metrics.verifications["unauthenticated"].inc()

    async def _evaluate(self, credential: Credential, client: str) -> Identity:
        """Look at a credential on one slot of the address's failure budget.

        The slot is taken first, so a burst of N requests can never test more
        than the budget; it is given back unless the credential was refused.
        An access key this replica found valid within the cache's TTL is no
        guess: its re-verification (its positive entry lived only the fallback
        TTL) reads the database without a slot, so it never queues behind the
        slots of pending logins from its address.
        """
        if credential.kind == "accesskey" and self._recently_valid(credential.value):
            return await self.authenticate_accesskey(credential.value)
        # Cache hits go ahead; a flood of unknown credentials waits or is refused.
        async with self._admission.admitted(), self._ratelimits.auth_attempt(client):
            if credential.kind == "accesskey":
                return await self.authenticate_accesskey(credential.value)
            return await self.authenticate_session(credential.value)

    def _recently_valid(self, token: str) -> bool:
        return tokens.is_wellformed(token) and self._lookups.cache.recently_valid(
            tokens.hash_token(token)
        )

    def already_verified(self, credential: Credential) -> Identity | None:
        """The identity when this replica's cache already vouches for the credential.

        Only a credential verified earlier can be found here, so a guesser gains
        nothing from it, and busy legitimate callers behind one address never
        meet the failure budget.
        """
        now = self._clock.now()
        if credential.kind == "accesskey":
            if not tokens.is_wellformed(credential.value):
                return None
            key = self._lookups.cache.get_key(tokens.hash_token(credential.value))
            if not isinstance(key, VerifiedKey) or key.tm_expire <= now:
                return None
            return self._key_identity(key, now)
        try:
            claims = self._sessions.decode(credential.value, now)
        except InvalidCredentials:
            return None
        agent = self._lookups.cache.get_agent(claims.agent_id)
        if not isinstance(agent, VerifiedAgent) or agent.customer_id != claims.customer_id:
            return None
        if self._lookups.cache.get_session(claims.session_id) is not None:
            return None  # ended by a logout, or not known yet: the database says
        return Identity("agent", agent.id, agent.customer_id, agent.permission)

    async def authenticate_accesskey(self, token: str) -> Identity:
        # Malformed tokens are refused before any hashing or database work.
        if not tokens.is_wellformed(token):
            raise InvalidCredentials()
        key = await self._lookups.accesskey(tokens.hash_token(token))
        now = self._clock.now()
        if key is None or key.tm_expire <= now:
            raise InvalidCredentials()
        return self._key_identity(key, now)

    def _key_identity(self, key: VerifiedKey, now: datetime) -> Identity:
        """The one place a verified key becomes an identity: restrictions and expiry included."""
        self._usage.mark(key.id, now)
        return Identity.for_accesskey(
            key.id, key.customer_id, key.scopes, key.allowed_networks, key.tm_expire
        )

    async def authenticate_session(self, token: str) -> Identity:
        claims = self._sessions.decode(token, self._clock.now())
        agent = await self._lookups.agent(claims.agent_id)
        if agent is None or agent.customer_id != claims.customer_id:
            raise InvalidCredentials()
        if await self._lookups.session_revoked(claims.session_id):
            raise InvalidCredentials()  # ended by a logout
        return Identity("agent", agent.id, agent.customer_id, agent.permission)
