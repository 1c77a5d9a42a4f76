"""``keyplane login``, ``logout``, ``whoami`` and ``verify``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyplane.cli import session
from keyplane.cli.local import run_local
from keyplane.cli.options import JsonOption, read_secret_stdin
from keyplane.cli.output import (
    EXIT_REFUSED,
    EXIT_USAGE,
    emit,
    fail,
    say,
    wants_json,
    write,
)
from keyplane.cli.remote import run_remote, server_url
from keyplane.domain import tokens
from keyplane.domain.timefmt import format_timestamp
from keyplane.errors import KeyplaneError

if TYPE_CHECKING:
    from keyplane.client import Client
    from keyplane.services.container import Services


def _url_or_stored(command: str) -> str:
    """The named server, else the one server a session is stored for."""
    url = server_url() or session.only_url()
    if url is None:
        fail(
            f"`keyplane {command}` needs a server",
            hint="name it: keyplane --url http://HOST:PORT login (or set KEYPLANE_URL)",
            code=EXIT_USAGE,
        )
    return url


def login(
    username: Annotated[str, typer.Option(metavar="TEXT", help="The agent's username.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Log in to a server (--url) and keep the session (0600, under the config directory)."""
    url = server_url()
    if url is None:
        fail(
            "which server? `keyplane login` needs --url",
            hint="keyplane --url http://127.0.0.1:8080 login --username NAME",
            code=EXIT_USAGE,
        )
    if password_stdin:
        password = read_secret_stdin("password")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, err=True)
    else:
        fail("no terminal to ask the password on", hint="pass --password-stdin", code=EXIT_USAGE)
    result = run_remote(lambda client: client.login(username, password), authenticated=False)
    where = session.save(session.StoredSession(url, result.username, result.token))
    view = {"url": url, "username": result.username, "sessions_file": str(where)}
    if wants_json(as_json):
        emit(view, as_json=True)
    else:
        say(f"logged in to {url} as {result.username}; the session is kept in {where}")


def logout(as_json: JsonOption = False) -> None:
    """Forget the session kept for a server (it stays valid there until it expires)."""
    url = _url_or_stored("logout")
    removed = session.remove(url)
    if wants_json(as_json):
        emit({"url": url, "removed": removed}, as_json=True)
    elif removed:
        say(f"logged out of {url}: the session kept here is removed")
    else:
        say(f"no session kept for {url}")


def whoami(as_json: JsonOption = False) -> None:
    """Who the server sees: the agent of your session, or the access key in KEYPLANE_ACCESSKEY."""
    url = _url_or_stored("whoami")

    def ask(client: Client) -> dict[str, Any]:
        return {"url": url, **client.whoami().raw}

    emit(run_remote(ask, url=url), as_json=as_json, title="you are")


def verify(
    token: Annotated[
        str,
        typer.Argument(
            metavar="TOKEN",
            help="The access key or session token, or - to read it from standard input "
            "(keeps it out of the shell history and the process list).",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Say whether a credential is accepted and, if not, why. The token is never printed."""
    credential = read_secret_stdin("token") if token == "-" else token  # noqa: S105
    remote = server_url() is not None
    result = _verify_remote(credential) if remote else _verify_local(credential)
    if wants_json(as_json):
        write(_json_line(result))
    else:
        state = "valid" if result["valid"] else "invalid"
        say(f"{state}: {result['why']}")
        for field in ("token_prefix", "id", "customer_id", "identity_type"):
            if result.get(field):
                say(f"  {field:<14}{result[field]}")
    if not result["valid"]:
        raise SystemExit(EXIT_REFUSED)


def _json_line(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2) + "\n"


def _verify_remote(credential: str) -> dict[str, Any]:
    from keyplane.services.diagnosis import MALFORMED

    if credential.startswith(tokens.TOKEN_PREFIX) and not tokens.is_wellformed(credential):
        return {"valid": False, "why": MALFORMED}

    def ask(client: Client) -> dict[str, Any]:
        found = client.verify(credential)
        if found.valid:
            return {
                "valid": True,
                "why": "accepted by the server",
                "identity_type": found.identity_type,
                "id": str(found.identity_id),
                "customer_id": str(found.customer_id),
                "permission": found.permission,
            }
        why = (
            "unknown, expired, deleted or disabled (the server does not say which; "
            "run `keyplane verify` on the database to learn it)"
            if found.reason == "INVALID_CREDENTIALS"
            else found.message
        )
        return {"valid": False, "why": why, "reason": found.reason}

    return run_remote(ask, authenticated=False)


def _verify_local(credential: str) -> dict[str, Any]:
    from keyplane.services.diagnosis import diagnose_accesskey

    async def work(services: Services) -> dict[str, Any]:
        if not credential.startswith(tokens.TOKEN_PREFIX) and credential.count(".") == 2:
            try:
                identity = await services.auth.authenticate_session(credential)
            except KeyplaneError:
                why = "a session token that is expired, badly signed or of a deleted agent"
                return {"valid": False, "why": why}
            return {
                "valid": True,
                "why": "a session token of a live agent",
                "identity_type": "agent",
                "id": str(identity.id),
                "customer_id": str(identity.customer_id),
            }
        found = await diagnose_accesskey(services, credential)
        result: dict[str, Any] = {"valid": found.valid, "why": found.why}
        if found.key is not None:
            result.update(
                identity_type="accesskey",
                id=str(found.key.id),
                customer_id=str(found.key.customer_id),
                token_prefix=found.key.token_prefix,
                tm_expire=format_timestamp(found.key.tm_expire),
            )
        return result

    return run_local(work)
