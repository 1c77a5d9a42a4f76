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
gateway next to keyplane. Quick runs (`QUICK=1`) on a shared machine are noisy:
read a ratio together with its spread, and prefer the full run's figures.
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
verifying all of them. The target is growth under 10%. The warm-up verifies
every key once, each `wrk` run going on from the token where the last one
stopped, until the worker's `keyplane_verification_cache_entries` counts them
all; the details give that count before and after the steady load. An earlier
warm-up began each run at the first token again, so it cached only the keys one
run reaches, and the cache filled during the measurement: 100,000 keys at about
650 bytes each (S6) were the +51% (133.7 → 201.4 MiB) it reported.
""",
    "F9": """
`/auth/verify` on `keyplane serve --workers 2` ÷ `--workers 1`, both driven by a
`wrk` with two threads, on a two-core machine.
""",
    "F10": """
`/auth/verify` on PostgreSQL + Redis ÷ on SQLite, both answered from the
verification cache: a hit should need no round trip to either.
""",
    "S1": """
Data scale (`benchmarks/scale.py`): a database seeded by `benchmarks/seed.py`
(full run: 1,001 customers, 1,000,000 keys, customer 0 holding 100,000; quick
run: 31 customers, 30,000 keys, customer 0 holding 10,000) is served by
`keyplane serve`. The median latency of `GET /v1.0/accesskeys` (100 per page)
for page 1,000 (quick: page 100, the last) ÷ page 1, over HTTP. The page
cursor is a row-value range of the live-key index, so a deep page costs what
the first does; before, both databases read every key above the cursor.
""",
    "S2": """
The first page of customer 0 with its newest 50,000 keys (quick: 5,000)
soft-deleted ÷ with none deleted; the two states alternate in place (one id
range updated each time; on PostgreSQL a `VACUUM ANALYZE` after each, as
autovacuum would). The listing index holds live keys only, so deleted keys
cost a page nothing.
""",
    "S3": """
Reading every page of customer 0 (100,000 keys; quick: 10,000) ÷ reading every
page of a customer holding 900 (quick: 666), per key: the work of a client
that pages through everything should grow with the keys, not with their
square. Below 1 is possible: a large customer's keys lie together on disk,
a small customer's among everyone else's.
""",
    "S4": """
`keyplane accesskey list --customer-id` of customer 0 (100,000 keys; quick:
10,000), its output (the default table) to a pipe: wall time and the peak
resident memory of the command (`wait4`'s `ru_maxrss`), start-up included.
The targets (10 s, 150 MB) are for 100,000 keys: smaller runs report the
figures without judging them.
""",
    "S5": """
`VerificationCache.invalidate_customer` on a full cache of 100,000 key entries
(in process), for a customer holding 100 of them (a thousand customers share
the cache): the median of 50 drops per round. The cache is indexed by
customer, so a drop costs that customer's entries; before, it walked the
whole cache (40 ms at 100,000). The details give the drop of a customer
holding 1,000 entries.
""",
    "S6": """
A full verification cache of 100,000 access keys, in process: the Python
allocations it holds (`tracemalloc`) ÷ its entries, i.e. what each cached key
costs (the token hash as the key, the `VerifiedKey`, its ids and expiry, the
deadline, the LRU and customer index). Reported, no target;
`docs/capacity.md` plans cache memory from it.
""",
}

# For a figure that misses its target: what limits it and what was tried.
ACCOUNTS: dict[str, str] = {
    "S1": """
The full run meets it (page 1,000 of 100,000 keys ÷ page 1: 1.00 on SQLite,
1.03 on PostgreSQL, `docs/capacity.md`), and both databases' plans seek to
the cursor (`tests/integration/test_query_plans.py`): a deep page's cost does
not grow with its depth. Quick runs on a shared, loaded machine have shown
1.2 to 1.3 at page 100 of 10,000; the difference is not depth (ten times
deeper costs no more in the full run) and is not yet explained: the deep
page's statement differs from the first page's only by the cursor's
condition and its decoding.
""",
    "S4": """
The command streams: it prints each page of 100 (table or JSON array, one
object per line) before it fetches the next, through the seeking cursor, so
its memory does not grow with the keys (`docs/cli.md`). Measured by hand on
this machine with a database seeded by `benchmarks/seed.py` (one customer,
100,000 keys, SQLite), output to a file: 3.9 s and 102 MiB peak for the table,
3.9 s and 102 MiB for `--json`; 10,000 keys take about the same memory. Most
of the memory is the interpreter with keyplane's imports (rich, SQLAlchemy,
FastAPI); most of the time is the rendering of each row.
""",
    "F1": """
