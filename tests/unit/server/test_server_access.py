"""Rights from roles: union over the roles whose scope matches, 404 outside, 403 without the permission."""

from __future__ import annotations

import pytest

from dockmesh.server.directory import HostRef
from dockmesh.server.services import access
from dockmesh.server.services.errors import Forbidden, NotFound
from dockmesh.store.users import RoleRecord, UserRecord

PROD = HostRef("h-prod", "web-1", ("prod", "eu"), None)
STAGING = HostRef("h-stg", "web-2", ("staging",), None)
BARE = HostRef("local", "local", (), None)


def role(name: str, perms: list[str], scope: str = "", builtin: bool = False) -> RoleRecord:
    return RoleRecord(1, name, tuple(perms), scope, builtin)


def user(*roles: RoleRecord, admin: bool = False) -> UserRecord:
    return UserRecord(7, "pat", "x", admin, tuple(roles))


def test_rights_are_the_union_of_matching_roles() -> None:
    pat = user(
        role("prod-ops", ["containers.manage", "hosts.view"], "prod"),
        role("eu-exec", ["containers.exec"], "eu and not staging"),
        role("stg-view", ["containers.view"], "staging"),
    )
    assert access.rights_on(pat, PROD) == {"containers.manage", "hosts.view", "containers.exec"}
    assert access.rights_on(pat, STAGING) == {"containers.view"}
    assert access.rights_on(pat, BARE) == frozenset()
    assert access.allowed(pat, [PROD, STAGING, BARE], "containers.view") == [STAGING]
    assert [h.id for h in access.effective(pat, [PROD, STAGING, BARE])] == ["h-prod", "h-stg"]


def test_out_of_scope_is_404_and_missing_permission_403() -> None:
    pat = user(role("prod-view", ["containers.view"], "prod"))
    access.check_host(pat, PROD, "containers.view")
    with pytest.raises(NotFound) as missing:
        access.check_host(pat, STAGING, "containers.view")
    # Word for word what an unknown host gets.
    assert (missing.value.status, missing.value.code) == (404, "host_not_found")
    assert missing.value.message == access.not_found("h-stg").message
    with pytest.raises(Forbidden):
        access.check_host(pat, PROD, "containers.exec")


def test_scope_by_name_and_id_and_an_empty_scope_reaches_all() -> None:
    by_name = user(role("n", ["hosts.view"], "name:web-2 or id:local"))
    assert access.allowed(by_name, [PROD, STAGING, BARE], "hosts.view") == [STAGING, BARE]
    everywhere = user(role("v", ["hosts.view"]))
    assert access.allowed(everywhere, [PROD, STAGING, BARE], "hosts.view") == [PROD, STAGING, BARE]


def test_global_permissions_need_an_unscoped_role() -> None:
    scoped = user(role("prod-admin", list(access.PERMISSIONS), "prod"))
    assert not access.has_global(scoped, "users.manage")
    assert access.has_any(scoped, "stacks.deploy")
    with pytest.raises(Forbidden):
        access.require_global(scoped, "agents.manage")
    assert not access.can_allow_privileged(scoped)
    unscoped = user(role("agents", ["agents.manage"]))
    assert access.has_global(unscoped, "agents.manage")
    assert access.global_permissions(unscoped) == ["agents.manage"]


def test_builtin_roles_take_their_permissions_from_the_code() -> None:
    # The stored row's permissions are ignored for a built-in role: the code defines them.
    viewer = user(role("viewer", ["users.manage"], builtin=True))
    assert access.rights_on(viewer, PROD) == {"hosts.view", "containers.view", "stacks.view"}
    assert not access.has_global(viewer, "users.manage")
    admin = user(role("admin", [], builtin=True))
    assert access.rights_on(admin, BARE) == set(access.PERMISSIONS)
    assert access.is_admin(admin)
    assert access.can_allow_privileged(admin)
    assert access.is_admin(user(admin=True))  # a record built with the flag alone


def test_a_stored_scope_that_no_longer_parses_reaches_nothing() -> None:
    broken = user(role("broken", ["hosts.view"], "prod and ("))
    assert access.rights_on(broken, PROD) == frozenset()
    assert not access.has_global(broken, "hosts.view")
