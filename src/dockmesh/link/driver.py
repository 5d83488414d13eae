"""Runs a sans-I/O `Session` over a message socket: requests, streams, events, heartbeat watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dockmesh.link.errors import LinkClosed, RemoteError, RequestTimeout
from dockmesh.link.socket import MessageSocket
from dockmesh.link.stream import Stream
from dockmesh.proto import (
    Cancelled,
    ChannelClosed,
    CloseCode,
    DataReceived,
    EofReceived,
    ErrorBody,
    Event,
    EventReceived,
    Limits,
    ProtocolError,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    StreamOpened,
    WindowOpened,
)

log = logging.getLogger(__name__)

RequestHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[Stream], Awaitable[None]]
EventHandler = Callable[[str, dict[str, Any]], None]

# Bulk DATA is written in slices this size so control frames queued meanwhile go out first.
WRITE_SLICE = 64 * 1024
# A write that makes no progress for this long means the peer stopped reading (its TCP window is
# full): the link is closed with 1008. Progress is counted per frame, so a slow but live peer
# (a 1 MiB frame at 100 KB/s) is not dropped; the check re-arms itself while frames go out, so a
# stall is noticed within twice the timeout at the cost of one timer per writer wake-up.
SEND_TIMEOUT = 15.0
# The WebSocket close handshake may wait no longer than this before the connection is aborted:
# revoke must return within 2 s even for a peer that never reads (its close frame would wait
# behind a full TCP window forever).
CLOSE_TIMEOUT = 1.0


class Link:
    """One multiplexed connection. `run()` owns it until the socket closes."""

    def __init__(
        self,
        socket: MessageSocket,
        role: Role,
        *,
        limits: Limits | None = None,
        on_request: RequestHandler | None = None,
        on_stream: StreamHandler | None = None,
        on_event: EventHandler | None = None,
        idle_timeout: float | None = None,
        max_handlers: int = 64,
        send_timeout: float = SEND_TIMEOUT,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self._socket = socket
        self._session = Session(role, limits or Limits())
        self._on_request = on_request
        self._on_stream = on_stream
        self._on_event = on_event
        self.idle_timeout = idle_timeout
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        limits = self._session.limits
        self._high_water = limits.output_high_water
        self._low_water = limits.output_low_water
        self._max_output = limits.max_output
        self._handler_slots = asyncio.Semaphore(max_handlers)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[int, Stream] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wake_writer = asyncio.Event()
        # Set by the writer once it has drained below the low-water mark; the reader waits on it.
        self._drained = asyncio.Event()
        self._sent = 0  # frames written: the send watchdog's measure of progress
        self._send_watch: asyncio.TimerHandle | None = None
        self._closing = False
        self._closers: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._close_code: int | None = None
        self._close_reason = ""
        self.last_received = asyncio.get_running_loop().time()

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_code(self) -> int | None:
        return self._close_code if self._close_code is not None else self._socket.close_code

    @property
    def close_reason(self) -> str:
        return self._close_reason or self._socket.close_reason

    async def run(self) -> None:
        """Read until the socket closes, then fail everything still waiting on this link."""
        writer = asyncio.create_task(self._writer())
        watchdog = asyncio.create_task(self._watchdog()) if self.idle_timeout else None
        try:
            while True:
                message = await self._socket.recv()
                if message is None:
                    break
                self.last_received = asyncio.get_running_loop().time()
                if self._closing:
                    continue  # read on until the close completes, but start no more work
                try:
                    events = self._session.receive(message)
                except ProtocolError as exc:
                    log.warning("link protocol error: %s", exc.reason)
                    await self.close(exc.code, exc.reason)
                    break
                for event in events:
                    self._dispatch(event)
                if self._session.control_buffered > self._high_water:
                    await self._backpressure()
        finally:
            self._teardown()
            writer.cancel()
            if self._send_watch is not None:
                self._send_watch.cancel()
            if watchdog:
                watchdog.cancel()
            await asyncio.gather(writer, *(t for t in [watchdog] if t), return_exceptions=True)

    async def _backpressure(self) -> None:
        """Stop reading until the writer has sent what the peer's messages made us queue.

        Replies to a peer that floods requests but does not read pile up here otherwise; not
        reading lets the transport's own flow control push back on the peer instead.
        """
        if self._session.control_buffered > self._max_output:
            self._overflow()
            return
        self._drained.clear()
        self._kick()
        await self._drained.wait()

    def _overflow(self) -> None:
        if self._closing:
            return
        log.warning("link output queue over %d bytes: closing it", self._max_output)
        self._spawn_close(CloseCode.POLICY_VIOLATION, f"output queue over {self._max_output} bytes")

    def _spawn_close(self, code: int, reason: str) -> None:
        self._closing = True  # one close (and one log line) however many frames follow
        task = asyncio.ensure_future(self.close(code, reason))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        # The first close wins: a peer's 4401 must not be masked by our own tidy-up close.
        if self._close_code is None and self._socket.close_code is None:
            self._close_code = code
            self._close_reason = reason
        self._closing = True
        self._drained.set()  # a paused reader must not wait for a writer that may never drain
        try:
            await asyncio.wait_for(self._socket.close(code, reason), self.close_timeout)
        except asyncio.TimeoutError:
            # The close frame is stuck behind data the peer does not read: drop the connection.
            log.info("link close handshake took over %gs: aborting the connection", self.close_timeout)
            self._socket.abort()
        except Exception as exc:  # the socket is already gone: nothing left to close
            log.debug("link close failed: %s", exc)

    def _teardown(self) -> None:
        self._closed.set()
        error = LinkClosed(self.close_code, self.close_reason)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        for stream in self._streams.values():
            stream._on_closed(ErrorBody("link_closed", "the agent link closed"))
        self._streams.clear()
        for task in self._tasks.values():
            task.cancel()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- outgoing ------------------------------------------------------------------------------
    async def request(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        """Send a request and wait for its result; on timeout the peer is told to cancel."""
        return await self.begin_request(method, params, timeout)

    def begin_request(self, method: str, params: dict[str, Any], timeout: float) -> asyncio.Future[Any]:
        """Send a request now; its future fails with RequestTimeout after `timeout` seconds.

        A bare future with one timer, not a task: a 1,000-host fan-out starts a thousand of these,
        and wait_for + shield per request was a tenth of its server CPU. Cancelling the future (or
        its timing out) tells the peer to cancel.
        """
        self._check_open()
        channel = self._session.request(method, params, max(1, int(timeout * 1000)))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[channel] = fut
        timer = loop.call_later(timeout, self._expire, channel, method, timeout)
        fut.add_done_callback(lambda f: self._settled(channel, f, timer))
        self._kick()
        return fut

    def _expire(self, channel: int, method: str, timeout: float) -> None:
        fut = self._pending.get(channel)
        if fut is not None and not fut.done():
            fut.set_exception(RequestTimeout(f"{method} got no answer within {timeout:g}s"))

    def _settled(self, channel: int, fut: asyncio.Future[Any], timer: asyncio.TimerHandle) -> None:
        timer.cancel()
        self._pending.pop(channel, None)
        # exception() also marks the error as seen, so an unawaited fan-out future logs nothing.
        if fut.cancelled() or isinstance(fut.exception(), RequestTimeout):
            self._cancel_channel(channel)

    def open_stream(self, kind: str, params: dict[str, Any], deadline_ms: int | None = None) -> Stream:
        self._check_open()
        channel = self._session.open(kind, params, deadline_ms)
        stream = Stream(self, channel, kind, params)
        self._streams[channel] = stream
        self._kick()
        return stream

    def send_event(self, name: str, body: dict[str, Any]) -> None:
        if self.closed:
            return
        self._session.event(name, body)
        self._kick()

    def _check_open(self) -> None:
        if self.closed or self._session.failed:
            raise LinkClosed(self.close_code, self.close_reason)

    # --- used by Stream ------------------------------------------------------------------------
    def _send_data(self, channel: int, data: bytes) -> int:
        self._check_open()
        sent = self._session.send(channel, data)
        if sent:
            self._kick()
        return sent

    def _consumed(self, channel: int, n: int) -> None:
        if channel in self._streams and not self.closed:
            self._session.consumed(channel, n)
            self._kick()

    def _eof(self, channel: int) -> None:
        if not self.closed:
            self._session.eof(channel)
            self._kick()

    def _close_channel(self, channel: int, error: ErrorBody | None) -> None:
        self._streams.pop(channel, None)
        if not self.closed:
            with contextlib.suppress(Exception):
                self._session.close(channel, error)
            self._kick()

    def _cancel_channel(self, channel: int) -> None:
        self._streams.pop(channel, None)
        if not self.closed:
            with contextlib.suppress(Exception):
                self._session.cancel(channel)
            self._kick()

    # --- incoming ------------------------------------------------------------------------------
    def _dispatch(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            stream = self._streams.get(event.channel)
            if stream:
                stream._on_data(event.data)
        elif isinstance(event, ResponseReceived):
            fut = self._pending.get(event.channel)
            if fut and not fut.done():
                if event.error is not None:
                    fut.set_exception(RemoteError(event.error.code, event.error.message))
                else:
                    fut.set_result(event.result)
        elif isinstance(event, WindowOpened):
            stream = self._streams.get(event.channel)
            if stream:
                stream._on_window()
        elif isinstance(event, EofReceived):
            stream = self._streams.get(event.channel)
            if stream:
                stream._on_eof()
        elif isinstance(event, ChannelClosed):
            stream = self._streams.pop(event.channel, None)
            if stream:
                stream._on_closed(event.error)
            fut = self._pending.get(event.channel)
            if fut and not fut.done():
                err = event.error or ErrorBody("closed", "the peer closed the request")
                fut.set_exception(RemoteError(err.code, err.message))
        elif isinstance(event, Cancelled):
            stream = self._streams.pop(event.channel, None)
            if stream:
                stream._on_closed(None)
            task = self._tasks.get(event.channel)
            if task:
                task.cancel()
        elif isinstance(event, RequestReceived):
            self._start(event.channel, self._serve_request(event))
        elif isinstance(event, StreamOpened):
            stream = Stream(self, event.channel, event.kind, event.params)
            self._streams[event.channel] = stream
            self._start(event.channel, self._serve_stream(stream, event.deadline_ms))
        elif isinstance(event, EventReceived) and self._on_event:
            try:
                self._on_event(event.name, event.body)
            except Exception:
                log.exception("event handler failed for %r", event.name)

    def _start(self, channel: int, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks[channel] = task
        task.add_done_callback(lambda _t: self._tasks.pop(channel, None))

    async def _serve_request(self, event: RequestReceived) -> None:
        if self._on_request is None:
            self._respond(event.channel, error=ErrorBody("unsupported", "this end serves no requests"))
            return
        try:
            async with self._handler_slots:
                result = await asyncio.wait_for(
                    self._on_request(event.method, event.params), event.deadline_ms / 1000
                )
        except asyncio.TimeoutError:
            self._respond(event.channel, error=ErrorBody("deadline", f"{event.method} ran past its deadline"))
        except RemoteError as exc:
            self._respond(event.channel, error=ErrorBody(exc.code, exc.message))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("request %r failed", event.method)
            self._respond(event.channel, error=ErrorBody("internal", f"{type(exc).__name__}: {exc}"))
        else:
            self._respond(event.channel, result=result)

    def _respond(self, channel: int, result: Any = None, error: ErrorBody | None = None) -> None:
        if self.closed:
            return
        with contextlib.suppress(Exception):
            self._session.respond(channel, result=result, error=error)
            self._kick()

    async def _serve_stream(self, stream: Stream, deadline_ms: int | None) -> None:
        if self._on_stream is None:
            stream.close(ErrorBody("unsupported", "this end serves no streams"))
            return
        try:
            async with self._handler_slots:
                if deadline_ms:
                    await asyncio.wait_for(self._on_stream(stream), deadline_ms / 1000)
                else:
                    await self._on_stream(stream)
        except asyncio.TimeoutError:
            stream.close(ErrorBody("deadline", f"{stream.kind} ran past its deadline"))
        except RemoteError as exc:
            stream.close(ErrorBody(exc.code, exc.message))
        except asyncio.CancelledError:
            raise
        except LinkClosed:
            pass
        except Exception as exc:
            log.exception("stream %s failed", stream.kind)
            stream.close(ErrorBody("internal", f"{type(exc).__name__}: {exc}"))
        else:
            stream.close()

    # --- the writer ----------------------------------------------------------------------------
    def _kick(self) -> None:
        self._wake_writer.set()
        # One compare per queued frame: requests, events and responses we produce are bounded too.
        if self._session.control_buffered > self._max_output:
            self._overflow()

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake_writer.wait()
                self._wake_writer.clear()
                # One timer per wake-up, not per frame; it re-arms itself while frames go out.
                self._send_watch = loop.call_later(self.send_timeout, self._check_progress, self._sent)
                try:
                    while True:
                        frames = self._session.data_to_send(WRITE_SLICE)
                        if not frames:
                            break
                        for frame in frames:
                            await self._socket.send(frame)
                            self._sent += 1
                        if self._session.control_buffered <= self._low_water:
                            self._drained.set()
                finally:
                    self._send_watch.cancel()
                self._drained.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("link writer stopped: %s", exc)
            await self.close(CloseCode.GOING_AWAY, "write failed")

    def _check_progress(self, seen: int) -> None:
        if self._sent != seen:
            loop = asyncio.get_running_loop()
            self._send_watch = loop.call_later(self.send_timeout, self._check_progress, self._sent)
            return
        if not self._closing:
            log.warning("link peer read nothing for %gs: closing the link", self.send_timeout)
            self._spawn_close(CloseCode.POLICY_VIOLATION, f"peer read nothing for {self.send_timeout:g}s")

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while self.idle_timeout:
            idle = loop.time() - self.last_received
            if idle >= self.idle_timeout:
                await self.close(CloseCode.HEARTBEAT_TIMEOUT, "peer silent past its heartbeat deadline")
                return
            # Re-check at least every second: the timeout can shrink once hello tells us the interval.
            await asyncio.sleep(min(self.idle_timeout - idle, 1.0))
