"""Several replicas on PostgreSQL and Redis, behind nginx: revocation within one second.

Starts a throwaway PostgreSQL, Redis, two real ``keyplane serve`` processes and
nginx balancing over them, all on loopback. Every revocation delay is measured
and the worst one printed.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from keyplane.domain.permissions import Identity, Permission
from keyplane.services.container import build_services
from keyplane.store.engine import create_engine
from tests.conftest import TEST_JWT_SECRET, make_settings
from tests.servers import NginxServer, PostgresServer, RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.e2e

KEYPLANE = str(Path(sys.executable).with_name("keyplane"))
BOUND = 1.0  # seconds: the promise
POLL = 0.005
OPERATOR = Identity.operator()
PASSWORD = "replica test password"


@dataclass
class Replica:
    port: int
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [KEYPLANE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=self.log.parent,
                stdout=sink,
                stderr=sink,
            )
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


@dataclass
class Cluster:
    postgres: PostgresServer
    redis: RedisServer
    replicas: list[Replica]
    nginx: NginxServer
    env: dict[str, str]
    root: Path
    delays: list[float] = field(default_factory=list)

    @property
    def a(self) -> str:
        return self.replicas[0].url

    @property
    def b(self) -> str:
        return self.replicas[1].url

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [KEYPLANE, *args, "--json"],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


def _environment(database_url: str, redis_url: str, root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYPLANE_")}
    env.update(
        KEYPLANE_DATABASE_URL=database_url,
        KEYPLANE_REDIS_URL=redis_url,
        KEYPLANE_DATA_DIR=str(root),
        KEYPLANE_JWT_SECRET=TEST_JWT_SECRET,
        KEYPLANE_BOOTSTRAP="false",
        KEYPLANE_LOG_FORMAT="json",
        KEYPLANE_ARGON2_MEMORY_KIB="19456",
        KEYPLANE_ARGON2_TIME_COST="2",
        KEYPLANE_ARGON2_PARALLELISM="1",
        # Polling for a revocation makes many refused requests from one address.
        KEYPLANE_RATELIMIT_AUTH_FAILURES_BURST="100000",
        KEYPLANE_RATELIMIT_LOGIN_FAILURES_PER_MINUTE="4",
        KEYPLANE_RATELIMIT_LOGIN_FAILURES_BURST="4",
    )
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    postgres, redis = PostgresServer(), RedisServer()
    replicas: list[Replica] = []
    nginx: NginxServer | None = None
    try:
        postgres.init()
        postgres.start()
        database_url = postgres.create_database("replicas")
        redis.start()
        env = _environment(database_url, redis.url, root)
        subprocess.run([KEYPLANE, "migrate"], env=env, cwd=root, check=True, timeout=60)
        for index in range(2):
            replica = Replica(free_port(), root / f"replica-{index}.log", env)
            replica.start()
            replicas.append(replica)
        nginx = NginxServer([replica.port for replica in replicas])
        nginx.start()
        yield Cluster(postgres, redis, replicas, nginx, env, root)
    finally:
        if nginx is not None:
            nginx.destroy()
        for replica in replicas:
            replica.stop()
        redis.destroy()
        postgres.destroy()


@dataclass
class Tenant:
    customer_id: uuid.UUID
    admin_token: str
    username: str


async def _tenant(cluster: Cluster) -> Tenant:
    """A customer with an admin access key and an admin agent, made by an operator."""
    settings = make_settings(
        cluster.root,
        database_url=cluster.env["KEYPLANE_DATABASE_URL"],
        redis_url=cluster.env["KEYPLANE_REDIS_URL"],
    )
    services = build_services(settings)
    try:
        customer = await services.customers.create_customer(OPERATOR, name="tenant")
        _, token = await services.accesskeys.create(
            OPERATOR, customer.id, name="admin", detail="", expire=86_400
        )
        username = f"admin-{uuid.uuid4().hex[:8]}"
        await services.customers.create_agent(
            OPERATOR,
            customer.id,
            username=username,
            password=PASSWORD,
            permission=int(Permission.CUSTOMER_ADMIN),
        )
    finally:
        await services.close()
    return Tenant(customer.id, token, username)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _create_key(http: httpx.AsyncClient, base: str, tenant: Tenant) -> tuple[str, str]:
    response = await http.post(
        f"{base}/v1.0/accesskeys",
        json={"name": "k", "detail": "", "expire": 86_400},
        headers=_auth(tenant.admin_token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["id"], body["token"]


async def _refused_after(http: httpx.AsyncClient, base: str, token: str, since: float) -> float:
    """Poll until ``token`` is refused at ``base``; seconds since ``since``."""
    deadline = since + 5.0
    while time.monotonic() < deadline:
        response = await http.get(f"{base}/v1.0/accesskeys?accesskey={token}")
        if response.status_code == 401:
            assert response.json()["error"]["reason"] == "INVALID_CREDENTIALS"
            return time.monotonic() - since
        assert response.status_code == 200, response.text
        await asyncio.sleep(POLL)
    raise AssertionError("the key was still accepted 5 s after it was revoked")


def _report(label: str, delays: list[float]) -> None:
    worst = max(delays)
    sys.stderr.write(
        f"\n{label}: {len(delays)} revocations, worst {worst * 1000:.1f} ms, "
        f"median {sorted(delays)[len(delays) // 2] * 1000:.1f} ms\n"
    )


async def test_a_key_created_on_one_replica_works_at_once_on_the_other(cluster: Cluster) -> None:
    tenant = await _tenant(cluster)
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(5):
            _, token = await _create_key(http, cluster.a, tenant)
            response = await http.get(f"{cluster.b}/v1.0/accesskeys", headers=_auth(token))
            assert response.status_code == 200


async def test_delete_on_one_replica_is_refused_on_the_other_within_one_second(
    cluster: Cluster,
) -> None:
    tenant = await _tenant(cluster)
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for attempt in range(30):
            deleter, user = (cluster.a, cluster.b) if attempt % 2 == 0 else (cluster.b, cluster.a)
            key_id, token = await _create_key(http, deleter, tenant)
            for _ in range(3):  # the other replica now has the key in its cache
                ok = await http.get(f"{user}/v1.0/accesskeys", headers=_auth(token))
                assert ok.status_code == 200
            response = await http.delete(
                f"{deleter}/v1.0/accesskeys/{key_id}", headers=_auth(tenant.admin_token)
            )
            assert response.status_code == 200
            delays.append(await _refused_after(http, user, token, time.monotonic()))
    _report("delete on A, refused on B", delays)
    assert max(delays) < BOUND


async def test_disable_and_enable_on_one_replica_hold_on_the_other_within_one_second(
    cluster: Cluster,
) -> None:
    tenant = await _tenant(cluster)
    admin = _auth(tenant.admin_token)
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for attempt in range(6):
            actor, user = (cluster.a, cluster.b) if attempt % 2 == 0 else (cluster.b, cluster.a)
            key_id, token = await _create_key(http, actor, tenant)
            ok = await http.get(f"{user}/v1.0/accesskeys", headers=_auth(token))
            assert ok.status_code == 200  # cached on the other replica
            response = await http.post(f"{actor}/v1.0/accesskeys/{key_id}/disable", headers=admin)
            assert response.status_code == 200, response.text
            delays.append(await _refused_after(http, user, token, time.monotonic()))
            # Enabled again: the other replica's refusal is not kept (it was cached too).
            response = await http.post(f"{actor}/v1.0/accesskeys/{key_id}/enable", headers=admin)
            assert response.status_code == 200, response.text
            since = time.monotonic()
            while (
                await http.get(f"{user}/v1.0/accesskeys", headers=_auth(token))
            ).status_code != 200:
                assert time.monotonic() - since < BOUND, "enabled key still refused"
                await asyncio.sleep(POLL)
    _report("disable on one replica, refused on the other", delays)
    assert max(delays) < BOUND


async def test_the_rotation_grace_ends_on_both_replicas(cluster: Cluster) -> None:
    """The old key works on the other replica through the grace, and stops within the bound of
    its end; the new key works everywhere at once."""
    tenant = await _tenant(cluster)
    grace = 2.0
    lateness: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for attempt in range(4):
            actor, user = (cluster.a, cluster.b) if attempt % 2 == 0 else (cluster.b, cluster.a)
            key_id, old_token = await _create_key(http, actor, tenant)
            for base in (cluster.a, cluster.b):  # cached on both
                ok = await http.get(f"{base}/v1.0/accesskeys", headers=_auth(old_token))
                assert ok.status_code == 200
            before = time.monotonic()
            response = await http.post(
                f"{actor}/v1.0/accesskeys/{key_id}/rotate",
                json={"grace": int(grace)},
                headers=_auth(tenant.admin_token),
            )
            after = time.monotonic()
            assert response.status_code == 200, response.text
            new_token = response.json()["token"]
            ok = await http.get(f"{user}/v1.0/accesskeys", headers=_auth(new_token))
            assert ok.status_code == 200
            # _refused_after checks that every answer before the refusal is a 200.
            refused_at = before + await _refused_after(http, user, old_token, before)
            assert refused_at - before >= grace - 0.01, "the old key stopped before its grace"
            lateness.append(refused_at - (after + grace))
            for base in (cluster.a, cluster.b):
                assert (
                    await http.get(f"{base}/v1.0/accesskeys", headers=_auth(new_token))
                ).is_success
    _report("rotation grace: refused after its end", [max(0.0, late) for late in lateness])
    assert max(lateness) < BOUND


async def test_revocation_through_nginx(cluster: Cluster) -> None:
    tenant = await _tenant(cluster)
    front = cluster.nginx.url
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(10):
            key_id, token = await _create_key(http, front, tenant)
            for _ in range(4):  # round robin: both replicas cache it
                ok = await http.get(f"{front}/v1.0/accesskeys", headers=_auth(token))
                assert ok.status_code == 200
            response = await http.delete(
                f"{front}/v1.0/accesskeys/{key_id}", headers=_auth(tenant.admin_token)
            )
            assert response.status_code == 200
            since = time.monotonic()
            await _refused_after(http, front, token, since)
            # The first refusal may come from the replica that deleted it:
            # the lag runs until both refuse.
            await _refused_after(http, cluster.a, token, since)
            delays.append(await _refused_after(http, cluster.b, token, since))
            # Both replicas refuse it now.
            for _ in range(4):
                refused = await http.get(f"{front}/v1.0/accesskeys?accesskey={token}")
                assert refused.status_code == 401
    _report("through nginx", delays)
    assert max(delays) < BOUND


async def _set_expiry(cluster: Cluster, key_id: str, moment: datetime) -> None:
    """Moves a key's expiry near: what a day-long key looks like a day later."""
    engine = create_engine(cluster.env["KEYPLANE_DATABASE_URL"])
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE accesskeys SET tm_expire = :moment WHERE id = :id"),
                {"moment": moment, "id": uuid.UUID(key_id)},
            )
    finally:
        await engine.dispose()


