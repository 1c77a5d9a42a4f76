"""Local mode: the command works on the database itself, through the services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from keyplane.cli.output import EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, fail
from keyplane.domain.permissions import Identity

if TYPE_CHECKING:  # imported by the functions that use them: `keyplane --help` stays light
    from keyplane.services.container import Services
    from keyplane.settings import Settings

T = TypeVar("T")
OPERATOR = Identity.operator()


def load_settings() -> Settings:
    """The settings from the environment, or a clear message and exit status 2.

    Nothing is written here: directories and the generated JWT secret are made
    only once the command knows it will go on (:func:`prepare_directories`).
    """
    from pydantic import ValidationError

    from keyplane.logs import configure_logging
    from keyplane.settings import JWT_SECRET_FILENAME, ConfigurationError, Settings

    try:
        settings = Settings()
        if settings.jwt_secret is not None or (settings.data_dir / JWT_SECRET_FILENAME).exists():
            settings.resolve_jwt_secret()  # checks the secret; reads, never writes
        _ = settings.argon2  # refuses parameters below the floor
    except ValidationError as error:
        problems = "; ".join(
            f"KEYPLANE_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        fail(
            f"invalid configuration: {problems}", hint="see docs/configuration.md", code=EXIT_USAGE
        )
    except (ConfigurationError, ValueError) as error:
        fail(str(error), hint="see docs/configuration.md", code=EXIT_USAGE)
    configure_logging(settings.log_level, settings.log_format)  # to stderr, redacted
    return settings


def prepare_directories(settings: Settings) -> None:
    """Create the data and database directories (or a clear message and exit status 2)."""
    from keyplane.settings import ConfigurationError

    try:
        settings.check_directories()
    except ConfigurationError as error:
        fail(str(error), hint="see docs/configuration.md", code=EXIT_USAGE)


def describe_database(url: str) -> str:
    """The database a URL names, for people: a SQLite file's full path, else the URL
    without its password."""
    from sqlalchemy.engine import make_url

    from keyplane.store.engine import sqlite_path

    path = sqlite_path(url)
    return str(path.resolve()) if path is not None else make_url(url).render_as_string()


def run_local(work: Callable[[Services], Awaitable[T]], *, require_schema: bool = True) -> T:
    """Run one piece of async work with services, turning domain errors into exit codes."""
    from keyplane.errors import KeyplaneError
    from keyplane.logs import get_logger
    from keyplane.services.container import build_services
    from keyplane.store.engine import sqlite_path

    settings = load_settings()
    database_file = sqlite_path(settings.database_url)
    is_new = database_file is not None and not database_file.exists()
    where = describe_database(settings.database_url)
    if is_new and require_schema:  # refused before anything is created
        _no_database(where)
    prepare_directories(settings)

    async def runner() -> T:
        services = build_services(settings)
        try:
            if require_schema:
                await _check_schema(services, where, is_new=is_new)
            return await work(services)
        finally:
            await services.close()

    try:
        result = asyncio.run(runner())
    except KeyplaneError as error:
        if error.status == "UNAVAILABLE":
            fail(
                f"{error.message} ({error.reason})",
                hint="is the database reachable? see KEYPLANE_DATABASE_URL; "
                "`keyplane doctor` checks the configuration",
                code=EXIT_UNAVAILABLE,
            )
        fail(f"{error.message} ({error.reason})", hint=hint_for(error.reason), code=EXIT_REFUSED)
    except _NoDatabase:
        if database_file is not None:  # opening it made an empty file: remove it
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{database_file}{suffix}").unlink(missing_ok=True)
        _no_database(where)
    if is_new:  # a log line: under `serve`, standard error is the server's log
        get_logger("keyplane.cli").info("created a new database", database=where)
    return result


_HINTS = {
    "CUSTOMER_NOT_FOUND": "`keyplane customer list` shows the customers and their ids",
    "AGENT_NOT_FOUND": "`keyplane agent list --customer-id UUID` shows a customer's agents",
    "ACCESSKEY_NOT_FOUND": "`keyplane accesskey list --customer-id UUID` shows the live keys",
    "RESOURCE_NOT_FOUND": "`keyplane accesskey list` shows the live keys and their ids",
    "STATE_INVALID": "the key is deleted; `keyplane accesskey create` makes a new one",
    "USERNAME_TAKEN": "choose another --username",
}


def hint_for(reason: str) -> str:
    """What to type next after a refusal with this reason (or nothing)."""
    return _HINTS.get(reason, "")


def _no_database(where: str) -> NoReturn:
    fail(
        f"there is no keyplane database at {where}",
        hint="commands use KEYPLANE_DATABASE_URL, by default ./data/keyplane.db in the "
        "working directory: run from the directory you serve from, or set it; "
        "`keyplane migrate` creates a new database",
    )


class _NoDatabase(Exception):
    """The command opened a database that did not exist before it."""


async def _check_schema(services: Services, where: str, *, is_new: bool) -> None:
    from keyplane.store import migrate as migrations

    async with services.database.mapped_errors():
        current = await migrations.current_revision(services.database.engine)
    if current == migrations.head_revision():
        return
    if is_new:
        raise _NoDatabase
    fail(f"the database schema of {where} is not up to date", hint="run: keyplane migrate")


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        # Never echo the value: it may be a credential pasted in the wrong place.
        fail(f"{what} is not a UUID", code=EXIT_USAGE)
