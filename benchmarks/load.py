"""Driving servers with ``wrk`` (installed with apt-get when missing), on loopback only."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parent.parent
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_REQUESTS = re.compile(r"(\d+) requests in")

# Lua for wrk: the request is rebuilt per call only where it has to vary.
# Each request the next token of BENCH_TOKENS, from the BENCH_OFFSET-th on (so
# that successive runs can go on where the last one stopped).
ROTATE_TOKENS = """\
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local i = tonumber(os.getenv("BENCH_OFFSET") or "0") % #tokens
request = function()
  i = i % #tokens + 1
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
"""

UNKNOWN_KEYS = """\
local chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
math.randomseed(tonumber(os.getenv("BENCH_SEED") or "1"))
request = function()
  local body = {}
  for k = 1, 32 do
    local n = math.random(1, 62)
    body[k] = chars:sub(n, n)
  end
  local ip = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "."
    .. math.random(1, 254)
  return wrk.format(nil, nil, {
    ["Authorization"] = "Bearer vb" .. "_" .. table.concat(body),
    ["X-Forwarded-For"] = ip,
  })
end
"""

LOGIN = """\
wrk.method = "POST"
wrk.body = os.getenv("BENCH_LOGIN_BODY")
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass(frozen=True)
class Outcome:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: int


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "system-deps.sh"), "wrk"], check=True)
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed and could not be installed (apt-get install wrk)")
    return found


def wrk_command(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> list[str]:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("benchmarks target loopback only")
    command = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{max(connections, threads)}",
        f"-d{max(1, round(seconds))}s",  # wrk counts whole seconds
        "--timeout",
        "10s",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    return [*command, url]


def parse(output: str) -> Outcome:
    rps = _RPS.search(output)
    if rps is None:
        raise RuntimeError(f"wrk printed no rate:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _ERRORS.search(output)
    requests = _REQUESTS.search(output)
    return Outcome(
        rps=float(rps[1]),
        requests=int(requests[1]) if requests else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run(command: list[str], env: dict[str, str] | None = None) -> Outcome:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ, **(env or {})),
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr or result.stdout}")
    return parse(result.stdout)


class Background:
    """A second ``wrk`` sending alongside the measured one (F5, F6)."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **(env or {})),
        )

    def finish(self) -> Outcome:
        stdout, stderr = self.process.communicate(timeout=600)
        if self.process.returncode != 0:
            raise RuntimeError(f"wrk failed: {stderr or stdout}")
        return parse(stdout)


_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """CPU seconds a process has used (user + system); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _machine_cpu() -> dict[str, float]:
    """Seconds of the whole machine by kind (all cores), from ``/proc/stat``."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1 : 1 + len(names)]
    return {name: int(value) / _TICKS for name, value in zip(names, values, strict=True)}


def run_with_cpu(
    command: list[str], processes: dict[str, list[int]], env: dict[str, str] | None = None
) -> tuple[Outcome, dict[str, float]]:
    """One ``run``, and the cores each named group of processes used meanwhile.

    Also ``wrk`` (the load generator, a child of this process: its own
    resource usage), ``softirq`` (the kernel's network work, loopback TCP on
    both ends), ``idle`` and ``other`` (everything else the machine did).
    Each value is CPU seconds per second of the run: 1.0 is one core kept busy.
    """
    before = {name: sum(_process_cpu(pid) for pid in pids) for name, pids in processes.items()}
    machine_before = _machine_cpu()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    outcome = run(command, env)
    elapsed = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_after = _machine_cpu()
    shares = {
        name: (sum(_process_cpu(pid) for pid in pids) - before[name]) / elapsed
        for name, pids in processes.items()
    }
    shares["wrk"] = (
        children_after.ru_utime
        + children_after.ru_stime
        - children_before.ru_utime
        - children_before.ru_stime
    ) / elapsed
    spent = {name: (machine_after[name] - machine_before[name]) / elapsed for name in machine_after}
    shares["softirq"] = spent["softirq"]
    shares["idle"] = spent["idle"] + spent["iowait"]
    busy = sum(spent.values()) - shares["idle"]
    named = sum(value for name, value in shares.items() if name not in ("softirq", "idle"))
    shares["other"] = max(0.0, busy - named - shares["softirq"])
    return outcome, {name: round(value, 3) for name, value in shares.items()}
