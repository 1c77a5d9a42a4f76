"""The prose of ``docs/benchmarks.md``: what each figure measures, and why a missed one misses."""

from __future__ import annotations

INTRO = """
# Benchmarks

Verification runs on every request of every protected API, so its cost is
keyplane's headline figure. `make bench` measures it against baselines on the
same machine, in the same run, and writes this page (generated: edit
`benchmarks/explain.py`, not this file), `benchmarks/results/latest.json` and
the plot below.

Every figure is a **ratio measured side by side**: its two sides run one after
the other, alternating which goes first, over several rounds, and the page gives
the median of the per-round ratios and their spread (lowest to highest). Absolute
requests per second depend on the machine; the ratios much less. Load comes from
[`wrk`](https://github.com/wg/wrk) on loopback (one thread, a bounded number of
connections, a bounded duration); every server has one worker unless stated,
logs JSON to a file, and runs with the customer rate limit raised out of the way
(the benchmarks measure verification, not the limit). The load generator shares
the machine's cores with the server, as it would on a real 2-core host running a
gateway next to keyplane.
"""

EXPLANATIONS = {
    "F1": """
`GET /auth/verify` with a valid access key in `Authorization: Bearer`, answered
from the verification cache, against a bare ASGI app that returns 200 with an
empty body on the same server software (uvicorn, uvloop, httptools). It shows
what keyplane's own work costs on top of the HTTP server: the ceiling is 1.0.
""",
    "F2": """
An authenticated API read, `GET /v1.0/accesskeys/{id}` with an access key
(verification cache hit, one database read for the key), against a FastAPI
route returning a small JSON object on the same server: what authentication,
the database read and keyplane's middleware add to the framework.
""",
    "F3": """
`/auth/verify` with the verification cache disabled (`KEYPLANE_CACHE_MAX_ENTRIES=0`),
so every request reads the key by its hash, cycling through keys spread over the
whole table: a large key table ÷ a small one. Indexed reads should barely notice
the table's size. Quick mode uses a smaller large table than the full run's
1,000,000.
""",
    "F4": """
The latency of one database-backed verification (a cache miss): `AuthService.authenticate`
called in process, with the cache disabled, over the large table of F3 (p99 of
the samples). It includes the failure-budget slot taken and given back around
the read (a Redis round trip each when Redis is configured; in memory here).
""",
    "F5": """
Valid-key verification from one client (a few connections) while another client
sends well-formed but unknown keys from random addresses (`X-Forwarded-For`
from a trusted proxy, 10.x.y.z) on ten times as many connections, ÷ the valid
client alone. Unknown keys cost a hash, a database read and a failure-budget
slot each; they must not crowd out known ones.
""",
    "F6": """
`/auth/verify` throughput while 50 connections log in back to back
(`POST /auth/login`, argon2id at the OWASP floor: 19 MiB, 2 passes) ÷ alone.
""",
    "F7": """
keyplane ÷ djangorestframework-api-key's `HasAPIKey` (Django + DRF, SQLite,
1,000 keys, in its own virtual environment `benchmarks/.django-venv`, gunicorn
with one sync worker): for `/auth/verify` and for keyplane's authenticated API
read against DRF's protected view.
""",
    "F8": """
Resident memory of one worker (the process and its children) holding every key
of a large set in its verification cache (SQLite + Redis so positive entries
live the full TTL), before and after a period of steady load that keeps
verifying all of them. The target is growth under 10%.
""",
    "F9": """
`/auth/verify` on `keyplane serve --workers 2` ÷ `--workers 1`, both driven by a
`wrk` with two threads, on a two-core machine.
""",
    "F10": """
`/auth/verify` on PostgreSQL + Redis ÷ on SQLite, both answered from the
verification cache: a hit should need no round trip to either.
""",
}

# For a figure that misses its target: what limits it and what was tried.
ACCOUNTS: dict[str, str] = {}

REPRODUCE = """
```
make bench            # the full run (about 25 minutes; 1,000,000 keys for F3/F4)
make bench QUICK=1    # under two minutes: 1 s runs, 2 rounds, 10,000 keys for F3/F4
```

`make bench` installs `wrk`, PostgreSQL and Redis with apt-get when missing (as
root), builds `benchmarks/.django-venv` for F7 on first use, and starts every
server itself on 127.0.0.1 with free ports and throwaway directories. The
results are in `benchmarks/results/latest.json` (every round of every side),
the plot in `docs/benchmarks.png`. `python -m benchmarks --help` lists the
options, among them `--out DIR` to write elsewhere.

To see where the time goes in a server, run it under a profiler while `wrk`
drives it, for example
`pyinstrument -r html -o profile.html -m keyplane serve` or
`py-spy record -o profile.svg -- keyplane serve`.
"""
