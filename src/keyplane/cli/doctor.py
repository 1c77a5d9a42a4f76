"""``keyplane doctor``: is this installation (or the named server) in working order?"""

from __future__ import annotations

import asyncio
import email.utils
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keyplane.cli import session
from keyplane.cli.local import describe_database
from keyplane.cli.options import JsonOption
from keyplane.cli.output import EXIT_REFUSED, emit
from keyplane.cli.remote import ACCESSKEY_VARIABLE, login_hint, open_client, server_url

if TYPE_CHECKING:
    from keyplane.settings import Settings

# A clock this far from the server's makes sessions look expired or not yet valid.
MAX_CLOCK_SKEW_SECONDS = 30.0
# A secret with fewer distinct bytes than this is a pattern, not random.
MIN_DISTINCT_SECRET_BYTES = 16
EARLIEST_SANE_YEAR = 2025


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok, warning or failed
    detail: str

    def view(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail}


def doctor(as_json: JsonOption = False) -> None:
    """Check the configuration, the database and its migrations, Redis, the secret and the clock.

    With --url, checks the server instead: reachable, ready, clock, credential.
    Exit status 1 when a check failed (warnings do not fail).
    """
    url = server_url()
    checks = _remote_checks(url) if url is not None else _local_checks()
    emit([check.view() for check in checks], as_json=as_json, title="keyplane doctor")
    if any(check.status == "failed" for check in checks):
        raise SystemExit(EXIT_REFUSED)


def _local_checks() -> list[Check]:
    from pydantic import ValidationError

    from keyplane.settings import ConfigurationError, Settings

    try:
        settings = Settings()
        settings.check_directories()
        _ = settings.argon2
    except ValidationError as error:
        problems = "; ".join(str(e["msg"]) for e in error.errors())
        return [Check("configuration", "failed", f"{problems} (see docs/configuration.md)")]
    except (ConfigurationError, ValueError) as error:
        return [Check("configuration", "failed", f"{error} (see docs/configuration.md)")]
    checks = [Check("configuration", "ok", f"database {describe_database(settings.database_url)}")]
    checks.append(_secret_check(settings))
    checks.extend(asyncio.run(_service_checks(settings)))
    checks.append(_clock_check(None))
    return checks


def _secret_check(settings: Settings) -> Check:
    from keyplane.settings import JWT_SECRET_FILENAME, ConfigurationError

    try:
        secret = settings.resolve_jwt_secret()
    except ConfigurationError as error:
        return Check("jwt secret", "failed", str(error))
    if len(set(secret)) < MIN_DISTINCT_SECRET_BYTES:
        return Check(
            "jwt secret",
            "failed",
            f"only {len(set(secret))} distinct characters: a pattern, not a random secret; "
            "generate one: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
        )
    where = "KEYPLANE_JWT_SECRET"
    if settings.jwt_secret is None:
        path = settings.data_dir / JWT_SECRET_FILENAME
        where = str(path)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            return Check(
                "jwt secret", "warning", f"{path} has mode {mode:o}; run: chmod 600 {path}"
            )
    return Check("jwt secret", "ok", f"{len(secret)} bytes, from {where}")


async def _service_checks(settings: Settings) -> list[Check]:
    from keyplane.errors import KeyplaneError
    from keyplane.services.container import build_services
    from keyplane.store import migrate as migrations
    from keyplane.store.engine import sqlite_path

    database_file = sqlite_path(settings.database_url)
    if database_file is not None and not database_file.exists():  # opening would create it
        return [
            Check(
                "database",
                "failed",
                f"there is no database at {database_file.resolve()}: run keyplane migrate "
                "(or set KEYPLANE_DATABASE_URL)",
            )
        ]
    services = build_services(settings)
    checks: list[Check] = []
    try:
        ready = await services.readiness()
        if ready.get("database") != "ok":
            return [
                Check(
                    "database",
                    "failed",
                    "does not answer: is it running? see KEYPLANE_DATABASE_URL",
                )
            ]
        checks.append(Check("database", "ok", "answers"))
        try:
            async with services.database.mapped_errors():
                current = await migrations.current_revision(services.database.engine)
        except KeyplaneError as error:
            current = None
            checks.append(Check("migrations", "failed", error.message))
        else:
            head = migrations.head_revision()
            if current == head:
                checks.append(Check("migrations", "ok", f"at {head}, the newest"))
            else:
                checks.append(
                    Check(
                        "migrations",
                        "failed",
                        f"at {current or 'none'}, not {head}: run keyplane migrate",
                    )
                )
        if settings.redis_url is None:
            checks.append(Check("redis", "ok", "not configured: fine for a single replica"))
        elif ready.get("redis") == "ok":
            checks.append(Check("redis", "ok", "answers"))
        else:
            checks.append(
                Check("redis", "failed", "configured but does not answer: see KEYPLANE_REDIS_URL")
            )
    finally:
        await services.close()
    return checks


def _clock_check(server_date: str | None) -> Check:
    now = datetime.now(UTC)
    if now.year < EARLIEST_SANE_YEAR:
        return Check("clock", "failed", f"this machine says {now:%Y-%m-%d}: set the clock (NTP)")
    if server_date is None:
        return Check("clock", "ok", f"{now:%Y-%m-%dT%H:%M:%SZ} (UTC)")
    try:
        theirs = email.utils.parsedate_to_datetime(server_date)
    except (TypeError, ValueError):
        return Check("clock", "warning", "the server sent no usable Date header")
    skew = (now - theirs).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        return Check(
            "clock",
            "failed",
            f"{skew:+.0f} s from the server's: sessions may look expired; synchronise (NTP)",
        )
    return Check("clock", "ok", f"within {MAX_CLOCK_SKEW_SECONDS:.0f} s of the server's")


def _remote_checks(url: str) -> list[Check]:
    import httpx

    from keyplane.client import AccesskeyIdentity, APIError, ClientError

    checks: list[Check] = []
    try:
        response = httpx.get(f"{url.rstrip('/')}/health/ready", timeout=5.0)
    except httpx.HTTPError as error:
        return [Check("server", "failed", f"{url} does not answer ({type(error).__name__})")]
    status = "ok" if response.status_code == 200 else "failed"
    checks.append(Check("server", status, f"{url} /health/ready answered {response.status_code}"))
    checks.append(_clock_check(response.headers.get("date")))
    if not (os.environ.get(ACCESSKEY_VARIABLE) or session.load(url)):
        checks.append(Check("credential", "warning", f"none: {login_hint(url)}"))
        return checks
    try:
        with open_client(url) as client:
            me = client.whoami()
        who = (
            f"the access key {me.token_prefix}… ({me.name or 'no name'})"
            if isinstance(me, AccesskeyIdentity)
            else f"agent {me.username}"
        )
        checks.append(Check("credential", "ok", f"accepted: {who}"))
    except APIError as error:
        checks.append(Check("credential", "failed", f"{error.reason}: {login_hint(url)}"))
    except ClientError as error:
        checks.append(Check("credential", "failed", str(error)))
    return checks
