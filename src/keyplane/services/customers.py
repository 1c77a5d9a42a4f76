"""Customers (tenants) and their agents."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from keyplane.cache.invalidation import Invalidation, Invalidator
from keyplane.domain import webhooks
from keyplane.domain.clock import Clock
from keyplane.domain.emails import email_problem
from keyplane.domain.networks import Networks
from keyplane.domain.passwords import check_new_password
from keyplane.domain.permissions import (
    MAX_PERMISSION,
    Identity,
    Permission,
    has_permission,
    is_documented,
    require_secret_keeper,
)
from keyplane.domain.records import Accesskey, Agent, Customer
from keyplane.errors import InvalidArgument, InvalidCredentials, NotFound, PermissionDenied
from keyplane.services.audit import record_audit
from keyplane.services.auth import PasswordWorker
from keyplane.services.revocations import record_revocation
from keyplane.store.engine import Database


def new_customer(name: str, email: str, detail: str, now: datetime) -> Customer:
    return Customer(
        id=uuid.uuid4(),
        name=name,
        detail=detail,
        email=email,
        webhook_method="",
        webhook_uri="",
        tm_create=now,
        tm_update=None,
        tm_delete=None,
    )


def new_agent(
    customer_id: uuid.UUID,
    username: str,
    password_hash: str,
    permission: int,
    name: str,
    detail: str,
    now: datetime,
) -> Agent:
    return Agent(
        id=uuid.uuid4(),
        customer_id=customer_id,
        username=username,
        password_hash=password_hash,
        name=name,
        detail=detail,
        permission=permission,
        tm_create=now,
        tm_update=None,
        tm_delete=None,
    )


PROFILE_EDITORS = int(Permission.CUSTOMER_ADMIN | Permission.CUSTOMER_MANAGER)
PROFILE_FIELDS = ("name", "detail", "email", "phone_number", "address")
MAX_FIELD = 1024


def validate_profile(profile: dict[str, str], webhook_allowed: Networks) -> dict[str, str]:
    """The fields to store, or ``InvalidArgument`` saying which one is wrong."""
    fields = {name: profile.get(name, "") for name in PROFILE_FIELDS}
    for name, value in fields.items():
        if len(value) > MAX_FIELD:
            raise InvalidArgument(f"'{name}' is longer than {MAX_FIELD} characters.")
    uri = profile.get("webhook_uri", "")  # kept whole: a space or CR in it is refused
    method = profile.get("webhook_method", "").strip().upper()
    if method and method not in webhooks.METHODS:
        raise InvalidArgument(
            "'webhook_method' must be POST or PUT (or empty for POST).",
            reason="INVALID_WEBHOOK_METHOD",
        )
    if uri:
        problem = webhooks.webhook_uri_problem(uri, webhook_allowed)
        if problem:
            raise InvalidArgument(f"'webhook_uri' {problem}.", reason="INVALID_WEBHOOK_URI")
        method = method or "POST"
    fields.update(webhook_uri=uri, webhook_method=method)
    return fields


def check_email(email: str) -> None:
    """Refuse an email that cannot be an address (empty is allowed: no contact)."""
    problem = email_problem(email)
    if problem:
        raise InvalidArgument(f"'email' {problem}.", reason="INVALID_EMAIL")


def webhook_destination(uri: str, method: str) -> tuple[str, str]:
    """Where events go, as stored fields say it: an empty method means POST, no URI nowhere."""
    return (uri, (method or "POST") if uri else "")


def _customer_not_found() -> NotFound:
    return NotFound("The customer was not found.", reason="CUSTOMER_NOT_FOUND")


def _agent_not_found() -> NotFound:
    return NotFound("The agent was not found.", reason="AGENT_NOT_FOUND")


class CustomerService:
    def __init__(
        self, database: Database, clock: Clock, passwords: PasswordWorker, invalidator: Invalidator
    ) -> None:
        self._db = database
        self._clock = clock
        self._passwords = passwords
        self._invalidator = invalidator

    async def create_customer(
        self, identity: Identity, *, name: str, email: str = "", detail: str = ""
    ) -> Customer:
        self._require_super_admin(identity)
        if not name.strip():
            raise InvalidArgument("A customer needs a non-empty name.", reason="INVALID_NAME")
        check_email(email)
        customer = new_customer(name, email, detail, self._clock.now())
        async with self._db.transaction() as repos:
            await repos.customers.insert(customer)
            await record_audit(
                repos,
                identity,
                "customer_created",
                customer_id=customer.id,
                subject_id=customer.id,
                now=customer.tm_create,
            )
        return customer

    async def update_customer(
        self,
        identity: Identity,
        customer_id: uuid.UUID,
        *,
        profile: dict[str, str],
        webhook_allowed: Networks,
    ) -> Customer:
        """VoIPBIN's PUT /v1.0/customer: every field is replaced (a missing one is empty).

        Changing where events go (the webhook's URI or method, removing it
        included) needs what reading the webhook secret needs; a PUT that
        sends the webhook back as it is changes only the profile.
        """
        if not has_permission(identity, customer_id, PROFILE_EDITORS):
            raise PermissionDenied(
                "Changing the customer needs the customer admin or manager permission.",
                reason="PERMISSION_DENIED",
            )
        fields = validate_profile(profile, webhook_allowed)
        async with self._db.transaction() as repos:
            current = await repos.customers.get(customer_id)
            if current is None or current.tm_delete is not None:
                raise _customer_not_found()
            if fields["email"] != current.email:
                # Checked when it changes: one stored before the check came is sent back as is.
                check_email(fields["email"])
            wanted = webhook_destination(fields["webhook_uri"], fields["webhook_method"])
            if wanted == webhook_destination(current.webhook_uri, current.webhook_method):
                # Left as stored: a concurrent change of the webhook is not undone.
                del fields["webhook_uri"], fields["webhook_method"]
            else:
                require_secret_keeper(
                    identity,
                    customer_id,
                    "Changing the webhook",
                    hint="To change only the profile, send webhook_uri and webhook_method "
                    "as GET /v1.0/customer shows them.",
                )
            now = self._clock.now()
            updated = await repos.customers.update_profile(customer_id, now=now, **fields)
            if updated is None:
                raise _customer_not_found()
            await record_audit(
                repos,
                identity,
                "customer_updated",
                customer_id=customer_id,
                subject_id=customer_id,
                now=now,
            )
        return updated

    async def get_customer(self, identity: Identity, customer_id: uuid.UUID) -> Customer:
        """Any identity may read its own customer; super admins may read any."""
        own = identity.customer_id == customer_id
        if not own and not identity.permission & Permission.PROJECT_SUPER_ADMIN:
            raise _customer_not_found()
        async with self._db.reader() as repos:
            customer = await repos.customers.get(customer_id)
        if customer is None or customer.tm_delete is not None:
            raise _customer_not_found()
        return customer

    async def me(self, identity: Identity) -> Agent | Accesskey:
        """The caller: its agent for a session, its key for an access key."""
        async with self._db.reader() as repos:
            found: Agent | Accesskey | None
            if identity.type == "agent":
                found = await repos.agents.get_active(identity.id)
            elif identity.type == "accesskey":
                found = await repos.accesskeys.get(identity.id)
            else:
                found = None
        # Deleted between authentication and this read: the credential is gone.
        if found is None or found.tm_delete is not None:
            raise InvalidCredentials()
        return found

    async def create_agent(
        self,
        identity: Identity,
        customer_id: uuid.UUID,
        *,
        username: str,
        password: str,
        permission: int,
        name: str = "",
        detail: str = "",
    ) -> Agent:
        self._require_super_admin(identity)
        if not username.strip():
            raise InvalidArgument("An agent needs a non-empty username.", reason="INVALID_USERNAME")
        check_new_password(password)
        if not is_documented(permission):
            raise InvalidArgument(
                "permission must combine the documented bits: 1 project super admin, "
                f"16 customer agent, 32 customer admin, 64 customer manager (or {MAX_PERMISSION}).",
                reason="INVALID_PERMISSION",
            )
        password_hash = await self._passwords.hash(password)
        agent = new_agent(
            customer_id, username, password_hash, permission, name, detail, self._clock.now()
        )
        async with self._db.transaction() as repos:
            customer = await repos.customers.get(customer_id)
            if customer is None or customer.tm_delete is not None:
                raise _customer_not_found()
            await repos.agents.insert(agent)
            await record_audit(
                repos,
                identity,
                "agent_created",
                customer_id=customer_id,
                subject_id=agent.id,
                now=agent.tm_create,
            )
        return agent

    async def list_customers(
        self, identity: Identity, *, after: Customer | None, limit: int
    ) -> list[Customer]:
        """Live customers, oldest first; pass the last one seen as ``after`` for the next."""
        self._require_super_admin(identity)
        cursor = None if after is None else (after.tm_create, after.id)
        async with self._db.reader() as repos:
            return await repos.customers.list_live(after=cursor, limit=limit)

    async def list_agents(self, identity: Identity, customer_id: uuid.UUID) -> list[Agent]:
        """A live customer's live agents, by username."""
        self._require_super_admin(identity)
        async with self._db.reader() as repos:
            customer = await repos.customers.get(customer_id)
            if customer is None or customer.tm_delete is not None:
                raise _customer_not_found()
            return await repos.agents.list_live(customer_id)

    async def get_agent(self, identity: Identity, agent_id: uuid.UUID) -> Agent:
        self._require_super_admin(identity)
        async with self._db.reader() as repos:
            agent = await repos.agents.get_active(agent_id)
        if agent is None:
            raise _agent_not_found()
        return agent

    async def set_agent_password(
        self, identity: Identity, agent_id: uuid.UUID, password: str
    ) -> Agent:
        """Replace an agent's password (its sessions stay valid until they expire)."""
        self._require_super_admin(identity)
        check_new_password(password)
        password_hash = await self._passwords.hash(password)
        async with self._db.transaction() as repos:
            agent = await repos.agents.get_active(agent_id)
            if agent is None:
                raise _agent_not_found()
            now = self._clock.now()
            await repos.agents.set_password_hash(agent_id, password_hash, now=now)
            await record_audit(
                repos,
                identity,
                "agent_password_changed",
                customer_id=agent.customer_id,
                subject_id=agent_id,
                now=now,
            )
        return replace(agent, password_hash=password_hash, tm_update=now)

    async def delete_customer(self, identity: Identity, customer_id: uuid.UUID) -> Customer:
        """Soft delete: the customer's keys and agents stop authenticating at once."""
        self._require_super_admin(identity)
        change = Invalidation("customer", customer_id)
        async with self._db.transaction() as repos:
            now = self._clock.now()
            deleted = await repos.customers.soft_delete(customer_id, now=now)
            if deleted is None:
                raise _customer_not_found()
            await record_revocation(repos, change, now)
            await record_audit(
                repos,
                identity,
                "customer_deleted",
                customer_id=customer_id,
                subject_id=customer_id,
                now=now,
            )
        await self._invalidator.publish(change)
        return deleted

    async def delete_agent(self, identity: Identity, agent_id: uuid.UUID) -> Agent:
        """Soft delete: the agent's sessions stop working at once."""
        self._require_super_admin(identity)
        change = Invalidation("agent", agent_id)
        async with self._db.transaction() as repos:
            now = self._clock.now()
            deleted = await repos.agents.soft_delete(agent_id, now=now)
            if deleted is None:
                raise _agent_not_found()
            await record_revocation(repos, change, now)
            await record_audit(
                repos,
                identity,
                "agent_deleted",
                customer_id=deleted.customer_id,
                subject_id=agent_id,
                now=now,
            )
        await self._invalidator.publish(change)
        return deleted

    @staticmethod
    def _require_super_admin(identity: Identity) -> None:
        if not identity.permission & Permission.PROJECT_SUPER_ADMIN:
            raise PermissionDenied("Only a project super admin may do this.")
