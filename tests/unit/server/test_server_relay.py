"""The browser-facing stream relay (exec, stats): failures after the upgrade close with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dockmesh.link import Link, RemoteError, Stream
from dockmesh.link.memory import socket_pair
from dockmesh.link.packets import Kind, PacketStream
from dockmesh.proto import Role
from dockmesh.server.api import containers

LIMIT = 10.0
HostSide = Callable[[Stream], Awaitable[None]]


@pytest.fixture
async def relay_url() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Serve `relay()` over a real aiohttp WebSocket, fed by a host on an in-memory link."""
    cleanup: list[Any] = []

    async def make(host: HostSide, max_msg_size: int = 1 << 20) -> str:
        server_end, host_end = socket_pair()
        server_link = Link(server_end, Role.ACCEPTOR)
        host_link = Link(host_end, Role.DIALER, on_stream=host)
        tasks = [asyncio.create_task(server_link.run()), asyncio.create_task(host_link.run())]

        async def handler(request: web.Request) -> web.StreamResponse:
            stream = server_link.open_stream("stats", {})
            ws = containers.StreamSocket(max_msg_size=max_msg_size)
            await ws.prepare(request)
            packets = PacketStream(stream)

            async def to_host(msg: Any) -> None:
                await packets.send(Kind.DATA, msg.data)

            async def forward(kind: Kind, payload: bytes) -> None:
                await ws.send_str(payload.decode())

            await containers.relay(ws, stream, packets, "h1", to_host, forward)
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        server = TestServer(app)
        await server.start_server()
        cleanup.append((server, server_link, host_link, tasks))
        return str(server.make_url("/ws"))

    yield make
    for server, server_link, host_link, tasks in cleanup:
        await server.close()
        await server_link.close()
        await host_link.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close_of(url: str, send: bytes | None = None) -> tuple[int | None, str, list[str]]:
    texts: list[str] = []
    async with aiohttp.ClientSession() as http, asyncio.timeout(LIMIT):
        async with http.ws_connect(url, max_msg_size=0) as ws:
            if send is not None:
                await ws.send_bytes(send)
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    texts.append(msg.data)
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    return msg.data, str(msg.extra or ""), texts
                else:
                    return None, f"{msg.type.name}: {msg.data}", texts


async def test_an_unexpected_error_after_the_upgrade_closes_with_1011(relay_url: Any) -> None:
    async def garbage(stream: Stream) -> None:
        await stream.write(b"\x09\x00\x00\x00\x01x")  # packet kind 9 does not exist
        await asyncio.sleep(LIMIT)

    code, reason, _ = await _close_of(await relay_url(garbage))
    assert code == 1011
    assert "PacketError" in reason


async def test_an_undecodable_sample_closes_with_1011(relay_url: Any) -> None:
    async def not_utf8(stream: Stream) -> None:
        await PacketStream(stream).send(Kind.JSON, b"\xff\xfe")
        await asyncio.sleep(LIMIT)

    code, reason, _ = await _close_of(await relay_url(not_utf8))
    assert code == 1011
    assert "UnicodeDecodeError" in reason


async def test_a_host_error_is_sent_and_closes_with_1011_and_its_message(relay_url: Any) -> None:
    async def refuse(stream: Stream) -> None:
        raise RemoteError("not_found", "no such container: web")

    code, reason, texts = await _close_of(await relay_url(refuse))
    assert code == 1011
    assert reason == "h1: no such container: web"
    assert '"code": "not_found"' in texts[0]


async def test_a_message_over_the_limit_closes_with_1009_and_a_reason(relay_url: Any) -> None:
    async def idle(stream: Stream) -> None:
        await asyncio.sleep(LIMIT)

    code, reason, _ = await _close_of(await relay_url(idle, max_msg_size=4096), send=b"x" * 5000)
    assert code == 1009
    assert reason == "message over 4096 bytes; send it in smaller pieces"
