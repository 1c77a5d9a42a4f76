"""The servers the benchmarks measure, each on 127.0.0.1 and a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests.servers import (
    LISTENING,
    PostgresServer,
    RedisServer,
    free_port,
    tcp_sockets_on_port,
)

from benchmarks.seed import seeded_token
from keyplane.domain.tokens import DISPLAY_PREFIX_LENGTH, hash_token

BIN = Path(sys.executable).parent
TOKEN_LINE = re.compile(r"^  access key   (\S+)$", re.MULTILINE)
USER_LINE = re.compile(r"^  username     (\S+)$", re.MULTILINE)
PASSWORD_LINE = re.compile(r"^  password     (\S+)$", re.MULTILINE)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
SEED_BATCH = 5_000

# Limits far above what one machine can send: the benchmarks measure
# verification, not the customer's rate limit.
UNLIMITED = {
    "KEYPLANE_RATELIMIT_CUSTOMER_PER_SECOND": "100000000",
    "KEYPLANE_RATELIMIT_CUSTOMER_BURST": "100000000",
}


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        """Resident memory of the process and its children (the workers)."""
        total = 0
        for pid in [self.process.pid, *children(self.process.pid)]:
            with contextlib.suppress(FileNotFoundError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (a server's workers)."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(child) for child in text)
    return found


def _wait_ready(process: Process, path: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            log = (process.root / f"{process.name}.stderr").read_text()[-3000:]
            raise RuntimeError(f"{process.name} exited: {log}")
        try:
            if httpx.get(process.url + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer on {path} within {timeout} s")


def _listening(port: int) -> int:
    """How many sockets listen on loopback ``port``."""
    return sum(state == LISTENING for _, state, _ in tcp_sockets_on_port(port))


def _wait_listening(process: Process, workers: int, timeout: float = 90.0) -> None:
    """Every worker listens on a socket of its own: a run started before that would
    measure the first worker ready alone."""
    deadline = time.monotonic() + timeout
    while _listening(process.port) < workers:
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{process.name}: fewer than {workers} workers listening")
        time.sleep(0.1)


def spawn(name: str, command: list[str], root: Path, env: dict[str, str], port: int) -> Process:
    stdout = (root / f"{name}.stdout").open("wb")
    stderr = (root / f"{name}.stderr").open("wb")
    process = subprocess.Popen(
        command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
    )
    return Process(name, process, port, root)


def start_baseline(name: str, app: str, root: Path) -> Process:
    """``benchmarks.baselines:<app>`` on uvicorn with uvloop and httptools, one worker."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    command = [
        str(BIN / "uvicorn"),
        f"benchmarks.baselines:{app}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = spawn(name, command, root, env, port)
    _wait_ready(process, "/item" if app == "minimal" else "/")
    return process


@dataclass
class Keyplane:
    process: Process
    token: str
    username: str
    password: str
    database_url: str

    @property
    def url(self) -> str:
        return self.process.url


def start_keyplane(
    name: str,
    root: Path,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    workers: int = 1,
    extra: dict[str, str] | None = None,
) -> Keyplane:
    data = root / name
    data.mkdir()
    database_url = database_url or f"sqlite+aiosqlite:///{data / 'keyplane.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
    env.update(
        KEYPLANE_DATA_DIR=str(data),
        KEYPLANE_DATABASE_URL=database_url,
        KEYPLANE_BOOTSTRAP="true",
        KEYPLANE_LOG_FORMAT="json",
        # The OWASP floor of argon2id, as in the soak test.
        KEYPLANE_ARGON2_MEMORY_KIB="19456",
        KEYPLANE_ARGON2_TIME_COST="2",
        KEYPLANE_ARGON2_PARALLELISM="1",
        KEYPLANE_MAX_CONNECTIONS="4000",
        PYTHONUNBUFFERED="1",
        **UNLIMITED,
    )
    if redis_url:
        env["KEYPLANE_REDIS_URL"] = redis_url
    env.update(extra or {})
    port = free_port()
    command = [str(BIN / "keyplane"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    process = spawn(name, command, root, env, port)
    _wait_ready(process, "/health/ready")
    _wait_listening(process, workers)
    printed = (root / f"{name}.stdout").read_text()
    found = [TOKEN_LINE.search(printed), USER_LINE.search(printed), PASSWORD_LINE.search(printed)]
    if not all(found):
        raise RuntimeError(f"{name}: no first-start block on stdout")
    token, username, password = (match[1] for match in found if match)
    return Keyplane(process, token, username, password, database_url)


async def _seed(database_url: str, count: int) -> None:
    from sqlalchemy import select

    from keyplane.store.engine import create_engine
    from keyplane.store.tables import accesskeys, customers

    engine = create_engine(database_url, pool_size=2, timeout=60.0)
    try:
        async with engine.begin() as connection:
            customer_id = (await connection.execute(select(customers.c.id).limit(1))).scalar_one()
        now = datetime.now(UTC)
        import uuid

        for start in range(0, count, SEED_BATCH):
            rows = []
            for index in range(start, min(count, start + SEED_BATCH)):
                token = seeded_token(index)
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "customer_id": customer_id,
                        "name": "bench",
                        "detail": "",
                        "token_hash": hash_token(token),
                        "token_prefix": token[:DISPLAY_PREFIX_LENGTH],
                        "tm_expire": FAR_FUTURE,
                        "tm_create": now,
                    }
                )
            async with engine.begin() as connection:
                await connection.execute(accesskeys.insert(), rows)
    finally:
        await engine.dispose()


def seed_keys(server: Keyplane, count: int) -> None:
    """``count`` access keys of the bootstrap customer, ``seeded_token(0..count-1)``."""
    asyncio.run(_seed(server.database_url, count))


@dataclass
class Backends:
    postgres: PostgresServer
    redis: RedisServer

    @classmethod
    def start(cls) -> Backends:
        postgres = PostgresServer()
        redis = RedisServer()
        try:
            postgres.init()
            postgres.start()
            redis.start()
        except Exception:
            postgres.destroy()
            redis.destroy()
            raise
        return cls(postgres, redis)

    def database(self, name: str) -> str:
        return self.postgres.create_database(name)

    def destroy(self) -> None:
        self.redis.destroy()
        self.postgres.destroy()
