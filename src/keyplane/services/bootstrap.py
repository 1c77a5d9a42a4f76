"""First start: a customer, an admin agent and an access key, created once."""

from __future__ import annotations

from dataclasses import dataclass

from keyplane.domain.clock import Clock
from keyplane.domain.passwords import generate_password
from keyplane.domain.permissions import Identity, Permission
from keyplane.domain.records import Accesskey, Agent, Customer
from keyplane.errors import AlreadyExists
from keyplane.services.accesskeys import new_accesskey
from keyplane.services.audit import record_audit
from keyplane.services.auth import PasswordWorker
from keyplane.services.customers import new_agent, new_customer
from keyplane.services.events import ACCESSKEY_CREATED, record_accesskey_event
from keyplane.store.engine import Database
from keyplane.store.installation import BOOTSTRAPPED

ONE_YEAR = 365 * 86_400


@dataclass(frozen=True, slots=True)
class FirstStart:
    """What the first start created; the password and token exist only here."""

    customer: Customer
    agent: Agent
    password: str
    accesskey: Accesskey
    token: str


async def bootstrap(
    database: Database, clock: Clock, passwords: PasswordWorker
) -> FirstStart | None:
    """Create the first admin and access key on an empty database, exactly once.

    Returns ``None`` when the installation was already set up (by an earlier
    start, another replica, or customers created with the command line).
    """
    async with database.reader() as repos:
        if await repos.installation.get(BOOTSTRAPPED) is not None:
            return None
    password = generate_password()
    password_hash = await passwords.hash(password)
    now = clock.now()
    try:
        async with database.transaction() as repos:
            await repos.installation.claim(BOOTSTRAPPED, now.isoformat(), now)
            if await repos.customers.count() > 0:
                return None
            customer = new_customer("default", "", "Created on first start.", now)
            agent = new_agent(
                customer.id, "admin", password_hash, int(Permission.CUSTOMER_ADMIN), "", "", now
            )
            key, token = new_accesskey(
                customer.id, "bootstrap", "Created on first start.", ONE_YEAR, now
            )
            await repos.customers.insert(customer)
            await repos.agents.insert(agent)
            await repos.accesskeys.insert(key)
            await record_accesskey_event(repos, ACCESSKEY_CREATED, key, now)
            # As if the operator had typed the commands: the audit log starts complete.
            operator = Identity.operator()
            for event, subject in (
                ("customer_created", customer.id),
                ("agent_created", agent.id),
                (ACCESSKEY_CREATED, key.id),
            ):
                await record_audit(
                    repos, operator, event, customer_id=customer.id, subject_id=subject, now=now
                )
    except AlreadyExists:
        return None  # another process finished the first start
    return FirstStart(customer, agent, password, key, token)
