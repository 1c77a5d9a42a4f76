"""Rate limits through HTTP (both databases) and the Redis limiter against a real Redis.

Rates are set so low (one per minute or less) that nothing refills during a test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from keyplane.cache import ratelimit
from keyplane.cache.ratelimit import BatchingLimiter, Policy, RedisLimiter
from keyplane.domain.clock import FrozenClock
from keyplane.services import ratelimits
from tests.conftest import replica
from tests.factories import Factory, bearer, fake_token
from tests.servers import RedisServer
from tests.ticker import tick

OTHER_ADDRESS = "10.0.0.2"
KEY_SECRET = b"rate-limit key secret of the tests"
PASSWORD = "correct horse battery staple"
WRONG = "wrong horse battery staple"


# Helpers ---------------------------------------------------------------------


def assert_exhausted(response: httpx.Response, reason: str) -> dict[str, str]:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["reason"] == reason
    assert error["request_id"] == response.headers["X-Request-ID"]
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Limit"].isdigit()
    assert response.headers["RateLimit-Reset"].isdigit()
    assert int(response.headers["RateLimit-Reset"]) >= 1
    return dict(response.headers)


def assert_invalid_credentials(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["reason"] == "INVALID_CREDENTIALS"


def assert_login_refused(response: httpx.Response) -> None:
    """A failed login is 400, as VoIPBIN answers it."""
    assert response.status_code == 400, response.text
    assert response.json()["error"]["reason"] == "INVALID_CREDENTIALS"


CUSTOMER_LIMITS = {"ratelimit_customer_per_second": 0.01, "ratelimit_customer_burst": 3}
AUTH_LIMITS = {"ratelimit_auth_failures_per_minute": 1, "ratelimit_auth_failures_burst": 3}
LOGIN_LIMITS = {"ratelimit_login_failures_per_minute": 1, "ratelimit_login_failures_burst": 3}


# Per customer ----------------------------------------------------------------


async def test_authenticated_errors_carry_ratelimit_headers_too(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    token = await factory.identity_token(await factory.customer())
    missing = await client.get(f"/v1.0/accesskeys/{uuid.uuid4()}", headers=bearer(token))
    assert missing.status_code == 404
    assert missing.json()["error"]["reason"] == "RESOURCE_NOT_FOUND"
    bad = await client.get("/v1.0/accesskeys/not-an-id", headers=bearer(token))
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    for response in (missing, bad):
        assert response.headers["RateLimit-Limit"].isdigit()
        assert response.headers["RateLimit-Remaining"].isdigit()
        assert response.headers["RateLimit-Reset"].isdigit()
    anonymous = await client.get("/v1.0/accesskeys")
    assert "RateLimit-Limit" not in anonymous.headers


async def test_successful_responses_carry_ratelimit_headers_and_the_limit_holds(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, **CUSTOMER_LIMITS) as node:
        factory = Factory(node.services)
        customer, other = await factory.customer(), await factory.customer()
        token, other_token = (
            await factory.identity_token(customer),
            await factory.identity_token(other),
        )
        async with node.client() as http:
            for remaining in ("2", "1", "0"):
                response = await http.get("/v1.0/accesskeys", headers=bearer(token))
                assert response.status_code == 200, response.text
                assert response.headers["RateLimit-Limit"] == "3"
                assert response.headers["RateLimit-Remaining"] == remaining
                assert int(response.headers["RateLimit-Reset"]) >= 1

            refused = await http.get("/v1.0/accesskeys", headers=bearer(token))
            headers = assert_exhausted(refused, "RATE_LIMIT_EXCEEDED")
            assert headers["ratelimit-limit"] == "3"
            assert 99 <= int(headers["retry-after"]) <= 100  # one interval: 1 / 0.01 s
            assert refused.headers["Cache-Control"] == "no-store"

            # Another customer has its own budget.
            response = await http.get("/v1.0/accesskeys", headers=bearer(other_token))
            assert response.status_code == 200
            assert response.headers["RateLimit-Remaining"] == "2"


async def test_sessions_and_keys_share_the_customer_budget(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, **CUSTOMER_LIMITS) as node:
        factory = Factory(node.services)
        customer = await factory.customer()
        agent = await factory.agent(customer, password=PASSWORD)
        token = await factory.identity_token(customer)
        async with node.client() as http:
            login = await http.post(
                "/auth/login", json={"username": agent.username, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            session = login.json()["token"]
            for _ in range(3):
                assert (await http.get("/v1.0/customer", headers=bearer(token))).status_code == 200
            assert_exhausted(
                await http.get("/v1.0/customer", headers=bearer(session)), "RATE_LIMIT_EXCEEDED"
            )


# Failed authentication per client address ------------------------------------


async def test_the_attempt_after_the_failure_burst_is_refused_with_429(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """A burst of 3 failures means 3 credentials looked at and refused, then 429."""
    async with (
        replica(tmp_path, database_url, clock, **AUTH_LIMITS) as node,
        node.client() as http,
    ):
        for index in range(3):
            bad = fake_token("abc"[index])
            assert_invalid_credentials(await http.get("/v1.0/accesskeys", headers=bearer(bad)))
        fourth = await http.get("/v1.0/accesskeys", headers=bearer(fake_token("d")))
        assert_exhausted(fourth, "RATE_LIMIT_EXCEEDED")


async def test_after_the_block_one_failure_per_interval_is_looked_at(
    tmp_path: Path, database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configured rate holds in the long run: one guess per interval, not two."""
    ticker = tick(monkeypatch, ratelimit, ratelimits, now=10_000.0)
    async with (
        replica(tmp_path, database_url, clock, **AUTH_LIMITS) as node,
        node.client() as http,
    ):
        for index in range(8):
            response = await http.get(
                "/v1.0/accesskeys", headers=bearer(fake_token("abcdefgh"[index]))
            )
            if response.status_code == 429:
                break
        assert_exhausted(response, "RATE_LIMIT_EXCEEDED")

        for cycle in range(3):
            ticker.now += 60.0  # one interval: one more failure may be looked at
            guesses = []
            for index in range(3):
                response = await http.get(
                    "/v1.0/accesskeys",
                    headers=bearer(fake_token("pqrstuvwx"[cycle * 3 + index])),
                )
                guesses.append(response.status_code)
            assert guesses == [401, 429, 429], f"cycle {cycle}: {guesses}"