Measured by the CPU each server spends per request (from `/proc`, during the
same alternating `wrk` runs; steadier than requests/s on a shared machine,
load average 12): the bare app 15.5 µs, keyplane's `/auth/verify` 54 µs, so
F1 is about 0.29 by CPU. What the 38 µs are: keyplane's own verification,
19 µs in process on a quiet machine (25-35 µs loaded; about 126 Python calls:
reading the headers, the well-formedness check and SHA-256 of the key, the
cache lookup, the customer's GCRA step, a request id, the answer's headers,
and the `/metrics` counters and histogram, about a sixth of it in a profile
(1.5 µs timed alone), each `inc`/`observe` taking a lock); uvicorn's
per-header loop (two regular expressions, a lower-casing and three
comparisons per header: 15 headers cost about 10 µs against 2 µs for the
bare app's 3, timed on the loaded machine); keyplane's guarded httptools
protocol, whose Python overrides of four parser callbacks and
`data_received` cost the bare app 2.6 µs per request (14.6 →
17.2 µs); uvicorn's proxy-headers middleware, about 1 µs. Tried, with effect:
answering `/auth/verify` before FastAPI's own middleware: 34 → 19 µs in
process, F1 0.23 → 0.29; no request-wide database budget on `/auth/verify`, a
request id from `os.urandom` instead of `uuid4` (and since from the
`random` module: `os.urandom`'s `getrandom` system call was 6% of the
server's CPU per verification, 83.8 → 78.7 µs, 11,646 → 12,437 requests/s,
five alternating rounds against the commit before), one clock read per
verification, the rate-limit headers written as bytes: Python calls 153 → 123,
F1 0.25 → 0.39 in quick runs; the header read timeout as one timer per
connection instead of a timer armed and cancelled per request (17.9 → 17.2 µs
of CPU per request for the bare app behind the guarded protocol); the request
id read in the same pass as the other headers (Python calls 127.8 → 125.8 in
this profile, below what a run can show); the `/metrics` counts as plain
Python numbers (an int per counter, a list of bucket counts and a sum per
histogram, `bisect` for the bucket), turned into metric families only at a
scrape: a verification's counting (a cache hit, its result, its duration)
1.54 → 0.23 µs, `inc` 336 → 38 ns, `observe` 701 → 137 ns (timeit, 1,000,000
calls, medians of five alternating rounds in one process), so about 1.3 µs
of the 54 µs; not yet measured by a `wrk` run. Where a verification's
CPU goes in the busy server (py-spy, 6 s under `wrk`): keyplane's
verification 42% (the customer's GCRA step 10%, the cache lookup 7%, the
UUIDs written as text 4%); uvicorn's `RequestResponseCycle.send` 36% (the
per-header loop about 10%, the system call that writes the answer 22%); the
event loop and reading the request most of the rest. Not done: fewer response
headers (they are the gateway contract and are tested on every answer);
skipping uvicorn's header checks, which would mean replacing its
`RequestResponseCycle.send`. Meeting 0.6 needs about 26 µs of CPU per
verification, server included; the cheaper counting leaves about 53.
""",
    "F2": """
