"""The first start: what it creates is in the audit log, made by the operator."""

from __future__ import annotations

import uuid

from keyplane.domain.audit import AuditEntry
from keyplane.domain.clock import FrozenClock
from keyplane.domain.permissions import Identity
from keyplane.services.bootstrap import bootstrap
from keyplane.services.container import Services

OPERATOR = Identity.operator()


async def first_entries(services: Services, customer_id: uuid.UUID) -> list[AuditEntry]:
    return await services.audit.page(
        OPERATOR,
        customer_id,
        types=frozenset(),
        since=None,
        until=None,
        before=None,
        limit=10,
    )


async def test_the_first_start_is_audited_as_the_operator(
    services: Services, clock: FrozenClock
) -> None:
    first = await bootstrap(services.database, clock, services.passwords)
    assert first is not None
    entries = await first_entries(services, first.customer.id)
    assert sorted((e.type, e.subject_id) for e in entries) == sorted(
        [
            ("customer_created", first.customer.id),
            ("agent_created", first.agent.id),
            ("accesskey_created", first.accesskey.id),
        ]
    )
    for entry in entries:
        assert entry.customer_id == first.customer.id
        assert (entry.actor_type, entry.actor_id) == (OPERATOR.type, OPERATOR.id)
        assert entry.tm_create == clock.now()
        assert (entry.address, entry.request_id) == ("", "")
    # A second start creates nothing, so it records nothing.
    assert await bootstrap(services.database, clock, services.passwords) is None
    again = await first_entries(services, first.customer.id)
    assert len(again) == 3
