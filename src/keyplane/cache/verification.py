"""The per-replica verification cache.

Holds what verification needs (never a token): for access keys, keyed by
token hash, the key's id, customer and expiry, or a negative entry for an
unknown hash; for sessions, keyed by agent id, the agent's identity, and keyed
by session id (a token's ``jti``), whether a logout ended that session.

Three rules keep a deleted key from coming back:

- every change is evicted here at once and announced to the other replicas
  (``keyplane.cache.invalidation``);
- a lookup records the cache's *generation* before it reads the database
  and stores its result only if no invalidation arrived in between, so a
  read that raced a delete cannot re-insert the deleted key;
- while invalidations cannot be received (no Redis, or Redis unreachable),
  positive entries live at most ``fallback_ttl`` (one second by default).

Meanwhile the cache still remembers, for the full ``ttl``, which token hashes
it found valid (``recently_valid``): not to answer from (the database is read
again), only so that re-verifying a key known to be real costs no slot of the
failure budget.

Expiry needs no invalidation: ``tm_expire`` is checked on every hit.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from keyplane.domain.networks import Networks
from keyplane.domain.scopes import Scopes

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    id: uuid.UUID
    customer_id: uuid.UUID
    tm_expire: datetime
    scopes: Scopes | None = None
    allowed_networks: Networks | None = None


@dataclass(frozen=True, slots=True)
class VerifiedAgent:
    id: uuid.UUID
    customer_id: uuid.UUID
    permission: int


@dataclass(frozen=True, slots=True)
class RevokedSession:
    """A session ended by a logout: refused until its token expires."""

    id: uuid.UUID


class Miss:
    """Nothing cached: ask the database."""


MISS = Miss()


class _Lru(Generic[V]):
    """A bounded map of value and deadline, least recently used evicted first.

    Entries are also indexed by the group ``group_of`` gives their value (a
    customer), so that dropping a group costs its own entries, not the map's
    size. Every removal goes through ``_remove``, which keeps the index
    consistent with the map.
    """

    def __init__(self, max_entries: int, group_of: Callable[[V], object | None]) -> None:
        self._max = max_entries
        self._group_of = group_of
        self._data: OrderedDict[object, tuple[V, float]] = OrderedDict()
        self._groups: dict[object, set[object]] = {}

    def get(self, key: object, now: float) -> V | Miss:
        found = self._data.get(key)
        if found is None:
            return MISS
        value, deadline = found
        if deadline <= now:
            self._remove(key)
            return MISS
        self._data.move_to_end(key)
        return value

    def put(self, key: object, value: V, deadline: float) -> None:
        if self._max <= 0:
            return
        if key in self._data:
            self._remove(key)
        self._data[key] = (value, deadline)
        group = self._group_of(value)
        if group is not None:
            self._groups.setdefault(group, set()).add(key)
        while len(self._data) > self._max:
            self._remove(next(iter(self._data)))

    def pop(self, key: object) -> None:
        if key in self._data:
            self._remove(key)

    def drop_group(self, group: object) -> None:
        for key in self._groups.pop(group, ()):
            del self._data[key]

    def _remove(self, key: object) -> None:
        value, _ = self._data.pop(key)
        group = self._group_of(value)
        if group is None:
            return
        members = self._groups[group]
        members.discard(key)
        if not members:
            del self._groups[group]

    def clear(self) -> None:
        self._data.clear()
        self._groups.clear()

    def group_sizes(self) -> dict[object, int]:
        """Entries per group (for tests of the index's consistency)."""
        return {group: len(keys) for group, keys in self._groups.items()}

    def __len__(self) -> int:
        return len(self._data)


def _customer_of(entry: VerifiedKey | VerifiedAgent | None) -> uuid.UUID | None:
    return None if entry is None else entry.customer_id


class VerificationCache:
    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        ttl: float = 60.0,
        fallback_ttl: float = 1.0,
        negative_ttl: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys: _Lru[VerifiedKey | None] = _Lru(max_entries, _customer_of)
        self._agents: _Lru[VerifiedAgent | None] = _Lru(max_entries, _customer_of)
        # Token hashes found valid while positive entries live only the fallback TTL.
        self._valid: _Lru[VerifiedKey | None] = _Lru(max_entries, _customer_of)
        # Session id -> ended (RevokedSession) or not (None); in no customer's group.
        self._sessions: _Lru[RevokedSession | None] = _Lru(max_entries, lambda _entry: None)
        self._ttl = ttl
        self._fallback_ttl = min(fallback_ttl, ttl)
        self._negative_ttl = negative_ttl
        self._now = monotonic
        self.generation = 0
        # False until an invalidation channel is known to deliver.
        self.connected = False

    @property
    def positive_ttl(self) -> float:
        return self._ttl if self.connected else self._fallback_ttl

    def set_connected(self, connected: bool) -> None:
        """Any change of the channel's state may have lost messages: start afresh."""
        if connected != self.connected:
            self.connected = connected
            self.clear()

    # Access keys -------------------------------------------------------------

    def get_key(self, token_hash: str) -> VerifiedKey | Miss | None:
        return self._keys.get(token_hash, self._now())

    def put_key(self, token_hash: str, key: VerifiedKey | None, generation: int) -> None:
        if generation != self.generation:
            return  # an invalidation arrived while the database was read
        ttl = self.positive_ttl if key is not None else self._negative_ttl
        if ttl > 0:
            self._keys.put(token_hash, key, self._now() + ttl)
        if key is None:
            self._valid.pop(token_hash)
        elif ttl < self._ttl:
            self._valid.put(token_hash, key, self._now() + self._ttl)

    def recently_valid(self, token_hash: str) -> bool:
        """Whether this hash was found valid within the TTL, though no longer cached.

        Never an answer by itself (the key may have been revoked since): it only
        tells a real key's re-verification from a guess.
        """
        return not isinstance(self._valid.get(token_hash, self._now()), Miss)

    # Agents (sessions) -------------------------------------------------------

    def get_agent(self, agent_id: uuid.UUID) -> VerifiedAgent | Miss | None:
        return self._agents.get(agent_id, self._now())

    def put_agent(self, agent_id: uuid.UUID, agent: VerifiedAgent | None, generation: int) -> None:
        if generation != self.generation:
            return
        ttl = self.positive_ttl if agent is not None else self._negative_ttl
        if ttl > 0:
            self._agents.put(agent_id, agent, self._now() + ttl)

    # Sessions ended by a logout ----------------------------------------------

    def get_session(self, session_id: uuid.UUID) -> RevokedSession | Miss | None:
        """``None`` when the session is known not to be ended."""
        return self._sessions.get(session_id, self._now())

    def put_session(
        self, session_id: uuid.UUID, revoked: RevokedSession | None, generation: int
    ) -> None:
        if generation != self.generation:
            return
        # "Not ended" is what a logout changes, so it lives as long as a positive
        # entry (the fallback TTL while invalidations may be missed); "ended" is final.
        ttl = self.positive_ttl if revoked is None else self._ttl
        if ttl > 0:
            self._sessions.put(session_id, revoked, self._now() + ttl)

    # Invalidation ------------------------------------------------------------

    def invalidate_key(self, token_hash: str) -> None:
        self.generation += 1
        self._keys.pop(token_hash)
        self._valid.pop(token_hash)

    def invalidate_agent(self, agent_id: uuid.UUID) -> None:
        self.generation += 1
        self._agents.pop(agent_id)

    def invalidate_session(self, session_id: uuid.UUID) -> None:
        self.generation += 1
        self._sessions.pop(session_id)

    def invalidate_customer(self, customer_id: uuid.UUID) -> None:
        """Costs the customer's own entries: both maps are indexed by customer."""
        self.generation += 1
        self._keys.drop_group(customer_id)
        self._valid.drop_group(customer_id)
        self._agents.drop_group(customer_id)

    def clear(self) -> None:
        self.generation += 1
        self._keys.clear()
        self._valid.clear()
        self._agents.clear()
        self._sessions.clear()

    def __len__(self) -> int:
        return len(self._keys) + len(self._agents) + len(self._sessions)
