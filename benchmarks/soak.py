"""``make soak``: mixed traffic at about half capacity against a real server on loopback.

Starts ``keyplane serve`` on 127.0.0.1 with a fresh SQLite database (or
``KEYPLANE_DATABASE_URL``), measures what it can serve with the same traffic
mix, then sends half of that for ``SOAK_SECONDS`` (600 by default), open loop.
It samples the server's resident memory and open file descriptors, and fails
(exit status 1) on any unexpected answer or transport error, on resident memory
growing 10% or more after warm-up, or on file descriptors not staying flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

KEYPLANE = str(Path(sys.executable).with_name("keyplane"))
RESULTS = Path(__file__).parent / "results"
TOKEN_LINE = re.compile(r"^  access key   (\S+)$", re.MULTILINE)
USER_LINE = re.compile(r"^  username     (\S+)$", re.MULTILINE)
PASSWORD_LINE = re.compile(r"^  password     (\S+)$", re.MULTILINE)
CONCURRENCY = 32
MAX_MEMORY_GROWTH = 0.10
FD_TOLERANCE = 2  # idle descriptors after the soak, over those before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def idle_fds(self) -> int:
        """Open descriptors once the clients' connections have closed."""
        time.sleep(6.0)  # past uvicorn's keep-alive timeout (5 s)
        return self.fds()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(root: Path) -> tuple[Server, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
    env.update(
        KEYPLANE_DATA_DIR=str(root),
        KEYPLANE_DATABASE_URL=os.environ.get(
            "KEYPLANE_DATABASE_URL", f"sqlite+aiosqlite:///{root / 'keyplane.db'}"
        ),
        KEYPLANE_BOOTSTRAP="true",
        KEYPLANE_LOG_FORMAT="json",
        # The OWASP floor of argon2id: logins are part of the mix, not all of it.
        KEYPLANE_ARGON2_MEMORY_KIB="19456",
        KEYPLANE_ARGON2_TIME_COST="2",
        KEYPLANE_ARGON2_PARALLELISM="1",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    stdout = (root / "server.stdout").open("wb")
    stderr = (root / "server.stderr").open("wb")
    process = subprocess.Popen(
        [KEYPLANE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )
    server = Server(process, port, root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((root / "server.stderr").read_text()[-2000:])
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        raise RuntimeError("the server did not become ready")
    printed = (root / "server.stdout").read_text()
    found = {
        "token": TOKEN_LINE.search(printed),
        "username": USER_LINE.search(printed),
        "password": PASSWORD_LINE.search(printed),
    }
    if not all(found.values()):
        raise RuntimeError("no first-start block on stdout")
    return server, {name: match[1] for name, match in found.items() if match}


@dataclass
class Traffic:
    """The mix, and what came back."""

    url: str
    key: str
    session: str
    username: str
    password: str
    created: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    last_wrong_key: float = 0.0

    async def one(self, http: httpx.AsyncClient) -> None:
        roll = random.random()
        key = {"Authorization": f"Bearer {self.key}"}
        session = {"Authorization": f"Bearer {self.session}"}
        try:
            if roll < 0.60:
                await self._expect(http.get("/v1.0/accesskeys?page_size=10", headers=key), 200)
            elif roll < 0.75:
                await self._expect(http.get("/v1.0/customer", headers=session), 200)
            elif roll < 0.84:
                response = await self._expect(
                    http.post(
                        "/v1.0/accesskeys",
                        json={"name": "soak", "detail": "", "expire": 86_400},
                        headers=key,
                    ),
                    200,
                )
                if response is not None:
                    self.created.append(response.json()["id"])
            elif roll < 0.93:
                if self.created:
                    key_id = self.created.pop(random.randrange(len(self.created)))
                    await self._expect(http.delete(f"/v1.0/accesskeys/{key_id}", headers=key), 200)
            elif roll < 0.995:
                if self.created:
                    key_id = random.choice(self.created)
                    await self._expect(
                        http.put(f"/v1.0/accesskeys/{key_id}", json={"name": "r"}, headers=key),
                        200,
                        409,  # deleted meanwhile by another request of the mix (STATE_INVALID)
                    )
            else:
                await self._expect(
                    http.post(
                        "/auth/login",
                        json={"username": self.username, "password": self.password},
                    ),
                    200,
                )
            # A refused credential now and then, well under the failure budget.
            now = time.monotonic()
            if now - self.last_wrong_key > 5.0:
                self.last_wrong_key = now
                wrong = {"Authorization": "Bearer " + "vb" + "_" + "0" * 32}
                await self._expect(http.get("/v1.0/customer", headers=wrong), 401)
        except httpx.HTTPError as error:
            self.errors.append(f"transport: {type(error).__name__}")

    async def _expect(self, sending: Any, *statuses: int) -> httpx.Response | None:
        response: httpx.Response = await sending
        self.answers[str(response.status_code)] += 1
        if response.status_code not in statuses:
            self.errors.append(f"{response.request.method} {response.status_code}")
            return None
        return response


def client_limits() -> httpx.Limits:
    # Idle connections are dropped well before the server's keep-alive timeout
    # (5 s), so a request never races the server closing its connection.
    return httpx.Limits(max_connections=CONCURRENCY * 2, keepalive_expiry=2.0)


async def closed_loop(traffic: Traffic, seconds: float) -> float:
    """Requests per second with CONCURRENCY clients sending back to back."""
    done = 0
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await traffic.one(http)
            done += 1

    async with httpx.AsyncClient(base_url=traffic.url, timeout=30, limits=client_limits()) as http:
        started = time.monotonic()
        await asyncio.gather(*(client(http) for _ in range(CONCURRENCY)))
        return done / (time.monotonic() - started)


async def open_loop(
    traffic: Traffic, server: Server, rate: float, seconds: float, samples: list[dict[str, Any]]
) -> int:
    """``rate`` requests a second for ``seconds``; samples memory and descriptors every 5 s."""
    in_flight: set[asyncio.Task[None]] = set()
    late = 0
    async with httpx.AsyncClient(base_url=traffic.url, timeout=30, limits=client_limits()) as http:
        started = time.monotonic()
        next_sample = started
        sent = 0
        while (now := time.monotonic()) - started < seconds:
            if now >= next_sample:
                samples.append(
                    {"t": round(now - started, 1), "rss_kib": server.rss_kib(), "fds": server.fds()}
                )
                next_sample += 5.0
            due = started + sent / rate
            if due > now:
                await asyncio.sleep(min(due - now, 0.05))
                continue
            if len(in_flight) >= CONCURRENCY * 2:
                late += 1  # the server is behind: wait instead of piling up
                await asyncio.sleep(0.001)
                continue
            task = asyncio.create_task(traffic.one(http))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
        await asyncio.gather(*in_flight)
    samples.append({"t": round(seconds, 1), "rss_kib": server.rss_kib(), "fds": server.fds()})
    return late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="keyplane-soak-"))
    server, first = start_server(root)
    try:
        login = httpx.post(
            f"{server.url}/auth/login",
            json={"username": first["username"], "password": first["password"]},
            timeout=30,
        )
        login.raise_for_status()
        traffic = Traffic(
            server.url, first["token"], login.json()["token"], first["username"], first["password"]
        )
        calibration = min(20.0, max(5.0, args.seconds / 20))
        capacity = asyncio.run(closed_loop(traffic, calibration))
        rate = capacity / 2
        traffic.answers.clear()
        calibration_errors = list(traffic.errors)
        traffic.errors.clear()
        print(
            f"capacity {capacity:.0f} req/s; soaking at {rate:.0f} req/s for {args.seconds:.0f} s"
        )
        samples: list[dict[str, Any]] = []
        idle_fds_before = server.idle_fds()
        late = asyncio.run(open_loop(traffic, server, rate, args.seconds, samples))
        idle_fds_after = server.idle_fds()
    finally:
        server.stop()
    # Resident memory rises during the first minutes: each worker thread that
    # hashes a password keeps argon2's block (19 MiB at the floor) in its malloc
    # arena. Growth is judged over the second half, once that has settled.
    warm = [s for s in samples if s["t"] >= args.seconds / 2] or samples
    baseline, final = warm[0], samples[-1]
    growth = (final["rss_kib"] - baseline["rss_kib"]) / baseline["rss_kib"]
    fds = [s["fds"] for s in samples]
    result = {
        "seconds": args.seconds,
        "capacity_rps": round(capacity, 1),
        "rate_rps": round(rate, 1),
        "requests": sum(traffic.answers.values()),
        "answers": dict(traffic.answers),
        "errors": len(traffic.errors) + len(calibration_errors),
        "error_examples": (calibration_errors + traffic.errors)[:10],
        "late_sends": late,
        "rss_kib_baseline": baseline["rss_kib"],
        "rss_kib_final": final["rss_kib"],
        "rss_kib_max": max(s["rss_kib"] for s in samples),
        "rss_growth_percent": round(growth * 100, 2),
        "rss_growth_percent_whole_run": round(
            (final["rss_kib"] - samples[0]["rss_kib"]) / samples[0]["rss_kib"] * 100, 2
        ),
        "fds_idle_before": idle_fds_before,
        "fds_idle_after": idle_fds_after,
        "fds_min_under_load": min(fds),
        "fds_max_under_load": max(fds),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps({"result": result, "samples": samples}, indent=1))
    print(json.dumps(result, indent=1))
    ok = (
        result["errors"] == 0
        and growth < MAX_MEMORY_GROWTH
        and idle_fds_after <= idle_fds_before + FD_TOLERANCE
    )
    print("soak: PASS" if ok else f"soak: FAIL (server logs kept in {root})")
    if ok:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