async def test_an_address_out_of_failure_budget_is_refused_even_with_a_valid_key(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, **AUTH_LIMITS) as node:
        factory = Factory(node.services)
        token = await factory.identity_token(await factory.customer())
        async with node.client() as guesser, node.client(OTHER_ADDRESS) as elsewhere:
            statuses = []
            for index in range(6):
                response = await guesser.get(
                    "/v1.0/accesskeys", headers=bearer(fake_token("BCDEFG"[index]))
                )
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert_exhausted(response, "RATE_LIMIT_EXCEEDED")
                    break
            assert statuses[:3] == [401, 401, 401]
            assert statuses[-1] == 429

            # Refused before the credential is looked at.
            blocked = await guesser.get("/v1.0/accesskeys", headers=bearer(token))
            headers = assert_exhausted(blocked, "RATE_LIMIT_EXCEEDED")
            assert 1 <= int(headers["retry-after"]) <= 60

            # The same key from another address works; that address has its own budget.
            assert (
                await elsewhere.get("/v1.0/accesskeys", headers=bearer(token))
            ).status_code == 200
            assert_invalid_credentials(
                await elsewhere.get("/v1.0/accesskeys", headers=bearer(fake_token("Z")))
            )


async def test_requests_without_credentials_do_not_use_up_the_failure_budget(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, **AUTH_LIMITS) as node:
        factory = Factory(node.services)
        token = await factory.identity_token(await factory.customer())
        async with node.client() as http:
            for _ in range(6):
                response = await http.get("/v1.0/accesskeys")
                assert response.status_code == 401
                assert response.json()["error"]["reason"] == "AUTHENTICATION_REQUIRED"
            assert (await http.get("/v1.0/accesskeys", headers=bearer(token))).status_code == 200


# Failed logins per username and address --------------------------------------


