"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

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

__all__ = ["Client"]

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100


class Client(ClientBase):
    """A client of one keyplane server::

        with Client("https://keys.example.com", accesskey=key) as client:
            for key in client.accesskeys.iter():
                print(key.name)

    Authenticate with ``accesskey=`` or ``token=`` (a session token), or call
    :meth:`login`. Credentials go in the ``Authorization`` header; pass
    ``credentials_in_url=True`` to send them as query parameters instead.
    Answers 429 and 503 are retried (``max_retries``), waiting what
    ``Retry-After`` says, up to ``max_retry_wait`` seconds each time.
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
        transport: httpx.BaseTransport | None = None,
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
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, verify=verify_tls
        )
        self.accesskeys = Accesskeys(self)
        self.customer = CustomerAPI(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def login(self, username: str, password: str) -> LoginResult:
        """Log in; later requests use the new session token."""
        result = self._call(_calls.login(username, password))
        self._use_session(result.token)
        return result

    def whoami(self) -> Agent | AccesskeyIdentity:
        """The caller: the agent of a session, or the access key itself."""
        return self._call(_calls.whoami())

    def verify(
        self, credential: str | None = None, *, method: str | None = None, path: str | None = None
    ) -> Verification:
        """Ask ``/auth/verify`` whether a credential (default: this client's) is accepted.

        ``method`` and ``path`` describe the request a gateway would let pass
        (a key restricted by scopes is judged against them).
        """
        response = self._send(lambda: self._verify_request(self._http, credential, method, path))
        return verification(response)

    def _call(self, call: Call[T]) -> T:
        response = self._send(lambda: self._build(self._http, call))
        raise_for_error(response)
        return call.parse(response)

    def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.send(build())
            except httpx.HTTPError as error:
                raise self._transport_error(error, self.base_url) from None
            wait = self.retry.wait_before_retry(response, attempt)
            if wait is None:
                return response
            response.close()
            time.sleep(wait)
            attempt += 1


class Accesskeys:
    """``client.accesskeys``: the caller's customer's access keys."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        expire: int,
        name: str = "",
        detail: str = "",
        scopes: Any | None = None,
        allowed_networks: list[str] | None = None,
    ) -> Accesskey:
        """A new key; its ``token`` is in this answer only."""
        return self._client._call(
            _calls.create_key(
                expire=expire,
                name=name,
                detail=detail,
                scopes=scopes,
                allowed_networks=allowed_networks,
            )
        )

    def list(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        expand: str | None = None,
    ) -> AccesskeyPage:
        """One page, newest first; pass its ``next_page_token`` for the next one."""
        return self._client._call(
            _calls.list_keys(page_size=page_size, page_token=page_token, expand=expand)
        )

    def iter(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, expand: str | None = None
    ) -> Iterator[Accesskey]:
        """Every live key, newest first, fetching one page at a time as it is consumed."""
        # The server serves at most 100 a page (more counts as 100): a shorter page is the last.
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        token: str | None = None
        while True:
            page = self.list(page_size=page_size, page_token=token, expand=expand)
            yield from page.result
            if len(page.result) < page_size or not page.next_page_token:
                return
            token = page.next_page_token

    def get(self, key_id: KeyId, *, expand: str | None = None) -> Accesskey:
        return self._client._call(_calls.get_key(key_id, expand=expand))

    def update(self, key_id: KeyId, *, name: str = "", detail: str = "") -> Accesskey:
        """Replace name and detail (as the contract does, a field not given becomes empty)."""
        return self._client._call(_calls.update_key(key_id, name=name, detail=detail))

    def delete(self, key_id: KeyId) -> Accesskey:
        return self._client._call(_calls.delete_key(key_id))

    def disable(self, key_id: KeyId) -> Accesskey:
        return self._client._call(_calls.disable_key(key_id))

    def enable(self, key_id: KeyId) -> Accesskey:
        return self._client._call(_calls.enable_key(key_id))

    def rotate(self, key_id: KeyId, *, grace: int = 0) -> Accesskey:
        """The new key (with its ``token``, shown once); the old one ends after ``grace`` s."""
        return self._client._call(_calls.rotate_key(key_id, grace=grace))

    def shorten_expiry(self, key_id: KeyId, tm_expire: datetime) -> Accesskey:
        return self._client._call(_calls.shorten_key_expiry(key_id, tm_expire))


class CustomerAPI:
    """``client.customer``: the caller's customer."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self) -> Customer:
        return self._client._call(_calls.get_customer())

    def update(
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
        fields = _calls.merged_customer_fields(self.get(), changes)
        return self._client._call(_calls.put_customer(fields))
