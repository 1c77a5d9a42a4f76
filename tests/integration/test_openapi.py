"""/openapi.json documents the contract: credentials, operations, bodies, errors."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from datamodel_code_generator import DataModelType, Formatter, InputFileType, generate
from openapi_spec_validator import validate

from keyplane.domain.views import EXPANDABLE
from tests.factories import ACCESSKEY_FIELDS, CUSTOMER_FIELDS
from tests.integration.conftest import (
    ACCESSKEY_WITH_TOKEN_FIELDS,
    assert_security_headers,
)

SCHEMES = {
    "SessionCookie": {"type": "apiKey", "in": "cookie", "name": "token"},
    "SessionQuery": {"type": "apiKey", "in": "query", "name": "token"},
    "Bearer": {"type": "http", "scheme": "bearer"},
    "AccesskeyCookie": {"type": "apiKey", "in": "cookie", "name": "accesskey"},
    "AccesskeyQuery": {"type": "apiKey", "in": "query", "name": "accesskey"},
}
ITEM = "/v1.0/accesskeys/{accesskey_id}"
RESTRICTIONS = {"scopes", "allowed_networks"}
OPERATIONS = {
    ("post", "/auth/login"),
    ("get", "/v1.0/customer"),
    ("get", "/v1.0/me"),
    ("post", "/v1.0/accesskeys"),
    ("get", "/v1.0/accesskeys"),
    ("get", ITEM),
    ("put", ITEM),
    ("delete", ITEM),
}
PROTECTED = OPERATIONS - {("post", "/auth/login")}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert_security_headers(response)
    document: dict[str, Any] = response.json()
    return document


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(spec, schema["allOf"][0])
    return schema


def _json_schema(spec: dict[str, Any], holder: dict[str, Any]) -> dict[str, Any]:
    return _resolve(spec, holder["content"]["application/json"]["schema"])


def _success(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return _json_schema(spec, spec["paths"][path][method]["responses"]["200"])


def _body(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    body = spec["paths"][path][method]["requestBody"]
    return _json_schema(spec, body)


def test_security_schemes_cover_every_credential_form(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == set(SCHEMES)
    for name, expected in SCHEMES.items():
        for field, value in expected.items():
            assert str(schemes[name][field]).lower() == value.lower(), (name, field)


def test_the_contract_operations_are_documented(spec: dict[str, Any]) -> None:
    documented = {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert documented >= OPERATIONS


@pytest.mark.parametrize(("method", "path"), sorted(PROTECTED))
def test_protected_operations_accept_every_scheme(
    spec: dict[str, Any], method: str, path: str
) -> None:
    security = spec["paths"][path][method].get("security")
    assert security, (method, path)
    assert {name for requirement in security for name in requirement} == set(SCHEMES)


def test_login_needs_no_credential(spec: dict[str, Any]) -> None:
    assert not spec["paths"]["/auth/login"]["post"].get("security")


def test_request_bodies(spec: dict[str, Any]) -> None:
    login = _body(spec, "post", "/auth/login")
    assert set(login["properties"]) == {"username", "password"}
    assert set(login.get("required", [])) == {"username", "password"}
    create = _body(spec, "post", "/v1.0/accesskeys")
    assert set(create["properties"]) == {"name", "detail", "expire"} | RESTRICTIONS
    assert create.get("required", []) == ["expire"]
    expire = create["properties"]["expire"]
    assert expire["type"] == "integer"
    # VoIPBIN's bounds: at least one day, at most an int32.
    assert expire["minimum"] == 86_400
    assert expire["maximum"] == 2_147_483_647
    update = _body(spec, "put", ITEM)
    assert set(update["properties"]) == {"name", "detail"}
    assert not update.get("required")


def test_response_schemas_match_the_contract_fields(spec: dict[str, Any]) -> None:
    assert set(_success(spec, "post", "/auth/login")["properties"]) == {"username", "token"}
    assert set(_success(spec, "get", "/v1.0/customer")["properties"]) == CUSTOMER_FIELDS
    created = _success(spec, "post", "/v1.0/accesskeys")
    # Restrictions only when the request gave some: never for a VoIPBIN client.
    assert set(created["properties"]) == ACCESSKEY_WITH_TOKEN_FIELDS | RESTRICTIONS
    assert not RESTRICTIONS & set(created["required"])
    for method in ("put", "delete"):
        assert set(_success(spec, method, ITEM)["properties"]) == ACCESSKEY_FIELDS, method
    listing = _success(spec, "get", "/v1.0/accesskeys")
    assert set(listing["properties"]) == {"result", "next_page_token"}
    item = _resolve(spec, listing["properties"]["result"]["items"])
    # Reading adds the fields named in ?expand=, never required: by default VoIPBIN's object.
    for schema in (item, _success(spec, "get", ITEM)):
        assert set(schema["properties"]) == ACCESSKEY_FIELDS | set(EXPANDABLE)
        assert set(schema["required"]) <= ACCESSKEY_FIELDS
        assert "token" not in schema["properties"]


def test_the_expand_parameter_is_documented(spec: dict[str, Any]) -> None:
    for path in ("/v1.0/accesskeys", ITEM):
        names = {parameter["name"] for parameter in spec["paths"][path]["get"]["parameters"]}
        assert "expand" in names, path


def test_the_lifecycle_operations_are_documented(spec: dict[str, Any]) -> None:
    for action in ("disable", "enable", "rotate", "expire"):
        operation = spec["paths"][f"{ITEM}/{action}"]["post"]
        assert operation.get("security"), action
        assert set(operation["responses"]) >= {"200", "400", "401", "404", "409"}, action
    rotated = _success(spec, "post", f"{ITEM}/rotate")
    assert set(rotated["properties"]) == ACCESSKEY_WITH_TOKEN_FIELDS | set(EXPANDABLE)
    grace = _body(spec, "post", f"{ITEM}/rotate")["properties"]["grace"]
    assert (grace["minimum"], grace["maximum"]) == (0, 604_800)
    assert set(_body(spec, "post", f"{ITEM}/expire")["properties"]) == {"tm_expire"}


def test_ids_are_uuids(spec: dict[str, Any]) -> None:
    for method in ("get", "put", "delete"):
        (parameter,) = [
            p for p in spec["paths"][ITEM][method]["parameters"] if p["name"] == "accesskey_id"
        ]
        assert parameter["in"] == "path"
        assert parameter["schema"]["format"] == "uuid", (method, parameter)
    item = _success(spec, "get", ITEM)
    assert item["properties"]["id"]["format"] == "uuid"
    assert item["properties"]["customer_id"]["format"] == "uuid"
    customer = _success(spec, "get", "/v1.0/customer")
    assert customer["properties"]["id"]["format"] == "uuid"
    assert customer["properties"]["billing_account_id"]["format"] == "uuid"


def test_empty_next_page_token_is_a_string_not_null(spec: dict[str, Any]) -> None:
    listing = _success(spec, "get", "/v1.0/accesskeys")
    assert listing["properties"]["next_page_token"]["type"] == "string"
    assert "next_page_token" in listing["required"]


def test_list_documents_paging_parameters(spec: dict[str, Any]) -> None:
    parameters = spec["paths"]["/v1.0/accesskeys"]["get"]["parameters"]
    names = {(parameter["name"], parameter["in"]) for parameter in parameters}
    assert {("page_size", "query"), ("page_token", "query")} <= names


def test_error_envelope_schema(spec: dict[str, Any]) -> None:
    envelope = _resolve(spec, {"$ref": "#/components/schemas/ErrorEnvelope"})
    assert set(envelope["properties"]) == {"error"}
    detail = _resolve(spec, envelope["properties"]["error"])
    assert set(detail["properties"]) == {"status", "reason", "message", "request_id"}


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_every_error_response_is_the_envelope(spec: dict[str, Any], method: str, path: str) -> None:
    responses = spec["paths"][path][method]["responses"]
    errors = {code: value for code, value in responses.items() if not code.startswith("2")}
    if path == "/auth/login":
        expected = {"400", "500", "503"}
    elif path in ("/v1.0/customer", "/v1.0/me"):
        expected = {"401", "500", "503"}
    elif path == ITEM:
        expected = {"400", "401", "403", "404", "409", "500", "503"}
    else:
        expected = {"400", "401", "403", "500", "503"}
    assert expected <= set(errors), sorted(errors)
    for code, response in errors.items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (code, schema)


async def test_the_sections_come_in_a_fixed_order_naming_every_tag(spec: dict[str, Any]) -> None:
    """Routers are matched hottest first; the document's sections keep their own order."""
    used = {
        tag
        for operations in spec["paths"].values()
        for operation in operations.values()
        for tag in operation.get("tags", [])
    }
    assert [tag["name"] for tag in spec["tags"]] == [
        "health",
        "auth",
        "customer",
        "me",
        "accesskeys",
        "audit",
    ]
    assert used == {tag["name"] for tag in spec["tags"]}


