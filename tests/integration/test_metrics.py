"""GET /metrics: Prometheus counts of verifications, logins, refusals, cache and revocations."""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keyplane.cache.invalidation import Invalidation
from keyplane.cache.ratelimit import MemoryLimiter, Policy
from keyplane.cache.verification import VerificationCache, VerifiedKey
from keyplane.domain.clock import FrozenClock
from keyplane.errors import ResourceExhausted
from keyplane.metrics import Count, Histogram, Metrics
from keyplane.services import auth as auth_module
from keyplane.services.container import Services
from keyplane.services.ratelimits import RateLimits
from keyplane.services.revocations import RevocationFollower, record_revocation
from tests.factories import bearer, fake_token, login
from tests.integration.conftest import PASSWORD, Tenant


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(
    client: httpx.AsyncClient,
) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, samples(response.text)


def count(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_verifications_logins_and_the_cache_are_counted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    assert (await client.get("/auth/verify", headers=bearer(tenant.key))).status_code == 200
    assert (await client.get("/auth/verify", headers=bearer(tenant.key))).status_code == 200
    assert (await client.get("/v1.0/accesskeys", headers=bearer(tenant.key))).status_code == 200
    unknown = await client.get("/auth/verify", headers=bearer(fake_token("Q")))
    assert unknown.status_code == 401
    assert (await client.get("/auth/verify")).status_code == 401
    assert (await client.get("/v1.0/customer")).status_code == 401
    await login(client, tenant.username, PASSWORD)
    wrong = await client.post(
        "/auth/login", json={"username": tenant.username, "password": "not " + PASSWORD}
    )
    assert wrong.status_code == 400

    _, found = await scrape(client)
    verified = "keyplane_verifications_total"
    assert count(found, verified, result="allowed") == 3
    assert count(found, verified, result="unauthenticated") == 3
    assert count(found, verified, result="limited") == 0
    assert count(found, "keyplane_verification_duration_seconds_count") == 4
    assert count(found, "keyplane_logins_total", result="ok") == 1
    assert count(found, "keyplane_logins_total", result="refused") == 1
    assert count(found, "keyplane_login_duration_seconds_count") == 2
    # The first use of the key and the unknown one read the database; the rest hit.
    assert count(found, "keyplane_verification_cache_total", result="miss") == 2
    assert count(found, "keyplane_verification_cache_total", result="hit") == 2
    assert count(found, "keyplane_verification_cache_entries") >= 1


async def test_a_scrape_after_known_verifications_shows_their_exact_counts(
    client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five uses of a key, then an unknown key twice, each taking a known time."""
    # Start and end of each verification: 0.0001 s (on a bound), 0.25 s four times, 2 s twice.
    ends = [0.0001, 0.25, 0.25, 0.25, 0.25, 2.0, 2.0]
    readings = iter([reading for end in ends for reading in (0.0, end)])
    monkeypatch.setattr(auth_module, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    for _ in range(5):
        assert (await client.get("/auth/verify", headers=bearer(tenant.key))).status_code == 200
    for _ in range(2):
        unknown = await client.get("/auth/verify", headers=bearer(fake_token("U")))
        assert unknown.status_code == 401
    assert next(readings, None) is None  # every verification was timed, once

    _, found = await scrape(client)
    verified = "keyplane_verifications_total"
    assert count(found, verified, result="allowed") == 5
    assert count(found, verified, result="unauthenticated") == 2
    for result in ("denied", "limited", "failed"):
        assert count(found, verified, result=result) == 0
    duration = "keyplane_verification_duration_seconds"
    assert count(found, duration + "_count") == 7
    assert count(found, duration + "_sum") == 0.0001 + 4 * 0.25 + 2 * 2.0
    cumulative = {
        "0.0001": 1,
        "0.00025": 1,
        "0.1": 1,
        "0.25": None,  # not a bound: absent
        "0.5": 5,
        "1.0": 5,
        "+Inf": 7,
    }
    for le, expected in cumulative.items():
        key = (duration + "_bucket", (("le", le),))
        assert found.get(key) == expected, le
    # The key and the unknown one are each read once; then the cache answers.
    assert count(found, "keyplane_verification_cache_total", result="miss") == 2
    assert count(found, "keyplane_verification_cache_total", result="hit") == 5
    assert count(found, "keyplane_verification_cache_entries") == 2
    assert count(found, "keyplane_logins_total", result="ok") == 0
    assert count(found, "keyplane_login_duration_seconds_count") == 0


async def test_every_count_is_taken_on_the_event_loops_thread(
    client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain increments need no lock only because no other thread counts (argon2 runs in one)."""
    threads: list[int] = []
    inc, observe = Count.inc, Histogram.observe

    def counted_inc(self: Count) -> None:
        threads.append(threading.get_ident())
        inc(self)

    def counted_observe(self: Histogram, value: float) -> None:
        threads.append(threading.get_ident())
        observe(self, value)

    monkeypatch.setattr(Count, "inc", counted_inc)
    monkeypatch.setattr(Histogram, "observe", counted_observe)
    await login(client, tenant.username, PASSWORD)
    wrong = await client.post(
        "/auth/login", json={"username": tenant.username, "password": "not " + PASSWORD}
    )
    assert wrong.status_code == 400
    assert (await client.get("/auth/verify", headers=bearer(tenant.key))).status_code == 200
    assert (await client.get("/v1.0/accesskeys", headers=bearer(tenant.key))).status_code == 200
    assert (await client.get("/v1.0/customer")).status_code == 401
    # Two logins (result, duration) and three verifications (result, duration, cache) at least.
    assert len(threads) >= 10
    assert set(threads) == {threading.get_ident()}


async def test_no_credential_or_name_appears_in_the_metrics(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session = await login(client, tenant.username, PASSWORD)
    await client.get("/auth/verify", headers=bearer(tenant.key))
    await client.get("/auth/verify", headers=bearer(session))
    await client.get("/auth/verify", headers=bearer(fake_token("Z")))
    text, _ = await scrape(client)
    for secret in (tenant.key, session, fake_token("Z"), PASSWORD, tenant.username):
        assert secret not in text
    assert "vb_" not in text
    assert str(tenant.customer.id) not in text


async def test_rate_limit_refusals_are_counted_by_policy() -> None:
    metrics = Metrics()
    limits = RateLimits(
        MemoryLimiter(),
        customer=Policy("customer", 1.0, 60.0, 1),
        auth_failures=Policy("authfail", 1.0, 60.0, 1),
        login_failures=Policy("loginfail", 1.0, 60.0, 1),
        metrics=metrics,
    )
    customer = uuid.uuid4()
    await limits.consume_customer(customer)
    for _ in range(2):
        try:
            await limits.consume_customer(customer)
        except ResourceExhausted:
            pass
        else:
            raise AssertionError("the customer's second request passed")
    found = samples(metrics.exposition().decode())
    assert count(found, "keyplane_ratelimit_refusals_total", policy="customer") == 2
    assert count(found, "keyplane_ratelimit_refusals_total", policy="authfail") == 0


async def test_revocation_lag_is_observed_from_the_log(services: Services) -> None:
    clock = FrozenClock()
    metrics = Metrics()
    cache = VerificationCache(ttl=60.0)
    cache.set_connected(True)
    follower = RevocationFollower(services.database, cache, clock, metrics=metrics)
    assert await follower.poll() == 0
    key = VerifiedKey(uuid.uuid4(), uuid.uuid4(), clock.now())
    async with services.database.transaction() as repos:
        await record_revocation(repos, Invalidation("accesskey", key.id, "a" * 64), clock.now())
    clock.advance(3.0)
    assert await follower.poll() == 1
    found = samples(metrics.exposition().decode())
    assert count(found, "keyplane_revocation_lag_seconds_count") == 1
    assert count(found, "keyplane_revocation_lag_seconds_sum") == 3.0
    assert count(found, "keyplane_revocation_lag_seconds_bucket", le="2.0") == 0
    assert count(found, "keyplane_revocation_lag_seconds_bucket", le="5.0") == 1
