"""The per-replica verification cache: TTLs, LRU bound, generations, invalidation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from keyplane.cache.verification import (
    MISS,
    RevokedSession,
    VerificationCache,
    VerifiedAgent,
    VerifiedKey,
)
from tests.ticker import Ticker

EXPIRE = datetime(2027, 12, 1, tzinfo=UTC)


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


def make_cache(ticker: Ticker, **kwargs: float) -> VerificationCache:
    options: dict[str, float] = {
        "ttl": 60.0,
        "fallback_ttl": 1.0,
        "negative_ttl": 10.0,
        "max_entries": 1000,
    }
    options.update(kwargs)
    return VerificationCache(
        max_entries=int(options["max_entries"]),
        ttl=options["ttl"],
        fallback_ttl=options["fallback_ttl"],
        negative_ttl=options["negative_ttl"],
        monotonic=ticker,
    )


def key_of(customer_id: uuid.UUID | None = None) -> VerifiedKey:
    return VerifiedKey(uuid.uuid4(), customer_id or uuid.uuid4(), EXPIRE)


def agent_of(customer_id: uuid.UUID | None = None) -> VerifiedAgent:
    return VerifiedAgent(uuid.uuid4(), customer_id or uuid.uuid4(), 32)


def store_key(cache: VerificationCache, token_hash: str, key: VerifiedKey | None) -> None:
    cache.put_key(token_hash, key, cache.generation)


def store_agent(cache: VerificationCache, agent: VerifiedAgent) -> None:
    cache.put_agent(agent.id, agent, cache.generation)


def test_a_new_cache_misses_and_is_not_connected(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    assert cache.get_key("h") is MISS
    assert cache.get_agent(uuid.uuid4()) is MISS
    assert cache.connected is False
    assert len(cache) == 0


def test_put_then_get_key_and_agent(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    key, agent = key_of(), agent_of()
    store_key(cache, "h1", key)
    store_agent(cache, agent)
    assert cache.get_key("h1") == key
    assert cache.get_key("h2") is MISS
    assert cache.get_agent(agent.id) == agent
    assert cache.get_agent(uuid.uuid4()) is MISS
    assert len(cache) == 2


def test_positive_entries_live_the_full_ttl_while_connected(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    cache.set_connected(True)
    assert cache.positive_ttl == 60.0
    key, agent = key_of(), agent_of()
    store_key(cache, "h", key)
    store_agent(cache, agent)
    ticker.advance(59.9)
    assert cache.get_key("h") == key
    assert cache.get_agent(agent.id) == agent
    ticker.advance(0.1)
    assert cache.get_key("h") is MISS
    assert cache.get_agent(agent.id) is MISS


def test_positive_entries_live_only_the_fallback_ttl_while_disconnected(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    assert cache.positive_ttl == 1.0
    key, agent = key_of(), agent_of()
    store_key(cache, "h", key)
    store_agent(cache, agent)
    ticker.advance(0.99)
    assert cache.get_key("h") == key
    assert cache.get_agent(agent.id) == agent
    ticker.advance(0.01)
    assert cache.get_key("h") is MISS
    assert cache.get_agent(agent.id) is MISS


def test_the_fallback_ttl_never_exceeds_the_ttl(ticker: Ticker) -> None:
    cache = make_cache(ticker, ttl=0.5, fallback_ttl=1.0)
    assert cache.positive_ttl == 0.5
    store_key(cache, "h", key_of())
    ticker.advance(0.5)
    assert cache.get_key("h") is MISS


def test_negative_entries_use_the_negative_ttl(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    agent_id = uuid.uuid4()
    store_key(cache, "unknown", None)
    cache.put_agent(agent_id, None, cache.generation)
    ticker.advance(9.9)
    # A negative entry is a cached "no such key", not a miss.
    assert cache.get_key("unknown") is None
    assert cache.get_agent(agent_id) is None
    ticker.advance(0.1)
    assert cache.get_key("unknown") is MISS
    assert cache.get_agent(agent_id) is MISS


def test_a_zero_ttl_stores_nothing(ticker: Ticker) -> None:
    cache = make_cache(ticker, ttl=0.0, fallback_ttl=0.0, negative_ttl=0.0)
    cache.set_connected(True)
    store_key(cache, "h", key_of())
    store_key(cache, "n", None)
    agent, unknown_id = agent_of(), uuid.uuid4()
    store_agent(cache, agent)
    cache.put_agent(unknown_id, None, cache.generation)
    assert len(cache) == 0  # the keyplane_verification_cache_entries gauge
    assert cache.get_key("h") is MISS
    assert cache.get_key("n") is MISS
    assert cache.get_agent(agent.id) is MISS
    assert cache.get_agent(unknown_id) is MISS


def test_an_unknown_agent_with_negative_caching_off_evicts_no_agent(ticker: Ticker) -> None:
    """An entry that would never be served must not take the place of one that would."""
    cache = make_cache(ticker, negative_ttl=0.0, max_entries=1)
    cache.set_connected(True)
    known = agent_of()
    store_agent(cache, known)
    unknown_id = uuid.uuid4()
    cache.put_agent(unknown_id, None, cache.generation)
    assert cache.get_agent(unknown_id) is MISS
    assert cache.get_agent(known.id) == known
    assert len(cache) == 1


def test_the_least_recently_used_entry_goes_first(ticker: Ticker) -> None:
    cache = make_cache(ticker, max_entries=2)
    a, b, c = key_of(), key_of(), key_of()
    store_key(cache, "a", a)
    store_key(cache, "b", b)
    assert cache.get_key("a") == a  # "b" is now the least recently used
    store_key(cache, "c", c)
    assert cache.get_key("b") is MISS
    assert cache.get_key("a") == a
    assert cache.get_key("c") == c
    assert len(cache) == 2


def test_the_bound_applies_to_agents_too(ticker: Ticker) -> None:
    cache = make_cache(ticker, max_entries=2)
    agents = [agent_of() for _ in range(3)]
    for agent in agents:
        store_agent(cache, agent)
    assert cache.get_agent(agents[0].id) is MISS
    assert cache.get_agent(agents[1].id) == agents[1]
    assert cache.get_agent(agents[2].id) == agents[2]


def test_max_entries_zero_disables_the_cache(ticker: Ticker) -> None:
    cache = make_cache(ticker, max_entries=0)
    store_key(cache, "h", key_of())
    assert cache.get_key("h") is MISS


def test_invalidate_key_evicts_it(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    kept = key_of()
    store_key(cache, "gone", key_of())
    store_key(cache, "kept", kept)
    cache.invalidate_key("gone")
    assert cache.get_key("gone") is MISS
    assert cache.get_key("kept") == kept


def test_invalidate_agent_evicts_it(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    gone, kept = agent_of(), agent_of()
    store_agent(cache, gone)
    store_agent(cache, kept)
    cache.invalidate_agent(gone.id)
    assert cache.get_agent(gone.id) is MISS
    assert cache.get_agent(kept.id) == kept


def test_a_put_that_raced_a_key_invalidation_is_dropped(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    cache.set_connected(True)
    stale = key_of()
    generation = cache.generation  # the lookup starts and reads the database...
    cache.invalidate_key("h")  # ...the key is deleted meanwhile...
    cache.put_key("h", stale, generation)  # ...and the lookup stores what it read.
    assert cache.get_key("h") is MISS
    # The next lookup, started after the invalidation, may store.
    fresh = key_of()
    cache.put_key("h", fresh, cache.generation)
    assert cache.get_key("h") == fresh


def test_a_negative_put_that_raced_an_invalidation_is_dropped(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    generation = cache.generation
    cache.invalidate_key("h")
    cache.put_key("h", None, generation)
    assert cache.get_key("h") is MISS


def test_a_put_that_raced_an_agent_or_customer_invalidation_is_dropped(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    agent = agent_of()
    generation = cache.generation
    cache.invalidate_agent(agent.id)
    cache.put_agent(agent.id, agent, generation)
    assert cache.get_agent(agent.id) is MISS

    key = key_of()
    generation = cache.generation
    cache.invalidate_customer(key.customer_id)
    cache.put_key("h", key, generation)
    assert cache.get_key("h") is MISS


def test_invalidate_customer_drops_only_that_customers_entries(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    gone_customer, kept_customer = uuid.uuid4(), uuid.uuid4()
    gone_keys = [key_of(gone_customer) for _ in range(2)]
    kept_key = key_of(kept_customer)
    gone_agent, kept_agent = agent_of(gone_customer), agent_of(kept_customer)
    for index, key in enumerate(gone_keys):
        store_key(cache, f"gone-{index}", key)
    store_key(cache, "kept", kept_key)
    store_key(cache, "unknown", None)
    store_agent(cache, gone_agent)
    store_agent(cache, kept_agent)

    cache.invalidate_customer(gone_customer)

    assert cache.get_key("gone-0") is MISS
    assert cache.get_key("gone-1") is MISS
    assert cache.get_agent(gone_agent.id) is MISS
    assert cache.get_key("kept") == kept_key
    assert cache.get_agent(kept_agent.id) == kept_agent
    assert cache.get_key("unknown") is None


@pytest.mark.parametrize("connected", [True, False])
def test_a_change_of_channel_state_clears_everything(ticker: Ticker, connected: bool) -> None:
    cache = make_cache(ticker)
    if not connected:
        cache.set_connected(True)
    store_key(cache, "h", key_of())
    store_key(cache, "n", None)
    store_agent(cache, agent_of())
    generation = cache.generation

    cache.set_connected(connected)

    assert cache.connected is connected
    assert len(cache) == 0
    assert cache.get_key("h") is MISS
    assert cache.get_key("n") is MISS
    # A lookup in flight across the change may have missed messages: dropped.
    cache.put_key("h", key_of(), generation)
    assert cache.get_key("h") is MISS


def test_setting_the_same_channel_state_keeps_the_entries(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    cache.set_connected(True)
    key = key_of()
    store_key(cache, "h", key)
    cache.set_connected(True)
    assert cache.get_key("h") == key


def test_clear_drops_everything(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    store_key(cache, "h", key_of())
    store_agent(cache, agent_of())
    cache.clear()
    assert len(cache) == 0
    assert cache.get_key("h") is MISS


def test_a_put_that_raced_several_invalidations_of_any_kind_is_dropped(ticker: Ticker) -> None:
    """Whatever mix of invalidations arrived during the read, the result is not cached."""
    cache = make_cache(ticker)
    key = key_of()
    agent = agent_of()
    generation = cache.generation
    cache.invalidate_key("other")
    cache.invalidate_customer(key.customer_id)
    cache.put_key("h", key, generation)
    assert cache.get_key("h") is MISS
    generation = cache.generation
    cache.invalidate_agent(uuid.uuid4())
    cache.invalidate_customer(agent.customer_id)
    cache.put_agent(agent.id, agent, generation)
    assert cache.get_agent(agent.id) is MISS
    generation = cache.generation
    cache.clear()
    cache.invalidate_customer(key.customer_id)
    cache.put_key("h", key, generation)
    assert cache.get_key("h") is MISS


def test_a_key_found_valid_while_disconnected_is_remembered_for_the_full_ttl(
    ticker: Ticker,
) -> None:
    cache = make_cache(ticker)
    store_key(cache, "h1", key_of())
    ticker.advance(1.5)
    assert cache.get_key("h1") is MISS  # the positive entry lived the fallback TTL
    assert cache.recently_valid("h1")
    ticker.advance(58.4)
    assert cache.recently_valid("h1")
    ticker.advance(0.2)
    assert not cache.recently_valid("h1")


def test_only_keys_found_valid_are_remembered(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    store_key(cache, "unknown", None)
    assert not cache.recently_valid("unknown")
    assert not cache.recently_valid("never-seen")
    store_key(cache, "h1", key_of())
    store_key(cache, "h1", None)  # found gone on a later read
    assert not cache.recently_valid("h1")


def test_invalidations_forget_keys_found_valid(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    customer = uuid.uuid4()
    store_key(cache, "h1", key_of(customer))
    store_key(cache, "h2", key_of(customer))
    store_key(cache, "h3", key_of())
    store_key(cache, "h4", key_of())
    cache.invalidate_key("h1")
    assert not cache.recently_valid("h1")
    cache.invalidate_customer(customer)
    assert not cache.recently_valid("h2")
    assert cache.recently_valid("h3")
    cache.clear()
    assert not cache.recently_valid("h3")
    assert not cache.recently_valid("h4")


def test_nothing_is_remembered_apart_while_positive_entries_live_the_full_ttl(
    ticker: Ticker,
) -> None:
    cache = make_cache(ticker)
    cache.set_connected(True)
    store_key(cache, "h1", key_of())
    cache.invalidate_key("h1")
    assert not cache.recently_valid("h1")
    store_key(cache, "h2", key_of())
    ticker.advance(61)
    assert not cache.recently_valid("h2")


def test_a_key_pushed_out_of_a_full_cache_while_connected_is_not_remembered_apart(
    ticker: Ticker,
) -> None:
    """While connected, a valid key is remembered only by its positive entry.

    Once a full cache evicts that entry (here for an unknown hash), the key is
    an ordinary credential again: its next check takes a slot of its
    address's failure budget, like any other.
    """
    cache = make_cache(ticker, max_entries=1)
    cache.set_connected(True)
    store_key(cache, "h1", key_of())
    store_key(cache, "unknown", None)
    assert cache.get_key("h1") is MISS
    assert not cache.recently_valid("h1")


# Sessions ended by a logout ------------------------------------------------------


def test_a_live_session_lives_as_a_positive_entry_and_an_ended_one_the_full_ttl(
    ticker: Ticker,
) -> None:
    """A live session is what a logout changes: while invalidations may be missed (no
    channel) it is kept only the fallback TTL. An ended session never comes back."""
    cache = make_cache(ticker)
    live, ended = uuid.uuid4(), uuid.uuid4()
    cache.put_session(live, None, cache.generation)
    cache.put_session(ended, RevokedSession(ended), cache.generation)
    assert cache.get_session(live) is None
    assert len(cache) == 2
    ticker.now += 1.0
    assert cache.get_session(live) is MISS
    assert cache.get_session(ended) == RevokedSession(ended)
    cache.set_connected(True)
    cache.put_session(live, None, cache.generation)
    ticker.now += 59.0
    assert cache.get_session(live) is None
    ticker.now += 1.0
    assert cache.get_session(live) is MISS


def test_a_session_put_that_raced_its_invalidation_is_dropped(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    session_id = uuid.uuid4()
    generation = cache.generation  # noted before the database was read
    cache.invalidate_session(session_id)  # a logout arrives meanwhile
    cache.put_session(session_id, None, generation)
    assert cache.get_session(session_id) is MISS


def test_invalidate_session_evicts_it_and_clear_drops_sessions_too(ticker: Ticker) -> None:
    cache = make_cache(ticker)
    ended, kept = uuid.uuid4(), uuid.uuid4()
    cache.put_session(ended, None, cache.generation)
    cache.put_session(kept, None, cache.generation)
    cache.invalidate_session(ended)
    assert cache.get_session(ended) is MISS
    assert cache.get_session(kept) is None
    cache.clear()
    assert cache.get_session(kept) is MISS
    assert len(cache) == 0
