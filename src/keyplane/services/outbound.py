"""Outbound HTTP for webhooks, guarded against server-side request forgery.

Before each delivery the URI is checked again as when it was set
(``webhooks.webhook_uri_problem``), the host is resolved, and every address it
resolves to must be public, or inside ``KEYPLANE_WEBHOOK_ALLOWED_NETWORKS``
(empty by default): loopback, private, link-local, shared, reserved and
multicast addresses are refused, and so are IPv6 addresses that carry such an
IPv4 address (``webhooks.permitted``). The request then goes to the address that was
checked (the name is kept for ``Host`` and TLS), so a second, different
answer from DNS cannot redirect it. Redirects are never followed, the
response body is never read, and every request has a timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from keyplane.domain.networks import Networks
from keyplane.domain.webhooks import Address, permitted, webhook_uri_problem


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    error: str = ""  # why not, in a few words; never a URL or a header
    retry: bool = True  # False: retrying cannot help (the address is refused)


class OutboundClient:
    def __init__(self, *, allowed: Networks, timeout: float, max_body_bytes: int) -> None:
        self._allowed = allowed
        self._timeout = timeout
        self.max_body_bytes = max_body_bytes
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=True
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _resolve(self, host: str, port: int) -> list[Address]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [ipaddress.ip_address(info[4][0]) for info in infos]

    async def send(self, method: str, uri: str, body: bytes, headers: dict[str, str]) -> Outcome:
        if len(body) > self.max_body_bytes:
            return Outcome(False, f"payload over {self.max_body_bytes} bytes", retry=False)
        # A URI stored before a rule was added meets the rule here.
        problem = webhook_uri_problem(uri, self._allowed)
        if problem:
            return Outcome(False, f"refused: webhook_uri {problem}", retry=False)
        try:
            url = httpx.URL(uri)
        except httpx.InvalidURL:
            return Outcome(False, "invalid webhook_uri", retry=False)
        if url.scheme not in ("http", "https") or not url.host:
            return Outcome(False, "webhook_uri is not an http(s) URL", retry=False)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await self._resolve(url.host, port)
        except (OSError, TimeoutError, UnicodeError):
            return Outcome(False, "the webhook host could not be resolved")
        if not addresses or not all(permitted(a, self._allowed) for a in addresses):
            return Outcome(
                False,
                "refused: the webhook host is a private, loopback or reserved address "
                "(see KEYPLANE_WEBHOOK_ALLOWED_NETWORKS)",
                retry=False,
            )
        target = url.copy_with(host=str(addresses[0]))
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        request_headers = {**headers, "Host": url.netloc.decode("ascii")}
        try:
            async with self._client.stream(
                method, target, content=body, headers=request_headers, extensions=extensions
            ) as response:
                status = response.status_code  # the body is never read
        except httpx.TimeoutException:
            return Outcome(False, f"no answer within {self._timeout:g} s")
        except httpx.HTTPError as error:
            return Outcome(False, f"connection failed ({type(error).__name__})")
        if 200 <= status < 300:
            return Outcome(True)
        if 300 <= status < 400:
            return Outcome(False, f"HTTP {status}: redirects are not followed")
        return Outcome(False, f"HTTP {status}")
