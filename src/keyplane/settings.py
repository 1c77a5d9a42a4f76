"""Configuration, read once at the entry point and passed down.

Every setting is an environment variable with the ``KEYPLANE_`` prefix (a
``.env`` file in the working directory is read too). ``docs/configuration.md``
lists them all.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from keyplane.domain.networks import Networks, parse_networks
from keyplane.domain.passwords import Argon2Parameters
from keyplane.domain.sessions import MIN_SECRET_BYTES

ONE_DAY = 86_400
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
REDIS_SCHEMES = ("redis", "rediss", "unix")
JWT_SECRET_FILENAME = "jwt_secret"  # noqa: S105 (a file name)


class ConfigurationError(Exception):
    """A setting is missing or unusable; the message says which and what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KEYPLANE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite+aiosqlite:///./data/keyplane.db"
    data_dir: Path = Path("./data")
    jwt_secret: SecretStr | None = None
    session_ttl: int = Field(default=7 * ONE_DAY, ge=60)
    # Off by default: like VoIPBIN, any int32 from one day up is accepted.
    accesskey_max_expire: int | None = Field(default=None, ge=ONE_DAY, le=2_147_483_647)
    # The login cookie is ``Secure`` unless turned off for plain-HTTP development.
    session_cookie_secure: bool = True
    bootstrap: bool = True

    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    argon2_memory_kib: int = 64 * 1024
    argon2_time_cost: int = 3
    argon2_parallelism: int = 4
    # One core is left to the event loop, which verifies keys while logins hash.
    password_hash_concurrency: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 1) - 1), ge=1
    )

    database_pool_size: int = Field(default=10, ge=1)
    database_timeout: float = Field(default=5.0, gt=0)

    redis_url: str | None = None
    cache_ttl: float = Field(default=60.0, ge=0)
    cache_fallback_ttl: float = Field(default=1.0, ge=0, le=1.0)
    cache_negative_ttl: float = Field(default=10.0, ge=0)
    cache_max_entries: int = Field(default=100_000, ge=0)
    # Verification cache misses per process: at once (None: 1 on a SQLite file,
    # whose reads never wait; 4 elsewhere) and waiting their turn beyond that.
    verify_miss_concurrency: int | None = Field(default=None, ge=1)
    verify_miss_queue: int = Field(default=512, ge=0)

    ratelimit_customer_per_second: float = Field(default=1000.0, gt=0)
    ratelimit_customer_burst: int = Field(default=2000, ge=1)
    ratelimit_auth_failures_per_minute: float = Field(default=30.0, gt=0)
    ratelimit_auth_failures_burst: int = Field(default=30, ge=1)
    ratelimit_login_failures_per_minute: float = Field(default=5.0, gt=0)
    ratelimit_login_failures_burst: int = Field(default=10, ge=1)
    trusted_proxies: str = "127.0.0.1"

    # When set, GET /metrics answers only a scrape sending it as a bearer token.
    metrics_token: SecretStr | None = None

    last_used_flush_interval: float = Field(default=60.0, gt=0)

    # Connection limits of `keyplane serve` (keyplane.web.connections).
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)

    # accesskey_expiring notices: lead times in whole days (comma-separated;
    # empty: none), and how often each replica looks for keys that are due.
    accesskey_expiring_notice_days: str = "14,3"
    accesskey_expiring_scan_interval: float = Field(default=60.0, gt=0)
    audit_retention_days: int = Field(default=365, ge=1)
    # Finished (delivered or skipped) outbox events are pruned after this many days.
    event_retention_days: int = Field(default=30, ge=1)

    # Webhooks (docs/webhooks.md). Private and loopback targets are refused
    # unless inside one of these CIDRs (comma-separated; empty by default).
    webhook_allowed_networks: str = ""
    webhook_key: SecretStr | None = None  # signs deliveries; derived from the JWT secret if unset
    webhook_timeout: float = Field(default=5.0, gt=0, le=60)
    webhook_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_backoff_base: float = Field(default=10.0, gt=0)
    webhook_backoff_max: float = Field(default=3600.0, gt=0)
    webhook_poll_interval: float = Field(default=1.0, gt=0)
    webhook_lease_seconds: float = Field(default=120.0, gt=0)

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_usable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if not token.strip():
            return None  # set but empty: /metrics stays open, as when unset
        if token != token.strip() or not token.isprintable() or not token.isascii():
            raise ValueError("must be printable ASCII without spaces at either end")
        return value

    @field_validator("accesskey_expiring_notice_days")
    @classmethod
    def _day_list(cls, value: str) -> str:
        days = [part.strip() for part in value.split(",") if part.strip()]
        if not all(day.isdigit() and 1 <= int(day) <= 365 for day in days):
            raise ValueError("must be whole numbers of days from 1 to 365, comma-separated")
        return value

    @property
    def expiring_notice_days(self) -> tuple[int, ...]:
        parts = self.accesskey_expiring_notice_days.split(",")
        return tuple(int(part) for part in parts if part.strip())

    @field_validator("webhook_key")
    @classmethod
    def _webhook_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _cidr_list(cls, value: str) -> str:
        parse_networks([part.strip() for part in value.split(",")] if value.strip() else None)
        return value

    @property
    def webhook_networks(self) -> Networks:
        raw = self.webhook_allowed_networks.strip()
        if not raw:
            return ()
        return parse_networks([part.strip() for part in raw.split(",")]) or ()

    def resolve_webhook_key(self) -> str:
        """The key webhook secrets are derived from: set, or derived from the JWT secret."""
        if self.webhook_key is not None:
            key = self.webhook_key.get_secret_value()
            if len(key.encode()) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"KEYPLANE_WEBHOOK_KEY must be at least {MIN_SECRET_BYTES} bytes."
                )
            return key
        return hmac.new(
            self.resolve_jwt_secret(), b"keyplane-webhook-key", hashlib.sha256
        ).hexdigest()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a database URL; use sqlite+aiosqlite:///path.db or "
                "postgresql+asyncpg://user:password@host:5432/keyplane"
            ) from None
        if url.drivername not in DATABASE_DRIVERS:
            raise ValueError(
                f"unsupported driver {url.drivername!r}; use one of {', '.join(DATABASE_DRIVERS)}"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises on a port that is not a number
        except ValueError:
            raise ValueError("not a Redis URL; use redis://host:6379/0") from None
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError("not a Redis URL; use redis://, rediss:// or unix://")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("names no host; use redis://host:6379/0")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for item in value.split(","):
            item = item.strip()
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or network") from None
        return value

    @property
    def argon2(self) -> Argon2Parameters:
        try:
            return Argon2Parameters(
                memory_kib=self.argon2_memory_kib,
                time_cost=self.argon2_time_cost,
                parallelism=self.argon2_parallelism,
            )
        except ValueError as error:
            raise ConfigurationError(
                f"KEYPLANE_ARGON2_MEMORY_KIB, KEYPLANE_ARGON2_TIME_COST, "
                f"KEYPLANE_ARGON2_PARALLELISM: {error}"
            ) from None

    def check_directories(self) -> None:
        """Refuse, naming the setting, a data or database directory keyplane cannot write."""
        directories = [("KEYPLANE_DATA_DIR", self.data_dir)] if self.jwt_secret is None else []
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            directories.append(("KEYPLANE_DATABASE_URL", Path(url.database).parent))
        for name, directory in directories:
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigurationError(
                    f"{name}: cannot create {directory}: {error.strerror}"
                ) from None
            if not os.access(directory, os.W_OK | os.X_OK):
                raise ConfigurationError(f"{name}: {directory} is not writable")

    def resolve_jwt_secret(self) -> bytes:
        """The configured secret, or one generated once and kept in the data directory."""
        if self.jwt_secret is not None:
            secret = self.jwt_secret.get_secret_value().encode()
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"KEYPLANE_JWT_SECRET is {len(secret)} bytes; it must be at least "
                    f"{MIN_SECRET_BYTES}. Generate one with: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
            return secret
        try:
            secret = self._stored_secret()
        except OSError as error:
            raise ConfigurationError(
                f"KEYPLANE_DATA_DIR: cannot keep the JWT secret in {self.data_dir}: "
                f"{error.strerror}"
            ) from None
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"KEYPLANE_DATA_DIR: {self.data_dir / JWT_SECRET_FILENAME} holds a secret of "
                f"{len(secret)} bytes; it must be at least {MIN_SECRET_BYTES}. Delete the file "
                "to have a new one generated (this logs out every session)."
            )
        return secret

    def _stored_secret(self) -> bytes:
        path = self.data_dir / JWT_SECRET_FILENAME
        if not path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process wrote it first
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))  # 32 random bytes
        return path.read_bytes().strip()
