"""``keyplane``: serve, migrate, and manage customers, agents and access keys.

Output is JSON on stdout with ``--json`` or when stdout is not a terminal,
a table otherwise. Errors go to stderr with exit status 1 (2 for usage and
configuration errors).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from typer.core import TyperArgument, TyperCommand
from uvicorn.supervisors import Multiprocess

from keyplane.cli.first_start import announce
from keyplane.cli.output import emit, fail, say
from keyplane.domain.networks import Networks, parse_networks
from keyplane.domain.pagination import Cursor
from keyplane.domain.passwords import generate_password
from keyplane.domain.permissions import (
    MAX_PERMISSION,
    Identity,
    Permission,
    is_documented,
    is_super_admin,
)
from keyplane.domain.scopes import READ_ONLY, Scopes, parse_scopes
from keyplane.domain.timefmt import parse_timestamp
from keyplane.domain.views import (
    EXPAND_ALL,
    accesskey_view,
    agent_view,
    audit_view,
    customer_view,
    delivery_view,
)
from keyplane.errors import KeyplaneError
from keyplane.logs import configure_logging, get_logger
from keyplane.services.bootstrap import bootstrap
from keyplane.services.container import Services, build_services
from keyplane.settings import ConfigurationError, Settings
from keyplane.store import migrate as migrations
from keyplane.store.engine import sqlite_path
from keyplane.web.connections import HTTP_PROTOCOL, apply_connection_limits

T = TypeVar("T")

# Plain help: flags show no placeholder, options their metavar (UUID, TEXT, ...).
app = typer.Typer(
    help="keyplane: issue, manage and verify API access keys and login sessions.",
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
)
customer_app = typer.Typer(
    help="Manage customers (tenants).", no_args_is_help=True, rich_markup_mode=None
)
agent_app = typer.Typer(
    help="Manage agents (people who log in).", no_args_is_help=True, rich_markup_mode=None
)
accesskey_app = typer.Typer(help="Manage access keys.", no_args_is_help=True, rich_markup_mode=None)
webhook_app = typer.Typer(
    help="A customer's webhook: delivery status.", no_args_is_help=True, rich_markup_mode=None
)
audit_app = typer.Typer(
    help="The audit log: who changed what.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(customer_app, name="customer")
app.add_typer(agent_app, name="agent")
app.add_typer(accesskey_app, name="accesskey")
app.add_typer(webhook_app, name="webhook")
app.add_typer(audit_app, name="audit")


class _IdCommand(TyperCommand):
    """A command whose help names its arguments (``ID``) without a ``<str>`` after them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = _no_type_shown  # type: ignore[method-assign]


def _no_type_shown(ctx: object) -> str | None:
    return None


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (default when piped).")]
OPERATOR = Identity.operator()


