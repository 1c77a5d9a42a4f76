"""The verification cache's index by customer stays consistent with its entries.

A Hypothesis state machine drives the cache (puts, gets, expiry, eviction by
the size bound, invalidation of a key, an agent, a customer, clear) beside a
plain model of an LRU map with deadlines, and checks after every step that the
cache holds what the model holds and that its index by customer counts exactly
the entries of each customer.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from datetime import UTC, datetime

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from keyplane.cache.verification import MISS, VerificationCache, VerifiedAgent, VerifiedKey

EXPIRE = datetime(2027, 12, 1, tzinfo=UTC)
MAX_ENTRIES = 4
TTL = 60.0
NEGATIVE_TTL = 10.0
CUSTOMERS = [uuid.UUID(int=n) for n in range(1, 4)]
HASHES = [f"{n:064x}" for n in range(8)]
AGENTS = [uuid.UUID(int=100 + n) for n in range(6)]

customers = st.sampled_from(CUSTOMERS)
hashes = st.sampled_from(HASHES)
agents = st.sampled_from(AGENTS)
# None: a negative entry (unknown), which belongs to no customer.
owners = st.one_of(st.none(), customers)


class Model:
    """An LRU map with deadlines: what the cache must hold."""

    def __init__(self) -> None:
        self.entries: OrderedDict[object, tuple[uuid.UUID | None, float]] = OrderedDict()

    def put(self, key: object, owner: uuid.UUID | None, deadline: float) -> None:
        self.entries.pop(key, None)
        self.entries[key] = (owner, deadline)
        while len(self.entries) > MAX_ENTRIES:
            self.entries.popitem(last=False)

    def get(self, key: object, now: float) -> bool:
        found = self.entries.get(key)
        if found is None:
            return False
        if found[1] <= now:
            del self.entries[key]
            return False
        self.entries.move_to_end(key)
        return True

    def drop_customer(self, customer: uuid.UUID) -> None:
        for key in [k for k, (owner, _) in self.entries.items() if owner == customer]:
            del self.entries[key]

    def sizes(self) -> dict[object, int]:
        counted: dict[object, int] = {}
        for owner, _ in self.entries.values():
            if owner is not None:
                counted[owner] = counted.get(owner, 0) + 1
        return counted


class CacheWithIndex(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000.0
        self.cache = VerificationCache(
            max_entries=MAX_ENTRIES,
            ttl=TTL,
            negative_ttl=NEGATIVE_TTL,
            monotonic=lambda: self.now,
        )
        self.cache.set_connected(True)  # positive entries live the full TTL
        self.keys = Model()
        self.agents = Model()

    @rule(token_hash=hashes, owner=owners)
    def put_key(self, token_hash: str, owner: uuid.UUID | None) -> None:
        key = None if owner is None else VerifiedKey(uuid.uuid4(), owner, EXPIRE)
        self.cache.put_key(token_hash, key, self.cache.generation)
        self.keys.put(token_hash, owner, self.now + (TTL if key else NEGATIVE_TTL))

    @rule(agent_id=agents, owner=owners)
    def put_agent(self, agent_id: uuid.UUID, owner: uuid.UUID | None) -> None:
        agent = None if owner is None else VerifiedAgent(agent_id, owner, 32)
        self.cache.put_agent(agent_id, agent, self.cache.generation)
        self.agents.put(agent_id, owner, self.now + (TTL if agent else NEGATIVE_TTL))

    @rule(token_hash=hashes)
    def get_key(self, token_hash: str) -> None:
        hit = self.cache.get_key(token_hash) is not MISS
        assert hit == self.keys.get(token_hash, self.now)

    @rule(agent_id=agents)
    def get_agent(self, agent_id: uuid.UUID) -> None:
        hit = self.cache.get_agent(agent_id) is not MISS
        assert hit == self.agents.get(agent_id, self.now)

    @rule(seconds=st.sampled_from([1.0, NEGATIVE_TTL, TTL]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(token_hash=hashes)
    def invalidate_key(self, token_hash: str) -> None:
        self.cache.invalidate_key(token_hash)
        self.keys.entries.pop(token_hash, None)

    @rule(agent_id=agents)
    def invalidate_agent(self, agent_id: uuid.UUID) -> None:
        self.cache.invalidate_agent(agent_id)
        self.agents.entries.pop(agent_id, None)

    @rule(customer=customers)
    def invalidate_customer(self, customer: uuid.UUID) -> None:
        self.cache.invalidate_customer(customer)
        self.keys.drop_customer(customer)
        self.agents.drop_customer(customer)

    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.keys.entries.clear()
        self.agents.entries.clear()

    @invariant()
    def holds_what_the_model_holds(self) -> None:
        assert len(self.cache) == len(self.keys.entries) + len(self.agents.entries)
        assert list(self.cache._keys._data) == list(self.keys.entries)
        assert list(self.cache._agents._data) == list(self.agents.entries)

    @invariant()
    def the_index_counts_each_customers_entries(self) -> None:
        assert self.cache._keys.group_sizes() == self.keys.sizes()
        assert self.cache._agents.group_sizes() == self.agents.sizes()


# No deadline: what is checked is consistency, and a shared machine's pauses are not.
CacheWithIndex.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestCacheWithIndex = CacheWithIndex.TestCase


def test_dropping_a_customer_leaves_a_full_cache_of_others_untouched() -> None:
    cache = VerificationCache(max_entries=10_000, ttl=TTL, monotonic=lambda: 1_000.0)
    cache.set_connected(True)
    dropped, kept = CUSTOMERS[0], CUSTOMERS[1]
    for n in range(10_000):
        owner = dropped if n % 1000 == 0 else kept
        cache.put_key(f"{n:064x}", VerifiedKey(uuid.uuid4(), owner, EXPIRE), cache.generation)
    cache.invalidate_customer(dropped)
    assert len(cache) == 9_990
    assert cache.get_key(f"{0:064x}") is MISS
    assert cache.get_key(f"{1:064x}") is not MISS
    assert cache._keys.group_sizes() == {kept: 9_990}
