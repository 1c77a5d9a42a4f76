"""Session tokens under the attacks of RFC 8725 (JWT best current practices).

Algorithm confusion, stripped and altered signatures, header tricks, every time
claim missing, absurd or of the wrong type, wrong issuer and audience, another
deployment's secret: each is refused with the same 401 envelope (same reason,
same message) in every place a credential can be. Most tokens here carry a
valid HS256 signature made with this deployment's own secret, so only the claim
checks stand between them and a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from keyplane.domain.clock import FrozenClock
from tests.conftest import TEST_JWT_SECRET, replica
from tests.factories import Factory
from tests.integration.conftest import Tenant, assert_error, quick_agent, without_request_id
from tests.integration.test_credentials import place, whoami

OTHER_DEPLOYMENT_SECRET = "another-deployment-" + "z" * 40
# An RSA public key as an attacker would find it (the body is random: only its text matters).
PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    + base64.b64encode(bytes(range(200))).decode()
    + "\n-----END PUBLIC KEY-----\n"
)
NO_LIMITS = {"ratelimit_auth_failures_burst": 100_000, "ratelimit_auth_failures_per_minute": 1e6}
TRANSPORTS = ("cookie_token", "query_token", "bearer_jwt", "cookie_accesskey", "query_accesskey")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_part(value: Any) -> str:
    # allow_nan: json.dumps writes Infinity and NaN, which Python's json.loads reads back.
    return b64(json.dumps(value, allow_nan=True).encode())


def hs(secret: str | bytes, signing_input: str, digest: Any = hashlib.sha256) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return b64(hmac.new(key, signing_input.encode(), digest).digest())


def forge(
    claims: dict[str, Any],
    *,
    header: dict[str, Any] | None = None,
    secret: str | bytes = TEST_JWT_SECRET,
    digest: Any = hashlib.sha256,
    signature: str | None = None,
) -> str:
    """A compact JWS built by hand, so that any header and any claim value can be sent."""
    head = {"alg": "HS256", "typ": "JWT"} if header is None else header
    signing_input = f"{encode_part(head)}.{encode_part(claims)}"
    sig = hs(secret, signing_input, digest) if signature is None else signature
    return f"{signing_input}.{sig}"


def signed(signing_input: str) -> str:
    return f"{signing_input}.{hs(TEST_JWT_SECRET, signing_input)}"


def altered(signature: str) -> str:
    return signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")


class Claims:
    """The claims of a valid session of ``tenant``, to be spoiled one at a time."""

    def __init__(self, tenant: Tenant, now: int) -> None:
        self.base = {
            "sub": str(tenant.agent_id),
            "cid": str(tenant.customer.id),
            "iss": "keyplane",
            "aud": "keyplane",
            "iat": now - 10,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
        }

    def valid(self) -> dict[str, Any]:
        return dict(self.base)

    def with_(self, **changes: Any) -> dict[str, Any]:
        return {**self.base, **changes}

    def without(self, *names: str) -> dict[str, Any]:
        return {k: v for k, v in self.base.items() if k not in names}


def attacks(claims: Claims) -> dict[str, str]:
    good = forge(claims.valid())
    head, payload, signature = good.split(".")
    other_payload = encode_part(claims.with_(cid=claims.base["sub"]))
    random_sig = b64(os.urandom(256))
    cases: dict[str, str] = {
        # Algorithm confusion (RFC 8725 3.1, 2.1).
        "alg-none": forge(claims.valid(), header={"alg": "none", "typ": "JWT"}, signature=""),
        "alg-None": forge(claims.valid(), header={"alg": "None"}, signature=""),
        "alg-NONE-with-signature": forge(claims.valid(), header={"alg": "NONE"}),
        "alg-empty": forge(claims.valid(), header={"alg": ""}),
        "alg-missing": forge(claims.valid(), header={"typ": "JWT"}),
        "alg-hs512-right-secret": forge(
            claims.valid(), header={"alg": "HS512"}, digest=hashlib.sha512
        ),
        "alg-hs384-right-secret": forge(
            claims.valid(), header={"alg": "HS384"}, digest=hashlib.sha384
        ),
        "alg-rs256": forge(claims.valid(), header={"alg": "RS256"}, signature=random_sig),
        "alg-es256": forge(claims.valid(), header={"alg": "ES256"}, signature=random_sig[:86]),
        "alg-ps256": forge(claims.valid(), header={"alg": "PS256"}, signature=random_sig),
        "hs256-public-key-as-secret": forge(claims.valid(), secret=PUBLIC_KEY_PEM),
        "alg-not-a-string": forge(claims.valid(), header={"alg": ["HS256"]}),
        # Header tricks: keys named by the token itself.
        "kid-path-traversal-empty-secret": forge(
            claims.valid(), header={"alg": "HS256", "kid": "../../../../dev/null"}, secret=b""
        ),
        "jwk-embedded-attacker-key": forge(
            claims.valid(),
            header={"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"attacker-secret")}},
            secret=b"attacker-secret",
        ),
        "jku-attacker-url": forge(
            claims.valid(),
            header={"alg": "HS256", "jku": "http://127.0.0.1:9/keys.json"},
            secret=b"attacker-secret",
        ),
        "crit-unknown-extension": forge(
            claims.valid(), header={"alg": "HS256", "crit": ["exp-ext"], "exp-ext": 1}
        ),
        "header-not-an-object": f"{encode_part(['HS256'])}.{payload}.{signature}",
        # Signatures stripped, altered or borrowed.
        "signature-stripped": f"{head}.{payload}.",
        "signature-segment-missing": f"{head}.{payload}",
        "signature-altered": f"{head}.{payload}.{altered(signature)}",
        "signature-of-another-payload": f"{head}.{other_payload}.{signature}",
        "signature-not-base64": f"{head}.{payload}.!!!!",
        "four-segments": f"{good}.{signature}",
        "payload-not-json": signed(f"{head}.{b64(b'not json')}"),
        "payload-a-list": forge([claims.valid()]),  # type: ignore[arg-type]
        # Another deployment's secret.
        "other-deployment-secret": forge(claims.valid(), secret=OTHER_DEPLOYMENT_SECRET),
        "empty-secret": forge(claims.valid(), secret=b""),
        # Issuer and audience.
        "iss-wrong": forge(claims.with_(iss="voipbin")),
        "iss-missing": forge(claims.without("iss")),
        "iss-number": forge(claims.with_(iss=1)),
        "iss-list": forge(claims.with_(iss=["keyplane"])),
        "aud-wrong": forge(claims.with_(aud="another-service")),
        "aud-missing": forge(claims.without("aud")),
        "aud-list-without-us": forge(claims.with_(aud=["another-service"])),
        "aud-number": forge(claims.with_(aud=7)),
        "aud-null": forge(claims.with_(aud=None)),
        # Subject and customer.
        "sub-missing": forge(claims.without("sub")),
        "sub-number": forge(claims.with_(sub=12345)),
        "sub-not-uuid": forge(claims.with_(sub="admin")),
        "cid-missing": forge(claims.without("cid")),
        "cid-other-customer": forge(claims.with_(cid=claims.base["sub"])),
        # Session id: what a logout ends; a token without one could never be ended.
        "jti-missing": forge(claims.without("jti")),
        "jti-not-a-session-id": forge(claims.with_(jti="admin")),
        "jti-number": forge(claims.with_(jti=12345)),
    }
    now = claims.base["iat"] + 10
    absurd: dict[str, Any] = {
        "huge": 10**18,
        "huger-than-64-bits": 10**30,
        "negative-huge": -(10**18),
        "zero": 0,
        "float-huge": 1.5e300,
        "infinity": float("inf"),
        "nan": float("nan"),
        "numeric-string": str(now + 3600),
        "text": "tomorrow",
        "true": True,
        "null": None,
        "list": [now + 3600],
        "object": {"at": now + 3600},
    }
    for claim in ("exp", "iat"):
        cases[f"{claim}-missing"] = forge(claims.without(claim))
        for name, value in absurd.items():
            if claim == "iat" and name in ("zero", "negative-huge"):
                continue  # a long-ago iat is no reason to refuse by itself
            cases[f"{claim}-{name}"] = forge(claims.with_(**{claim: value}))
    cases["exp-past"] = forge(claims.with_(exp=now - 1))
    cases["iat-far-future"] = forge(claims.with_(iat=now + 86_400))
    return cases


async def _attack_every_case(
    http: httpx.AsyncClient, transport: str, cases: dict[str, str], good: str
) -> None:
    if transport.endswith("token") or transport == "bearer_jwt":
        control = await whoami(http, place(transport, good))
        assert control.status_code == 200, control.text  # the forger makes valid tokens
    bodies: dict[str, str] = {}
    for name, token in cases.items():
        response = await whoami(http, place(transport, token))
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
        assert token not in response.text, name
        bodies[name] = json.dumps(without_request_id(response), sort_keys=True)
    assert len(set(bodies.values())) == 1, bodies


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_jwt_attack_gets_the_same_401(
    tmp_path: Path, database_url: str, clock: FrozenClock, transport: str
) -> None:
    async with replica(tmp_path, database_url, clock, **NO_LIMITS) as node:
        factory = Factory(node.services)
        customer = await factory.customer()
        agent = await quick_agent(node.services, customer)
        tenant = Tenant(customer, agent.username, agent.id, await factory.identity_token(customer))
        claims = Claims(tenant, int(clock.now().timestamp()))
        async with node.client() as http:
            await _attack_every_case(http, transport, attacks(claims), forge(claims.valid()))


def test_the_forger_is_faithful() -> None:
    """A hand-made HS256 token verifies with PyJWT: the refusals are not artefacts of it."""
    claims = {"sub": "x", "iat": 1, "exp": 2}
    decoded = jwt.decode(
        forge(claims), TEST_JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert decoded == claims
