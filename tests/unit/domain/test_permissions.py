from __future__ import annotations

import uuid

import pytest

from keyplane.domain.permissions import Identity, Permission, has_permission

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
