"""``make demo PORT=N``: the port reaches scripts/demo.py, which refuses a taken one at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_passes_port_only_when_given() -> None:
    def dry_run(*args: str) -> str:
        result = subprocess.run(
            ["make", "-n", "--no-print-directory", "demo", *args],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k not in ("PORT", "MAKEFLAGS")},
            capture_output=True,
            text=True,
            check=True,
        )
        (line,) = [line for line in result.stdout.splitlines() if "scripts/demo.py" in line]
        return line

    assert dry_run("PORT=8123").endswith("scripts/demo.py --port '8123'")
    assert dry_run().rstrip().endswith("scripts/demo.py")


def test_a_taken_port_is_refused_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "PORT=" in result.stderr
    assert result.stdout == ""


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--port must be from 1 to 65535" in result.stderr
