"""Fan-out over real links on in-memory sockets: outcomes, order, the spliced body, deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from dockmesh.link import Link, RemoteError
from dockmesh.link.memory import socket_pair
from dockmesh.proto import Role
from dockmesh.server.directory import HostRef
from dockmesh.server.fanout import fan_out

Handler = Callable[[str, dict[str, Any]], Any]


class Hosts:
    def __init__(self) -> None:
        self.links: list[Link] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.cancelled: list[str] = []

    def add(self, host_id: str, name: str, answer: Handler) -> HostRef:
        server_end, agent_end = socket_pair()

        async def on_request(method: str, params: dict[str, Any]) -> Any:
            try:
                result = answer(method, params)
                return await result if asyncio.iscoroutine(result) else result
            except asyncio.CancelledError:
                self.cancelled.append(host_id)
                raise

        server = Link(server_end, Role.ACCEPTOR)
        agent = Link(agent_end, Role.DIALER, on_request=on_request)
        self.links += [server, agent]
        self.tasks += [asyncio.create_task(server.run()), asyncio.create_task(agent.run())]
        return HostRef(host_id, name, (), server)


@pytest.fixture
async def hosts() -> AsyncIterator[Hosts]:
    made = Hosts()
    yield made
    for link in made.links:
        await link.close()
    for task in made.tasks:
        task.cancel()
    await asyncio.gather(*made.tasks, return_exceptions=True)


def rows(*names: str) -> Handler:
    return lambda _method, _params: [{"name": n, "state": "running"} for n in names]


async def hang(_method: str, _params: dict[str, Any]) -> Any:
    await asyncio.Event().wait()


def refuse(_method: str, _params: dict[str, Any]) -> Any:
    raise RemoteError("docker_error", "engine said no")


async def test_every_host_gets_an_outcome_and_rows_come_sorted_with_their_host(hosts: Hosts) -> None:
    selected = [
        hosts.add("a1", "alpha", rows("web", "db", "cache")),
        hosts.add("b2", "beta", refuse),
        HostRef("c3", "gamma", (), None),
        hosts.add("d4", "delta", rows("zed", "api")),
    ]
    result = await fan_out(selected, "containers.list", {}, 2.0)
    assert [(o.id, o.status) for o in result.outcomes] == [
        ("a1", "ok"),
        ("b2", "error"),
        ("c3", "offline"),
        ("d4", "ok"),
    ]
    assert result.outcomes[1].error == "engine said no"
    assert [(r["host"]["name"], r["name"]) for r in result.items] == [
        ("alpha", "cache"),
        ("alpha", "db"),
        ("alpha", "web"),
        ("delta", "api"),
        ("delta", "zed"),
    ]


async def test_the_spliced_body_is_the_json_of_the_whole_result(hosts: Hosts) -> None:
    selected = [
        hosts.add("a1", "alpha", rows("b", "a")),
        hosts.add("b2", "beta", rows()),
        hosts.add("c3", "gamma", rows("c")),
        hosts.add("d4", "delta", lambda _m, _p: {"not": "a list"}),
    ]
    plain = (await fan_out(selected, "containers.list", {}, 2.0)).to_dict()
    spliced = await fan_out(selected, "containers.list", {}, 2.0, encode=True)
    body = orjson.loads(spliced.to_json())
    assert body["items"] == plain["items"]
    assert [r["name"] for r in body["items"]] == ["a", "b", "c"]
    assert [(h["id"], h["status"]) for h in body["hosts"]] == [(h["id"], h["status"]) for h in plain["hosts"]]
    assert spliced.rows == [[], [], [], []]  # encoded on arrival, the decoded rows were let go


async def test_a_hung_host_costs_its_deadline_and_is_told_to_cancel(hosts: Hosts) -> None:
    selected = [hosts.add("a1", "alpha", rows("web")), hosts.add("b2", "beta", hang)]
    started = time.monotonic()
    result = await fan_out(selected, "containers.list", {}, 0.3, encode=True)
    elapsed = time.monotonic() - started
    assert [o.status for o in result.outcomes] == ["ok", "timeout"]
    assert 0.3 <= elapsed < 0.3 + 0.2
    assert [r["name"] for r in orjson.loads(result.to_json())["items"]] == ["web"]
    for _ in range(50):
        if hosts.cancelled:
            break
        await asyncio.sleep(0.01)
    assert hosts.cancelled == ["b2"]


async def test_a_cancelled_fan_out_cancels_its_requests_on_the_hosts(hosts: Hosts) -> None:
    selected = [hosts.add("a1", "alpha", hang), hosts.add("b2", "beta", hang)]
    task = asyncio.create_task(fan_out(selected, "containers.list", {}, 5.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if len(hosts.cancelled) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(hosts.cancelled) == ["a1", "b2"]
