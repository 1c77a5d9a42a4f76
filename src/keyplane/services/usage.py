"""When each access key was last used, written in batches off the request path.

Verification only notes the moment in memory. A background task writes the
notes at most once per key per interval (a minute by default) per replica,
and once more at shutdown, in chunks of ``CHUNK`` keys, each its own short
transaction: on SQLite a write holds the one write lock, and a chunk keeps
that to a few milliseconds even over a table of a million keys (one
transaction for every note held it for over 100 ms).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import datetime

from keyplane.background import BackgroundTask
from keyplane.domain.clock import Clock
from keyplane.errors import KeyplaneError
from keyplane.logs import get_logger
from keyplane.store.engine import Database

log = get_logger("keyplane.usage")
CHUNK = 100  # keys per transaction: about 12 ms of write lock at a million keys
CHUNK_PAUSE = 0.002  # seconds between chunks: other writers take the lock meanwhile


class LastUsedRecorder:
    def __init__(
        self, database: Database, clock: Clock, *, interval: float, chunk: int = CHUNK
    ) -> None:
        self._db = database
        self._clock = clock
        self._interval = interval
        self._chunk = chunk
        self._pending: dict[uuid.UUID, datetime] = {}
        self._task = BackgroundTask("keyplane-last-used", self._run)

    def mark(self, key_id: uuid.UUID, now: datetime | None = None) -> None:
        """Note a use of the key at ``now`` (the clock's time if not given)."""
        self._pending[key_id] = self._clock.now() if now is None else now

    async def flush(self) -> int:
        """Write what was noted, chunk by chunk; returns how many keys were written."""
        pending, self._pending = self._pending, {}
        notes = iter(pending.items())
        written = 0
        while chunk := dict(itertools.islice(notes, self._chunk)):
            if written:
                await asyncio.sleep(CHUNK_PAUSE)
            try:
                async with self._db.transaction() as repos:
                    await repos.accesskeys.touch_last_used(chunk)
            except KeyplaneError:
                # Keep the unwritten notes for the next round; newer notes win.
                for key_id, moment in itertools.chain(chunk.items(), notes):
                    self._pending.setdefault(key_id, moment)
                raise
            written += len(chunk)
        return written

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        try:
            await self.flush()
        except KeyplaneError as error:
            log.warning("last_used_not_written", reason=error.reason, keys=len(self._pending))

    async def _run(self) -> None:
        while await self._task.pause(self._interval):
            try:
                await self.flush()
            except KeyplaneError as error:
                log.warning("last_used_not_written", reason=error.reason, keys=len(self._pending))
