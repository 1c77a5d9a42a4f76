"""The requests of the contract and how their answers are read, shared by both clients.

A :class:`Call` is one request (method, path, query, body) and the function
that turns a successful answer into a typed object. The sync and async
clients only differ in how they send it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import httpx

from keyplane.client._models import (
    Accesskey,
    AccesskeyIdentity,
    AccesskeyPage,
    Agent,
    Customer,
    LoginResult,
)

T = TypeVar("T")

KeyId = uuid.UUID | str
CUSTOMER_FIELDS = (
    "name",
    "detail",
    "email",
    "phone_number",
    "address",
    "webhook_method",
    "webhook_uri",
)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    authenticated: bool = True


def _json(response: httpx.Response) -> Any:
    return response.json()


def _key(response: httpx.Response) -> Accesskey:
    return Accesskey.from_json(_json(response))


def _page(response: httpx.Response) -> AccesskeyPage:
    data = _json(response)
    return AccesskeyPage(
        result=[Accesskey.from_json(item) for item in data["result"]],
        next_page_token=data.get("next_page_token") or "",
    )


def _customer(response: httpx.Response) -> Customer:
    return Customer.from_json(_json(response))


def _me(response: httpx.Response) -> Agent | AccesskeyIdentity:
    data = _json(response)
    if data.get("type") == "accesskey":
        return AccesskeyIdentity.from_json(data)
    return Agent.from_json(data)


def _login(response: httpx.Response) -> LoginResult:
    data = _json(response)
    return LoginResult(username=data["username"], token=data["token"])


def _key_path(key_id: KeyId, suffix: str = "") -> str:
    # uuid.UUID() refuses anything that could change the path ("../", "?", "#").
    return f"/v1.0/accesskeys/{uuid.UUID(str(key_id))}{suffix}"


def _expand(expand: str | None) -> dict[str, str]:
    return {"expand": expand} if expand else {}


def login(username: str, password: str) -> Call[LoginResult]:
    return Call(
        "POST",
        "/auth/login",
        _login,
        body={"username": username, "password": password},
        authenticated=False,
    )


def whoami() -> Call[Agent | AccesskeyIdentity]:
    return Call("GET", "/v1.0/me", _me)


def create_key(
    *,
    expire: int,
    name: str,
    detail: str,
    scopes: Any | None,
    allowed_networks: list[str] | None,
) -> Call[Accesskey]:
    body: dict[str, Any] = {"name": name, "detail": detail, "expire": expire}
    if scopes is not None:
        body["scopes"] = scopes
    if allowed_networks is not None:
        body["allowed_networks"] = allowed_networks
    return Call("POST", "/v1.0/accesskeys", _key, body=body)


def list_keys(
    *, page_size: int | None, page_token: str | None, expand: str | None
) -> Call[AccesskeyPage]:
    params = _expand(expand)
    if page_size is not None:
        params["page_size"] = str(page_size)
    if page_token:
        params["page_token"] = page_token
    return Call("GET", "/v1.0/accesskeys", _page, params=params)


def get_key(key_id: KeyId, *, expand: str | None) -> Call[Accesskey]:
    return Call("GET", _key_path(key_id), _key, params=_expand(expand))


def update_key(key_id: KeyId, *, name: str, detail: str) -> Call[Accesskey]:
    return Call("PUT", _key_path(key_id), _key, body={"name": name, "detail": detail})


def delete_key(key_id: KeyId) -> Call[Accesskey]:
    return Call("DELETE", _key_path(key_id), _key)


def disable_key(key_id: KeyId) -> Call[Accesskey]:
    return Call("POST", _key_path(key_id, "/disable"), _key)


def enable_key(key_id: KeyId) -> Call[Accesskey]:
    return Call("POST", _key_path(key_id, "/enable"), _key)


def rotate_key(key_id: KeyId, *, grace: int) -> Call[Accesskey]:
    return Call("POST", _key_path(key_id, "/rotate"), _key, body={"grace": grace})


def shorten_key_expiry(key_id: KeyId, tm_expire: datetime) -> Call[Accesskey]:
    moment = tm_expire.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Call("POST", _key_path(key_id, "/expire"), _key, body={"tm_expire": moment})


def get_customer() -> Call[Customer]:
    return Call("GET", "/v1.0/customer", _customer)


def put_customer(fields: Mapping[str, str]) -> Call[Customer]:
    return Call("PUT", "/v1.0/customer", _customer, body=dict(fields))


def merged_customer_fields(current: Customer, changes: Mapping[str, str | None]) -> dict[str, str]:
    """Every field of ``PUT /v1.0/customer`` (which replaces them all): changes over current."""
    unknown = set(changes) - set(CUSTOMER_FIELDS)
    if unknown:
        raise TypeError(f"unknown customer field(s): {', '.join(sorted(unknown))}")
    merged = {name: getattr(current, name) for name in CUSTOMER_FIELDS}
    merged.update({name: value for name, value in changes.items() if value is not None})
    return merged
