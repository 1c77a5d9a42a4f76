"""The hourly prune loop of a retention (audit log, events outbox)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from keyplane.background import BackgroundTask
from keyplane.errors import KeyplaneError
from keyplane.logs import get_logger

PRUNE_EVERY_SECONDS = 3600.0


async def prune_every_hour(
    task: BackgroundTask, prune: Callable[[], Awaitable[object]], logger: str, failed_event: str
) -> None:
    """Prune at once, then hourly; a failed round is logged and tried again a minute later."""
    log = get_logger(logger)
    last: float | None = None
    while True:
        if last is None or time.monotonic() - last >= PRUNE_EVERY_SECONDS:
            try:
                await prune()
                last = time.monotonic()
            except KeyplaneError as error:
                log.warning(failed_event, reason=error.reason)
        if not await task.pause(60.0):
            return
