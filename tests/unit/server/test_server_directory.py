"""`?host=`: all, a host id, tag:<t> and the selector grammar, each within the caller's reach."""

from __future__ import annotations

import pytest

from dockmesh.server.directory import HostDirectory, HostRef
from dockmesh.server.errors import ApiError
from dockmesh.store.users import RoleRecord, UserRecord

HOSTS = [
    HostRef("h1", "web-1", ("prod", "eu"), None),
    HostRef("h2", "web-2", ("prod", "us"), None),
    HostRef("h3", "db-1", ("staging",), None),
]
ADMIN = UserRecord(1, "admin", "x", True)
PROD_VIEW = UserRecord(2, "pat", "x", False, (RoleRecord(9, "pv", ("containers.view",), "prod", False),))


class Fixed(HostDirectory):
    def __init__(self) -> None:
        pass

    async def all(self) -> list[HostRef]:
        return list(HOSTS)


async def ids(selector: str, caller: UserRecord = ADMIN, permission: str = "containers.view") -> list[str]:
    return [h.id for h in await Fixed().select(selector, caller, permission)]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("all", ["h1", "h2", "h3"]),
        ("", ["h1", "h2", "h3"]),
        ("h3", ["h3"]),
        ("tag:prod", ["h1", "h2"]),
        ("prod and not us", ["h1"]),
        ("name:db-1 or eu", ["h1", "h3"]),
        ("(prod or staging) and not id:h2", ["h1", "h3"]),
        ("prod", ["h1", "h2"]),
    ],
)
async def test_selector_grammar(selector: str, expected: list[str]) -> None:
    assert await ids(selector) == expected


async def test_scoped_caller_gets_only_reachable_hosts() -> None:
    assert await ids("all", PROD_VIEW) == ["h1", "h2"]
    assert await ids("staging or eu", PROD_VIEW) == ["h1"]
    assert await ids("tag:staging", PROD_VIEW) == []
    assert await ids("all", PROD_VIEW, "containers.exec") == []


@pytest.mark.parametrize(
    ("selector", "caller", "status", "code"),
    [
        ("nope", ADMIN, 404, "host_not_found"),  # a bare word no host has as id or tag
        ("h3", PROD_VIEW, 404, "host_not_found"),  # out of scope: the same as unknown
        ("staging", PROD_VIEW, 404, "host_not_found"),  # a tag only out-of-scope hosts have
        ("prod and (", ADMIN, 400, "invalid_selector"),
        ("tag:Bad!", ADMIN, 400, "invalid_tag"),
    ],
)
async def test_refusals(selector: str, caller: UserRecord, status: int, code: str) -> None:
    with pytest.raises(ApiError) as info:
        await ids(selector, caller)
    assert (info.value.status, info.value.code) == (status, code)


async def test_require_checks_access_before_the_link() -> None:
    with pytest.raises(ApiError) as info:
        await Fixed().require("h3", PROD_VIEW, "containers.view")
    assert info.value.status == 404  # not 503, although the host has no link
    with pytest.raises(ApiError) as info:
        await Fixed().require("h1", PROD_VIEW, "containers.exec")
    assert info.value.status == 403
    with pytest.raises(ApiError) as info:
        await Fixed().require("h1", PROD_VIEW, "containers.view")
    assert (info.value.status, info.value.code) == (503, "host_offline")
