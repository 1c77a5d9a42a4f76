"""``keyplane agent ...``: on the database only (the HTTP API manages no agents)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from keyplane.cli.listing import ListColumn, RowStream
from keyplane.cli.local import OPERATOR, parse_uuid, run_local
from keyplane.cli.options import IdCommand, JsonOption, group, read_secret_stdin
from keyplane.cli.output import EXIT_REFUSED, EXIT_USAGE, emit, fail, say
from keyplane.cli.remote import local_only
from keyplane.domain.permissions import Permission, is_super_admin
from keyplane.domain.views import agent_view

if TYPE_CHECKING:
    from keyplane.services.container import Services

agent_app = group("Manage agents (people who log in).")

AgentIdArgument = Annotated[str, typer.Argument(metavar="ID", help="The agent's id.")]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
LIST_COLUMNS = (
    ListColumn("id", 36, no_wrap=True),
    ListColumn("username", 12, flexible=True, wants=24),
    ListColumn("name", 12, flexible=True),
    ListColumn("permission", 10, no_wrap=True),
    ListColumn("tm_create", 27, no_wrap=True),
)


def _unknown_bits(bits: int) -> list[int]:
    """The bits of ``bits`` that are none of 1, 16, 32 and 64, lowest first."""
    known = int(
        Permission.PROJECT_SUPER_ADMIN
        | Permission.CUSTOMER_AGENT
        | Permission.CUSTOMER_ADMIN
        | Permission.CUSTOMER_MANAGER
    )
    unknown = bits & ~known
    return [1 << shift for shift in range(unknown.bit_length()) if unknown & (1 << shift)]


def _agent_permission(bits: int, *, super_admin: bool, confirmed: bool) -> int:
    """Documented bits only; a project super admin only on an explicit, confirmed request."""
    unknown = _unknown_bits(bits)
    if unknown:
        named = ", ".join(map(str, unknown[:4]))
        if len(unknown) > 4:
            named += f" and {len(unknown) - 4} more"
        also = "; a project super admin (bit 1) needs --super-admin"
        fail(
            f"--permission {bits} has bits that are not permissions: {named}",
            hint="add up 16 (agent), 32 (admin) and 64 (manager), e.g. --permission 96"
            + (also if bits & 1 and not super_admin else ""),
            code=EXIT_USAGE,
        )
    if is_super_admin(bits) and not super_admin:
        fail(
            f"--permission {bits} includes bit 1, project super admin",
            hint="pass --super-admin (and --yes, or confirm when asked) to mean it",
            code=EXIT_USAGE,
        )
    if not super_admin:
        if not bits:
            fail(
                "no permission given", hint="pass --permission 16, 32, 64 or a sum", code=EXIT_USAGE
            )
        return bits
    say("WARNING: a project super admin can manage every customer's data.", err=True)
    if confirmed:
        return int(Permission.PROJECT_SUPER_ADMIN) | bits
    if not sys.stdin.isatty():
        fail("--super-admin must be confirmed", hint="add --yes to confirm it", code=EXIT_USAGE)
    if not typer.confirm("Create a project super admin?", default=False, err=True):
        fail("not confirmed; no agent was created", code=EXIT_REFUSED)
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
    password_stdin: PasswordStdinOption = False,
    name: Annotated[str, typer.Option(metavar="TEXT", help="Display name.")] = "",
    detail: Annotated[str, typer.Option(metavar="TEXT", help="Free text.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an agent. Without --password-stdin a password is generated and shown once."""
    local_only("agent create")
    cid = parse_uuid(customer_id, "--customer-id")
    permission = _agent_permission(permission, super_admin=super_admin, confirmed=yes)
    from keyplane.domain.passwords import generate_password

    generated = not password_stdin
    password = generate_password() if generated else read_secret_stdin("password")

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

    emit(run_local(work), as_json=as_json, title="agent")


@agent_app.command("list")
def agent_list(
    customer_id: Annotated[
        str, typer.Option("--customer-id", metavar="UUID", help="Whose agents.")
    ],
    as_json: JsonOption = False,
) -> None:
    """List a customer's live agents, by username."""
    local_only("agent list")
    cid = parse_uuid(customer_id, "--customer-id")

    async def work(services: Services) -> None:
        agents = await services.customers.list_agents(OPERATOR, cid)
        with RowStream(
            LIST_COLUMNS, as_json=as_json, title=f"agents of customer {cid}", hide_empty=True
        ) as out:
            out.page(agent_view(agent) for agent in agents)

    run_local(work)


@agent_app.command("get", cls=IdCommand)
def agent_get(agent_id: AgentIdArgument, as_json: JsonOption = False) -> None:
    """Show an agent (never its password or hash)."""
    local_only("agent get")
    aid = parse_uuid(agent_id, "agent id")

    async def work(services: Services) -> dict[str, object]:
        return agent_view(await services.customers.get_agent(OPERATOR, aid))

    emit(run_local(work), as_json=as_json, title="agent")


@agent_app.command("set-password", cls=IdCommand)
def agent_set_password(
    agent_id: AgentIdArgument,
    password_stdin: PasswordStdinOption = False,
    as_json: JsonOption = False,
) -> None:
    """Give an agent a new password: generated and shown once, or read with --password-stdin."""
    local_only("agent set-password")
    aid = parse_uuid(agent_id, "agent id")
    from keyplane.domain.passwords import generate_password

    generated = not password_stdin
    password = generate_password() if generated else read_secret_stdin("password")

    async def work(services: Services) -> dict[str, object]:
        agent = await services.customers.set_agent_password(OPERATOR, aid, password)
        view: dict[str, object] = agent_view(agent)
        if generated:
            view["password"] = password
        return view

    emit(run_local(work), as_json=as_json, title="agent (a generated password is shown once)")


@agent_app.command("delete", cls=IdCommand)
def agent_delete(agent_id: AgentIdArgument, as_json: JsonOption = False) -> None:
    """Delete an agent: its sessions stop working (everywhere within a second)."""
    local_only("agent delete")
    aid = parse_uuid(agent_id, "agent id")

    async def work(services: Services) -> dict[str, object]:
        return agent_view(await services.customers.delete_agent(OPERATOR, aid))

    emit(run_local(work), as_json=as_json, title="deleted agent")