async def test_an_expired_key_is_refused_everywhere_the_moment_it_expires(
    cluster: Cluster,
) -> None:
    tenant = await _tenant(cluster)
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(12):  # four rounds whose set-up ended before the expiry
            if len(delays) == 8:
                break
            key_id, token = await _create_key(http, cluster.a, tenant)
            expires = datetime.now(UTC) + timedelta(seconds=0.8)
            await _set_expiry(cluster, key_id, expires)
            for base in (cluster.a, cluster.b):  # cached on both, with the near expiry
                ok = await http.get(f"{base}/v1.0/accesskeys", headers=_auth(token))
                if datetime.now(UTC) >= expires:
                    break  # a loaded machine took longer than the lead: no round
                assert ok.status_code == 200, ok.text
            else:
                await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()))
                expired_at = time.monotonic()
                for base in (cluster.a, cluster.b):
                    delays.append(await _refused_after(http, base, token, expired_at))
    _report("expiry", delays)
    assert len(delays) == 8, delays
    assert max(delays) < BOUND


async def test_removed_customer_and_agent_are_refused_within_one_second(cluster: Cluster) -> None:
    tenant = await _tenant(cluster)
    async with httpx.AsyncClient(timeout=10) as http:
        login = await http.post(
            f"{cluster.b}/auth/login", json={"username": tenant.username, "password": PASSWORD}
        )
        assert login.status_code == 200
        session = login.json()["token"]
        assert (await http.get(f"{cluster.b}/v1.0/customer", headers=_auth(session))).is_success
        # Remove the agent with the command line (an operator on another machine).
        cluster.cli("agent", "delete", await _agent_id(cluster, tenant.username))
        started = time.monotonic()
        while (await http.get(f"{cluster.b}/v1.0/customer", headers=_auth(session))).is_success:
            assert time.monotonic() - started < BOUND, "deleted agent's session still works"
            await asyncio.sleep(POLL)

        for base in (cluster.a, cluster.b):
            customer = await http.get(f"{base}/v1.0/customer", headers=_auth(tenant.admin_token))
            assert customer.is_success
        cluster.cli("customer", "delete", str(tenant.customer_id), "--yes")
        started = time.monotonic()
        for base in (cluster.a, cluster.b):
            delay = await _refused_after(http, base, tenant.admin_token, started)
            assert delay < BOUND


