"""The list service over the inventory: current hosts from memory, the others asked live over real
in-memory links, offline hosts' last-known rows marked stale; and the watch that feeds open pages.

Time is virtual (looptime)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from dockmesh.link import Link
from dockmesh.link.memory import socket_pair
from dockmesh.proto import Role
from dockmesh.proto.inventory import Names
from dockmesh.server.context import ServerContext
from dockmesh.server.directory import HostRef
from dockmesh.server.errors import ApiError
from dockmesh.server.inventory import Inventory
from dockmesh.server.services.access import Caller
from dockmesh.server.services.fleet import ListQuery, listing, watch

pytestmark = pytest.mark.looptime


def row(cid: str, name: str) -> dict[str, Any]:
    return {
        "id": cid,
        "name": name,
        "image": "i",
        "state": "running",
        "status": "Up",
        "stack": None,
        "service": None,
        "created": 1,
    }


class Directory:
    def __init__(self, hosts: list[HostRef]) -> None:
        self.hosts = hosts

    async def select(self, selector: str, caller: Any, permission: str) -> list[HostRef]:
        if selector == "all":
            return list(self.hosts)
        return [h for h in self.hosts if h.id == selector]


class Fleet:
    def __init__(self) -> None:
        self.now = 100.0
        self.inventory = Inventory(lambda: self.now)
        self.links: list[Link] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.asked: list[str] = []

    def online(self, host_id: str, name: str, live_rows: list[dict[str, Any]]) -> HostRef:
        server_end, agent_end = socket_pair()

        async def on_request(method: str, params: dict[str, Any]) -> Any:
            self.asked.append(host_id)
            return [dict(r) for r in live_rows]

        server = Link(server_end, Role.ACCEPTOR)
        agent = Link(agent_end, Role.DIALER, on_request=on_request)
        self.links += [server, agent]
        self.tasks += [asyncio.create_task(server.run()), asyncio.create_task(agent.run())]
        return HostRef(host_id, name, (), server)

    def context(self, hosts: list[HostRef]) -> ServerContext:
        return cast(
            ServerContext,
            SimpleNamespace(directory=Directory(hosts), gateway=SimpleNamespace(inventory=self.inventory)),
        )


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    made = Fleet()
    yield made
    for link in made.links:
        await link.close()
    for task in made.tasks:
        task.cancel()
    await asyncio.gather(*made.tasks, return_exceptions=True)


CALLER = cast(Caller, None)


def feed(inv: Inventory, host_id: str, rows: list[dict[str, Any]]) -> None:
    inv.online(host_id, lambda _n, _b: None)
    inv.receive(host_id, Names.SNAPSHOT, {"kind": "containers", "gen": 1, "rows": rows, "done": True})


async def test_current_hosts_answer_from_memory_others_live_offline_ones_stale(fleet: Fleet) -> None:
    inv = fleet.inventory
    alpha = fleet.online("a", "alpha", [row("x1", "never-asked")])
    feed(inv, "a", [row("a2", "web"), row("a1", "db")])
    beta = fleet.online("b", "beta", [row("b1", "live")])  # connected, no snapshot yet
    feed(inv, "g", [row("g1", "old")])
    inv.offline("g")
    fleet.now += 30
    gamma = HostRef("g", "gamma", (), None)
    delta = HostRef("d", "delta", (), None)  # offline, never seen
    c = fleet.context([alpha, beta, delta, gamma])

    result = (await listing(c, CALLER, "containers", ListQuery())).to_dict()
    assert fleet.asked == ["b"]
    assert [(r["host"]["id"], r["name"], r.get("stale", False)) for r in result["items"]] == [
        ("a", "db", False),
        ("a", "web", False),
        ("b", "live", False),
        ("g", "old", True),
    ]
    outcomes = {h["id"]: (h["status"], h["age_s"], h["stale"]) for h in result["hosts"]}
    assert outcomes == {
        "a": ("ok", 0.0, False),
        "b": ("ok", 0.0, False),
        "d": ("offline", None, True),
        "g": ("offline", 30.0, True),
    }

    excluded = (await listing(c, CALLER, "containers", ListQuery(stale="exclude"))).to_dict()
    assert [r["host"]["id"] for r in excluded["items"]] == ["a", "a", "b"]
    assert len(excluded["hosts"]) == 4

    fleet.asked.clear()
    fresh = (await listing(c, CALLER, "containers", ListQuery(fresh=True))).to_dict()
    assert sorted(fleet.asked) == ["a", "b"]
    assert "never-asked" in {r["name"] for r in fresh["items"]}


def test_query_options_are_checked() -> None:
    assert ListQuery.parse({"stale": "exclude", "fresh": "1", "host": " a "}, 2.0) == ListQuery(
        "a", "exclude", True, 2.0
    )
    for query, code in (({"stale": "no"}, "invalid_stale"), ({"fresh": "yes"}, "invalid_fresh")):
        with pytest.raises(ApiError) as bad:
            ListQuery.parse(query, 3.0)
        assert bad.value.code == code


async def test_watch_names_only_selected_hosts_whose_rows_changed(fleet: Fleet) -> None:
    inv = fleet.inventory
    alpha = HostRef("a", "alpha", (), None)
    c = fleet.context([alpha])  # "b" exists for the inventory but is not selectable by this caller
    changes = watch(c, CALLER, "containers", "all", lifetime=100.0)
    assert await anext(changes) == ["a"]
    feed(inv, "a", [row("a1", "web")])
    feed(inv, "b", [row("b1", "hidden")])
    inv.receive("a", Names.SNAPSHOT, {"kind": "images", "gen": 1, "rows": [], "done": True})  # other kind
    assert await anext(changes) == ["a"]
    assert await anext(changes) == []  # idle: a keep-alive
    inv.close()
    with pytest.raises(StopAsyncIteration):
        await anext(changes)
    assert inv.on_change == []
    assert inv.on_close == []
