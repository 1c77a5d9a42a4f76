"""The durable path of revocation: a log in the database that every replica follows.

Redis pub/sub tells every replica of a change within milliseconds, but it
delivers at most once, and only to whoever is listening at that moment. So
every revocation is also appended to the ``revocations`` table, in the same
transaction as the change itself, and each process reads what was appended
since it last looked, four times a second. A revocation therefore reaches
every replica within about a quarter of a second even when its message was
lost, or could not be published at all.

The same log carries the sessions a logout ended (kind ``session``, the
token's ``jti``): every replica forgets what it cached about that session and
reads ``revoked_sessions`` again (``keyplane.services.sessions``).

Sequence numbers may commit out of order on PostgreSQL, and some are never
committed (a rolled-back transaction). The follower remembers which numbers
above its low-water mark it has applied, and waits for a missing one up to
``GAP_PATIENCE_SECONDS`` before passing over it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from keyplane.background import BackgroundTask
from keyplane.cache.invalidation import KINDS, Invalidation, apply
from keyplane.cache.verification import VerificationCache
from keyplane.domain.clock import Clock
from keyplane.errors import KeyplaneError
from keyplane.logs import get_logger
from keyplane.metrics import Metrics
from keyplane.store.engine import Database
from keyplane.store.repositories import Repositories

POLL_SECONDS = 0.25
GAP_PATIENCE_SECONDS = 30.0
MAX_TRACKED_GAPS = 10_000
KEEP_FOR = timedelta(days=1)
PRUNE_EVERY_SECONDS = 3600.0

log = get_logger("keyplane.revocations")


async def record_revocation(repos: Repositories, change: Invalidation, now: datetime) -> None:
    """Append in the caller's transaction: the log holds exactly what was committed."""
    await repos.revocations.append(change.kind, change.id, change.token_hash, now)


class RevocationFollower:
    def __init__(
        self,
        database: Database,
        cache: VerificationCache,
        clock: Clock,
        *,
        interval: float = POLL_SECONDS,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._db = database
        self._cache = cache
        self._clock = clock
        self._interval = interval
        self._low: int | None = None  # every number up to here is applied or passed over
        self._applied: set[int] = set()
        self._gaps: dict[int, float] = {}  # missing number -> when it was first missed
        self._task = BackgroundTask("keyplane-revocations", self._run)
        self._reported_down = False
        self._last_prune: float | None = None  # the first prune is due at once

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def poll(self) -> int:
        """Apply what is new in the log; returns how many revocations were applied."""
        async with self._db.reader() as repos:
            if self._low is None:
                # Nothing is cached yet at start: only what comes next matters.
                self._low = await repos.revocations.last_seq()
                return 0
            rows = await repos.revocations.after(self._low)
        applied = 0
        now = self._clock.now()
        for row in rows:
            if row.seq in self._applied:
                continue
            self._applied.add(row.seq)
            if row.kind in KINDS:
                apply(self._cache, Invalidation(row.kind, row.subject_id, row.token_hash))
                applied += 1
                lag = (now - row.tm_create).total_seconds()
                self._metrics.revocation_lag.observe(max(0.0, lag))
        self._advance(time.monotonic())
        return applied

    def _advance(self, now: float) -> None:
        assert self._low is not None
        top = max(self._applied, default=self._low)
        for seq in range(self._low + 1, min(top, self._low + MAX_TRACKED_GAPS)):
            if seq not in self._applied:
                self._gaps.setdefault(seq, now)
        while True:
            following = self._low + 1
            if following in self._applied:
                self._applied.remove(following)
                self._gaps.pop(following, None)  # it was only late
            elif following in self._gaps and now - self._gaps[following] > GAP_PATIENCE_SECONDS:
                del self._gaps[following]  # rolled back, surely: pass over it
            else:
                return  # not there yet (perhaps not committed yet): wait for it
            self._low = following

    async def _prune(self) -> None:
        now = time.monotonic()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        async with self._db.transaction() as repos:
            await repos.revocations.prune(self._clock.now() - KEEP_FOR)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
                await self._prune()
                if self._reported_down:
                    self._reported_down = False
                    log.info("revocation_log_recovered")
            except KeyplaneError as error:
                if not self._reported_down:
                    self._reported_down = True
                    log.warning("revocation_log_unreachable", reason=error.reason)
            if not await self._task.pause(self._interval):
                return
