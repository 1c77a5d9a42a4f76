"""Expiring-soon notices: an ``accesskey_expiring`` event at each lead time before a key
expires (14 and 3 days by default, ``KEYPLANE_ACCESSKEY_EXPIRING_NOTICE_DAYS``).

Every replica scans every ``KEYPLANE_ACCESSKEY_EXPIRING_SCAN_INTERVAL``
seconds. A notice is sent once per key per lead time however many replicas
scan: the event is written in the same transaction as a row of
``expiry_notices`` whose primary key is (key, lead time), so of two replicas
racing for the same notice one commits and the other's insert is refused and
rolled back, event included.

A lead time counts only when its moment fell within the key's life
(``tm_expire - lead >= tm_create``): a key made for two days gets no
three-day notice. When several lead times are due at once (a scan after a
long pause), only the shortest is sent; the longer ones are marked sent.
Deleted, disabled and rotated keys get none.
"""

from __future__ import annotations

from datetime import timedelta

from keyplane.background import BackgroundTask
from keyplane.domain.clock import Clock
from keyplane.errors import AlreadyExists, KeyplaneError
from keyplane.logs import get_logger
from keyplane.services.events import ACCESSKEY_EXPIRING, record_accesskey_event
from keyplane.store.engine import Database

log = get_logger("keyplane.notices")
BATCH = 500


class ExpiryNotifier:
    def __init__(
        self, database: Database, clock: Clock, *, lead_days: tuple[int, ...], interval: float
    ) -> None:
        self._db = database
        self._clock = clock
        self._leads = tuple(sorted({timedelta(days=days) for days in lead_days}))
        self._interval = interval
        self._task = BackgroundTask("keyplane-expiry-notices", self._run)
        self._reported_down = False

    async def start(self) -> None:
        if self._leads:
            self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def scan_once(self) -> int:
        """Send the notices that are due; returns how many this replica sent."""
        sent = 0
        now = self._clock.now()
        for lead in self._leads:
            async with self._db.reader() as repos:
                due = await repos.accesskeys.expiring_without_notice(now, lead, limit=BATCH)
            for key in due:
                if key.tm_expire - lead < key.tm_create:
                    continue  # the lead moment came before the key existed
                longer = [
                    other
                    for other in self._leads
                    if other > lead and key.tm_expire - other >= key.tm_create
                ]
                try:
                    async with self._db.transaction() as repos:
                        done = await repos.accesskeys.notices_sent(key.id)
                        for other in longer:
                            if other not in done:  # superseded by this shorter notice
                                await repos.accesskeys.record_notice(key.id, other, now)
                        await repos.accesskeys.record_notice(key.id, lead, now)
                        await record_accesskey_event(repos, ACCESSKEY_EXPIRING, key, now)
                except AlreadyExists:
                    continue  # another replica is sending it (or a longer one): next scan
                sent += 1
        return sent

    async def _run(self) -> None:
        while True:
            try:
                await self.scan_once()
                if self._reported_down:
                    self._reported_down = False
                    log.info("expiry_notices_recovered")
            except KeyplaneError as error:
                if not self._reported_down:
                    self._reported_down = True
                    log.warning("expiry_notices_unavailable", reason=error.reason)
            if not await self._task.pause(self._interval):
                return