def _settings() -> Settings:
    """The settings from the environment, or a clear message and exit status 2."""
    try:
        settings = Settings()
        settings.check_directories()
        settings.resolve_jwt_secret()
        _ = settings.argon2  # refuses parameters below the floor
    except ValidationError as error:
        problems = "; ".join(
            f"KEYPLANE_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        fail(f"invalid configuration: {problems}", hint="see docs/configuration.md", code=2)
    except (ConfigurationError, ValueError) as error:
        fail(str(error), hint="see docs/configuration.md", code=2)
    configure_logging(settings.log_level, settings.log_format)  # to stderr, redacted
    return settings


def describe_database(url: str) -> str:
    """The database a URL names, for people: a SQLite file's full path, else the URL
    without its password."""
    path = sqlite_path(url)
    return str(path.resolve()) if path is not None else make_url(url).render_as_string()


def _run(work: Callable[[Services], Awaitable[T]], *, require_schema: bool = True) -> T:
    """Run one piece of async work with services, turning domain errors into exit codes."""
    settings = _settings()
    database_file = sqlite_path(settings.database_url)
    is_new = database_file is not None and not database_file.exists()
    where = describe_database(settings.database_url)

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
        hint = (
            "is the database reachable? see KEYPLANE_DATABASE_URL"
            if error.status == "UNAVAILABLE"
            else ""
        )
        fail(f"{error.message} ({error.reason})", hint=hint)
    except _NoDatabase:
        if database_file is not None:  # opening it made an empty file: remove it
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{database_file}{suffix}").unlink(missing_ok=True)
        fail(
            f"there is no keyplane database at {where}",
            hint="commands use KEYPLANE_DATABASE_URL, by default ./data/keyplane.db in the "
            "working directory: run from the directory you serve from, or set it; "
            "`keyplane migrate` creates a new database",
        )
    if is_new:  # a log line: under `serve`, standard error is the server's log
        get_logger("keyplane.cli").info("created a new database", database=where)
    return result


class _NoDatabase(Exception):
    """The command opened a database that did not exist before it."""


async def _check_schema(services: Services, where: str, *, is_new: bool) -> None:
    async with services.database.mapped_errors():
        current = await migrations.current_revision(services.database.engine)
    if current == migrations.head_revision():
        return
    if is_new:
        raise _NoDatabase
    fail(f"the database schema of {where} is not up to date", hint="run: keyplane migrate")


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        # Never echo the value: it may be a credential pasted in the wrong place.
        fail(f"{what} is not a UUID", code=2)


@app.command()
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Worker processes.")] = 1,
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Migrate the database first.")
    ] = True,
    access_log: Annotated[
        bool,
        typer.Option(
            "--uvicorn-access-log/--no-uvicorn-access-log", help="Also log uvicorn's access lines."
        ),
    ] = False,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this certificate (PEM, chain included).", exists=True),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None,
        typer.Option(
            help="The certificate's private key (PEM), if not in the certfile.", exists=True
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (migrates and, on an empty database, bootstraps first)."""
    settings = _settings()
    if ssl_keyfile is not None and ssl_certfile is None:
        fail("--ssl-keyfile needs --ssl-certfile", code=2)
    scheme = "https" if ssl_certfile is not None else "http"

    async def prepare(services: Services) -> None:
        if migrate:
            await services.migrate()
        if settings.bootstrap:
            first = await bootstrap(services.database, services.clock, services.passwords)
            if first is not None:
                shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
                announce(first, f"{scheme}://{shown_host}:{port}")

    # Bound before anything is created or printed: with the port taken, the
    # first start's secrets are not shown for a server that never comes up.
    listener = _listen(host, port)
    _run(prepare, require_schema=not migrate)
    options = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": access_log,
        "loop": "uvloop",
        # httptools with limits on request heads and connections (KEYPLANE_MAX_*).
        "http": HTTP_PROTOCOL,
        "server_header": False,
        # The client address (used by rate limits) comes from X-Forwarded-For
        # only when the peer is one of these proxies.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.trusted_proxies,
        "timeout_graceful_shutdown": 10,
    }
    if ssl_certfile is not None:
        options["ssl_certfile"] = str(ssl_certfile)
        options["ssl_keyfile"] = str(ssl_keyfile) if ssl_keyfile is not None else None
    try:
        if workers == 1:
            from keyplane.web.app import create_app

            apply_connection_limits(settings)
            config = uvicorn.Config(create_app(settings), **options)  # type: ignore[arg-type]
            server = uvicorn.Server(config)
            server.run(sockets=[listener])
            if not server.started:
                raise typer.Exit(3)
        else:
            config = uvicorn.Config(
                "keyplane.web.app:app_from_environment",
                factory=True,
                workers=workers,
                **options,  # type: ignore[arg-type]
            )
            Multiprocess(config, sockets=[listener]).run()
    finally:
        listener.close()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket (as uvicorn would bind it), or a clear message and exit 1."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        fail(
            f"cannot listen on {host}:{port}: {error.strerror or error}; nothing was changed",
            hint="is another server running there? choose another with --port / --host",
        )
    listener.set_inheritable(True)
    return listener


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run again)."""

    async def work(services: Services) -> str | None:
        await services.migrate()
        async with services.database.mapped_errors():
            return await migrations.current_revision(services.database.engine)

    revision = _run(work, require_schema=False)
    say(f"database schema at revision {revision}", err=True)


@customer_app.command("create")
def customer_create(
    name: Annotated[str, typer.Option(metavar="TEXT", help="Customer name.")],
    email: Annotated[str, typer.Option(metavar="EMAIL", help="Contact email.")] = "",
    detail: Annotated[str, typer.Option(metavar="TEXT", help="Free text.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a customer."""

    async def work(services: Services) -> dict[str, object]:
        customer = await services.customers.create_customer(
            OPERATOR, name=name, email=email, detail=detail
        )
        return customer_view(customer)

    emit(_run(work), as_json=as_json, title="customer")


@customer_app.command("delete", cls=_IdCommand)
def customer_delete(
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="The customer's id.")],
    as_json: JsonOption = False,
) -> None:
    """Delete a customer: its access keys and agents stop working (everywhere within a second)."""
    cid = _uuid(customer_id, "customer id")

    async def work(services: Services) -> dict[str, object]:
        return customer_view(await services.customers.delete_customer(OPERATOR, cid))

    emit(_run(work), as_json=as_json, title="deleted customer")


def _read_password_stdin() -> str:
    data = sys.stdin.read()
    # Drop one trailing newline, as `docker login --password-stdin` does.
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    if not data:
        fail("no password on standard input", code=2)
    return data


def _agent_permission(bits: int, *, super_admin: bool, confirmed: bool) -> int:
    """Documented bits only; a project super admin only on an explicit, confirmed request."""
    if is_super_admin(bits) or (bits == MAX_PERMISSION):
        fail(
            f"--permission {bits} includes bit 1, project super admin",
            hint="pass --super-admin (and --yes, or confirm when asked) to mean it",
            code=2,
        )
    if bits and not is_documented(bits):
        fail(
            f"--permission {bits} is not a combination of 16, 32 and 64",
            hint="add up 16 (agent), 32 (admin) and 64 (manager), e.g. --permission 96",
            code=2,
        )
    if not super_admin:
        if not bits:
            fail("no permission given", hint="pass --permission 16, 32, 64 or a sum", code=2)
        return bits
    say("WARNING: a project super admin can manage every customer's data.", err=True)
    if confirmed:
        return int(Permission.PROJECT_SUPER_ADMIN) | bits
    if not sys.stdin.isatty():
        fail("--super-admin must be confirmed", hint="add --yes to confirm it", code=2)
    if not typer.confirm("Create a project super admin?", default=False, err=True):
        fail("not confirmed; no agent was created", code=1)
    return int(Permission.PROJECT_SUPER_ADMIN) | bits


@agent_app.command("create")
def agent_create(
    customer_id: Annotated[
        str, typer.Option("--customer-id", metavar="UUID", help="The agent's customer.")
    ],
    username: Annotated[str, typer.Option(metavar="TEXT", help="Login name (unique).")],
    permission: Annotated[
        int,
        typer.Option(
            metavar="BITS",
            help="Permission bits, added up: 16 agent, 32 admin, 64 manager (e.g. 96). "
            "A project super admin needs --super-admin.",
        ),
    ] = 0,
    super_admin: Annotated[
        bool,
        typer.Option(
            "--super-admin",
            help="Make a project super admin (bit 1): it manages every customer. Asks first.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm --super-admin without asking.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    name: Annotated[str, typer.Option(metavar="TEXT", help="Display name.")] = "",
    detail: Annotated[str, typer.Option(metavar="TEXT", help="Free text.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an agent. Without --password-stdin a password is generated and shown once."""
    cid = _uuid(customer_id, "--customer-id")
    permission = _agent_permission(permission, super_admin=super_admin, confirmed=yes)
    generated = not password_stdin
    password = generate_password() if generated else _read_password_stdin()

    async def work(services: Services) -> dict[str, object]:
        agent = await services.customers.create_agent(
            OPERATOR,
            cid,
            username=username,
            password=password,
            permission=permission,
            name=name,
            detail=detail,
        )
        view: dict[str, object] = agent_view(agent)
        if generated:
            view["password"] = password
        return view

    emit(_run(work), as_json=as_json, title="agent")


@agent_app.command("delete", cls=_IdCommand)
def agent_delete(
    agent_id: Annotated[str, typer.Argument(metavar="ID", help="The agent's id.")],
    as_json: JsonOption = False,
) -> None:
    """Delete an agent: its sessions stop working (everywhere within a second)."""
    aid = _uuid(agent_id, "agent id")

    async def work(services: Services) -> dict[str, object]:
        return agent_view(await services.customers.delete_agent(OPERATOR, aid))

    emit(_run(work), as_json=as_json, title="deleted agent")


def _scopes(raw: str) -> Scopes | None:
    if not raw:
        return None
    try:
        return parse_scopes(raw if raw == READ_ONLY else json.loads(raw))
    except ValueError as error:
        fail(f"--scopes: {error}", hint="see docs/lifecycle.md#scopes", code=2)


def _networks(raw: str) -> Networks | None:
    if not raw:
        return None
    try:
        return parse_networks([part.strip() for part in raw.split(",")])
    except ValueError as error:
        fail(f"--allowed-networks: {error}", hint="e.g. --allowed-networks 203.0.113.0/24", code=2)


@accesskey_app.command("create")
def accesskey_create(
    customer_id: Annotated[
        str, typer.Option("--customer-id", metavar="UUID", help="The key's customer.")
    ],
    expire: Annotated[
        int, typer.Option(metavar="SECONDS", help="Lifetime in seconds (at least 86400).")
    ],
    name: Annotated[str, typer.Option(metavar="TEXT", help="Name.")] = "",
    detail: Annotated[str, typer.Option(metavar="TEXT", help="Free text.")] = "",
    scopes: Annotated[
        str,
        typer.Option(
            metavar="SCOPES",
            help="Restrict the key: read_only, or JSON rules such as "
            '\'[{"methods": ["GET"], "path_prefix": "/v1.0/calls"}]\'.',
        ),
    ] = "",
    allowed_networks: Annotated[
        str,
        typer.Option(
            metavar="CIDRS",
            help="IP allowlist: comma-separated CIDRs, e.g. 203.0.113.0/24,2001:db8::/32.",
        ),
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an access key; its token is printed once."""
    cid = _uuid(customer_id, "--customer-id")
    restriction = _scopes(scopes)
    networks = _networks(allowed_networks)

    async def work(services: Services) -> dict[str, object]:
        key, token = await services.accesskeys.create(
            OPERATOR,
            cid,
            name=name,
            detail=detail,
            expire=expire,
            scopes=restriction,
            allowed_networks=networks,
        )
        shown = {"scopes"} if restriction else set()
        if networks:
            shown.add("allowed_networks")
        return accesskey_view(key, token, expand=frozenset(shown))

    emit(_run(work), as_json=as_json, title="access key (the token is shown once)")


@accesskey_app.command("list")
def accesskey_list(
    customer_id: Annotated[str, typer.Option("--customer-id", metavar="UUID", help="Whose keys.")],
    as_json: JsonOption = False,
) -> None:
    """List a customer's live access keys, newest first, with last use and state."""
    cid = _uuid(customer_id, "--customer-id")

    async def work(services: Services) -> list[dict[str, object]]:
        await services.customers.get_customer(OPERATOR, cid)  # unknown or deleted: exit 1
        views: list[dict[str, object]] = []
        cursor = None
        while True:
            page = await services.accesskeys.list_page(OPERATOR, cid, page_size=100, cursor=cursor)
            views.extend(accesskey_view(key, expand=EXPAND_ALL) for key in page.items)
            if len(page.items) < 100:
                return views
            cursor = Cursor(page.items[-1].tm_create, page.items[-1].id)

    emit(
        _run(work),
        as_json=as_json,
        title=f"access keys of customer {cid}",
        omit=("customer_id",),
    )


@accesskey_app.command("delete", cls=_IdCommand)
def accesskey_delete(
    accesskey_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id.")],
    as_json: JsonOption = False,
) -> None:
    """Delete an access key: it stops authenticating (everywhere within a second)."""
    key_id = _uuid(accesskey_id, "access key id")

    async def work(services: Services) -> dict[str, object]:
        return accesskey_view(await services.accesskeys.delete(OPERATOR, key_id))

    emit(_run(work), as_json=as_json, title="deleted access key")


KeyIdArgument = Annotated[str, typer.Argument(help="The key's id.")]


@accesskey_app.command("show")
def accesskey_show(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """Show one access key, with when it was last used (to within about a minute)."""
    key_id = _uuid(accesskey_id, "access key id")

    async def work(services: Services) -> dict[str, object]:
        return accesskey_view(await services.accesskeys.get(OPERATOR, key_id), expand=EXPAND_ALL)

    emit(_run(work), as_json=as_json, title="access key")


@accesskey_app.command("disable")
def accesskey_disable(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """Disable an access key: refused everywhere (within a second) until enabled."""
    key_id = _uuid(accesskey_id, "access key id")

    async def work(services: Services) -> dict[str, object]:
        return accesskey_view(
            await services.accesskeys.disable(OPERATOR, key_id), expand=EXPAND_ALL
        )

    emit(_run(work), as_json=as_json, title="disabled access key")


@accesskey_app.command("enable")
def accesskey_enable(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """Enable a disabled access key again."""
    key_id = _uuid(accesskey_id, "access key id")

    async def work(services: Services) -> dict[str, object]:
        return accesskey_view(await services.accesskeys.enable(OPERATOR, key_id), expand=EXPAND_ALL)

    emit(_run(work), as_json=as_json, title="enabled access key")


@accesskey_app.command("rotate")
def accesskey_rotate(
    accesskey_id: KeyIdArgument,
    grace: Annotated[
        int, typer.Option(help="Seconds the old key keeps working: 0 to 604800 (7 days).")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Replace an access key by a new one (same name, detail, lifetime); token printed once."""
    key_id = _uuid(accesskey_id, "access key id")

    async def work(services: Services) -> dict[str, object]:
        new, token, _ = await services.accesskeys.rotate(OPERATOR, key_id, grace=grace)
        return accesskey_view(new, token, expand=EXPAND_ALL)

    emit(_run(work), as_json=as_json, title="new access key (the token is shown once)")


@accesskey_app.command("expire")
def accesskey_expire(
    accesskey_id: KeyIdArgument,
    tm_expire: Annotated[
        str,
        typer.Option(
            "--tm-expire", help="The new, earlier expiry: YYYY-MM-DDTHH:MM:SS.ffffffZ (UTC)."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Shorten an access key's expiry (lengthening is refused: rotate the key instead)."""
    key_id = _uuid(accesskey_id, "access key id")
    try:
        moment = parse_timestamp(tm_expire)
    except ValueError:
        fail("--tm-expire is not a timestamp", hint="e.g. 2027-01-31T00:00:00.000000Z", code=2)

    async def work(services: Services) -> dict[str, object]:
        key = await services.accesskeys.shorten_expiry(OPERATOR, key_id, moment)
        return accesskey_view(key, expand=EXPAND_ALL)

    emit(_run(work), as_json=as_json, title="access key")


@webhook_app.command("deliveries")
def webhook_deliveries(
    customer_id: Annotated[str, typer.Option("--customer-id", help="Whose events.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The customer's events and how their delivery went (pending, delivered, failed, skipped)."""
    cid = _uuid(customer_id, "--customer-id")

    async def work(services: Services) -> list[dict[str, object]]:
        items = await services.webhooks.deliveries(OPERATOR, cid, limit=limit, before=None)
        return [delivery_view(item) for item in items]

    emit(_run(work), as_json=as_json, title="webhook deliveries")


@audit_app.command("list")
def audit_list(
    customer_id: Annotated[str, typer.Option("--customer-id", help="Whose audit log.")],
    event_type: Annotated[
        str, typer.Option("--type", help="Only these types, comma-separated.")
    ] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Who changed what in a customer, when, from which address, newest first."""
    cid = _uuid(customer_id, "--customer-id")
    types = frozenset(part.strip() for part in event_type.split(",") if part.strip())

    async def work(services: Services) -> list[dict[str, object]]:
        entries = await services.audit.page(
            OPERATOR, cid, types=types, since=None, until=None, before=None, limit=limit
        )
        return [audit_view(entry) for entry in entries]

    emit(_run(work), as_json=as_json, title="audit log")


def _ignore_late_database_threads(args: threading.ExceptHookArgs) -> None:
    # aiosqlite's worker thread may report a result after the command's event
    # loop has closed (for example when a connection failed); the command has
    # already said what went wrong, so this says nothing to the user.
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    threading.__excepthook__(args)


def main() -> None:
    threading.excepthook = _ignore_late_database_threads
    app()
