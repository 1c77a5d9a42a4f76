"""Helpers for functional tests: the real console script and real server processes.

Every subprocess gets a clean environment (no ``KEYPLANE_*`` from the caller),
runs in a temporary working directory (a ``.env`` there would be read), uses
fast argon2 parameters, and is bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import BIND_ATTEMPTS

BIN_DIR = Path(sys.executable).parent
WAIT_SECONDS = 20.0
CLI_TIMEOUT = 60.0
TOKEN_RE = re.compile("vb" + "_" + r"[A-Za-z0-9]{32}")
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def keyplane_executable() -> str:
    found = shutil.which("keyplane", path=str(BIN_DIR))
    assert found, f"the keyplane console script is not installed in {BIN_DIR}"
    return found


def clean_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The caller's environment without any KEYPLANE_*, plus test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
    env.update(
        {
            "KEYPLANE_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'keyplane.db'}",
            "KEYPLANE_DATA_DIR": str(data_dir),
            "KEYPLANE_ARGON2_MEMORY_KIB": "19456",
            "KEYPLANE_ARGON2_TIME_COST": "2",
            "KEYPLANE_ARGON2_PARALLELISM": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


@dataclass
class Workspace:
    """A working directory and a data directory for one keyplane installation."""

    cwd: Path
    data_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return clean_env(self.data_dir, **self.env_overrides)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "keyplane.db"

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``keyplane *args`` with stdout a pipe (so not a TTY: JSON output)."""
        return subprocess.run(
            [keyplane_executable(), *args],
            cwd=self.cwd,
            env=env or self.env,
            input=stdin or "",
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def run_many(
        self, *calls: tuple[tuple[str, ...], str | None]
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run several independent commands at once (each costs ~1 s of imports)."""
        processes = [
            (
                args,
                stdin,
                subprocess.Popen(
                    [keyplane_executable(), *args],
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for args, stdin in calls
        ]
        results = []
        try:
            for args, stdin, process in processes:
                out, err = process.communicate(stdin or "", timeout=CLI_TIMEOUT)
                results.append(
                    subprocess.CompletedProcess(
                        [keyplane_executable(), *args], process.returncode, out, err
                    )
                )
        finally:
            for _, _, process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=WAIT_SECONDS)
        return results

    def run_json(self, *args: str, stdin: str | None = None) -> Any:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, (
            f"keyplane {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return json.loads(result.stdout)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    cwd = tmp_path / "cwd"
    data_dir = tmp_path / "data"
    cwd.mkdir()
    data_dir.mkdir()
    return Workspace(cwd=cwd, data_dir=data_dir)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        return (
            f"server on port {self.port}, returncode={self.process.poll()}\n"
            f"--- stdout ---\n{self.stdout()[-4000:]}\n--- stderr ---\n{self.stderr()[-4000:]}"
        )

    def could_not_bind(self, timeout: float = WAIT_SECONDS) -> bool:
        """Whether the server exited because its port was taken (False once it answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return "cannot listen on" in self.stderr()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return False
            time.sleep(0.05)
        return False

    def wait_ready(self, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited before answering\n{self.describe()}")
            try:
                response = httpx.get(f"{self.base_url}/v1.0/customer", timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if response.status_code == 401:
                return
            pytest.fail(f"unexpected readiness answer {response.status_code}\n{self.describe()}")
        pytest.fail(f"the server did not answer within {timeout} s\n{self.describe()}")

    def stop(self, timeout: float = WAIT_SECONDS) -> int:
        """SIGTERM, then wait (bounded); SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"the server ignored SIGTERM for {timeout} s\n{self.describe()}")
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the server's whole process group (workers included), then reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=WAIT_SECONDS)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        return True


class ServerLauncher:
    """Starts ``keyplane serve`` processes and guarantees they are killed."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.started: list[ServerProcess] = []

    def start(
        self,
        *extra_args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> ServerProcess:
        if port is not None or not wait:
            return self._start(extra_args, port or free_port(), env, wait)
        # A port chosen here can be taken by another test before the server
        # binds it: that server says so and exits, and is started on another.
        for _ in range(BIND_ATTEMPTS - 1):
            server = self._start(extra_args, free_port(), env, wait=False)
            if not server.could_not_bind():
                server.wait_ready()
                return server
        return self._start(extra_args, free_port(), env, wait)

    def _start(
        self, extra_args: tuple[str, ...], port: int, env: dict[str, str] | None, wait: bool
    ) -> ServerProcess:
        index = len(self.started)
        stdout_path = self.workspace.cwd / f"server-{index}.stdout"
        stderr_path = self.workspace.cwd / f"server-{index}.stderr"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(
                [keyplane_executable(), "serve", "--port", str(port), *extra_args],
                cwd=self.workspace.cwd,
                env=env or self.workspace.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        server = ServerProcess(process, port, stdout_path, stderr_path)
        self.started.append(server)
        if wait:
            server.wait_ready()
        return server

    def cleanup(self) -> None:
        for server in self.started:
            server.kill()


@pytest.fixture
def launcher(workspace: Workspace) -> Iterator[ServerLauncher]:
    servers = ServerLauncher(workspace)
    try:
        yield servers
    finally:
        servers.cleanup()


@dataclass(frozen=True)
class FirstStartBlock:
    customer_id: str
    username: str
    password: str
    token: str
    curl_url: str
    block: str


_FIRST_START = re.compile(
    r"keyplane first start:.*?\n"
    r".*?^  customer     (?P<customer>.+?) \((?P<customer_id>[0-9a-f\-]{36})\)\n"
    r"^  username     (?P<username>\S+)\n"
    r"^  password     (?P<password>\S+)\n"
    r"^  access key   (?P<token>\S+)\n"
    r"^  expires      \S+\n"
    r".*?^  curl '(?P<url>[^']+)'\n"
    r".*?^  curl -H 'Authorization: Bearer (?P<bearer>[^']+)' \S+\n",
    re.MULTILINE | re.DOTALL,
)


def parse_first_start(stdout: str) -> FirstStartBlock:
    match = _FIRST_START.search(stdout)
    assert match, f"no first-start block on stdout:\n{stdout}"
    assert TOKEN_RE.fullmatch(match["token"]), "the printed access key is not well-formed"
    assert match["bearer"] == match["token"]
    return FirstStartBlock(
        customer_id=match["customer_id"],
        username=match["username"],
        password=match["password"],
        token=match["token"],
        curl_url=match["url"],
        block=match.group(0),
    )


def stopped_ok(returncode: int) -> bool:
    """uvicorn shuts down gracefully on SIGTERM, then may re-raise the signal."""
    return returncode in (0, -signal.SIGTERM)
