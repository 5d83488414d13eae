"""The asyncio link driver, run end to end over an in-memory socket pair."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from dockmesh.link import Link, LinkClosed, MessageSocket, RemoteError, RequestTimeout, Stream
from dockmesh.proto import CloseCode, Limits, Role

LIMIT = 5.0  # seconds any single test step may take


class MemorySocket:
    """One end of an in-memory message pipe; satisfies dockmesh.link.MessageSocket."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.peer: MemorySocket | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = False
        self.sent = 0

    @staticmethod
    def pair() -> tuple[MemorySocket, MemorySocket]:
        a, b = MemorySocket(), MemorySocket()
        a.peer, b.peer = b, a
        return a, b

    async def send(self, message: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("socket closed")
        assert self.peer is not None
        self.sent += 1
        self.peer.inbox.put_nowait(message)

    async def recv(self) -> bytes | None:
        if self.closed and self.inbox.empty():
            return None
        return await self.inbox.get()

    def _shut(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.inbox.put_nowait(None)

    async def close(self, code: int, reason: str) -> None:
        self._shut(code, reason)
        assert self.peer is not None
        self.peer._shut(code, reason)

    def abort(self) -> None:
        self._shut(1006, "aborted")
        assert self.peer is not None
        self.peer._shut(1006, "aborted")


def _is_message_socket(sock: MessageSocket) -> MessageSocket:
    return sock  # mypy checks MemorySocket against the protocol here


@dataclass
class Linked:
    dialer: Link
    acceptor: Link
    dialer_sock: MemorySocket
    acceptor_sock: MemorySocket
    tasks: list[asyncio.Task[None]]

    async def wait_closed(self) -> None:
        async with asyncio.timeout(LIMIT):
            await asyncio.gather(*self.tasks)


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    made: list[Linked] = []

    async def make(
        *,
        dialer: dict[str, Any] | None = None,
        acceptor: dict[str, Any] | None = None,
        run_dialer: bool = True,
    ) -> Linked:
        d_sock, a_sock = MemorySocket.pair()
        _is_message_socket(d_sock)
        d = Link(d_sock, Role.DIALER, **(dialer or {}))
        a = Link(a_sock, Role.ACCEPTOR, **(acceptor or {}))
        tasks = [asyncio.create_task(a.run())]
        if run_dialer:
            tasks.append(asyncio.create_task(d.run()))
        linked = Linked(d, a, d_sock, a_sock, tasks)
        made.append(linked)
        return linked

    yield make
    for linked in made:
        await linked.dialer.close()
        await linked.acceptor.close()
        for task in linked.tasks:
            task.cancel()
        await asyncio.gather(*linked.tasks, return_exceptions=True)


# --- requests ----------------------------------------------------------------------------------


async def test_request_and_response(connect: Any) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        calls.append((method, params))
        return {"echo": params["x"], "method": method}

    pair = await connect(acceptor={"on_request": on_request})
    result = await pair.dialer.request("ping", {"x": [1, "two", None]}, timeout=LIMIT)
    assert result == {"echo": [1, "two", None], "method": "ping"}
    assert calls == [("ping", {"x": [1, "two", None]})]


async def test_requests_work_in_both_directions(connect: Any) -> None:
    async def dialer_side(method: str, params: dict[str, Any]) -> Any:
        return f"dialer:{method}"

    async def acceptor_side(method: str, params: dict[str, Any]) -> Any:
        return f"acceptor:{method}"

    pair = await connect(dialer={"on_request": dialer_side}, acceptor={"on_request": acceptor_side})
    assert await pair.dialer.request("a", {}, timeout=LIMIT) == "acceptor:a"
    assert await pair.acceptor.request("b", {}, timeout=LIMIT) == "dialer:b"


async def test_concurrent_requests_get_their_own_answers(connect: Any) -> None:
    async def on_request(method: str, params: dict[str, Any]) -> Any:
        await asyncio.sleep(params["delay"])
        return params["n"]

    pair = await connect(acceptor={"on_request": on_request})
    results = await asyncio.gather(
        *(pair.dialer.request("n", {"n": n, "delay": (10 - n) / 1000}, timeout=LIMIT) for n in range(10))
    )
    assert results == list(range(10))


async def test_remote_error_arrives_with_its_code(connect: Any) -> None:
    async def on_request(method: str, params: dict[str, Any]) -> Any:
        raise RemoteError("no_such_container", "container abc is gone")

    pair = await connect(acceptor={"on_request": on_request})
    with pytest.raises(RemoteError) as info:
        await pair.dialer.request("inspect", {}, timeout=LIMIT)
    assert info.value.code == "no_such_container"
    assert info.value.message == "container abc is gone"
    # The link survives an error answer.
    with pytest.raises(RemoteError):
        await pair.dialer.request("inspect", {}, timeout=LIMIT)


async def test_unexpected_handler_exception_is_an_internal_error(connect: Any) -> None:
    async def on_request(method: str, params: dict[str, Any]) -> Any:
        raise KeyError("boom")

    pair = await connect(acceptor={"on_request": on_request})
    with pytest.raises(RemoteError) as info:
        await pair.dialer.request("x", {}, timeout=LIMIT)
    assert info.value.code == "internal"
    assert "KeyError" in info.value.message


async def test_no_request_handler_answers_unsupported(connect: Any) -> None:
    pair = await connect()
    with pytest.raises(RemoteError) as info:
        await pair.dialer.request("x", {}, timeout=LIMIT)
    assert info.value.code == "unsupported"


async def test_request_timeout_cancels_the_remote_handler(connect: Any) -> None:
    started = asyncio.Event()
    finished = asyncio.Event()
    cancelled = asyncio.Event()

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finally:
            finished.set()

    pair = await connect(acceptor={"on_request": on_request})
    loop = asyncio.get_running_loop()
    begin = loop.time()
    with pytest.raises(RequestTimeout):
        await pair.dialer.request("slow", {}, timeout=0.2)
    assert 0.15 <= loop.time() - begin < LIMIT
    assert started.is_set()
    async with asyncio.timeout(LIMIT):
        await finished.wait()
    assert cancelled.is_set()
    # The link is still usable afterwards.
    assert not pair.dialer.closed
    assert not pair.acceptor.closed


async def test_caller_cancellation_cancels_the_remote_handler(connect: Any) -> None:
    started = asyncio.Event()
    finished = asyncio.Event()

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            finished.set()

    pair = await connect(acceptor={"on_request": on_request})
    call = asyncio.create_task(pair.dialer.request("slow", {}, timeout=LIMIT * 10))
    async with asyncio.timeout(LIMIT):
        await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    async with asyncio.timeout(LIMIT):
        await finished.wait()


# --- streams -----------------------------------------------------------------------------------


async def test_stream_carries_5_mib_to_a_slow_reader_without_blocking_requests(connect: Any) -> None:
    payload = os.urandom(5 * 1024 * 1024)
    start_reading = asyncio.Event()
    received: list[bytes] = []
    handler_done = asyncio.Event()
    stream_meta: list[tuple[str, dict[str, Any]]] = []

    async def on_stream(stream: Stream) -> None:
        stream_meta.append((stream.kind, stream.params))
        await start_reading.wait()
        n = 0
        while (chunk := await stream.read()) is not None:
            received.append(chunk)
            n += 1
            if n % 4 == 0:
                await asyncio.sleep(0.002)  # a slow consumer
        handler_done.set()

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        return "pong"

    pair = await connect(acceptor={"on_stream": on_stream, "on_request": on_request})
    stream = pair.dialer.open_stream("upload", {"name": "blob"})

    async def write_all() -> None:
        await stream.write(payload)
        stream.eof()

    writer = asyncio.create_task(write_all())
    # Let the writer use up the whole window: it must now be waiting for credit.
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert not writer.done(), "the writer should be blocked on credit while nobody reads"
    assert not received

    # A small request overtakes the blocked bulk stream.
    loop = asyncio.get_running_loop()
    begin = loop.time()
    assert await pair.dialer.request("ping", {}, timeout=1.0) == "pong"
    assert loop.time() - begin < 1.0
    assert not writer.done()
    assert not received

    start_reading.set()
    async with asyncio.timeout(60):
        await writer
        await handler_done.wait()
    data = b"".join(received)
    assert len(data) == len(payload)
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    assert stream_meta == [("upload", {"name": "blob"})]
    # Flow control held: no single chunk is bigger than the window.
    assert max(len(c) for c in received) <= Limits().initial_window
    # The handler returning closes the stream on the opener's side.
    async with asyncio.timeout(LIMIT):
        assert await stream.read() is None
    assert stream.closed


async def test_stream_in_the_other_direction(connect: Any) -> None:
    payload = os.urandom(1024 * 1024 + 17)

    async def on_stream(stream: Stream) -> None:
        assert stream.kind == "logs"
        await stream.write(payload)

    pair = await connect(acceptor={"on_stream": on_stream})
    stream = pair.dialer.open_stream("logs", {"follow": False})
    parts = []
    async with asyncio.timeout(LIMIT * 4):
        while (chunk := await stream.read()) is not None:
            parts.append(chunk)
            await asyncio.sleep(0)
    assert b"".join(parts) == payload


async def test_stream_handler_error_reaches_the_reader(connect: Any) -> None:
    async def on_stream(stream: Stream) -> None:
        await stream.write(b"partial")
        raise RemoteError("exec_failed", "no such command")

    pair = await connect(acceptor={"on_stream": on_stream})
    stream = pair.dialer.open_stream("exec", {})
    async with asyncio.timeout(LIMIT):
        assert await stream.read() == b"partial"
        with pytest.raises(RemoteError) as info:
            await stream.read()
    assert info.value.code == "exec_failed"


async def test_stream_without_handler_is_refused(connect: Any) -> None:
    pair = await connect()
    stream = pair.dialer.open_stream("logs", {})
    async with asyncio.timeout(LIMIT):
        with pytest.raises(RemoteError) as info:
            await stream.read()
    assert info.value.code == "unsupported"


# --- events ------------------------------------------------------------------------------------


async def test_events_are_delivered_in_order(connect: Any) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    all_in = asyncio.Event()

    def on_event(name: str, body: dict[str, Any]) -> None:
        got.append((name, body))
        if len(got) == 3:
            all_in.set()

    pair = await connect(acceptor={"on_event": on_event})
    for i in range(3):
        pair.dialer.send_event("metrics", {"i": i})
    async with asyncio.timeout(LIMIT):
        await all_in.wait()
    assert got == [("metrics", {"i": 0}), ("metrics", {"i": 1}), ("metrics", {"i": 2})]


# --- closing -----------------------------------------------------------------------------------


async def test_closing_the_socket_fails_pending_requests(connect: Any) -> None:
    started = asyncio.Event()
    handler_finished = asyncio.Event()

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            handler_finished.set()

    pair = await connect(acceptor={"on_request": on_request})
    calls = [asyncio.create_task(pair.dialer.request("slow", {}, timeout=LIMIT * 10)) for _ in range(3)]
    async with asyncio.timeout(LIMIT):
        await started.wait()
    await pair.acceptor.close(CloseCode.REPLACED, "replaced by a newer connection")
    for call in calls:
        with pytest.raises(LinkClosed) as info:
            async with asyncio.timeout(LIMIT):
                await call
        assert info.value.code == CloseCode.REPLACED
        assert info.value.reason == "replaced by a newer connection"
    await pair.wait_closed()
    assert pair.dialer.closed
    assert pair.acceptor.closed
    assert handler_finished.is_set()  # the serving side cancels its handlers on teardown
    assert pair.dialer.close_code == CloseCode.REPLACED
    with pytest.raises(LinkClosed):
        await pair.dialer.request("late", {}, timeout=1)
    with pytest.raises(LinkClosed):
        pair.dialer.open_stream("late", {})


async def test_closing_fails_open_streams(connect: Any) -> None:
    async def on_stream(stream: Stream) -> None:
        await asyncio.sleep(3600)

    pair = await connect(acceptor={"on_stream": on_stream})
    stream = pair.dialer.open_stream("logs", {})
    await asyncio.sleep(0.05)
    await pair.dialer.close(CloseCode.GOING_AWAY, "bye")
    async with asyncio.timeout(LIMIT):
        with pytest.raises(RemoteError) as info:
            await stream.read()
    assert info.value.code == "link_closed"
    with pytest.raises(LinkClosed):
        await stream.write(b"more")


async def test_first_close_code_wins(connect: Any) -> None:
    pair = await connect()
    await pair.acceptor.close(CloseCode.UNAUTHORIZED, "revoked")
    await pair.wait_closed()
    await pair.dialer.close(CloseCode.NORMAL, "tidy up")
    assert pair.dialer.close_code == CloseCode.UNAUTHORIZED
    assert pair.dialer.close_reason == "revoked"
    assert pair.acceptor.close_code == CloseCode.UNAUTHORIZED


@pytest.mark.looptime  # virtual time: the watchdog's timing is exact, whatever the machine's load
async def test_idle_timeout_closes_with_4408_when_the_peer_is_silent(connect: Any) -> None:
    pair = await connect(acceptor={"idle_timeout": 0.3})
    loop = asyncio.get_running_loop()
    begin = loop.time()
    await pair.wait_closed()
    elapsed = loop.time() - begin
    assert 0.3 <= elapsed <= 0.3 * 2  # silent for the timeout; noticed within one more check
    assert pair.acceptor.close_code == CloseCode.HEARTBEAT_TIMEOUT
    assert pair.dialer.close_code == CloseCode.HEARTBEAT_TIMEOUT
    assert pair.dialer_sock.close_code == 4408


@pytest.mark.looptime
async def test_traffic_keeps_an_idle_link_open(connect: Any) -> None:
    pair = await connect(acceptor={"idle_timeout": 0.3})
    for _ in range(8):
        pair.dialer.send_event("heartbeat", {})
        await asyncio.sleep(0.1)
    assert not pair.acceptor.closed
    await asyncio.sleep(0.5)  # silence now: the watchdog fires
    async with asyncio.timeout(LIMIT):
        await pair.acceptor.wait_closed()
    assert pair.acceptor.close_code == CloseCode.HEARTBEAT_TIMEOUT


async def test_protocol_violation_closes_with_1002(connect: Any) -> None:
    pair = await connect(run_dialer=False)
    await pair.dialer_sock.send(b"\x63garbage")  # not a frame type
    async with asyncio.timeout(LIMIT):
        await pair.acceptor.wait_closed()
    assert pair.acceptor.close_code == CloseCode.PROTOCOL_ERROR
    assert pair.dialer_sock.close_code == CloseCode.PROTOCOL_ERROR
