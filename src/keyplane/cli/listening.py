"""The listening sockets of ``keyplane serve``.

One worker listens on the socket bound here. Several workers each listen on a
socket of their own, bound to the same address with ``SO_REUSEPORT``, so the
kernel spreads new connections over them evenly. On one shared socket,
whichever worker wakes first accepts every connection waiting, and a client
that opens its connections in a burst (a proxy's pool, a load generator) ends
up served by one worker while the others idle.
"""

from __future__ import annotations

import socket
from typing import Any


def _bound(
    family: socket.AddressFamily,
    address: Any,
    *,
    reuse_port: bool,
    kind: type[socket.socket] = socket.socket,
) -> socket.socket:
    sock = kind(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _worker_socket(family: socket.AddressFamily, address: Any) -> socket.socket:
    """Run in a worker as it starts: its own socket on the server's address."""
    return _bound(family, address, reuse_port=True)


class PortReservation(socket.socket):
    """Holds the address for the workers: bound with ``SO_REUSEPORT``, never listening.

    A socket that does not listen is given no connections. Sent to a worker
    process (uvicorn pickles the sockets it hands its workers), it arrives there
    as that worker's own socket on the same address (``_worker_socket``).
    Only processes of the same user can join the address.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_worker_socket, (self.family, self.getsockname()))


def bind(host: str, port: int, *, workers: int) -> socket.socket:
    """The socket to hand uvicorn; raises ``OSError`` when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if workers == 1:
        return _bound(family, (host, port), reuse_port=False)
    return _bound(family, (host, port), reuse_port=True, kind=PortReservation)


def shown_url(scheme: str, host: str, port: int) -> str:
    """The address to print: a wildcard host is shown as loopback, which it includes."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
