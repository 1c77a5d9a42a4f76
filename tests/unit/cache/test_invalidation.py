"""Invalidation messages and the local invalidator."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from keyplane.cache.invalidation import Invalidation, LocalInvalidator, apply
from keyplane.cache.verification import (
    MISS,
    RevokedSession,
    VerificationCache,
    VerifiedAgent,
    VerifiedKey,
)
from keyplane.domain.tokens import hash_token

TOKEN = "vb" + "_" + "Zq3" * 10 + "xy"
EXPIRE = datetime(2027, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        Invalidation("accesskey", uuid.uuid4(), hash_token(TOKEN)),
        Invalidation("agent", uuid.uuid4()),
        Invalidation("customer", uuid.uuid4()),
        Invalidation("session", uuid.uuid4()),
    ],
    ids=["accesskey", "agent", "customer", "session"],
)
def test_round_trip(change: Invalidation) -> None:
    raw = change.to_json()
    assert Invalidation.from_json(raw) == change
    assert Invalidation.from_json(raw.encode()) == change


def test_unknown_kind_is_rejected() -> None:
    raw = json.dumps({"kind": "webhook", "id": str(uuid.uuid4()), "hash": None})
    with pytest.raises(ValueError, match="unknown invalidation kind"):
        Invalidation.from_json(raw)


def test_a_bad_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="badly formed"):
        Invalidation.from_json(json.dumps({"kind": "agent", "id": "nope"}))


def test_the_message_carries_the_hash_never_the_token() -> None:
    key_id = uuid.uuid4()
    raw = Invalidation("accesskey", key_id, hash_token(TOKEN)).to_json()
    assert TOKEN not in raw
    assert TOKEN[3:] not in raw
    assert json.loads(raw) == {"kind": "accesskey", "id": str(key_id), "hash": hash_token(TOKEN)}


def _cache_with_entries() -> tuple[VerificationCache, VerifiedKey, VerifiedAgent]:
    cache = VerificationCache()
    customer_id = uuid.uuid4()
    key = VerifiedKey(uuid.uuid4(), customer_id, EXPIRE)
    agent = VerifiedAgent(uuid.uuid4(), customer_id, 32)
    cache.put_key(hash_token(TOKEN), key, cache.generation)
    cache.put_agent(agent.id, agent, cache.generation)
    return cache, key, agent


def test_apply_accesskey_evicts_the_key_only() -> None:
    cache, key, agent = _cache_with_entries()
    apply(cache, Invalidation("accesskey", key.id, hash_token(TOKEN)))
    assert cache.get_key(hash_token(TOKEN)) is MISS
    assert cache.get_agent(agent.id) == agent


def test_apply_agent_evicts_the_agent_only() -> None:
    cache, key, agent = _cache_with_entries()
    apply(cache, Invalidation("agent", agent.id))
    assert cache.get_agent(agent.id) is MISS
    assert cache.get_key(hash_token(TOKEN)) == key


def test_apply_customer_evicts_its_keys_and_agents() -> None:
    cache, key, agent = _cache_with_entries()
    apply(cache, Invalidation("customer", key.customer_id))
    assert cache.get_key(hash_token(TOKEN)) is MISS
    assert cache.get_agent(agent.id) is MISS


def test_apply_session_evicts_that_session_only() -> None:
    """A logout: what this replica knew of the session is forgotten, and read again."""
    cache, key, agent = _cache_with_entries()
    ended, other, revoked = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put_session(ended, None, cache.generation)  # known live
    cache.put_session(other, None, cache.generation)
    cache.put_session(revoked, RevokedSession(revoked), cache.generation)
    apply(cache, Invalidation("session", ended))
    assert cache.get_session(ended) is MISS
    assert cache.get_session(other) is None
    assert cache.get_session(revoked) == RevokedSession(revoked)
    assert cache.get_agent(agent.id) == agent
    assert cache.get_key(hash_token(TOKEN)) == key


async def test_local_invalidator_applies_at_once() -> None:
    cache, key, _ = _cache_with_entries()
    invalidator = LocalInvalidator(cache)
    await invalidator.start()
    await invalidator.publish(Invalidation("accesskey", key.id, hash_token(TOKEN)))
    assert cache.get_key(hash_token(TOKEN)) is MISS
    await invalidator.stop()


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        "{}",
        json.dumps({"id": str(uuid.uuid4())}),
        json.dumps({"kind": "agent"}),
        json.dumps({"kind": "agent", "id": 5}),
        json.dumps({"kind": ["agent"], "id": str(uuid.uuid4())}),
    ],
    ids=["not-json", "list", "empty", "no-kind", "no-id", "int-id", "list-kind"],
)
def test_a_malformed_message_is_rejected_with_value_error(raw: str) -> None:
    """The listener treats ValueError as a bad message; anything else would kill it."""
    with pytest.raises(ValueError):  # noqa: PT011 (any message will do)
        Invalidation.from_json(raw)


def test_the_kind_decides_what_is_evicted_whatever_else_the_message_carries() -> None:
    """A hash on an agent's or customer's message does not turn it into a key's."""
    cache, key, agent = _cache_with_entries()
    apply(cache, Invalidation("agent", agent.id, hash_token(TOKEN)))
    assert cache.get_agent(agent.id) is MISS
    assert cache.get_key(hash_token(TOKEN)) == key

    cache, key, agent = _cache_with_entries()
    apply(cache, Invalidation("customer", key.customer_id, "some-other-hash"))
    assert cache.get_key(hash_token(TOKEN)) is MISS
    assert cache.get_agent(agent.id) is MISS
