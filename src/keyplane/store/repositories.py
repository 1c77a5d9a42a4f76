"""The set of repositories bound to one connection (one transaction)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.store.accesskeys import AccesskeyRepository
from keyplane.store.agents import AgentRepository
from keyplane.store.audit import AuditRepository
from keyplane.store.customers import CustomerRepository
from keyplane.store.events import EventRepository
from keyplane.store.installation import InstallationRepository
from keyplane.store.revocations import RevocationRepository


class Repositories:
    __slots__ = (
        "accesskeys",
        "agents",
        "audit",
        "connection",
        "customers",
        "events",
        "installation",
        "revocations",
    )

    def __init__(self, conn: AsyncConnection) -> None:
        self.connection = conn
        self.customers = CustomerRepository(conn)
        self.agents = AgentRepository(conn)
        self.accesskeys = AccesskeyRepository(conn)
        self.audit = AuditRepository(conn)
        self.events = EventRepository(conn)
        self.installation = InstallationRepository(conn)
        self.revocations = RevocationRepository(conn)
