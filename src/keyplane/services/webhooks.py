"""Webhook delivery from the durable outbox, and the customer's view of it.

Every event is written to the ``events`` table in the transaction of the
change it describes. Each replica runs a ``WebhookDispatcher`` that, every
``KEYPLANE_WEBHOOK_POLL_INTERVAL`` seconds, leases a batch of due events
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas never take the same
rows; SQLite has one writer), delivers them outside any transaction, and
records the outcome. Delivery is at least once: a replica that dies after
delivering and before recording leaves a lease that expires, and the event
is sent again with the same ``Keyplane-Event-Id`` (the idempotency key).
Failures are retried with exponential backoff up to
``KEYPLANE_WEBHOOK_MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from keyplane.background import BackgroundTask
from keyplane.domain import webhooks
from keyplane.domain.clock import Clock
from keyplane.domain.permissions import (
    Identity,
    Permission,
    has_permission,
    require_secret_keeper,
)
from keyplane.domain.records import Customer, Delivery
from keyplane.errors import KeyplaneError, NotFound, PermissionDenied
from keyplane.logs import get_logger
from keyplane.services.audit import record_audit
from keyplane.services.outbound import OutboundClient, Outcome
from keyplane.store.engine import Database
from keyplane.store.events import LeasedEvent

log = get_logger("keyplane.webhooks")

MANAGE = int(Permission.CUSTOMER_ADMIN | Permission.CUSTOMER_MANAGER)


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    poll_interval: float
    batch: int
    lease: timedelta
    max_attempts: int
    backoff_base: float
    backoff_max: float


class WebhookDispatcher:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        outbound: OutboundClient,
        server_key: str,
        policy: DispatchPolicy,
    ) -> None:
        self._db = database
        self._clock = clock
        self._outbound = outbound
        self._server_key = server_key
        self._policy = policy
        self._task = BackgroundTask("keyplane-webhooks", self._run)
        self._reported_down = False

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        await self._outbound.aclose()

    async def dispatch_once(self) -> int:
        """Lease what is due, deliver it, record the outcomes; returns how many were leased."""
        now = self._clock.now()
        until = now + self._policy.lease
        async with self._db.transaction() as repos:
            leased = await repos.events.lease_due(now, until, limit=self._policy.batch)
        customers: dict[uuid.UUID, Customer | None] = {}
        for event in leased:
            if event.customer_id not in customers:
                async with self._db.reader() as repos:
                    customers[event.customer_id] = await repos.customers.get(event.customer_id)
            await self._deliver(event, customers[event.customer_id], until)
        return len(leased)

    async def _deliver(
        self, event: LeasedEvent, customer: Customer | None, lease: datetime
    ) -> None:
        if customer is None or customer.tm_delete is not None or not customer.webhook_uri:
            await self._record(event, lease, "skipped", "no webhook is set", retry=False)
            return
        body = json.dumps(
            {"type": event.type, "data": event.payload}, separators=(",", ":"), ensure_ascii=False
        ).encode()
        secret = webhooks.signing_secret(
            self._server_key, customer.id, customer.webhook_secret_generation
        )
        timestamp = int(self._clock.now().timestamp())
        event_id = str(event.id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "keyplane-webhooks",
            # v2 signs the event id with the body: a replay under a fresh id fails it.
            webhooks.SIGNATURE_HEADER: webhooks.signature(secret, timestamp, event_id, body),
            webhooks.EVENT_ID_HEADER: event_id,
            webhooks.IDEMPOTENCY_HEADER: event_id,
        }
        method = customer.webhook_method or "POST"
        outcome: Outcome = await self._outbound.send(method, customer.webhook_uri, body, headers)
        if outcome.delivered:
            await self._record(event, lease, "delivered", "", retry=False)
        else:
            await self._record(event, lease, "failed", outcome.error, retry=outcome.retry)

    async def _record(
        self, event: LeasedEvent, lease: datetime, status: str, error: str, *, retry: bool
    ) -> None:
        now = self._clock.now()
        attempts = event.attempts + (0 if status == "skipped" else 1)
        next_attempt: datetime | None = None
        if status == "failed" and retry and attempts < self._policy.max_attempts:
            status = "pending"
            next_attempt = now + webhooks.backoff(
                attempts, self._policy.backoff_base, self._policy.backoff_max
            )
        async with self._db.transaction() as repos:
            await repos.events.record_attempt(
                event.seq,
                lease,
                status=status,
                attempts=attempts,
                error=error,
                next_attempt=next_attempt,
                delivered=now if status == "delivered" else None,
            )

    async def _run(self) -> None:
        while True:
            try:
                while await self.dispatch_once() >= self._policy.batch:
                    pass  # more is due: go on at once
                if self._reported_down:
                    self._reported_down = False
                    log.info("webhook_outbox_recovered")
            except KeyplaneError as error:
                if not self._reported_down:
                    self._reported_down = True
                    log.warning("webhook_outbox_unreachable", reason=error.reason)
            if not await self._task.pause(self._policy.poll_interval):
                return


class WebhookService:
    """The customer's side: its signing secret and the delivery status of its events."""

    def __init__(self, database: Database, clock: Clock, server_key: str) -> None:
        self._db = database
        self._clock = clock
        self._server_key = server_key

    @staticmethod
    def _require_manager_of(identity: Identity, customer_id: uuid.UUID) -> None:
        if not has_permission(identity, customer_id, MANAGE):
            raise PermissionDenied(
                "Webhooks need the customer admin or manager permission.",
                reason="PERMISSION_DENIED",
            )

    async def _customer(self, customer_id: uuid.UUID) -> Customer:
        async with self._db.reader() as repos:
            customer = await repos.customers.get(customer_id)
        if customer is None or customer.tm_delete is not None:
            raise NotFound("The customer was not found.", reason="CUSTOMER_NOT_FOUND")
        return customer

    async def secret(self, identity: Identity, customer_id: uuid.UUID) -> str:
        """The signing secret: whoever reads it can forge deliveries, so reading is a write."""
        require_secret_keeper(identity, customer_id, "Reading the webhook secret")
        customer = await self._customer(customer_id)
        return webhooks.signing_secret(
            self._server_key, customer.id, customer.webhook_secret_generation
        )

    async def rotate_secret(self, identity: Identity, customer_id: uuid.UUID) -> str:
        """A new secret; the old one signs nothing from now on."""
        require_secret_keeper(identity, customer_id, "Replacing the webhook secret")
        async with self._db.transaction() as repos:
            now = self._clock.now()
            generation = await repos.customers.next_webhook_secret_generation(customer_id, now=now)
            if generation is None:
                raise NotFound("The customer was not found.", reason="CUSTOMER_NOT_FOUND")
            await record_audit(
                repos,
                identity,
                "customer_webhook_secret_replaced",
                customer_id=customer_id,
                subject_id=customer_id,
                now=now,
            )
        return webhooks.signing_secret(self._server_key, customer_id, generation)

    async def deliveries(
        self, identity: Identity, customer_id: uuid.UUID, *, limit: int, before: int | None
    ) -> list[Delivery]:
        """The customer's events and their delivery status, newest first."""
        self._require_manager_of(identity, customer_id)
        async with self._db.reader() as repos:
            return await repos.events.deliveries(customer_id, limit=limit, before=before)
