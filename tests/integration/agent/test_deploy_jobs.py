"""Deploy jobs through a real link (the agent's handlers over the in-process link) to a real engine."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from dockmesh.agent.handlers import Handlers
from dockmesh.docker.engine import connect
from dockmesh.link import Link, RemoteError
from dockmesh.link.memory import socket_pair
from dockmesh.link.packets import PacketStream, decode_json
from dockmesh.proto import Role
from dockmesh.proto.methods import Stacks
from tests.fleet import Engine, Fleet, spawn
from tests.integration.compose_stack import NEVER_HEALTHY, STACK, ps

pytestmark = pytest.mark.docker

LIMIT = 120.0


class Host:
    """One engine served by Handlers; ``connect()`` makes a fresh link to it, like a reconnect."""

    def __init__(self, docker: aiodocker.Docker, journal: Path) -> None:
        self.handlers = Handlers(docker, journal=journal)
        self.links: list[tuple[Link, Link, list[asyncio.Task[None]]]] = []

    def connect(self) -> Link:
        server_end, host_end = socket_pair()
        server = Link(server_end, Role.ACCEPTOR)
        host = Link(host_end, Role.DIALER, on_request=self.handlers.handle, on_stream=self.handlers.stream)
        self.links.append(
            (server, host, [asyncio.create_task(server.run()), asyncio.create_task(host.run())])
        )
        return server

    async def drop(self) -> None:
        for server, host, tasks in self.links:
            await server.close()
            await host.close()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.links.clear()


@pytest.fixture
async def docker(fleet: Fleet) -> AsyncIterator[aiodocker.Docker]:
    client = connect(fleet.engine(0).docker_host)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def engine(fleet: Fleet) -> Engine:
    return fleet.engine(0)


@pytest.fixture
async def host(docker: aiodocker.Docker, tmp_path: Path) -> AsyncIterator[Host]:
    h = Host(docker, tmp_path / "deploys.json")
    try:
        yield h
    finally:
        await h.handlers.close()
        await h.drop()


def params(deploy_id: str, text: str = STACK, **extra: Any) -> dict[str, Any]:
    return {"deploy_id": deploy_id, "project": "demo", "compose": text, "env": "", **extra}


async def read_all(packets: PacketStream) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(LIMIT):
        while (packet := await packets.recv()) is not None:
            out.append(decode_json(packet[1]))
    return out


async def settled(link: Link, deploy_id: str) -> dict[str, Any]:
    """Poll deploy_status until the job has a final state (the condition, not a fixed sleep)."""
    async with asyncio.timeout(LIMIT):
        while True:
            status = await link.request(Stacks.DEPLOY_STATUS, {"deploy_id": deploy_id}, timeout=10)
            if status["state"] != "running":
                return dict(status)
            await asyncio.sleep(0.1)


async def test_deploy_streams_progress_then_one_result(host: Host, engine: Engine) -> None:
    link = host.connect()
    packets = await read_all(PacketStream(link.open_stream(Stacks.DEPLOY, params("d-1"))))
    assert all(p["type"] == "progress" for p in packets[:-1])
    phases = {p["phase"] for p in packets[:-1]}
    assert {"validate", "network", "volume", "create", "start", "health"} <= phases
    result = packets[-1]
    assert (result["type"], result["deploy_id"], result["state"], result["error"]) == (
        "result",
        "d-1",
        "done",
        None,
    )
    assert {s["name"] for s in result["services"]} == {"web", "db"}
    assert set(ps(engine)) == {"demo-web-1", "demo-db-1"}
    answer = await link.request(Stacks.SERVICES, {"project": "demo"}, timeout=10)
    assert {s["name"]: s["state"] for s in answer["services"]} == {"web": "running", "db": "running"}


async def test_closed_stream_and_dropped_link_do_not_stop_the_job(host: Host, engine: Engine) -> None:
    link = host.connect()
    stream = link.open_stream(Stacks.DEPLOY, params("d-2"))
    packets = PacketStream(stream)
    async with asyncio.timeout(LIMIT):
        first = decode_json((await packets.recv() or (None, b"{}"))[1])
    assert first["type"] == "progress"
    stream.cancel()
    await host.drop()  # the link goes too: the job must carry on to its end

    again = host.connect()
    status = await settled(again, "d-2")
    assert status["state"] == "done"
    assert status["result"]["deploy_id"] == "d-2"
    ids = ps(engine)
    assert set(ids) == {"demo-web-1", "demo-db-1"}

    # A retry with the same id answers the recorded result and deploys nothing.
    retry = await read_all(
        PacketStream(again.open_stream(Stacks.DEPLOY, params("d-2", text=STACK + "\n# edited")))
    )
    assert [p["type"] for p in retry] == ["result"]
    assert retry[0]["state"] == "done"
    assert ps(engine) == ids


async def test_a_second_stream_follows_a_running_job(host: Host) -> None:
    link = host.connect()
    first = PacketStream(link.open_stream(Stacks.DEPLOY, params("d-3")))
    second = PacketStream(link.open_stream(Stacks.DEPLOY, {"deploy_id": "d-3"}))  # no compose: follows
    a, b = await asyncio.gather(read_all(first), read_all(second))
    assert a[-1] == b[-1]
    assert a[-1]["state"] == "done"


async def test_cancel_rolls_back_a_first_deploy(host: Host, engine: Engine) -> None:
    link = host.connect()
    packets = PacketStream(link.open_stream(Stacks.DEPLOY, params("d-4", NEVER_HEALTHY)))
    async with asyncio.timeout(LIMIT):
        while True:
            event = decode_json((await packets.recv() or (None, b"{}"))[1])
            if event.get("phase") == "health":
                break
    assert await link.request(Stacks.CANCEL, {"deploy_id": "d-4"}, timeout=10) == {"ok": True}
    rest = await read_all(packets)
    assert rest[-1]["state"] == "cancelled"
    assert any(p.get("phase") == "rollback" for p in rest)
    assert ps(engine) == {}
    assert (await settled(link, "d-4"))["state"] == "cancelled"


async def test_missing_image_result_carries_the_engines_message(
    host: Host, fleet: Fleet, engine: Engine
) -> None:
    reg = fleet.registry()
    missing = f"{reg.addr}/dm/nope:1"
    text = f"services:\n  a:\n    image: {missing}\n    network_mode: none\n"
    auth = {reg.addr: {"username": reg.username, "password": reg.password}}
    link = host.connect()
    packets = await read_all(PacketStream(link.open_stream(Stacks.DEPLOY, params("d-5", text, auth=auth))))
    result = packets[-1]
    assert result["state"] == "failed"
    assert missing in result["error"]["message"]
    assert reg.password not in json.dumps(packets)
    assert ps(engine) == {}


async def test_journal_survives_a_new_host_process(
    docker: aiodocker.Docker, host: Host, tmp_path: Path
) -> None:
    link = host.connect()
    await read_all(PacketStream(link.open_stream(Stacks.DEPLOY, params("d-6"))))
    restarted = Host(docker, tmp_path / "deploys.json")
    try:
        status = await settled(restarted.connect(), "d-6")
        assert status["state"] == "done"
    finally:
        await restarted.drop()


async def test_down_stop_start(host: Host, engine: Engine) -> None:
    link = host.connect()
    await read_all(PacketStream(link.open_stream(Stacks.DEPLOY, params("d-7"))))
    assert await link.request(Stacks.STOP, {"project": "demo"}, timeout=60) == {"ok": True}
    services = (await link.request(Stacks.SERVICES, {"project": "demo"}, timeout=10))["services"]
    assert {s["state"] for s in services} == {"exited"}
    assert await link.request(Stacks.START, {"project": "demo"}, timeout=60) == {"ok": True}
    assert await link.request(Stacks.DOWN, {"project": "demo", "volumes": True}, timeout=60) == {"ok": True}
    assert ps(engine) == {}


async def test_a_running_stack_refuses_a_second_deploy_and_down(host: Host) -> None:
    link = host.connect()
    stream = link.open_stream(Stacks.DEPLOY, params("d-8", NEVER_HEALTHY))
    packets = PacketStream(stream)
    async with asyncio.timeout(LIMIT):
        await packets.recv()
    with pytest.raises(RemoteError) as caught:
        await read_all(PacketStream(link.open_stream(Stacks.DEPLOY, params("d-9"))))
    assert caught.value.code == "conflict"
    with pytest.raises(RemoteError) as caught:
        await link.request(Stacks.DOWN, {"project": "demo"}, timeout=10)
    assert caught.value.code == "conflict"
    await link.request(Stacks.CANCEL, {"deploy_id": "d-8"}, timeout=10)
    assert (await read_all(packets))[-1]["state"] == "cancelled"


# A host process that starts one deploy job and then idles, to be killed mid-deploy.
_HOST = """
import asyncio, sys
from pathlib import Path
from dockmesh.agent.deploys import Deploys
from dockmesh.docker.engine import connect

