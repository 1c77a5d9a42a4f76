from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from keyplane.domain.networks import parse_networks
from keyplane.domain.permissions import (
    Identity,
    Permission,
    has_permission,
    is_documented,
    is_super_admin,
    may_keep_secrets,
    require_secret_keeper,
)
from keyplane.domain.scopes import parse_scopes
from keyplane.errors import PermissionDenied

OWN = uuid.uuid4()
OTHER = uuid.uuid4()
ADMIN = int(Permission.CUSTOMER_ADMIN)


def agent(permission: int) -> Identity:
    return Identity("agent", uuid.uuid4(), OWN, permission)


def test_super_admin_passes_for_every_customer() -> None:
    assert has_permission(agent(int(Permission.PROJECT_SUPER_ADMIN)), OTHER, ADMIN)
    assert has_permission(agent(int(Permission.ALL)), OTHER, ADMIN)


@pytest.mark.parametrize("permission", [16, 32, 64, 16 | 32 | 64])
def test_others_never_pass_for_another_customer(permission: int) -> None:
    assert not has_permission(agent(permission), OTHER, permission)


def test_own_customer_needs_an_intersecting_bit() -> None:
    assert has_permission(agent(ADMIN), OWN, ADMIN)
    assert has_permission(agent(ADMIN | 16), OWN, ADMIN | 64)
    assert not has_permission(agent(16), OWN, ADMIN)
    assert not has_permission(agent(0), OWN, ADMIN)


def test_an_access_key_is_a_customer_admin_and_never_a_super_admin() -> None:
    identity = Identity.for_accesskey(uuid.uuid4(), OWN)
    assert identity.permission == ADMIN
    assert not identity.permission & Permission.PROJECT_SUPER_ADMIN
    assert has_permission(identity, OWN, ADMIN)
    assert not has_permission(identity, OTHER, ADMIN)


@pytest.mark.parametrize(
    ("permission", "documented"),
    [
        (1, True),
        (16, True),
        (32, True),
        (64, True),
        (1 | 16 | 32 | 64, True),
        (16 | 64, True),
        (65535, True),
        (0, False),
        (2, False),
        (128, False),
        (32 | 128, False),
        (65534, False),
        (65536, False),
        (-1, False),
    ],
)
def test_documented_permissions(permission: int, documented: bool) -> None:
    """The API accepts 1, 16, 32, 64, their combinations, and 65535 (all)."""
    assert is_documented(permission) is documented


def test_the_documented_bits() -> None:
    assert {bit.name: int(bit) for bit in Permission} == {
        "PROJECT_SUPER_ADMIN": 1,
        "CUSTOMER_AGENT": 16,
        "CUSTOMER_ADMIN": 32,
        "CUSTOMER_MANAGER": 64,
    }
    assert (int(Permission.NONE), int(Permission.ALL)) == (0, 65535)


@pytest.mark.parametrize(
    ("permission", "super_admin"),
    [(1, True), (65535, True), (1 | 32, True), (32, False), (0, False)],
)
def test_super_admin_is_the_bit_one(permission: int, super_admin: bool) -> None:
    assert is_super_admin(permission) is super_admin


def test_an_access_key_carries_its_scopes_and_networks() -> None:
    key_id = uuid.uuid4()
    scopes = parse_scopes("read_only")
    networks = parse_networks(["203.0.113.0/24"])
    identity = Identity.for_accesskey(key_id, OWN, scopes, networks)
    assert (identity.type, identity.id, identity.customer_id) == ("accesskey", key_id, OWN)
    assert (identity.scopes, identity.allowed_networks) == (scopes, networks)
    unrestricted = Identity.for_accesskey(key_id, OWN)
    assert (unrestricted.scopes, unrestricted.allowed_networks) == (None, None)


def test_the_operator_is_a_project_super_admin_of_no_customer() -> None:
    operator = Identity.operator()
    assert operator.type == "operator"
    assert operator.id == operator.customer_id == uuid.UUID(int=0)
    assert operator.permission == 65535
    assert (operator.scopes, operator.allowed_networks) == (None, None)
    assert has_permission(operator, OTHER, ADMIN)


def test_an_access_key_carries_its_expiry_and_a_session_none() -> None:
    until = datetime(2027, 1, 1, tzinfo=UTC)
    assert Identity.for_accesskey(uuid.uuid4(), OWN, tm_expire=until).tm_expire == until
    assert Identity.for_accesskey(uuid.uuid4(), OWN).tm_expire is None
    assert agent(ADMIN).tm_expire is None
    assert Identity.operator().tm_expire is None


@pytest.mark.parametrize(
    ("identity", "keeps"),
    [
        (agent(ADMIN), True),
        (agent(int(Permission.PROJECT_SUPER_ADMIN)), True),
        (agent(int(Permission.CUSTOMER_MANAGER)), False),
        (agent(int(Permission.CUSTOMER_AGENT)), False),
        (Identity.for_accesskey(uuid.uuid4(), OWN), True),
        (Identity.for_accesskey(uuid.uuid4(), OWN, parse_scopes("read_only")), False),
        (Identity.for_accesskey(uuid.uuid4(), OWN, None, parse_networks(["10.0.0.0/8"])), False),
        (Identity.operator(), True),
    ],
    ids=[
        "admin",
        "super admin",
        "manager",
        "agent",
        "key",
        "read_only key",
        "allowlisted key",
        "operator",
    ],
)
def test_secrets_need_an_admin_with_an_unrestricted_credential(
    identity: Identity, keeps: bool
) -> None:
    assert may_keep_secrets(identity, OWN) is keeps
    if keeps:
        require_secret_keeper(identity, OWN, "Reading the secret")
    else:
        with pytest.raises(PermissionDenied, match=r"^Reading the secret needs "):
            require_secret_keeper(identity, OWN, "Reading the secret")


def test_another_customers_admin_keeps_no_secret_of_ours() -> None:
    assert not may_keep_secrets(Identity.for_accesskey(uuid.uuid4(), OTHER), OWN)
