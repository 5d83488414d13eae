"""One read shared by every caller that asked for it before it started.

During a reconnect storm 1,000 handshakes each want the agents' version counter within a second. Each read
is a few hops to aiosqlite's thread (or a PostgreSQL round trip) and every hop waits for a turn of an event
loop busy with TLS handshakes: 1,000 separate reads, queued on a pool of a few connections, kept the first
agent from coming back for 18 s. Shared, they cost a few reads a second.

Sharing never returns a stale value: a caller joins only a read that has not been sent yet, so whatever
committed before the caller asked (a revocation, by this or another server replica) is in what it gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedRead(Generic[T]):
    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._waiting: asyncio.Future[T] | None = None  # the next read, not sent yet
        self._reading: set[asyncio.Future[T]] = set()  # the loop keeps only weak references to tasks

    async def get(self) -> T:
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._start, waiting)
        # Shielded: one caller giving up (its link closed) must not cancel the read for the others.
        return await asyncio.shield(waiting)

    def _start(self, waiting: asyncio.Future[T]) -> None:
        # From here on, later callers start the next read: this one may already miss their moment.
        self._waiting = None
        task = asyncio.ensure_future(self._read())
        self._reading.add(task)

        def done(task: asyncio.Future[T]) -> None:
            self._reading.discard(task)
            if waiting.cancelled():
                return
            if task.cancelled():
                waiting.cancel()
            elif (exc := task.exception()) is not None:
                waiting.set_exception(exc)
            else:
                waiting.set_result(task.result())

        task.add_done_callback(done)
