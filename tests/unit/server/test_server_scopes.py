"""The role-scope preview: the parse error with its position, or the hosts the scope matches now."""

from __future__ import annotations

from typing import Any

import pytest

from dockmesh.server.directory import HostRef
from dockmesh.server.services.errors import Forbidden
from dockmesh.server.services.scopes import preview
from dockmesh.store.users import RoleRecord, UserRecord

HOSTS = [
    HostRef("local", "local", (), None),
    HostRef("a1", "web-1", ("prod", "web"), None),
    HostRef("a2", "db-1", ("prod",), None),
    HostRef("a3", "stage-1", ("staging",), None),
]


class Directory:
    async def all(self) -> list[HostRef]:
        return HOSTS


def caller(*roles: RoleRecord) -> UserRecord:
    return UserRecord(1, "u", "", False, roles)


ADMIN = caller(RoleRecord(1, "admin", (), "", True))


async def run(who: UserRecord, text: str) -> Any:
    return await preview(who, Directory(), text)  # type: ignore[arg-type]


async def test_a_good_scope_lists_the_hosts_it_matches() -> None:
    shown = await run(ADMIN, "prod and not  name:db-1")
    assert [h.name for h in shown.hosts] == ["web-1"]
    assert shown.error == ""
    assert shown.canonical == "prod and not name:db-1"


async def test_an_empty_scope_is_every_host() -> None:
    shown = await run(ADMIN, "")
    assert shown.canonical == ""
    assert len(shown.hosts) == len(HOSTS)


async def test_a_bad_scope_says_where() -> None:
    shown = await run(ADMIN, "prod and (")
    assert shown.hosts == ()
    assert shown.position == 10
    assert shown.error


async def test_only_for_who_may_manage_users() -> None:
    scoped = caller(RoleRecord(2, "ops", ("users.manage", "hosts.view"), "prod", False))
    with pytest.raises(Forbidden):
        await run(scoped, "all")
