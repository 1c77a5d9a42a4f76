"""What both clients share: credentials, request building, errors and the retry rule."""

from __future__ import annotations

import email.utils
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from keyplane.client._calls import Call
from keyplane.client._exceptions import APIError, TransportError, error_class
from keyplane.client._models import Verification

RETRIED_STATUS_CODES = frozenset({429, 503})
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_RETRY_WAIT = 30.0
_FIRST_BACKOFF = 0.5
_ACCESSKEY_PREFIX = "vb_"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on 429 and 503: at most ``max_retries`` more attempts, each waiting what
    ``Retry-After`` says (or 0.5 s, 1 s, 2 s, ... without one), never more than
    ``max_retry_wait`` seconds: a longer ``Retry-After`` raises at once."""

    max_retries: int = DEFAULT_MAX_RETRIES
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT

    def wait_before_retry(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None``: do not retry."""
        if response.status_code not in RETRIED_STATUS_CODES or attempt >= self.max_retries:
            return None
        wait = retry_after(response)
        if wait is None:
            wait = _FIRST_BACKOFF * 2**attempt
        return wait if wait <= self.max_retry_wait else None


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or ``None``."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Credentials:
    """An access key or a session token, sent as ``Authorization: Bearer`` by default.

    With ``in_url=True`` it is sent as ``?accesskey=`` / ``?token=`` instead
    (VoIPBIN's form; URLs end up in logs and histories, so only when asked).
    """

    def __init__(self, *, accesskey: str | None, token: str | None, in_url: bool) -> None:
        if accesskey and token:
            raise ValueError("give an access key or a session token, not both")
        self.accesskey = accesskey or None
        self.token = token or None
        self.in_url = in_url

    def __repr__(self) -> str:
        kind = "accesskey" if self.accesskey else "token" if self.token else "none"
        return f"Credentials({kind})"

    @property
    def present(self) -> bool:
        return bool(self.accesskey or self.token)

    def apply(self, headers: dict[str, str], params: dict[str, str]) -> None:
        secret = self.accesskey or self.token
        if secret is None:
            return
        if self.in_url:
            params["accesskey" if self.accesskey else "token"] = secret
        else:
            headers["Authorization"] = f"Bearer {secret}"


class ClientBase:
    """Configuration and the request/answer rules; subclasses send."""

    def __init__(
        self,
        base_url: str,
        *,
        accesskey: str | None,
        token: str | None,
        credentials_in_url: bool,
        timeout: float | httpx.Timeout,
        max_retries: int,
        max_retry_wait: float,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.credentials = Credentials(accesskey=accesskey, token=token, in_url=credentials_in_url)
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries=max_retries, max_retry_wait=max_retry_wait)

    def _use_session(self, token: str) -> None:
        self.credentials = Credentials(accesskey=None, token=token, in_url=self.credentials.in_url)

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        headers = {"Accept": "application/json"}
        params = dict(call.params)
        if call.authenticated:
            self.credentials.apply(headers, params)
        return http.build_request(
            call.method,
            call.path,
            params=params or None,
            json=call.body,
            headers=headers,
        )

    def _verify_request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        credential: str | None,
        method: str | None,
        path: str | None,
    ) -> httpx.Request:
        headers = {"Accept": "application/json"}
        params: dict[str, str] = {}
        if credential is None:
            self.credentials.apply(headers, params)
        elif self.credentials.in_url:
            kind = "accesskey" if credential.startswith(_ACCESSKEY_PREFIX) else "token"
            params[kind] = credential
        else:
            headers["Authorization"] = f"Bearer {credential}"
        if method is not None:
            headers["X-Original-Method"] = method
        if path is not None:
            headers["X-Original-URI"] = path
        return http.build_request("GET", "/auth/verify", params=params or None, headers=headers)

    @staticmethod
    def _transport_error(error: httpx.HTTPError, base_url: str) -> TransportError:
        # The type, not the text: a URL in an error text could carry a credential.
        what = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
        return TransportError(f"the request to {base_url} {what} ({type(error).__name__})")


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    raise api_error(response)


def api_error(response: httpx.Response) -> APIError:
    """The contract's envelope as an exception (something sensible for a proxy's page)."""
    envelope = _envelope(response)
    return error_class(response.status_code)(
        status_code=response.status_code,
        status=str(envelope.get("status", "")),
        reason=str(envelope.get("reason") or f"HTTP_{response.status_code}"),
        message=str(envelope.get("message") or response.reason_phrase),
        request_id=str(envelope.get("request_id") or response.headers.get("x-request-id", "")),
        retry_after=retry_after(response),
    )


def _envelope(response: httpx.Response) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def verification(response: httpx.Response) -> Verification:
    """200: the identity; 401/403: why not; anything else raises."""
    if response.status_code == 200:
        headers = response.headers
        return Verification(
            valid=True,
            status_code=200,
            customer_id=_header_uuid(headers.get("x-keyplane-customer-id")),
            identity_type=headers.get("x-keyplane-identity-type"),
            identity_id=_header_uuid(headers.get("x-keyplane-identity-id")),
            permission=int(headers["x-keyplane-permission"])
            if "x-keyplane-permission" in headers
            else None,
            request_id=headers.get("x-request-id", ""),
        )
    if response.status_code in (401, 403):
        error = api_error(response)
        return Verification(
            valid=False,
            status_code=response.status_code,
            reason=error.reason,
            message=error.message,
            request_id=error.request_id,
        )
    raise api_error(response)


def _header_uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None
