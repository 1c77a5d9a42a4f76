"""``keyplane customer ...``."""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyplane.cli.listing import ListColumn, RowStream
from keyplane.cli.local import OPERATOR, parse_uuid, run_local
from keyplane.cli.options import IdCommand, JsonOption, group
from keyplane.cli.output import EXIT_REFUSED, EXIT_USAGE, emit, fail
from keyplane.cli.remote import local_only, run_remote, server_url
from keyplane.domain.views import customer_view

if TYPE_CHECKING:
    from keyplane.client import Client
    from keyplane.domain.records import Customer
    from keyplane.services.container import Services

customer_app = group("Manage customers (tenants).")

PAGE_SIZE = 100
PROFILE_FIELDS = (
    "name",
    "detail",
    "email",
    "phone_number",
    "address",
    "webhook_method",
    "webhook_uri",
)
LIST_COLUMNS = (
    ListColumn("id", 36, no_wrap=True),
    ListColumn("name", 12, flexible=True),
    ListColumn("email", 12, flexible=True, wants=28),
    ListColumn("webhook_uri", 12, flexible=True, wants=30),
    ListColumn("tm_create", 27, no_wrap=True),
)
# Fields of VoIPBIN's customer object that keyplane keeps at fixed defaults: in
# JSON for compatibility, left out of tables (they say nothing about this customer).
FIXED_FIELDS = (
    "billing_account_id",
    "metadata",
    "email_verified",
    "identity_verification_status",
    "tm_deletion_scheduled",
)
OptionalId = Annotated[
    str | None,
    typer.Argument(metavar="[ID]", help="The customer's id (with --url: the caller's own)."),
]


@customer_app.command("create")
def customer_create(
    name: Annotated[str, typer.Option(metavar="TEXT", help="Customer name.")],
    email: Annotated[str, typer.Option(metavar="EMAIL", help="Contact email.")] = "",
    detail: Annotated[str, typer.Option(metavar="TEXT", help="Free text.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a customer."""
    local_only("customer create")

    async def work(services: Services) -> dict[str, object]:
        customer = await services.customers.create_customer(
            OPERATOR, name=name, email=email, detail=detail
        )
        return customer_view(customer)

    emit(run_local(work), as_json=as_json, title="customer", omit=FIXED_FIELDS)


@customer_app.command("list")
def customer_list(
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="At most N customers (default: all).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the live customers, oldest first, as they are read."""
    local_only("customer list")

    async def work(services: Services) -> None:
        with RowStream(LIST_COLUMNS, as_json=as_json, title="customers", total=limit) as out:
            last: Customer | None = None
            while limit is None or out.count < limit:
                size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - out.count)
                page = await services.customers.list_customers(OPERATOR, after=last, limit=size)
                out.page(customer_view(customer) for customer in page)
                if len(page) < size:
                    return
                last = page[-1]

    run_local(work)


def _local_id(customer_id: str | None) -> uuid.UUID:
    if customer_id is None:
        fail(
            "which customer? give its ID",
            hint="`keyplane customer list` shows the ids; with --url it is your own",
            code=EXIT_USAGE,
        )
    return parse_uuid(customer_id, "customer id")


@customer_app.command("get", cls=IdCommand)
def customer_get(customer_id: OptionalId = None, as_json: JsonOption = False) -> None:
    """Show a customer (with --url: the caller's own)."""
    if server_url() is not None:
        view = run_remote(lambda client: dict(client.customer.get().raw))
    else:
        cid = _local_id(customer_id)

        async def work(services: Services) -> dict[str, Any]:
            return customer_view(await services.customers.get_customer(OPERATOR, cid))

        view = run_local(work)
    emit(view, as_json=as_json, title="customer", omit=FIXED_FIELDS)


def _text(help_text: str) -> Any:
    return typer.Option(metavar="TEXT", help=help_text)


@customer_app.command("update", cls=IdCommand)
def customer_update(
    customer_id: OptionalId = None,
    name: Annotated[str | None, _text("Name.")] = None,
    detail: Annotated[str | None, _text("Free text.")] = None,
    email: Annotated[str | None, _text("Contact email.")] = None,
    phone_number: Annotated[str | None, _text("Phone number.")] = None,
    address: Annotated[str | None, _text("Postal address.")] = None,
    webhook_method: Annotated[str | None, _text("POST or PUT.")] = None,
    webhook_uri: Annotated[str | None, _text("Where events go; empty: no webhook.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a customer's profile and webhook; fields not given stay as they are."""
    changes = {
        "name": name,
        "detail": detail,
        "email": email,
        "phone_number": phone_number,
        "address": address,
        "webhook_method": webhook_method,
        "webhook_uri": webhook_uri,
    }
    if all(value is None for value in changes.values()):
        fail(
            "nothing to change",
            hint="pass one or more of --name, --detail, --email, --phone-number, --address, "
            "--webhook-method, --webhook-uri",
            code=EXIT_USAGE,
        )
    if server_url() is not None:

        def remote(client: Client) -> dict[str, Any]:
            return dict(client.customer.update(**changes).raw)

        emit(run_remote(remote), as_json=as_json, title="customer", omit=FIXED_FIELDS)
        return
    cid = _local_id(customer_id)

    async def work(services: Services) -> dict[str, Any]:
        current = await services.customers.get_customer(OPERATOR, cid)
        profile = {field: getattr(current, field) for field in PROFILE_FIELDS}
        profile.update({key: value for key, value in changes.items() if value is not None})
        customer = await services.customers.update_customer(
            OPERATOR, cid, profile=profile, webhook_allowed=services.settings.webhook_networks
        )
        return customer_view(customer)

    emit(run_local(work), as_json=as_json, title="customer", omit=FIXED_FIELDS)


@customer_app.command("delete", cls=IdCommand)
def customer_delete(
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="The customer's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a customer: its access keys and agents stop working (everywhere within a second).

    Asks first; --yes skips the question (needed without a terminal).
    """
    local_only("customer delete")
    cid = parse_uuid(customer_id, "customer id")
    if not yes:
        if not sys.stdin.isatty():
            fail(
                "deleting a customer ends every access key and session it has; nothing was deleted",
                hint="pass --yes to delete it without being asked",
                code=EXIT_USAGE,
            )
        if not typer.confirm(
            f"Delete customer {cid}, ending every access key and session it has?",
            default=False,
            err=True,
        ):
            fail("not confirmed; nothing was deleted", code=EXIT_REFUSED)

    async def work(services: Services) -> dict[str, object]:
        return customer_view(await services.customers.delete_customer(OPERATOR, cid))

    emit(run_local(work), as_json=as_json, title="deleted customer", omit=FIXED_FIELDS)