def _references(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def test_every_reference_resolves_to_a_component(spec: dict[str, Any]) -> None:
    """Swagger UI and code generators follow each `$ref`; `#/$defs/…` leads nowhere."""
    schemas = spec["components"]["schemas"]
    references = set(_references(spec))
    assert "#/components/schemas/ScopeRule" in references
    for reference in references:
        assert reference.startswith("#/components/schemas/"), reference
        assert reference.removeprefix("#/components/schemas/") in schemas, reference


def test_request_bodies_are_named_components(spec: dict[str, Any]) -> None:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert set(schema) == {"$ref"}, (method, path)


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)  # raises, naming the first problem, on an invalid document


def test_a_generated_client_reads_the_bodies_with_their_nested_models(
    spec: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datamodel-code-generator writes pydantic models from the document, offline."""
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(spec), encoding="utf-8")
    output = tmp_path / "keyplane_models.py"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its notices about formats and future defaults
        generate(
            document,
            input_file_type=InputFileType.OpenAPI,
            output=output,
            output_model_type=DataModelType.PydanticV2BaseModel,
            formatters=[Formatter.BUILTIN],
        )
    loaded = importlib.util.spec_from_file_location("keyplane_models", output)
    assert loaded is not None
    assert loaded.loader is not None
    models = importlib.util.module_from_spec(loaded)
    # Registered while it loads: pydantic resolves the module's annotations through it.
    monkeypatch.setitem(sys.modules, "keyplane_models", models)
    loaded.loader.exec_module(models)

    rule = {"methods": ["GET"], "path_prefix": "/v1.0/calls"}
    create = models.AccesskeyCreateRequest.model_validate({"expire": 86400, "scopes": [rule]})
    assert isinstance(create.scopes[0], models.ScopeRule)
    assert create.scopes[0].path_prefix == "/v1.0/calls"
    with pytest.raises(pydantic.ValidationError):
        models.AccesskeyCreateRequest.model_validate({"expire": 86400, "scopes": [{"x": 1}]})
    for name in (
        "LoginRequest",
        "CustomerUpdateRequest",
        "AccesskeyUpdateRequest",
        "AccesskeyRotateRequest",
        "AccesskeyExpireRequest",
        "AccesskeyCreated",
        "ErrorEnvelope",
    ):
        assert issubclass(getattr(models, name), pydantic.BaseModel), name
