"""Real PostgreSQL, Redis and nginx servers for tests, on loopback and free ports.

Each runs from Debian's packages (``make test`` installs them) in a throwaway
directory. A server that cannot start fails the test loudly: nothing is
skipped for want of a server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# A port from free_port() is free when chosen, but another test's server can
# take it before ours binds it. A server that fails to bind is started again
# on a new port, this many times at most (its first start only: a restart must
# keep its address).
BIND_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """The server exited before its port answered: it could not bind it."""


def wait_for_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until something answers on ``port``; ``PortTaken`` if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise PortTaken(f"the server on {LOOPBACK}:{port} exited before it answered")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on {LOOPBACK}:{port} within {timeout} s")


LISTENING = "0A"  # a socket's state in /proc/net/tcp (01: an open connection)


def tcp_sockets_on_port(port: int) -> list[tuple[int, str, int]]:
    """The kernel's IPv4 TCP sockets on local ``port``: (inode, state, remote port)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if int(local.rsplit(":", 1)[1], 16) == port:
            found.append((inode, state, int(remote.rsplit(":", 1)[1], 16)))
    return found


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _throwaway_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # other users (postgres) must be able to enter it
    return path


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run 'make test' (it installs Debian's postgresql) "
            "or 'apt-get install postgresql'"
        )
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    """A throwaway cluster run by the ``postgres`` user (PostgreSQL refuses root)."""

    root: Path = field(default_factory=lambda: _throwaway_dir("keyplane-pg-"))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "keyplane") -> str:
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self.port}/{database}"

    def _as_postgres(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        shutil.chown(self.root, "postgres", "postgres")
        binary = _postgres_bin()
        self._as_postgres(
            str(binary / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    started_once: bool = False

    def start(self) -> None:
        for attempt in range(BIND_ATTEMPTS):
            try:
                self._start()
            except RuntimeError:
                taken = self.log.exists() and "could not bind" in self.log.read_text(
                    errors="replace"
                )
                if self.started_once or not taken or attempt == BIND_ATTEMPTS - 1:
                    raise
                self.port = free_port()
                continue
            self.started_once = True
            return

    def _start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 "
            # For the report of a failed test (tests/conftest.py): lock waits
            # and slow statements, which otherwise leave no trace.
            "-c log_lock_waits=on -c deadlock_timeout=200ms -c log_min_duration_statement=500"
        )
        self._as_postgres(
            str(_postgres_bin() / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "start",
        )

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = 8_192) -> str:
        """What the server logged after ``offset`` bytes, its last ``limit`` bytes at most."""
        try:
            with self.log.open("rb") as file:
                file.seek(max(offset, self.log_size() - limit))
                return file.read(limit).decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(
            str(_postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )

    def create_database(self, name: str) -> str:
        self._as_postgres(
            str(_postgres_bin() / "createdb"), "-h", LOOPBACK, "-p", str(self.port), name
        )
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class RedisServer:
    root: Path = field(default_factory=lambda: _throwaway_dir("keyplane-redis-"))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    started_once: bool = False

    def start(self) -> None:
        for attempt in range(BIND_ATTEMPTS):
            try:
                self._start()
            except PortTaken:
                self.process = None
                if self.started_once or attempt == BIND_ATTEMPTS - 1:
                    raise
                self.port = free_port()
                continue
            self.started_once = True
            return

    def _start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run 'make test'")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        self._confirm_it_is_ours()

    def _confirm_it_is_ours(self, timeout: float = 20.0) -> None:
        """The port may answer for another test's server: ask for our directory."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PortTaken(f"redis-server could not bind {LOOPBACK}:{self.port}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                try:
                    sock.connect((LOOPBACK, self.port))
                    sock.sendall(b"CONFIG GET dir\r\n")
                    answer = sock.recv(4096)
                except OSError:
                    answer = b""
            if str(self.root).encode() in answer:
                return
            time.sleep(0.05)
        raise PortTaken(f"another server answers on {LOOPBACK}:{self.port}")

    def stop(self) -> None:
        _terminate(self.process)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


NGINX_CONFIG = """\
user root;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream keyplane {{
{servers}
        keepalive 16;
    }}
    server {{
        listen {host}:{port};
        location = /__nginx_root {{ return 200 "{root}"; }}
        location / {{
            proxy_pass http://keyplane;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


NGINX_SITE_CONFIG = """\
user root;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {site};
}}
"""


@dataclass
class NginxServer:
    """nginx balancing round-robin over ``upstreams`` (loopback ports).

    With ``site`` (the text of an ``http {}``-level configuration that listens
    on ``port``), nginx runs that configuration instead.
    """

    upstreams: list[int]
    root: Path = field(default_factory=lambda: _throwaway_dir("keyplane-nginx-"))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    site: str | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        for attempt in range(BIND_ATTEMPTS):
            try:
                self._start()
            except PortTaken:
                # A site names its own port: only a generated configuration moves.
                if self.site is not None or attempt == BIND_ATTEMPTS - 1:
                    raise
                self.port = free_port()
                continue
            return

    def _start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx is not installed: run 'make test'")
        servers = "\n".join(f"        server {LOOPBACK}:{port};" for port in self.upstreams)
        config = self.root / "nginx.conf"
        if self.site is None:
            config.write_text(
                NGINX_CONFIG.format(root=self.root, servers=servers, host=LOOPBACK, port=self.port)
            )
        else:
            site = self.root / "site.conf"
            site.write_text(self.site)
            config.write_text(NGINX_SITE_CONFIG.format(root=self.root, site=site))
        self.process = subprocess.Popen(
            [binary, "-c", str(config), "-p", str(self.root), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, process=self.process)
        except RuntimeError as error:
            self.stop()
            log = (self.root / "error.log").read_text()
            kind = PortTaken if isinstance(error, PortTaken) else RuntimeError
            raise kind(f"nginx did not start: {log}") from None
        if self.site is None:
            self._confirm_it_is_ours()

    def _confirm_it_is_ours(self, timeout: float = 20.0) -> None:
        """The port may answer for another test's server: ask for our directory."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                self.stop()
                raise PortTaken(f"nginx could not bind {LOOPBACK}:{self.port}")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{self.url}/__nginx_root", timeout=0.5)
                if answer.text == str(self.root):
                    return
            time.sleep(0.05)
        self.stop()
        raise PortTaken(f"another server answers on {LOOPBACK}:{self.port}")

    def stop(self) -> None:
        _terminate(self.process)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
