"""The asynchronous client: the same operations as :class:`Client`, awaited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from keyplane.client import _calls
from keyplane.client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_TIMEOUT,
    ClientBase,
    raise_for_error,
    verification,
)
from keyplane.client._calls import Call, KeyId
from keyplane.client._models import (
    Accesskey,
    AccesskeyIdentity,
    AccesskeyPage,
    Agent,
    Customer,
    LoginResult,
    Verification,
)

__all__ = ["AsyncClient"]

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100


class AsyncClient(ClientBase):
    """The asynchronous twin of :class:`Client` (same arguments)::

    async with AsyncClient("https://keys.example.com", accesskey=key) as client:
        async for key in client.accesskeys.iter():
            print(key.name)
    """

    def __init__(
        self,
        base_url: str,
        *,
        accesskey: str | None = None,
        token: str | None = None,
        credentials_in_url: bool = False,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        transport: httpx.AsyncBaseTransport | None = None,
        verify_tls: bool = True,
    ) -> None:
        super().__init__(
            base_url,
            accesskey=accesskey,
            token=token,
            credentials_in_url=credentials_in_url,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, verify=verify_tls
        )
        self.accesskeys = AsyncAccesskeys(self)
        self.customer = AsyncCustomerAPI(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self, username: str, password: str) -> LoginResult:
        """Log in; later requests use the new session token."""
        result = await self._call(_calls.login(username, password))
        self._use_session(result.token)
        return result

    async def whoami(self) -> Agent | AccesskeyIdentity:
        return await self._call(_calls.whoami())

    async def verify(
        self, credential: str | None = None, *, method: str | None = None, path: str | None = None
    ) -> Verification:
        """See :meth:`Client.verify`."""
        response = await self._send(
            lambda: self._verify_request(self._http, credential, method, path)
        )
        return verification(response)

    async def _call(self, call: Call[T]) -> T:
        response = await self._send(lambda: self._build(self._http, call))
        raise_for_error(response)
        return call.parse(response)

    async def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.send(build())
            except httpx.HTTPError as error:
                raise self._transport_error(error, self.base_url) from None
            wait = self.retry.wait_before_retry(response, attempt)
            if wait is None:
                return response
            await response.aclose()
            await anyio.sleep(wait)
            attempt += 1


class AsyncAccesskeys:
    """``client.accesskeys`` of an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        expire: int,
        name: str = "",
        detail: str = "",
        scopes: Any | None = None,
        allowed_networks: list[str] | None = None,
    ) -> Accesskey:
        return await self._client._call(
            _calls.create_key(
                expire=expire,
                name=name,
                detail=detail,
                scopes=scopes,
                allowed_networks=allowed_networks,
            )
        )

    async def list(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        expand: str | None = None,
    ) -> AccesskeyPage:
        return await self._client._call(
            _calls.list_keys(page_size=page_size, page_token=page_token, expand=expand)
        )

    async def iter(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, expand: str | None = None
    ) -> AsyncIterator[Accesskey]:
        # The server serves at most 100 a page (more counts as 100): a shorter page is the last.
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        token: str | None = None
        while True:
            page = await self.list(page_size=page_size, page_token=token, expand=expand)
            for key in page.result:
                yield key
            if len(page.result) < page_size or not page.next_page_token:
                return
            token = page.next_page_token

    async def get(self, key_id: KeyId, *, expand: str | None = None) -> Accesskey:
        return await self._client._call(_calls.get_key(key_id, expand=expand))

    async def update(self, key_id: KeyId, *, name: str = "", detail: str = "") -> Accesskey:
        return await self._client._call(_calls.update_key(key_id, name=name, detail=detail))

    async def delete(self, key_id: KeyId) -> Accesskey:
        return await self._client._call(_calls.delete_key(key_id))

    async def disable(self, key_id: KeyId) -> Accesskey:
        return await self._client._call(_calls.disable_key(key_id))

    async def enable(self, key_id: KeyId) -> Accesskey:
        return await self._client._call(_calls.enable_key(key_id))

    async def rotate(self, key_id: KeyId, *, grace: int = 0) -> Accesskey:
        return await self._client._call(_calls.rotate_key(key_id, grace=grace))

    async def shorten_expiry(self, key_id: KeyId, tm_expire: datetime) -> Accesskey:
        return await self._client._call(_calls.shorten_key_expiry(key_id, tm_expire))


class AsyncCustomerAPI:
    """``client.customer`` of an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self) -> Customer:
        return await self._client._call(_calls.get_customer())

    async def update(
        self,
        *,
        name: str | None = None,
        detail: str | None = None,
        email: str | None = None,
        phone_number: str | None = None,
        address: str | None = None,
        webhook_method: str | None = None,
        webhook_uri: str | None = None,
    ) -> Customer:
        """Change the fields given; the others keep their value (read first, then replaced)."""
        changes = {
            "name": name,
            "detail": detail,
            "email": email,
            "phone_number": phone_number,
            "address": address,
            "webhook_method": webhook_method,
            "webhook_uri": webhook_uri,
        }
        fields = _calls.merged_customer_fields(await self.get(), changes)
        return await self._client._call(_calls.put_customer(fields))
