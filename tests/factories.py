"""Builders for test data, going through the real services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from keyplane.domain.permissions import Identity, Permission
from keyplane.domain.records import Accesskey, Agent, Customer
from keyplane.services.container import Services

OPERATOR = Identity.operator()
# The contract's field sets (section 4 and section 1).
ACCESSKEY_FIELDS = frozenset(
    {"id", "customer_id", "name", "detail", "token_prefix"}
    | {"tm_expire", "tm_create", "tm_update", "tm_delete"}
)
# Every field VoIPBIN may send; name, detail, email, phone_number, address and
# the webhook fields are left out when empty.
CUSTOMER_FIELDS = frozenset(
    {"id", "name", "detail", "email", "phone_number", "address", "webhook_method", "webhook_uri"}
    | {"billing_account_id", "metadata", "email_verified", "status"}
    | {"identity_verification_status", "tm_deletion_scheduled"}
    | {"tm_create", "tm_update", "tm_delete"}
)
ONE_DAY = 86_400
ONE_YEAR = 365 * ONE_DAY


def fake_token(char: str = "A") -> str:
    """A well-formed access key that was never issued (built so scanners stay quiet)."""
    return "vb" + "_" + char * 32


@dataclass
class Factory:
    services: Services
    _count: int = 0

    def _next(self) -> int:
        self._count += 1
        return self._count

    async def customer(self, name: str | None = None) -> Customer:
        return await self.services.customers.create_customer(
            OPERATOR, name=name or f"customer-{self._next()}", email="ops@example.com"
        )

    async def agent(
        self,
        customer: Customer,
        *,
        permission: int = int(Permission.CUSTOMER_ADMIN),
        username: str | None = None,
        password: str = "correct horse battery staple",
    ) -> Agent:
        return await self.services.customers.create_agent(
            OPERATOR,
            customer.id,
            username=username or f"agent-{self._next()}-{uuid.uuid4().hex[:6]}",
            password=password,
            permission=permission,
        )

    async def accesskey(
        self, customer: Customer, *, expire: int = ONE_YEAR, name: str = "", detail: str = ""
    ) -> tuple[Accesskey, str]:
        return await self.services.accesskeys.create(
            OPERATOR, customer.id, name=name, detail=detail, expire=expire
        )

    async def identity_token(self, customer: Customer) -> str:
        """A working access key token for ``customer``."""
        return (await self.accesskey(customer))[1]


async def login(client: httpx.AsyncClient, username: str, password: str) -> str:
    response = await client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert isinstance(token, str)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
