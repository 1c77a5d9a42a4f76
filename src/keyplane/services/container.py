"""Builds every service from the settings; the one place they are wired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from keyplane.domain.clock import Clock, SystemClock
from keyplane.domain.passwords import PasswordHashing
from keyplane.domain.sessions import SessionCodec
from keyplane.services.accesskeys import AccesskeyService
from keyplane.services.auth import AccesskeyLookup, AuthService, PasswordWorker
from keyplane.services.customers import CustomerService
from keyplane.settings import Settings
from keyplane.store import migrate
from keyplane.store.engine import Database, create_engine


@dataclass(slots=True)
class Services:
    settings: Settings
    clock: Clock
    database: Database
    passwords: PasswordWorker
    auth: AuthService
    accesskeys: AccesskeyService
    customers: CustomerService

    async def migrate(self) -> None:
        async with self.database.mapped_errors():
            await migrate.upgrade(self.database.engine)

    async def close(self) -> None:
        await self.database.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    database = Database(
        create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
        )
    )
    passwords = PasswordWorker(PasswordHashing(settings.argon2), settings.password_hash_concurrency)
    sessions = SessionCodec(settings.resolve_jwt_secret(), timedelta(seconds=settings.session_ttl))
    return Services(
        settings=settings,
        clock=clock,
        database=database,
        passwords=passwords,
        auth=AuthService(database, clock, passwords, sessions, AccesskeyLookup(database)),
        accesskeys=AccesskeyService(database, clock, max_expire=settings.accesskey_max_expire),
        customers=CustomerService(database, clock, passwords),
    )