async def main() -> None:
    deploys = Deploys(connect(sys.argv[1]), Path(sys.argv[2]))
    text = Path(sys.argv[3]).read_text()
    deploys._start_job("k-1", {"deploy_id": "k-1", "project": "demo", "compose": text})
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_host_killed_mid_deploy_reads_back_interrupted(
    docker: aiodocker.Docker, engine: Engine, tmp_path: Path
) -> None:
    journal = tmp_path / "deploys.json"
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(NEVER_HEALTHY)
    proc = spawn(
        [sys.executable, "-c", _HOST, engine.docker_host, str(journal), str(compose_file)],
        log_path=tmp_path / "host.log",
    )
    try:
        deadline = time.monotonic() + LIMIT
        while "demo-db-1" not in ps(engine):  # mid-deploy: db is up, web waits on its health
            assert proc.alive, proc.log_tail()
            assert time.monotonic() < deadline, proc.log_tail()
            await asyncio.sleep(0.1)
        assert json.loads(journal.read_text())[0]["state"] == "running"
    finally:
        proc.kill()
    restarted = Host(docker, journal)
    try:
        status = await settled(restarted.connect(), "k-1")
    finally:
        await restarted.drop()
    assert status["state"] == "failed"
    assert status["result"]["error"]["code"] == "interrupted"
    # A retry with the same id answers that result; it does not deploy again.
    link = restarted.connect()
    packets = await read_all(PacketStream(link.open_stream(Stacks.DEPLOY, params("k-1"))))
    assert [p["state"] for p in packets] == ["failed"]
    await restarted.drop()