Server CPU per request, from `/proc` during alternating `wrk` runs: the
minimal FastAPI route about 71 µs; keyplane's authenticated `GET
/v1.0/accesskeys/{id}` 898 µs before any of the work below, 722 µs after the
first round, 620 µs after the second (and 711 µs for the commit before it, in
the same run). First round (F2 by requests/s 0.061 → 0.110): resolving the
services without FastAPI's thread pool and SQLite reads on the loop's thread
(600-670 → 700-1,000 requests/s); the security schemes written into
`/openapi.json` instead of run as dependencies, one request-wide database
budget, no response-model pass on the reads (Python calls per request 2,634 →
2,110); the key reads built once with bind parameters, rows mapped by position
(2,110 → 1,912); the services read from the request instead of a dependency
(1,912 → 1,836). Second round (1,408 → 1,609 requests/s, five alternating
rounds against the commit before, in one run; F2 0.14 → 0.16 in full runs):
the access log line redacts a structlog event's fields once instead of twice
and looks up no caller frame (43 → 31 µs for a line alone); inline SQLite
reads hand back the cursor's result instead of a frozen copy of it (17 µs less
per read); the access key routes are matched before the other routers instead
of after five of them; the request id and security headers are set in one pass
over the response's headers (4.3 → 1.3 µs alone). Where the 620 µs go (py-spy,
6 s of the server under `wrk`): the access log line about a fifth (turning it
off with `KEYPLANE_LOG_LEVEL=WARNING` saved 165 µs per request side by side in
another run, 711 → 546 µs; a line alone takes 31 µs, but in a busy server each
part of a request costs several times its cost alone, its code and data gone
from the caches since the last request); the key read a quarter (SQLAlchemy
Core runs the cached statement in 25 µs where `sqlite3` alone takes 4.7 µs,
and the reader's connection from the pool takes 12 µs); FastAPI's dependency
resolution a fifth, half of it the identity check itself; Starlette's and
FastAPI's layers (middleware, routing, the response's chain of `send`
wrappers) about a quarter. Reaching 0.8 means about 90 µs per request, what
the minimal route and a log line alone cost: the target needs this read
answered without FastAPI (a second implementation of the contract's read
beside the documented route, where the house style keeps one place for each
rule), the key read without SQLAlchemy, and no access line: keyplane does none
of these. Measured and not done: orjson for the body and the log line (3.4 →
0.16 µs and 3.6 → 0.19 µs alone: a few percent of the request, and a log
format change); no process id in log records (two `getpid` system calls per
line: no difference side by side, 741.7 against 743.2 µs).
""",
    "F3": """
PostgreSQL meets it (1.03 in the last full run). SQLite is at the target's
edge: 0.91 (spread 0.89-0.99) in the last full run, after the reads' page
cache grew from SQLite's default 2 MiB to 32 MiB (`store/engine.py`,
`INLINE_CACHE_KIB`; 0.89 before; 0.78 → 0.87 side by side in one run on a
loaded machine). Both are the same indexed read (the query-plan tests prove
the index is used at every size). What differs is the read itself: the
token-hash index of 1,000,000 keys is four levels deep and the table three,
against two and two at 1,000 keys, and the rotating client's keys are spread
over 8 MiB of pages instead of a few hundred KiB, so each level costs cache
misses of the processor. A profile of both servers under the same load
(py-spy, 12 s each) puts SQLite's own statement at 10.9% of the process's
samples with 1,000,000 keys and 2.6% with 1,000; everything else is the
same. Not tried: a covering index (the read fetches every column of the key
for its record) or a 32-byte binary token hash instead of 64 hex characters,
which would make the index shallower; both change the schema.
""",
    "F4": """
SQLite meets it in every full run (20,000 samples; the last: p50 0.18 ms, p99
0.36 ms). PostgreSQL's median is steady, its 99th percentile is not: p50 0.63
ms and p99 1.15 ms in the last full run and 0.58 and 1.19 ms in the one before
(both met), 0.71 and 2.37 ms, 0.70 and 2.58 ms and 0.72 and 1.76 ms before
those, all on a quiet machine. Not the cause: the idle keyplane servers the
run keeps from F3, whose revocation followers poll PostgreSQL 4 times a second
(10,000 keys: p99 1.07 and 1.09 ms with four of them running, 1.00 and 1.09 ms
with none). On PostgreSQL a miss used to make four round trips: the pool's
`pool_pre_ping` on every checkout, then `BEGIN`, the indexed read and
`ROLLBACK` (SQLAlchemy begins a transaction on first use). The pool now pings
a connection only when it sat idle for a second (`store/engine.py`,
`PING_AFTER_IDLE_SECONDS`), and reads run in autocommit (`Database.reader`:
READ COMMITTED gives each statement its own snapshot anyway), so a miss under
load is one round trip: p99 2.85 ms → 1.76 ms, p50 0.86 → 0.72 ms on the same
quiet machine. SQLite reads run on the event loop's thread
(`_InlineConnection`; median 0.67 → 0.26 ms). The 99th percentile is the one
sample in a hundred that waits for the event loop's other work or PostgreSQL's
(the run keeps PostgreSQL, Redis and keyplane on two cores); with a load
average of 10 it was 20-50 ms.
""",
    "F5": """
The event loop served connections in turn, and the flood has ten times the
connections; every unknown key costs what a cache miss costs (hash, database
read, a failure-budget slot from a fresh address, a negative cache entry),
several times a cached valid key, so the valid client got about 1/30 of its
rate (0.036). Cache misses are now admitted through a gate
(`services/admission.py`): `KEYPLANE_VERIFY_MISS_CONCURRENCY` at once (1 on
a SQLite file, whose inline reads never wait), up to
`KEYPLANE_VERIFY_MISS_QUEUE` (512) wait at no cost, and beyond that 503 with
`Retry-After: 1` before any work: 0.036 → 0.59-0.68. What was left is one miss
per loop turn: each admitted miss let the loop run one turn first, and the 4
valid connections' next requests are read a turn or two after their answers,
so a miss ran between nearly every pair of hits. An admitted miss now lets the
loop run 8 turns (`YIELD_TURNS`), and hits read meanwhile go first: with 2
turns 0.62-0.64, 4 turns 0.72-0.74, 8 turns 0.79-0.89, 16 turns 0.84-0.90 in
quick runs, while misses alone run as fast as before (2,000-2,600 a second:
an idle turn costs microseconds). The last full run, on a quiet machine:
0.85 (spread 0.84-0.86). On PostgreSQL (4 misses at once) misses wait on the
network, so hits run meanwhile; not measured by this figure.
""",
    "F6": """
Two effects made verification wait behind logins. First, the 50 logins are
the same user from one address: beyond the username's failure budget (10)
a pending login blocked the username for a minute, so 99% of the logins
were answered 429 at once, about 700 a second through the full API stack,
and the loop served those 50 busy connections ahead of the 32 verifying
ones (0.04). Logins of one user beyond the budget now wait for the pending
ones, as the address budget already did (a right password gives its slot
back), so the logins all succeed at about 30 a second and wait, at no cost
to the loop, for argon2. Second, without Redis a verified key stays cached
for only `KEYPLANE_CACHE_FALLBACK_TTL` (1 s), and its re-verification took
a slot of its address's failure budget, which queued behind the pending
logins' slots from the same address: the username's slot is now taken
before the address's (waiting logins hold no address slot), and a key found
valid within `KEYPLANE_CACHE_TTL` is re-verified without a slot
(`VerificationCache.recently_valid`). Quick runs: 0.04 → 0.72; 0.61
(0.54-0.67) on a quiet machine, where argon2, two hashes at a time, kept both
cores busy beside the loop. `KEYPLANE_PASSWORD_HASH_CONCURRENCY` now defaults
to the CPUs less one (1 here), leaving the loop a core: 0.90 (spread
0.89-1.00) in the last full run, on a quiet machine.
""",
    "F7": """
DRF's `HasAPIKey` checks the key with a hasher on every request and runs in
one synchronous worker; keyplane's `/auth/verify` answers from its cache,
and is bound by F1's costs: 18.5 in the last full run (rounds from 17.6 to
20.2), 16.9 to 18.4 in the full runs before request ids stopped costing a
system call (F1's account); 20 needs about 8% less server CPU per
verification. The API read (1.86 in the last full run) is bound by the same
costs as F2: about 620 µs of CPU per request after the work described
there, against DRF's whole request (Django, DRF, the key's hasher, SQLite)
in one synchronous process; 5 needs the API read near 250 µs.
""",
    "F9": """
Two causes, both fixed. The two workers used to share one listening socket,
and whichever woke first accepted every connection waiting: `wrk` opens its
32 keep-alive connections in a burst, so one worker held about 34 of them and
the other 0-4. Each worker now listens on a socket of its own on the port
(`SO_REUSEPORT`, `cli/listening.py`;
`tests/functional/test_server.py::test_two_workers_each_listen_and_share_a_burst_of_connections`).
The figure stayed about 1 (0.95), because each request then cost a worker
twice the CPU (95 µs against 168 µs, from the cores account above): a worker
process configured logging after uvicorn had turned its access lines off,
and turned them on again, so with `--workers 2` every request also wrote
uvicorn's access line (a profile of one worker: structlog, `logging` and
the redaction of each line). The access lines now stay as uvicorn's
`--uvicorn-access-log` option leaves them
(`tests/functional/test_server.py::test_serve_with_two_workers` counts the
lines): 160-171 → 84-91 µs per request, and 1.72-1.80 by hand (`wrk -t2
-c32`, 6 s, two rounds). For comparison, the minimal FastAPI route served by
two processes on `SO_REUSEPORT` sockets gives 1.75-1.85 on this machine.
The last full run's median, 1.64, has rounds of 1.04, 1.64 and 1.76: its
first round began when one worker answered `/health/ready`, before the
second listened, and measured one worker alone (12,000 requests/s against
17,500-18,100 in the next two; the cores account's own run, 1.70). The
harness now waits until every worker listens (`benchmarks/servers.py`,
`_wait_listening`); the quick run after it: 1.78, rounds 1.77 and 1.79.
""",
    "F10": """
With Redis, each request with a valid credential used to make one Redis round
trip for the customer's rate limit even on a cache hit. The customer's budget
is taken from Redis in batches (`BatchingLimiter`, 5% of the burst per round
trip; the bound on how far a customer can exceed its rate across N processes
is in [security](security.md#rate-limits-against-guessing)): 0.32 → 0.52.
Then a measurement found the batching defeated under concurrency: requests
arriving while a batch was being reserved each reserved their own, so with
32 connections a process made an `EVALSHA` for about one request in four
(2,689 requests: 658 round trips, 32 Redis connections opened) and spent up
to 32 batches of the customer's budget for one. One batch per customer is
now in flight per process (18,700 requests: 260 round trips): 0.33 → 0.60
in a quick run with the test suite running beside it (spread 0.22-1.18). A
cache hit makes no database round trip on either side; what remains is the
noise of a shared 2-core machine (PostgreSQL, Redis and their clients compete
for the cores) and the background work of a replica with PostgreSQL and
Redis (invalidation listener, revocation-log polling).
""",
}

REPRODUCE = """
<!-- not run: minutes long; tests/functional/test_bench.py runs the smoke mode -->
```sh
make bench            # the full run (about 35 minutes; 1,000,000 keys for F3/F4, S1-S4)
make bench QUICK=1    # about two minutes: 1 s runs, 2 rounds, 10,000 keys for F3/F4,
                      # 30,000 keys for S1-S4
python -m benchmarks --mode quick --figures scale   # S1-S6 only (speed: F1-F10 only);
                      # the other group's figures are kept from the last results, and
                      # the page says which run measured which
python -m benchmarks.seed DATABASE_URL --customers 1001 --keys 1000000 --big 100000
```

`benchmarks/seed.py` fills a migrated database (SQLite or PostgreSQL) with
deterministic customers and keys (key `n` has the token `seeded_token(n)`),
in bulk inserts through keyplane's table definitions: a million keys in one
to two minutes.

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
