"""Fan-out over real links on in-memory sockets: outcomes, order, the streamed body, deadlines.

Time is virtual (looptime): deadlines are exact and a busy machine cannot stretch or shrink them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from dockmesh.link import Link, RemoteError
from dockmesh.link.memory import socket_pair
from dockmesh.proto import Role
from dockmesh.server import fanout
from dockmesh.server.directory import HostRef
from dockmesh.server.fanout import Gather, fan_out

Handler = Callable[[str, dict[str, Any]], Any]

pytestmark = pytest.mark.looptime


def now() -> float:
    return asyncio.get_running_loop().time()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


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


async def body(gather: Gather) -> tuple[Any, list[bytes]]:
    pieces = [piece async for piece in gather.stream()]
    return orjson.loads(b"".join(pieces)), pieces


async def test_the_streamed_body_is_the_json_of_the_whole_result(hosts: Hosts) -> None:
    selected = [
        hosts.add("a1", "alpha", rows("b", "a")),
        hosts.add("b2", "beta", rows()),
        hosts.add("c3", "gamma", rows("c")),
        hosts.add("d4", "delta", lambda _m, _p: {"not": "a list"}),
        HostRef("e5", "epsilon", (), None),
    ]
    plain = (await fan_out(selected, "containers.list", {}, 2.0)).to_dict()
    streamed, _pieces = await body(Gather(selected, "containers.list", {}, 2.0, encode=True))
    assert streamed["items"] == plain["items"]
    assert [r["name"] for r in streamed["items"]] == ["a", "b", "c"]
    assert [(h["id"], h["status"]) for h in streamed["hosts"]] == [
        (h["id"], h["status"]) for h in plain["hosts"]
    ]
    assert streamed["hosts"][-1]["status"] == "offline"


async def test_an_empty_selection_streams_an_empty_list() -> None:
    streamed, _pieces = await body(Gather([], "containers.list", {}, 1.0, encode=True))
    assert streamed == {"items": [], "hosts": []}


async def test_a_hung_host_costs_its_deadline_and_is_told_to_cancel(hosts: Hosts) -> None:
    selected = [hosts.add("a1", "alpha", rows("web")), hosts.add("b2", "beta", hang)]
    started = now()
    result = await fan_out(selected, "containers.list", {}, 0.3)
    elapsed = now() - started
    assert [o.status for o in result.outcomes] == ["ok", "timeout"]
    assert elapsed == pytest.approx(0.3, abs=0.05)
    assert [r["name"] for r in result.items] == ["web"]
    await until(lambda: bool(hosts.cancelled))
    assert hosts.cancelled == ["b2"]


async def test_rows_before_a_hung_host_go_out_before_its_deadline(
    hosts: Hosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "STREAM_BATCH", 1)
    selected = [
        hosts.add("a1", "alpha", rows("web")),
        hosts.add("b2", "beta", hang),
        hosts.add("c3", "gamma", rows("db")),
    ]
    started = now()
    arrivals: list[tuple[float, bytes]] = []
    async for piece in Gather(selected, "containers.list", {}, 1.0, encode=True).stream():
        arrivals.append((now() - started, piece))
    assert len(arrivals) == 2
    early, late = arrivals
    assert early[0] < 1.0  # before the hung host's deadline
    assert b'"web"' in early[1]
    assert b'"db"' not in early[1]
    assert late[0] >= 1.0
    assert b'"db"' in late[1]
    streamed = orjson.loads(b"".join(piece for _t, piece in arrivals))
    assert [h["status"] for h in streamed["hosts"]] == ["ok", "timeout", "ok"]
    assert [r["name"] for r in streamed["items"]] == ["web", "db"]


async def test_a_cancelled_fan_out_cancels_its_requests_on_the_hosts(hosts: Hosts) -> None:
    selected = [hosts.add("a1", "alpha", hang), hosts.add("b2", "beta", hang)]
    task = asyncio.create_task(fan_out(selected, "containers.list", {}, 5.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: len(hosts.cancelled) == 2)
    assert sorted(hosts.cancelled) == ["a1", "b2"]


async def test_answers_that_land_while_the_reader_is_busy_are_not_left_waiting(
    hosts: Hosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "STREAM_BATCH", 1)

    async def later(_method: str, _params: dict[str, Any]) -> Any:
        await asyncio.sleep(0.1)
        return [{"name": "late"}]

    selected = [hosts.add("a1", "alpha", rows("web")), hosts.add("b2", "beta", later)]
    started = now()
    pieces = []
    async for piece in Gather(selected, "containers.list", {}, 3.0, encode=True).stream():
        pieces.append(piece)
        await asyncio.sleep(0.3)  # a slow reader: beta answers meanwhile, and nothing else will
    assert now() - started < 2.0  # not the 3 s deadline
    streamed = orjson.loads(b"".join(pieces))
    assert [h["status"] for h in streamed["hosts"]] == ["ok", "ok"]
    assert [r["name"] for r in streamed["items"]] == ["web", "late"]