async def test_failed_logins_block_that_username_from_that_address_only(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, **LOGIN_LIMITS) as node:
        factory = Factory(node.services)
        customer = await factory.customer()
        victim = await factory.agent(customer, password=PASSWORD)
        bystander = await factory.agent(customer, password=PASSWORD)
        async with node.client() as attacker, node.client(OTHER_ADDRESS) as owner:
            for _ in range(3):
                assert_login_refused(
                    await attacker.post(
                        "/auth/login", json={"username": victim.username, "password": WRONG}
                    )
                )
            # Even the right password is refused from the attacker's address...
            refused = await attacker.post(
                "/auth/login", json={"username": victim.username, "password": PASSWORD}
            )
            assert_exhausted(refused, "RATE_LIMIT_EXCEEDED")

            # ...while the real user logs in from elsewhere (no lockout of real users)...
            ok = await owner.post(
                "/auth/login", json={"username": victim.username, "password": PASSWORD}
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["username"] == victim.username

            # ...and other users still log in from the attacker's address.
            other = await attacker.post(
                "/auth/login", json={"username": bystander.username, "password": PASSWORD}
            )
            assert other.status_code == 200, other.text


async def test_unknown_usernames_are_limited_like_known_ones(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with (
        replica(tmp_path, database_url, clock, **LOGIN_LIMITS) as node,
        node.client() as http,
    ):
        body = {"username": f"nobody-{uuid.uuid4().hex[:8]}", "password": WRONG}
        for _ in range(3):
            assert_login_refused(await http.post("/auth/login", json=body))
        assert_exhausted(await http.post("/auth/login", json=body), "RATE_LIMIT_EXCEEDED")


# Two replicas sharing limits through Redis -----------------------------------


async def test_limits_are_shared_between_replicas_through_redis(
    tmp_path: Path, database_url: str, clock: FrozenClock, redis_url: str
) -> None:
    limits = {**CUSTOMER_LIMITS, **LOGIN_LIMITS, **AUTH_LIMITS, "redis_url": redis_url}
    async with (
        replica(tmp_path, database_url, clock, **limits) as one,
        replica(tmp_path, database_url, clock, fresh=False, **limits) as two,
    ):
        factory = Factory(one.services)
        customer = await factory.customer()
        agent = await factory.agent(customer, password=PASSWORD)
        token = await factory.identity_token(customer)
        async with one.client() as a, two.client() as b:
            # Customer budget: 3 in all, whichever replica serves.
            assert (await a.get("/v1.0/accesskeys", headers=bearer(token))).status_code == 200
            assert (await a.get("/v1.0/accesskeys", headers=bearer(token))).status_code == 200
            last = await b.get("/v1.0/accesskeys", headers=bearer(token))
            assert last.status_code == 200
            assert last.headers["RateLimit-Remaining"] == "0"
            assert_exhausted(
                await a.get("/v1.0/accesskeys", headers=bearer(token)), "RATE_LIMIT_EXCEEDED"
            )
            assert_exhausted(
                await b.get("/v1.0/accesskeys", headers=bearer(token)), "RATE_LIMIT_EXCEEDED"
            )

            # Login failures on one replica count on the other.
            for _ in range(3):
                assert_login_refused(
                    await a.post(
                        "/auth/login", json={"username": agent.username, "password": WRONG}
                    )
                )
            assert_exhausted(
                await b.post(
                    "/auth/login", json={"username": agent.username, "password": PASSWORD}
                ),
                "RATE_LIMIT_EXCEEDED",
            )

        async with one.client(OTHER_ADDRESS) as a, two.client(OTHER_ADDRESS) as b:
            # Failed authentication: the budget spent on one replica is not renewed on the other.
            for index in range(3):
                assert_invalid_credentials(
                    await a.get("/v1.0/accesskeys", headers=bearer(fake_token("KLM"[index])))
                )
            statuses = []
            for index in range(2):
                response = await b.get("/v1.0/accesskeys", headers=bearer(fake_token("NO"[index])))
                statuses.append(response.status_code)
            assert 429 in statuses


# RedisLimiter against a real Redis -------------------------------------------


def unique_policy(burst: int = 3) -> Policy:
    return Policy(f"test-{uuid.uuid4().hex[:8]}", rate=1, period=60.0, burst=burst)


async def test_redis_limiter_shares_state_between_instances(redis_url: str) -> None:
    policy = unique_policy()
    one, two = (
        RedisLimiter(redis_url, key_secret=KEY_SECRET),
        RedisLimiter(redis_url, key_secret=KEY_SECRET),
    )
    try:
        first = await one.hit(policy, "k")
        assert first.allowed
        assert first.remaining == 2
        assert first.limit == 3
        assert 59 <= first.reset_after <= 60.01
        assert (await two.hit(policy, "k")).remaining == 1
        assert (await one.hit(policy, "k")).remaining == 0
        for limiter in (one, two):
            denied = await limiter.hit(policy, "k")
            assert not denied.allowed
            assert denied.remaining == 0
            assert 59 <= denied.retry_after <= 60.01
        # Other keys are separate.
        assert (await two.hit(policy, "other")).remaining == 2
    finally:
        await one.close()
        await two.close()


async def test_redis_limiter_peek_does_not_consume(redis_url: str) -> None:
    policy = unique_policy(burst=2)
    limiter = RedisLimiter(redis_url, key_secret=KEY_SECRET)
    try:
        for _ in range(3):
            peeked = await limiter.peek(policy, "k")
            assert peeked.allowed
            assert peeked.remaining == 1
        assert (await limiter.hit(policy, "k")).remaining == 1
        assert (await limiter.hit(policy, "k")).remaining == 0
        assert not (await limiter.peek(policy, "k")).allowed
    finally:
        await limiter.close()


async def test_redis_limiter_falls_back_to_memory_and_recovers(
    redis_server: RedisServer, redis_url: str
) -> None:
    policy = unique_policy()
    one, two = (
        RedisLimiter(redis_url, key_secret=KEY_SECRET),
        RedisLimiter(redis_url, key_secret=KEY_SECRET),
    )
    try:
        assert (await one.hit(policy, "k")).remaining == 2
        try:
            redis_server.stop()
            # Keeps answering from memory: this replica's own budget. (That it does
            # not wait on Redis for every request is counted in the test below.)
            decisions = [await one.hit(policy, "down") for _ in range(4)]
            assert [d.allowed for d in decisions] == [True, True, True, False]
            assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
            assert decisions[3].retry_after > 0
            assert (await one.peek(policy, "down")).allowed is False
        finally:
            if redis_server.process is None:
                redis_server.start()

        # Back on Redis: shared again (the restarted Redis starts empty). A limiter may
        # wait a moment before trying Redis again, so allow a bounded while.
        deadline = time.monotonic() + 1.5
        for attempt in range(100):
            key = f"back-{attempt}"
            shared = (await one.hit(policy, key)).remaining == 2
            shared = shared and (await two.hit(policy, key)).remaining == 1
            if shared or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
        assert shared
        check = aioredis.Redis.from_url(redis_url)
        try:
            assert await check.exists(one.redis_key(policy, key)) == 1
        finally:
            await check.aclose()
    finally:
        await one.close()
        await two.close()


async def test_a_replica_never_admits_more_than_the_budget_across_redis_failures(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis failing, or coming back, in the middle of a burst hands it no fresh budget."""
    policy = unique_policy()
    limiter = RedisLimiter(redis_url, key_secret=KEY_SECRET)
    real_script = limiter._script

    async def unreachable(*args: object, **kwargs: object) -> object:
        raise RedisConnectionError("Timeout connecting to server")

    monkeypatch.setattr(ratelimit, "RETRY_REDIS_AFTER", 0.0)  # ask Redis on every call

    async def allowed(key: str, count: int) -> list[bool]:
        return [(await limiter.hit(policy, key)).allowed for _ in range(count)]

    try:
        # Two spent through Redis, then Redis fails: one is left, not a fresh three.
        assert await allowed("spent-in-redis", 2) == [True, True]
        monkeypatch.setattr(limiter, "_script", unreachable)
        assert await allowed("spent-in-redis", 3) == [True, False, False]
        # Spent while Redis was away, then Redis answers again (holding nothing of it).
        assert await allowed("spent-in-memory", 3) == [True, True, True]
        monkeypatch.setattr(limiter, "_script", real_script)
        assert await allowed("spent-in-memory", 2) == [False, False]
        # A refusal by Redis (another replica spent the budget) takes nothing here.
        other = RedisLimiter(redis_url, key_secret=KEY_SECRET)
        try:
            assert [(await other.hit(policy, "shared")).allowed for _ in range(4)] == [
                True,
                True,
                True,
                False,
            ]
        finally:
            await other.close()
        assert await allowed("shared", 2) == [False, False]
        assert (await limiter._fallback.peek(policy, "shared")).remaining == 2
    finally:
        await limiter.close()


async def test_concurrent_wrong_passwords_cannot_exceed_the_login_budget(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """Checking the budget and spending it must not be separable by sending in parallel."""
    async with replica(tmp_path, database_url, clock, **LOGIN_LIMITS) as node:
        factory = Factory(node.services)
        agent = await factory.agent(await factory.customer(), password=PASSWORD)
        body = {"username": agent.username, "password": WRONG}
        async with node.client() as http:
            responses = await asyncio.gather(
                *(http.post("/auth/login", json=body) for _ in range(12))
            )
        statuses = sorted(response.status_code for response in responses)
        assert set(statuses) <= {400, 429}
        # At most the burst of 3 passwords may be tried; the rest are refused unchecked.
        assert statuses.count(400) <= 3, statuses


async def test_redis_limiter_does_not_wait_on_an_unresponsive_redis_for_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verification is the hot path: a hung Redis may cost one timeout, not one per request."""
    monkeypatch.setattr(ratelimit, "RETRY_REDIS_AFTER", 3600.0)  # however slow the machine
    release = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # accepts, reads nothing, answers nothing
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", key_secret=KEY_SECRET)
    policy = unique_policy()
    asked: list[object] = []
    script = limiter._script

    async def counting(*args: object, **kwargs: object) -> object:
        asked.append(args)
        return await script(*args, **kwargs)

    monkeypatch.setattr(limiter, "_script", counting)
    try:
        first = await limiter.hit(policy, "k")  # waits for the timeout once
        assert first.allowed
        assert len(asked) == 1
        for _ in range(3):
            await limiter.hit(policy, "k")
        assert len(asked) == 1  # answered from memory, without waiting on Redis again
    finally:
        release.set()
        await limiter.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("limit", ["customer", "failures"])
async def test_ratelimit_reset_on_a_429_is_when_the_limit_frees_up(
    tmp_path: Path,
    database_url: str,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    limit: str,
) -> None:
    """A request at the announced reset succeeds; one a second before it is refused."""
    ticker = tick(monkeypatch, ratelimit, ratelimits, now=10_000.0)
    limits = CUSTOMER_LIMITS if limit == "customer" else AUTH_LIMITS
    async with replica(tmp_path, database_url, clock, **limits) as node:
        factory = Factory(node.services)
        token = await factory.identity_token(await factory.customer())
        async with node.client() as http:
            for index in range(3):  # the whole burst, by good or by refused requests
                spend = token if limit == "customer" else fake_token("abc"[index])
                spent = await http.get("/v1.0/accesskeys", headers=bearer(spend))
                assert spent.status_code == (200 if limit == "customer" else 401), spent.text
            refused = await http.get("/v1.0/accesskeys", headers=bearer(token))
            headers = assert_exhausted(refused, "RATE_LIMIT_EXCEEDED")
            reset = int(headers["ratelimit-reset"])
            assert reset == int(headers["retry-after"])
            started = ticker.now
            ticker.now = started + reset - 1
            before = await http.get("/v1.0/accesskeys", headers=bearer(token))
            assert_exhausted(before, "RATE_LIMIT_EXCEEDED")
            ticker.now = started + reset
            at_reset = await http.get("/v1.0/accesskeys", headers=bearer(token))
            assert at_reset.status_code == 200, at_reset.text
            assert [key["id"] for key in at_reset.json()["result"]] != []


async def test_redis_holds_no_username_or_address_in_clear(
    tmp_path: Path, clock: FrozenClock, redis_url: str
) -> None:
    """Rate-limit keys are HMACs under a deployment secret: a copy of Redis names nobody."""
    username, address = "canary-" + uuid.uuid4().hex[:8], "10.77.0.1"
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"
    async with replica(tmp_path, database_url, clock, redis_url=redis_url, **LOGIN_LIMITS) as node:
        factory = Factory(node.services)
        await factory.agent(await factory.customer(), username=username, password=PASSWORD)
        async with node.client(address) as http:
            for _ in range(2):
                refused = await http.post(
                    "/auth/login", json={"username": username, "password": WRONG}
                )
                assert_login_refused(refused)
        limiter = node.services.ratelimits.limiter
        if isinstance(limiter, BatchingLimiter):  # the customer budget, taken in batches
            limiter = limiter.inner
        assert isinstance(limiter, RedisLimiter)
        expected = limiter.redis_key(
            node.services.ratelimits.login_failures, f"user:{username}|{address}"
        )
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key.decode() for key in await client.keys("*")]
        values = [await client.get(key) for key in keys]
    finally:
        await client.aclose()
    assert expected in keys  # the counter is there, under its HMAC
    assert any(key.startswith("keyplane:rl:authfail:") for key in keys)
    for text in [*keys, *(str(value) for value in values)]:
        assert username not in text
        assert address not in text
    other = RedisLimiter(redis_url, key_secret=b"another deployment")
    try:
        policy = node.services.ratelimits.login_failures
        assert other.redis_key(policy, f"user:{username}|{address}") != expected
    finally:
        await other.close()
