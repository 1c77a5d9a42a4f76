"""``keyplane``: serve, migrate, and manage customers, agents and access keys.

Every management command works locally, on the database (KEYPLANE_DATABASE_URL),
or remotely, on a server named with ``--url`` / ``KEYPLANE_URL`` through
``keyplane.client``. Output is JSON on stdout with ``--json`` or when stdout is
not a terminal, a table otherwise. Errors go to stderr with a hint of what to
type next; the exit statuses are listed in docs/cli.md.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keyplane.cli import account, listening
from keyplane.cli.accesskeys import accesskey_app
from keyplane.cli.agents import agent_app
from keyplane.cli.customers import customer_app
from keyplane.cli.doctor import doctor
from keyplane.cli.local import OPERATOR, load_settings, parse_uuid, run_local
from keyplane.cli.options import JsonOption, group
from keyplane.cli.output import emit, fail, say, spinner
from keyplane.cli.remote import local_only, use_server

# Each command imports the server stack (SQLAlchemy, FastAPI, uvicorn, ...) it
# needs inside its function, so `keyplane --help` and `--version` start fast.
if TYPE_CHECKING:
    from keyplane.services.container import Services

# Plain help: flags show no placeholder, options their metavar (UUID, TEXT, ...).
# Typer's completion options: --install-completion and --show-completion.
app = typer.Typer(
    help="keyplane: issue, manage and verify API access keys and login sessions.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
webhook_app = group("A customer's webhook: delivery status.")
audit_app = group("The audit log: who changed what.")
app.add_typer(customer_app, name="customer")
app.add_typer(agent_app, name="agent")
app.add_typer(accesskey_app, name="accesskey")
app.add_typer(webhook_app, name="webhook")
app.add_typer(audit_app, name="audit")
app.command()(account.login)
app.command()(account.logout)
app.command()(account.whoami)
app.command()(account.verify)
app.command()(doctor)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keyplane")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        say(f"keyplane {_version()}")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="KEYPLANE_URL",
            metavar="URL",
            help="Manage a keyplane server through its API (e.g. http://127.0.0.1:8080) "
            "instead of the database; also KEYPLANE_URL.",
        ),
    ] = None,
) -> None:
    """keyplane: issue, manage and verify API access keys and login sessions."""
    use_server(url)


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
    if ssl_keyfile is not None and ssl_certfile is None:
        fail("--ssl-keyfile needs --ssl-certfile", code=2)
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from keyplane.cli.announcing import AnnouncingServer
    from keyplane.cli.first_start import announce_start, quiet_migrations
    from keyplane.services.bootstrap import FirstStart, bootstrap
    from keyplane.web.connections import HTTP_PROTOCOL, apply_connection_limits

    # Bound before anything is created, written or printed: with the port taken,
    # nothing is changed and the first start's secrets are not shown for a
    # server that never comes up.
    listener = _listen(host, port, workers)
    settings = load_settings()
    scheme = "https" if ssl_certfile is not None else "http"

    url = listening.shown_url(scheme, host, port)
    first_start: list[FirstStart] = []

    async def prepare(services: Services) -> None:
        if migrate:
            with quiet_migrations():
                await services.migrate()
        if settings.bootstrap:
            first = await bootstrap(services.database, services.clock, services.passwords)
            if first is not None:
                first_start.append(first)

    def started() -> None:
        announce_start(url, first_start[0] if first_start else None)

    run_local(prepare, require_schema=not migrate)
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
            server = AnnouncingServer(config, started)
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
            started()  # the workers start in processes of their own
            Multiprocess(config, sockets=[listener]).run()
    finally:
        listener.close()


def _listen(host: str, port: int, workers: int) -> socket.socket:
    """The listening socket (``cli/listening.py``), or a clear message and exit 1."""
    try:
        return listening.bind(host, port, workers=workers)
    except OSError as error:
        fail(
            f"cannot listen on {host}:{port}: {error.strerror or error}; nothing was changed",
            hint="is another server running there? choose another with --port / --host",
        )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run again)."""
    from keyplane.store import migrate as migrations

    async def work(services: Services) -> str | None:
        await services.migrate()
        async with services.database.mapped_errors():
            return await migrations.current_revision(services.database.engine)

    with spinner("migrating the database"):
        revision = run_local(work, require_schema=False)
    say(f"database schema at revision {revision}", err=True)


@webhook_app.command("deliveries")
def webhook_deliveries(
    customer_id: Annotated[str, typer.Option("--customer-id", help="Whose events.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The customer's events and how their delivery went (pending, delivered, failed, skipped)."""
    local_only("webhook deliveries")
    cid = parse_uuid(customer_id, "--customer-id")
    from keyplane.domain.views import delivery_view

    async def work(services: Services) -> list[dict[str, object]]:
        items = await services.webhooks.deliveries(OPERATOR, cid, limit=limit, before=None)
        return [delivery_view(item) for item in items]

    emit(run_local(work), as_json=as_json, title="webhook deliveries")


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
    local_only("audit list")
    cid = parse_uuid(customer_id, "--customer-id")
    types = frozenset(part.strip() for part in event_type.split(",") if part.strip())
    from keyplane.domain.views import audit_view

    async def work(services: Services) -> list[dict[str, object]]:
        entries = await services.audit.page(
            OPERATOR, cid, types=types, since=None, until=None, before=None, limit=limit
        )
        return [audit_view(entry) for entry in entries]

    emit(run_local(work), as_json=as_json, title="audit log")


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
