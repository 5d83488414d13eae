"""Bounded link output: a peer that floods us or stops reading costs bounded memory and is dropped.

The socket here models TCP: each direction holds a few messages, then `send` (and the close
frame, which queues behind data) blocks until the other end reads.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dockmesh.link import Link, MessageSocket
from dockmesh.proto import CloseCode, Limits, Role
from dockmesh.proto import frames as wire

LIMIT = 5.0  # seconds any single test step may take
SMALL = Limits(output_high_water=4096, output_low_water=1024, max_output=64 * 1024)


class _Changes:
    """Wakes every waiter whenever either end of the pipe changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        old, self._event = self._event, asyncio.Event()
        old.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()


class PipeSocket:
    """One end of a bounded in-memory pipe; satisfies dockmesh.link.MessageSocket."""

    def __init__(self, changes: _Changes, capacity: int) -> None:
        self.changes = changes
        self.capacity = capacity  # messages the peer may leave unread before our send blocks
        self.inbox: deque[bytes | None] = deque()
        self.peer: PipeSocket | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.aborted = False
        self.reads = 0

    @staticmethod
    def pair(capacity: int = 2) -> tuple[PipeSocket, PipeSocket]:
        changes = _Changes()
        a, b = PipeSocket(changes, capacity), PipeSocket(changes, capacity)
        a.peer, b.peer = b, a
        return a, b

    def _room(self) -> bool:
        assert self.peer is not None
        return self.aborted or len(self.peer.inbox) < self.capacity

    async def send(self, message: bytes) -> None:
        await self.changes.until(self._room)
        if self.aborted or self.close_code is not None:
            raise ConnectionResetError("socket closed")
        assert self.peer is not None
        self.peer.inbox.append(message)
        self.changes.fire()

    async def recv(self) -> bytes | None:
        await self.changes.until(lambda: self.aborted or bool(self.inbox))
        if self.aborted:
            return None
        message = self.inbox.popleft()
        self.reads += 1
        self.changes.fire()
        if message is None and self.close_code is None:
            assert self.peer is not None
            self.close_code, self.close_reason = self.peer.close_code, self.peer.close_reason
        return message

    async def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        await self.changes.until(self._room)  # the close frame waits behind unread data
        if not self.aborted:
            assert self.peer is not None
            self.peer.inbox.append(None)
            self.inbox.append(None)  # our reader ends too (no wait for the peer's reply here)
            self.changes.fire()

    def abort(self) -> None:
        assert self.peer is not None
        self.aborted = self.peer.aborted = True
        self.changes.fire()


def _is_message_socket(sock: MessageSocket) -> MessageSocket:
    return sock  # mypy checks PipeSocket against the protocol here


@dataclass
class Server:
    link: Link
    sock: PipeSocket
    peer: PipeSocket  # the misbehaving peer: raw frames, read only when a test says so
    task: asyncio.Task[None]

    async def ended(self) -> None:
        async with asyncio.timeout(LIMIT):
            await self.task


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    made: list[Server] = []

    async def make(**options: Any) -> Server:
        peer, sock = PipeSocket.pair()
        _is_message_socket(sock)
        link = Link(sock, Role.ACCEPTOR, **{"limits": SMALL, **options})
        server = Server(link, sock, peer, asyncio.create_task(link.run()))
        made.append(server)
        return server

    yield make
    for server in made:
        server.sock.abort()
        server.task.cancel()
        await asyncio.gather(server.task, return_exceptions=True)


def _open(channel: int) -> bytes:
    return wire.open_frame(channel, "logs", {"id": "x" * 100}, None)


async def test_output_past_the_hard_limit_closes_the_link_with_1008(serve: Any) -> None:
    server = await serve(close_timeout=0.2)
    for i in range(200):  # 200 x ~600 bytes: past max_output before the writer can drain any
        server.link.send_event("pad", {"i": i, "pad": "a" * 600})
    await server.ended()
    assert server.link.close_code == CloseCode.POLICY_VIOLATION
    assert "output queue" in server.link.close_reason


async def test_reader_stops_reading_while_replies_are_over_the_high_water_mark(serve: Any) -> None:
    server = await serve()  # no stream handler: every OPEN is answered with a CLOSE
    total = 400

    async def flood() -> None:
        for n in range(total):
            await server.peer.send(_open(2 * n + 1))

    flooder = asyncio.create_task(flood())
    session = server.link._session
    async with asyncio.timeout(LIMIT):
        await server.sock.changes.until(lambda: session.control_buffered > SMALL.output_high_water)
    reads = server.sock.reads
    for _ in range(200):  # let every ready task run: a reader that still reads would show it
        await asyncio.sleep(0)
    assert server.sock.reads == reads, "the reader kept reading while over the high-water mark"
    assert not flooder.done()
    assert session.control_buffered <= SMALL.max_output

    # The peer reads again: the writer drains, the reader resumes, every OPEN gets its CLOSE.
    closes = 0
    async with asyncio.timeout(LIMIT):
        while closes < total:
            message = await server.peer.recv()
            assert message is not None
            closes += message[0] == wire.FrameType.CLOSE
        await flooder
    assert not server.link.closed


async def test_a_peer_that_sends_but_never_reads_is_dropped_after_the_send_timeout(serve: Any) -> None:
    server = await serve(send_timeout=0.3, close_timeout=0.2)

    async def flood() -> None:
        for n in range(10_000):
            await server.peer.send(_open(2 * n + 1))

    flooder = asyncio.create_task(flood())
    await server.ended()
    flooder.cancel()
    await asyncio.gather(flooder, return_exceptions=True)
    assert server.link.close_code == CloseCode.POLICY_VIOLATION
    assert "read nothing" in server.link.close_reason
    assert server.sock.aborted  # the close frame could not get through: the connection was dropped


async def test_close_returns_within_two_seconds_against_a_peer_that_never_reads(serve: Any) -> None:
    server = await serve()  # the default close timeout: what revoke and rotate rely on
    for i in range(20):
        server.link.send_event("pad", {"i": i})
    async with asyncio.timeout(LIMIT):
        await server.sock.changes.until(lambda: len(server.peer.inbox) >= server.sock.capacity)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    async with asyncio.timeout(LIMIT):
        await server.link.close(CloseCode.UNAUTHORIZED, "agent revoked")
    assert loop.time() - begin <= 2.0  # product bound: revoke returns within 2 s
    await server.ended()
    assert server.link.close_code == CloseCode.UNAUTHORIZED
    assert server.sock.aborted
