"""F7's peer: djangorestframework-api-key's ``HasAPIKey`` in its own virtual environment.

A minimal Django + DRF project (``django_app.py``, one view behind
``HasAPIKey``, SQLite, ``keys`` API keys) served by gunicorn with one sync
worker. The environment is built once in ``benchmarks/.django-venv``, from
the exact versions of ``requirements/django.lock`` (``make lock`` writes it;
``make bench`` builds it; the test's smoke mode only uses it when present).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port

from benchmarks.servers import Process, _wait_ready, spawn

HERE = Path(__file__).parent
VENV = HERE / ".django-venv"
LOCK = HERE.parent / "requirements" / "django.lock"


class Unavailable(Exception):
    """The Django environment is missing and was not built."""


class DjangoServer(Process):
    key: str = ""


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    installed = VENV / ".installed"
    if installed.exists() and installed.read_text() == LOCK.read_text():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps"]
    subprocess.run([*pip, "-r", str(LOCK)], check=True)
    installed.write_text(LOCK.read_text())
    return python


def start(root: Path, *, keys: int, build: bool = True) -> DjangoServer:
    if not (VENV / ".installed").exists() and not build:
        raise Unavailable(f"no Django environment in {VENV} (make bench builds it)")
    try:
        python = ensure_venv()
    except (subprocess.CalledProcessError, OSError) as exc:
        raise Unavailable(f"building {VENV} failed: {exc}") from exc
    data = root / "django"
    data.mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=str(HERE),
        DJANGO_SETTINGS_MODULE="django_app",
        BENCH_DJANGO_DB=str(data / "db.sqlite3"),
    )
    setup = subprocess.run(
        [str(python), "-m", "django_app", "setup", str(keys)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if setup.returncode != 0:
        raise Unavailable(f"Django setup failed: {setup.stderr[-2000:]}")
    port = free_port()
    command = [
        str(VENV / "bin" / "gunicorn"),
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "django_app:application",
    ]
    process = spawn("django", command, data, env, port)
    server = DjangoServer(process.name, process.process, process.port, process.root)
    server.key = setup.stdout.strip().splitlines()[-1]
    _wait_ready(server, "/health/")
    return server
