"""Running the real console script under a pseudo-terminal, as an operator meets it."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time

from tests.functional.conftest import CLI_TIMEOUT, Workspace, keyplane_executable


def run_in_pty(workspace: Workspace, *args: str, columns: int = 400) -> tuple[int, bytes]:
    """``keyplane *args`` with stdout and stderr a pseudo-terminal (so tables, not JSON)."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**workspace.env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "50"}
    process = subprocess.Popen(
        [keyplane_executable(), *args],
        cwd=workspace.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + CLI_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        returncode = process.wait(timeout=CLI_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=CLI_TIMEOUT)
        os.close(controller)
    return returncode, bytes(output)
