"""The stack pages' helpers: form text, diff lines, per-host rows, deploy rows (pure); deploy targets with the
real agent store (both engines); a stack's containers gathered over in-memory links; templates escape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockmesh.link import Link
from dockmesh.link.memory import socket_pair
from dockmesh.proto import Role
from dockmesh.server.directory import HostRef
from dockmesh.server.services.errors import Invalid
from dockmesh.server.services.stack_hosts import deploy_targets, stack_containers
from dockmesh.server.web.render import ENV
from dockmesh.server.web.stackview import diff_lines, host_rows, normalise_text, service_states
from dockmesh.store import Database
from dockmesh.store.agents import AgentStore
from dockmesh.store.stacks import Placement, unified_diff
from dockmesh.store.users import UserRecord

ADMIN = UserRecord(1, "admin", "x", True)


class Hosts:
    def __init__(self, hosts: list[HostRef]) -> None:
        self.hosts = hosts

    async def all(self) -> list[HostRef]:
        return list(self.hosts)


def test_textarea_line_ends_become_the_file_s() -> None:
    assert normalise_text("a: 1\r\nb: 2\r\n") == "a: 1\nb: 2\n"
    assert normalise_text("a\rb") == "a\nb"
    assert normalise_text(None) == ""


def test_diff_lines_are_classed() -> None:
    diff = unified_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "", "X=1\n")
    lines = diff_lines(diff)
    kinds = {kind for kind, _ in lines}
    assert {"file", "hunk", "add", "del"} <= kinds
    assert ("del", "-b: 2") in lines
    assert ("add", "+b: 3") in lines
    assert ("add", "+X=1") in lines
    assert ("", " a: 1") in lines
    assert diff_lines("") == []


def test_host_rows_join_placements_and_containers_by_host_name() -> None:
    placements = [Placement("shop", "h2", "d-2", 1, "done"), Placement("shop", "h1", "d-1", 3, "failed")]
    containers = {
        "h1": [{"name": "shop-web-1", "state": "running"}, {"name": "shop-db-1", "state": "exited"}],
        "h3": [{"name": "shop-web-1", "state": "running"}],
    }
    names = {"h1": "zulu", "h2": "alpha", "h3": "mike"}
    rows = host_rows(placements, containers, names, current=3)
    assert [r["name"] for r in rows] == ["alpha", "mike", "zulu"]
    alpha, mike, zulu = rows
    assert (alpha["outdated"], alpha["external"], alpha["total"]) == (True, False, 0)
    assert (mike["external"], mike["placement"], mike["running"], mike["total"]) == (True, None, 1, 1)
    assert (zulu["outdated"], zulu["running"], zulu["total"]) == (False, 1, 2)
    assert zulu["placement"].deploy_id == "d-1"
    assert host_rows([], {}, {}, 1) == []


def test_service_states_from_a_deploy_result() -> None:
    rows = service_states(
        [
            {"name": "db", "state": "running", "health": "healthy", "container_id": "0123456789abcdef"},
            {"name": "web", "state": "running", "health": None, "container_id": None},
            {"state": "running"},
        ]
    )
    assert rows == [
        {"name": "db", "state": "running", "health": "healthy", "container": "0123456789ab"},
        {"name": "web", "state": "running", "health": "", "container": ""},
    ]


async def test_deploy_targets_mark_cordoned_and_offline_hosts(db: Database) -> None:
    agents = AgentStore(db)
    edge = await agents.create("edge-1", "t1", 99.0, 1.0)
    core = await agents.create("core-1", "t2", 99.0, 1.0)
    await agents.set_cordoned(edge.id, True)
    server_end, _other = socket_pair()
    online = Link(server_end, Role.ACCEPTOR)
    directory = Hosts([HostRef(core.id, "core-1", (), None), HostRef(edge.id, "edge-1", (), online)])
    targets = await deploy_targets(directory, agents, ADMIN)  # type: ignore[arg-type]
    flags = {t.name: (t.cordoned, t.online, t.usable) for t in targets}
    assert flags == {"edge-1": (True, True, False), "core-1": (False, False, False)}
    await agents.set_cordoned(edge.id, False)
    targets = await deploy_targets(directory, agents, ADMIN)  # type: ignore[arg-type]
    assert [t.name for t in targets if t.usable] == ["edge-1"]
    await online.close()


@pytest.fixture
async def host_link() -> AsyncIterator[Link]:
    """A host answering `containers.list` with two stacks' containers, over an in-memory link."""

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        assert method == "containers.list"
        return [
            {"id": "c3", "name": "shop-web-1", "stack": "shop", "service": "web", "state": "running"},
            {"id": "c1", "name": "shop-db-1", "stack": "shop", "service": "db", "state": "running"},
            {"id": "c2", "name": "blog-web-1", "stack": "blog", "service": "web", "state": "running"},
            {"id": "c4", "name": "loose", "stack": None, "service": None, "state": "exited"},
        ]

    server_end, host_end = socket_pair()
    server = Link(server_end, Role.ACCEPTOR)
    host = Link(host_end, Role.DIALER, on_request=on_request)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(host.run())]
    yield server
    await server.close()
    await host.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_stack_containers_are_the_project_s_per_host(host_link: Link) -> None:
    directory = Hosts([HostRef("h1", "edge-1", (), host_link), HostRef("h2", "gone", (), None)])
    found = await stack_containers(directory, ADMIN, "shop", 5.0)  # type: ignore[arg-type]
    assert list(found.by_host) == ["h1"]
    assert [c["name"] for c in found.by_host["h1"]] == ["shop-db-1", "shop-web-1"]  # by service
    assert found.hosts == {"h1": "edge-1", "h2": "gone"}
    assert {o.id: o.status for o in found.outcomes} == {"h1": "ok", "h2": "offline"}
    with pytest.raises(Invalid):
        await stack_containers(directory, ADMIN, "../x", 5.0)  # type: ignore[arg-type]


def test_stack_templates_escape_names_and_errors() -> None:
    row = {
        "name": "<b>x</b>",
        "services": ["<i>web</i>"],
        "running": 1,
        "total": 1,
        "host": {"id": "h1", "name": "<s>h</s>"},
        "external": True,
    }
    html = ENV.get_template("_stacks_table.html").render(items=[row], show_host=True)
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<i>web</i>" not in html
    assert "external" in html
    edit = ENV.get_template("stack_edit.html").render(
        title="New stack",
        name="",
        compose="a: <script>",
        env="",
        allow_privileged=False,
        may_allow=False,
        creating=True,
        action="/stacks/_new",
        error="bad <key>",
        error_code="unsupported_key",
        error_key="services.web.build",
        error_line=7,
        csrf="t",
        user=None,
        active="stacks",
        nav=(),
        plain_http_exposed=False,
    )
    assert 'data-line="7"' in edit
    assert 'data-error-line="7"' in edit
    assert "a: &lt;script&gt;" in edit
    assert "bad &lt;key&gt;" in edit