def _cookie_set(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header.split(";")[0].partition("=")[2]
    raise AssertionError(f"no {name} cookie: {response.headers}")


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def _admin_login(http: httpx.AsyncClient, base: str, username: str) -> tuple[str, str]:
    """Log in on the admin page of ``base``: the session token (its cookie) and the CSRF
    token of the page's forms. Cookies are sent by hand: both replicas are 127.0.0.1."""
    form = await http.get(f"{base}/admin/login")
    response = await http.post(
        f"{base}/admin/login",
        data={"csrf": _csrf(form), "username": username, "password": PASSWORD},
        headers={"Cookie": f"keyplane_admin_login={_cookie_set(form, 'keyplane_admin_login')}"},
    )
    assert response.status_code == 303, response.text
    session = _cookie_set(response, "keyplane_admin")
    page = await http.get(f"{base}/admin/settings", headers={"Cookie": f"keyplane_admin={session}"})
    assert page.status_code == 200, page.text
    return session, _csrf(page)


async def _session_refused_after(
    http: httpx.AsyncClient, base: str, session: str, since: float
) -> float:
    """Poll until the session token is refused at ``base`` as a Bearer; seconds since ``since``."""
    while time.monotonic() < since + 5.0:
        response = await http.get(f"{base}/v1.0/customer", headers=_auth(session))
        if response.status_code == 401:
            assert response.json()["error"]["reason"] == "INVALID_CREDENTIALS"
            return time.monotonic() - since
        assert response.status_code == 200, response.text
        await asyncio.sleep(POLL)
    raise AssertionError("the session was still accepted 5 s after its logout")


async def test_admin_logout_on_one_replica_is_refused_on_the_other_within_one_second(
    cluster: Cluster,
) -> None:
    tenant = await _tenant(cluster)
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for attempt in range(8):
            page, user = (cluster.a, cluster.b) if attempt % 2 == 0 else (cluster.b, cluster.a)
            session, csrf = await _admin_login(http, page, tenant.username)
            for _ in range(3):  # the other replica now has the session cached
                ok = await http.get(f"{user}/v1.0/customer", headers=_auth(session))
                assert ok.status_code == 200
            logout = await http.post(
                f"{page}/admin/logout",
                data={"csrf": csrf},
                headers={"Cookie": f"keyplane_admin={session}"},
            )
            assert logout.status_code == 303, logout.text
            since = time.monotonic()
            refused_here = await http.get(f"{page}/v1.0/customer", headers=_auth(session))
            assert refused_here.status_code == 401  # where the logout happened: at once
            delays.append(await _session_refused_after(http, user, session, since))
            stale_page = await http.get(
                f"{user}/admin/keys", headers={"Cookie": f"keyplane_admin={session}"}
            )
            assert stale_page.headers["location"] == "/admin/login"
    _report("admin logout on A, session refused on B", delays)
    assert max(delays) < BOUND


async def _agent_id(cluster: Cluster, username: str) -> str:
    engine = create_engine(cluster.env["KEYPLANE_DATABASE_URL"])
    try:
        async with engine.connect() as conn:
            row = await conn.execute(
                text("SELECT id FROM agents WHERE username = :username"), {"username": username}
            )
            return str(row.scalar_one())
    finally:
        await engine.dispose()


async def test_failed_logins_are_limited_across_replicas(cluster: Cluster) -> None:
    tenant = await _tenant(cluster)
    async with httpx.AsyncClient(timeout=10) as http:
        statuses = []
        for attempt in range(6):
            base = cluster.a if attempt % 2 == 0 else cluster.b
            response = await http.post(
                f"{base}/auth/login", json={"username": tenant.username, "password": "wrong"}
            )
            statuses.append(response.status_code)
        # Four failures in all are allowed, shared by both replicas; then 429.
        assert statuses[:4] == [400, 400, 400, 400]
        assert statuses[4:] == [429, 429]
        refused = await http.post(
            f"{cluster.b}/auth/login", json={"username": tenant.username, "password": PASSWORD}
        )
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


async def _wait_ready(http: httpx.AsyncClient, cluster: Cluster) -> None:
    deadline = time.monotonic() + 15.0
    for replica in cluster.replicas:
        while (await http.get(f"{replica.url}/health/ready")).status_code != 200:
            assert time.monotonic() < deadline, "a replica did not become ready again"
            await asyncio.sleep(0.1)


async def test_redis_outage_keeps_serving_and_revocations_hold(cluster: Cluster) -> None:
    tenant = await _tenant(cluster)
    async with httpx.AsyncClient(timeout=10) as http:
        cluster.redis.stop()
        try:
            not_ready = await http.get(f"{cluster.b}/health/ready")
            assert not_ready.status_code == 503
            assert not_ready.json()["error"]["reason"] == "NOT_READY"
            outage: list[float] = []
            for _ in range(5):
                key_id, token = await _create_key(http, cluster.a, tenant)
                ok = await http.get(f"{cluster.b}/v1.0/accesskeys", headers=_auth(token))
                assert ok.status_code == 200  # still serving
                response = await http.delete(
                    f"{cluster.a}/v1.0/accesskeys/{key_id}", headers=_auth(tenant.admin_token)
                )
                assert response.status_code == 200
                outage.append(await _refused_after(http, cluster.b, token, time.monotonic()))
            _report("redis down (revocation log)", outage)
            # The revocation log brings it (and the fallback TTL bounds it anyway).
            assert max(outage) < BOUND + 0.1
        finally:
            cluster.redis.start()
        await _wait_ready(http, cluster)
        # Give the listeners a moment to resubscribe, then invalidation is back:
        # a freshly cached key goes far quicker than the fallback TTL.
        await asyncio.sleep(1.0)
        resumed: list[float] = []
        for _ in range(5):
            key_id, token = await _create_key(http, cluster.a, tenant)
            for _ in range(3):
                ok = await http.get(f"{cluster.b}/v1.0/accesskeys", headers=_auth(token))
                assert ok.status_code == 200
            response = await http.delete(
                f"{cluster.a}/v1.0/accesskeys/{key_id}", headers=_auth(tenant.admin_token)
            )
            assert response.status_code == 200
            resumed.append(await _refused_after(http, cluster.b, token, time.monotonic()))
        _report("redis back (pub/sub)", resumed)
        assert max(resumed) < 0.5


async def test_postgres_outage_is_503_and_recovers_without_restart(cluster: Cluster) -> None:
    tenant = await _tenant(cluster)
    async with httpx.AsyncClient(timeout=20) as http:
        key_id, token = await _create_key(http, cluster.a, tenant)
        cluster.postgres.stop()
        try:
            for base in (cluster.a, cluster.b):
                response = await http.get(f"{base}/v1.0/accesskeys/{key_id}", headers=_auth(token))
                assert response.status_code == 503, response.text
                error = response.json()["error"]
                assert error["status"] == "UNAVAILABLE"
                assert "SELECT" not in error["message"]
                assert response.headers["X-Request-ID"] == error["request_id"]
                login = await http.post(
                    f"{base}/auth/login", json={"username": tenant.username, "password": PASSWORD}
                )
                assert login.status_code == 503
                assert (await http.get(f"{base}/health/ready")).status_code == 503
                assert (await http.get(f"{base}/health/live")).status_code == 200
        finally:
            cluster.postgres.start()
        await _wait_ready(http, cluster)
        for base in (cluster.a, cluster.b):
            response = await http.get(f"{base}/v1.0/accesskeys/{key_id}", headers=_auth(token))
            assert response.status_code == 200


async def test_postgres_stopped_and_restarted_under_load(cluster: Cluster) -> None:
    """Clients keep sending while PostgreSQL goes away and comes back.

    Every answer is a success or the 503 envelope (never a 500, never a 429
    from a failure budget spent on requests that got no verdict), and the same
    processes serve again once PostgreSQL is back.
    """
    tenant = await _tenant(cluster)
    pids = [replica.process.pid for replica in cluster.replicas if replica.process]
    statuses: dict[int, int] = {}
    bad: list[str] = []
    stop = asyncio.Event()

    async def worker(http: httpx.AsyncClient, base: str, index: int) -> None:
        while not stop.is_set():
            if index % 3 == 0:
                response = await http.post(
                    f"{base}/v1.0/accesskeys",
                    json={"name": "load", "detail": "", "expire": 86_400},
                    headers=_auth(tenant.admin_token),
                )
            elif index % 3 == 1:
                response = await http.get(
                    f"{base}/v1.0/accesskeys", headers=_auth(tenant.admin_token)
                )
            else:
                response = await http.get(
                    f"{base}/v1.0/customer", headers=_auth(tenant.admin_token)
                )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code not in (200, 503):
                bad.append(response.text[:300])
            elif response.status_code == 503:
                error = response.json()["error"]
                if (
                    error["status"] != "UNAVAILABLE"
                    or error["request_id"] != response.headers["X-Request-ID"]
                ):
                    bad.append(response.text[:300])
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(timeout=20) as http:
        workers = [
            asyncio.create_task(worker(http, replica.url, index))
            for index in range(6)
            for replica in cluster.replicas
        ]
        try:
            await asyncio.sleep(1.0)
            assert statuses.get(200, 0) > 0, statuses
            cluster.postgres.stop()
            try:
                outage_started = time.monotonic()
                while statuses.get(503, 0) < 10:
                    assert time.monotonic() - outage_started < 20, statuses
                    await asyncio.sleep(0.05)
            finally:
                cluster.postgres.start()
            before = statuses.get(200, 0)
            recovered_by = time.monotonic() + 20
            while statuses.get(200, 0) < before + 50:
                assert time.monotonic() < recovered_by, f"no recovery: {statuses}"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        await _wait_ready(http, cluster)
    assert not bad, bad[:5]
    assert set(statuses) <= {200, 503}, statuses
    assert [replica.process.pid for replica in cluster.replicas if replica.process] == pids
    for replica in cluster.replicas:
        assert replica.process is not None
        assert replica.process.poll() is None
