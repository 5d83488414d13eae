"""Merged stack logs over an in-memory link: lines cut across chunks, prefixed by service, streams cancelled
when the reader leaves, a host error shown as a line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockmesh.link import Link, RemoteError, Stream
from dockmesh.link.memory import socket_pair
from dockmesh.proto import Role
from dockmesh.server.services.stack_logs import merged_logs

ended: list[str] = []


async def host_logs(stream: Stream) -> None:
    cid = stream.params["id"]
    try:
        if cid == "broken":
            raise RemoteError("not_found", "no such container")
        if cid == "endless":
            while True:
                await stream.write(b"tick\n")
                await asyncio.sleep(0.01)
        for chunk in (b"first li", b"ne\nsecond line\nno newline"):
            await stream.write(chunk)
    finally:
        ended.append(cid)


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    server_end, host_end = socket_pair()
    server, host = Link(server_end, Role.ACCEPTOR), Link(host_end, Role.DIALER, on_stream=host_logs)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(host.run())]
    ended.clear()
    yield server
    await server.close()
    await host.close()
    for task in tasks:
        task.cancel()


async def collect(lines: Any) -> list[bytes]:
    async with asyncio.timeout(10):
        return [line async for line in lines]


async def test_lines_are_whole_and_prefixed_with_their_service(link: Link) -> None:
    out = await collect(merged_logs(link, [("db", "c1"), ("web", "c2")], follow=False, tail=None))
    lines = [b"first line\n", b"second line\n", b"no newline\n"]
    assert sorted(out) == sorted([b"db  | " + line for line in lines] + [b"web | " + line for line in lines])
    assert [line for line in out if line.startswith(b"db")] == [
        b"db  | first line\n", b"db  | second line\n", b"db  | no newline\n"
    ]  # fmt: skip


async def test_a_host_error_is_a_line_and_the_others_go_on(link: Link) -> None:
    out = await collect(merged_logs(link, [("api", "broken"), ("web", "c2")], follow=False, tail=5))
    assert b"api | [dockmesh] log stream ended: no such container\n" in out
    assert b"web | second line\n" in out


async def test_leaving_cancels_the_hosts_reads(link: Link) -> None:
    lines = merged_logs(link, [("web", "endless")], follow=True, tail=None)
    async with contextlib.aclosing(lines):
        assert await anext(lines) == b"web | tick\n"
    async with asyncio.timeout(10):
        while "endless" not in ended:
            await asyncio.sleep(0.01)
