"""Remote mode: the command asks a keyplane server, through ``keyplane.client``.

A command is remote when a server is named, with ``keyplane --url URL ...``
or ``KEYPLANE_URL``. It authenticates with ``KEYPLANE_ACCESSKEY`` when set,
else with the session ``keyplane login`` stored for that server.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from keyplane.cli import session
from keyplane.cli.local import hint_for
from keyplane.cli.output import (
    EXIT_REFUSED,
    EXIT_UNAUTHENTICATED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
)

if TYPE_CHECKING:  # httpx is imported by the commands that talk to a server
    from keyplane.client import APIError, Client

T = TypeVar("T")
ACCESSKEY_VARIABLE = "KEYPLANE_ACCESSKEY"


_named: list[str] = []  # the one server this command runs against, if any


def use_server(url: str | None) -> None:
    """Called once by the root command with ``--url`` / ``KEYPLANE_URL``."""
    _named.clear()
    if url:
        check_url(url)
        _named.append(url.rstrip("/"))


def server_url() -> str | None:
    """The server named by ``--url`` (or ``KEYPLANE_URL``), or ``None``: local mode."""
    return _named[0] if _named else None


def local_only(command: str) -> None:
    """Refuse a command the HTTP API has no endpoint for, when a server is named."""
    if server_url() is not None:
        fail(
            f"`keyplane {command}` works on the database only, not through a server",
            hint="run it without --url (and without KEYPLANE_URL) on a machine "
            "with KEYPLANE_DATABASE_URL",
            code=EXIT_USAGE,
        )


def login_hint(url: str) -> str:
    """What to do when the server wants a credential, or refused the one given."""
    if os.environ.get(ACCESSKEY_VARIABLE):
        return (
            f"the access key in {ACCESSKEY_VARIABLE} was refused: check it with "
            f"`keyplane --url {url} verify -`, or unset {ACCESSKEY_VARIABLE} and run: "
            f"keyplane --url {url} login"
        )
    return f"run: keyplane --url {url} login (or set {ACCESSKEY_VARIABLE})"


def check_url(url: str) -> None:
    """Refuse, in the user's terms, a server address the client cannot use (the address
    is not repeated: it may carry a password)."""
    if not url.lower().startswith(("http://", "https://")):
        fail(
            "the server address (--url or KEYPLANE_URL) must start with http:// or https://",
            hint="e.g. --url http://127.0.0.1:8080",
            code=EXIT_USAGE,
        )


def open_client(url: str, *, authenticated: bool = True) -> Client:
    from keyplane.client import Client

    accesskey = os.environ.get(ACCESSKEY_VARIABLE) or None
    token = None
    if accesskey is None and authenticated:
        stored = session.load(url)
        if stored is None:
            fail(f"not logged in to {url}", hint=login_hint(url), code=EXIT_UNAUTHENTICATED)
        token = stored.token
    try:
        return Client(url, accesskey=accesskey, token=token)
    except ValueError:
        check_url(url)
        raise


def run_remote(
    work: Callable[[Client], T], *, authenticated: bool = True, url: str | None = None
) -> T:
    """Run ``work`` with a client of the server (by default the one named by ``--url``);
    its errors become exit statuses."""
    from keyplane.client import APIError, ClientError, TransportError

    url = url or server_url()
    assert url is not None
    with open_client(url, authenticated=authenticated) as client:
        try:
            return work(client)
        except TransportError as error:
            fail(
                str(error),
                hint="is the server running there? check --url / KEYPLANE_URL",
                code=EXIT_UNAVAILABLE,
            )
        except APIError as error:
            fail_for(error, url)
        except ClientError as error:
            fail(str(error))


def fail_for(error: APIError, url: str) -> NoReturn:
    message = f"{error.message} ({error.reason}; request id {error.request_id or '-'})"
    if error.status_code == 401:
        fail(message, hint=login_hint(url), code=EXIT_UNAUTHENTICATED)
    if error.status_code in (429, 503) or error.status_code >= 500:
        hint = (
            f"try again in {error.retry_after:.0f} s"
            if error.retry_after is not None
            else "try again later"
        )
        fail(message, hint=hint, code=EXIT_UNAVAILABLE)
    fail(message, hint=hint_for(error.reason), code=EXIT_REFUSED)
