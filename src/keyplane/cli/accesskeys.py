"""``keyplane accesskey ...``: local (on the database) or remote (``--url``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyplane.cli.listing import ListColumn, RowStream
from keyplane.cli.local import OPERATOR, parse_uuid, run_local
from keyplane.cli.options import IdCommand, JsonOption, group
from keyplane.cli.output import EXIT_USAGE, emit, fail
from keyplane.cli.remote import run_remote, server_url
from keyplane.domain.networks import Networks, parse_networks
from keyplane.domain.pagination import Cursor
from keyplane.domain.scopes import READ_ONLY, Scopes, parse_scopes
from keyplane.domain.timefmt import parse_timestamp
from keyplane.domain.views import EXPAND_ALL, accesskey_view

if TYPE_CHECKING:
    from keyplane.client import Client
    from keyplane.services.container import Services

accesskey_app = group("Manage access keys.")

PAGE_SIZE = 100
KeyIdArgument = Annotated[str, typer.Argument(metavar="ID", help="The key's id.")]
CustomerOption = Annotated[
    str | None,
    typer.Option(
        "--customer-id",
        metavar="UUID",
        help="The customer (local mode; with --url it is the caller's own).",
    ),
]


def key_state(view: dict[str, Any]) -> str:
    if view.get("tm_delete"):
        return "deleted"
    if view.get("tm_disable"):
        return "disabled"
    if view.get("rotated_to"):
        return "rotating"
    return "active"


LIST_COLUMNS = (
    ListColumn("id", 36, no_wrap=True),
    ListColumn("name", 12, flexible=True),
    ListColumn("token_prefix", 12, no_wrap=True),
    ListColumn("state", 8, no_wrap=True, value=key_state),
    ListColumn("tm_expire", 27, no_wrap=True),
    ListColumn("tm_last_used", 27, no_wrap=True),
)
CREATED_COLUMNS = (
    ListColumn("id", 36, no_wrap=True),
    ListColumn("name", 12, flexible=True),
    ListColumn("token", 35, no_wrap=True),
    ListColumn("tm_expire", 27, no_wrap=True),
)


def _customer(customer_id: str | None) -> uuid.UUID:
    """The customer of a local command (remote commands act on the caller's own)."""
    if customer_id is None:
        fail(
            "--customer-id is needed on the database",
            hint="`keyplane customer list` shows the customers; or name a server with --url",
            code=EXIT_USAGE,
        )
    return parse_uuid(customer_id, "--customer-id")


def _scopes(raw: str) -> Scopes | None:
    if not raw:
        return None
    try:
        return parse_scopes(raw if raw == READ_ONLY else json.loads(raw))
    except ValueError as error:
        fail(f"--scopes: {error}", hint="see docs/lifecycle.md#scopes", code=EXIT_USAGE)


def _networks(raw: str) -> Networks | None:
    if not raw:
        return None
    try:
        return parse_networks([part.strip() for part in raw.split(",")])
    except ValueError as error:
        fail(
            f"--allowed-networks: {error}",
            hint="e.g. --allowed-networks 203.0.113.0/24",
            code=EXIT_USAGE,
        )


@accesskey_app.command("list")
def accesskey_list(
    customer_id: CustomerOption = None,
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="At most N keys (default: all).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List live access keys, newest first, with last use and state, as they are read.

    With --json (or piped), one JSON array, written one key per line as pages arrive.
    """
    if server_url() is not None:
        with RowStream(LIST_COLUMNS, as_json=as_json, title="access keys", total=limit) as out:
            run_remote(lambda client: _stream_remote(client, out, limit))
        return
    cid = _customer(customer_id)

    async def work(services: Services) -> None:
        await services.customers.get_customer(OPERATOR, cid)  # unknown or deleted: exit 1
        title = f"access keys of customer {cid}"
        with RowStream(LIST_COLUMNS, as_json=as_json, title=title, total=limit) as out:
            async for page in local_pages(services, cid, limit):
                out.page(accesskey_view(key, expand=EXPAND_ALL) for key in page)

    run_local(work)


async def local_pages(services: Services, customer_id: uuid.UUID, limit: int | None) -> Any:
    """The customer's live keys, a page at a time (only one page is held at once)."""
    cursor = None
    remaining = limit
    while remaining is None or remaining > 0:
        size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
        page = await services.accesskeys.list_page(
            OPERATOR, customer_id, page_size=size, cursor=cursor
        )
        if page.items:
            yield page.items
        if len(page.items) < size:
            return
        if remaining is not None:
            remaining -= len(page.items)
        cursor = Cursor(page.items[-1].tm_create, page.items[-1].id)


def _stream_remote(client: Client, out: RowStream, limit: int | None) -> None:
    page: list[dict[str, Any]] = []
    for view in _limited(client, limit):
        page.append(view)
        if len(page) == PAGE_SIZE:
            out.page(page)
            page = []
    out.page(page)


def _limited(client: Client, limit: int | None) -> Iterator[dict[str, Any]]:
    size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit)
    for count, key in enumerate(client.accesskeys.iter(page_size=size, expand="all"), 1):
        yield dict(key.raw)
        if limit is not None and count >= limit:
            return


@accesskey_app.command("get", cls=IdCommand)
def accesskey_get(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """Show one access key, with when it was last used (to within about a minute)."""
    key_id = parse_uuid(accesskey_id, "access key id")
    if server_url() is not None:
        view = run_remote(lambda client: dict(client.accesskeys.get(key_id, expand="all").raw))
    else:

        async def work(services: Services) -> dict[str, Any]:
            key = await services.accesskeys.get(OPERATOR, key_id)
            return accesskey_view(key, expand=EXPAND_ALL)

        view = run_local(work)
    emit(view, as_json=as_json, title="access key")


@accesskey_app.command("show", cls=IdCommand, hidden=True)
def accesskey_show(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """The same as `accesskey get` (its older name)."""
    accesskey_get(accesskey_id, as_json)


@accesskey_app.command("create")
def accesskey_create(
    expire: Annotated[
        int, typer.Option(metavar="SECONDS", help="Lifetime in seconds (at least 86400).")
    ],
    customer_id: CustomerOption = None,
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
    count: Annotated[
        int, typer.Option(min=1, max=10000, metavar="N", help="Create N keys alike (a list).")
    ] = 1,
    as_json: JsonOption = False,
) -> None:
    """Create an access key (or --count of them); each token is printed once."""
    restriction = _scopes(scopes)
    networks = _networks(allowed_networks)
    shown = {"scopes"} if restriction else set()
    if networks:
        shown.add("allowed_networks")
    title = "access key (the token is shown once)"
    if server_url() is not None:

        def create(client: Client) -> dict[str, Any]:
            key = client.accesskeys.create(
                expire=expire,
                name=name,
                detail=detail,
                scopes=None if restriction is None else json.loads(_scopes_json(scopes)),
                allowed_networks=None if networks is None else _split(allowed_networks),
            )
            return dict(key.raw)

        if count == 1:
            emit(run_remote(create), as_json=as_json, title=title)
            return
        with RowStream(CREATED_COLUMNS, as_json=as_json, title="access keys", total=count) as out:

            def create_many_remote(client: Client) -> None:
                for _ in range(count):
                    out.page([create(client)])

            run_remote(create_many_remote)
        return
    cid = _customer(customer_id)

    async def create_local(services: Services) -> dict[str, Any]:
        key, token = await services.accesskeys.create(
            OPERATOR,
            cid,
            name=name,
            detail=detail,
            expire=expire,
            scopes=restriction,
            allowed_networks=networks,
        )
        return accesskey_view(key, token, expand=frozenset(shown))

    if count == 1:
        emit(run_local(create_local), as_json=as_json, title=title)
        return

    async def create_many(services: Services) -> None:
        with RowStream(CREATED_COLUMNS, as_json=as_json, title="access keys", total=count) as out:
            for _ in range(count):
                out.page([await create_local(services)])

    run_local(create_many)


def _scopes_json(raw: str) -> str:
    return json.dumps(raw) if raw == READ_ONLY else raw


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


@accesskey_app.command("update", cls=IdCommand)
def accesskey_update(
    accesskey_id: KeyIdArgument,
    name: Annotated[str | None, typer.Option(metavar="TEXT", help="New name.")] = None,
    detail: Annotated[str | None, typer.Option(metavar="TEXT", help="New detail.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a key's name and/or detail (what is not given stays as it is)."""
    key_id = parse_uuid(accesskey_id, "access key id")
    if name is None and detail is None:
        fail("nothing to change", hint="pass --name TEXT and/or --detail TEXT", code=EXIT_USAGE)
    if server_url() is not None:

        def remote(client: Client) -> dict[str, Any]:
            current = client.accesskeys.get(key_id)
            updated = client.accesskeys.update(
                key_id,
                name=current.name if name is None else name,
                detail=current.detail if detail is None else detail,
            )
            return dict(updated.raw)

        emit(run_remote(remote), as_json=as_json, title="access key")
        return

    async def work(services: Services) -> dict[str, Any]:
        current = await services.accesskeys.get(OPERATOR, key_id)
        key = await services.accesskeys.update(
            OPERATOR,
            key_id,
            name=current.name if name is None else name,
            detail=current.detail if detail is None else detail,
        )
        return accesskey_view(key)

    emit(run_local(work), as_json=as_json, title="access key")


@accesskey_app.command("delete", cls=IdCommand)
def accesskey_delete(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """Delete an access key: it stops authenticating (everywhere within a second)."""
    key_id = parse_uuid(accesskey_id, "access key id")
    if server_url() is not None:
        view = run_remote(lambda client: dict(client.accesskeys.delete(key_id).raw))
    else:

        async def work(services: Services) -> dict[str, Any]:
            return accesskey_view(await services.accesskeys.delete(OPERATOR, key_id))

        view = run_local(work)
    emit(view, as_json=as_json, title="deleted access key")


@accesskey_app.command("disable", cls=IdCommand)
def accesskey_disable(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """Disable an access key: refused everywhere (within a second) until enabled."""
    key_id = parse_uuid(accesskey_id, "access key id")
    if server_url() is not None:
        view = run_remote(lambda client: dict(client.accesskeys.disable(key_id).raw))
    else:

        async def work(services: Services) -> dict[str, Any]:
            key = await services.accesskeys.disable(OPERATOR, key_id)
            return accesskey_view(key, expand=EXPAND_ALL)

        view = run_local(work)
    emit(view, as_json=as_json, title="disabled access key")


@accesskey_app.command("enable", cls=IdCommand)
def accesskey_enable(accesskey_id: KeyIdArgument, as_json: JsonOption = False) -> None:
    """Enable a disabled access key again."""
    key_id = parse_uuid(accesskey_id, "access key id")
    if server_url() is not None:
        view = run_remote(lambda client: dict(client.accesskeys.enable(key_id).raw))
    else:

        async def work(services: Services) -> dict[str, Any]:
            key = await services.accesskeys.enable(OPERATOR, key_id)
            return accesskey_view(key, expand=EXPAND_ALL)

        view = run_local(work)
    emit(view, as_json=as_json, title="enabled access key")


@accesskey_app.command("rotate", cls=IdCommand)
def accesskey_rotate(
    accesskey_id: KeyIdArgument,
    grace: Annotated[
        int, typer.Option(help="Seconds the old key keeps working: 0 to 604800 (7 days).")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Replace an access key by a new one (same name, detail, lifetime); token printed once."""
    key_id = parse_uuid(accesskey_id, "access key id")
    if server_url() is not None:
        view = run_remote(lambda client: dict(client.accesskeys.rotate(key_id, grace=grace).raw))
    else:

        async def work(services: Services) -> dict[str, Any]:
            new, token, _ = await services.accesskeys.rotate(OPERATOR, key_id, grace=grace)
            return accesskey_view(new, token, expand=EXPAND_ALL)

        view = run_local(work)
    emit(view, as_json=as_json, title="new access key (the token is shown once)")


@accesskey_app.command("expire", cls=IdCommand)
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
    key_id = parse_uuid(accesskey_id, "access key id")
    try:
        moment = parse_timestamp(tm_expire)
    except ValueError:
        fail(
            "--tm-expire is not a timestamp",
            hint="e.g. 2027-01-31T00:00:00.000000Z",
            code=EXIT_USAGE,
        )
    if server_url() is not None:
        view = run_remote(lambda client: dict(client.accesskeys.shorten_expiry(key_id, moment).raw))
    else:

        async def work(services: Services) -> dict[str, Any]:
            key = await services.accesskeys.shorten_expiry(OPERATOR, key_id, moment)
            return accesskey_view(key, expand=EXPAND_ALL)

        view = run_local(work)
    emit(view, as_json=as_json, title="access key")
