"""The agent's image handlers over a real link (in-memory socket) to a real engine and the auth registry:
the `auth` param reaches the engine for that pull only, and a refusal is the engine's clear error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockmesh.agent.handlers import Handlers
from dockmesh.docker.engine import connect
from dockmesh.link import Link, RemoteError
from dockmesh.link.memory import socket_pair
from dockmesh.link.packets import PacketStream, decode_json
from dockmesh.proto import Role
from dockmesh.proto.methods import Objects
from tests.fleet import BUSYBOX_IMAGE, Fleet

pytestmark = pytest.mark.docker


@pytest.fixture
async def link(fleet: Fleet) -> AsyncIterator[Link]:
    docker = connect(fleet.engine(0).docker_host)
    handlers = Handlers(docker)
    server_end, agent_end = socket_pair()
    server = Link(server_end, Role.ACCEPTOR)
    agent = Link(agent_end, Role.DIALER, on_request=handlers.handle, on_stream=handlers.stream)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(agent.run())]
    try:
        yield server
    finally:
        await server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await docker.close()


async def pull(link: Link, params: dict[str, Any]) -> list[dict[str, Any]]:
    packets = PacketStream(link.open_stream(Objects.IMAGES_PULL, params))
    out = []
    while (packet := await packets.recv()) is not None:
        out.append(decode_json(packet[1]))
    return out


async def test_pull_with_auth_over_the_link(link: Link, fleet: Fleet, tmp_path: Any) -> None:
    reg, eng = fleet.registry(), fleet.engine(0)
    ref = f"{reg.addr}/dm/linked:1"
    cfg = {"DOCKER_CONFIG": str(tmp_path)}
    eng.docker("tag", BUSYBOX_IMAGE, ref)
    eng.docker("login", "-u", reg.username, "--password-stdin", reg.addr, input=reg.password, env=cfg)
    eng.docker("push", ref, env=cfg)
    eng.docker("rmi", ref)

    with pytest.raises(RemoteError) as caught:
        await pull(link, {"image": ref})
    assert caught.value.code == "unauthorized"
    with pytest.raises(RemoteError) as caught:
        await pull(link, {"image": ref, "auth": {"username": reg.username, "password": "wrong"}})
    assert caught.value.code == "unauthorized"
    assert "wrong" not in caught.value.message
    assert not eng.image_exists(ref)

    packets = await pull(link, {"image": ref, "auth": {"username": reg.username, "password": reg.password}})
    *progress, result = packets
    assert result == {"type": "result", "image": ref, "id": result["id"]}
    assert result["id"].startswith("sha256:")
    assert all(p["type"] == "progress" for p in progress)
    assert eng.image_exists(ref)
    # The credentials were for that request only: the engine kept none.
    assert reg.password not in eng.docker("info").stdout
    assert await link.request(Objects.IMAGES_REMOVE, {"id": ref}, timeout=30) == {"ok": True}
    assert not eng.image_exists(ref)


async def test_bad_params_are_refused_at_the_agent(link: Link) -> None:
    for method, params in [
        (Objects.VOLUMES_CREATE, {"name": "../x"}),
        (Objects.VOLUMES_REMOVE, {"name": "ok-name", "force": "false"}),
        (Objects.NETWORKS_CREATE, {"name": "net", "internal": 1}),
        (Objects.IMAGES_PRUNE, {"dry_run": "yes"}),
        (Objects.IMAGES_PRUNE, {"dry_run": True, "mode": "all"}),
        (Objects.IMAGES_REMOVE, {"id": "a b"}),
    ]:
        with pytest.raises(RemoteError) as caught:
            await link.request(method, params, timeout=10)
        assert caught.value.code == "bad_request", (method, params)
    with pytest.raises(RemoteError) as caught:
        await pull(link, {"image": "../etc/passwd"})
    assert caught.value.code == "bad_request"
