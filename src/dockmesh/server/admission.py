"""Admission control for the agents' port: a bounded number of TLS handshakes at a time.

A restarted server hears its whole fleet at once. asyncio accepts every queued connection and starts every
handshake together; each then advances one step per turn of the loop, so none completes until nearly all
have, hellos time out behind handshakes, and the agents' retries add handshakes faster than they finish
(measured at 10,000 agents: the server 60 % in handshakes, 9,000 "hello got no answer" in five minutes).
Here the server takes a connection from the kernel's backlog only when a handshake slot is free, so
handshakes complete in arrival order at the rate the CPU allows, and connected agents' heartbeats keep
their turns.

A slot is held until the handshake ends or for `budget` seconds, whichever comes first: a peer that opens
a connection and sends nothing costs no CPU, and must not hold a slot for the whole handshake timeout
(64 idle sockets would then lock every agent out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

log = logging.getLogger(__name__)

SLOTS = 64  # enough to keep the CPU busy over loopback-to-WAN round trips; more only interleaves
BUDGET_S = 1.0
HANDSHAKE_TIMEOUT_S = 10.0


class Admission:
    """Accept from `sock` and run TLS for at most `slots` connections at once; hand each to `factory`."""

    def __init__(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        context: ssl.SSLContext,
        *,
        slots: int = SLOTS,
        budget: float = BUDGET_S,
        handshake_timeout: float = HANDSHAKE_TIMEOUT_S,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._sock = sock
        self._factory = factory
        self._context = context
        self._slots = asyncio.Semaphore(slots)
        self._budget = budget
        self._handshake_timeout = handshake_timeout
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[object]] = set()
        self.admitted = 0  # holding a slot now
        self.peak = 0  # most ever holding a slot at once (tests, metrics)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        """Stop accepting and abort handshakes in progress; established connections are the caller's."""
        tasks = [t for t in (self._accepting, *self._handshakes) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._accepting = None
        self._sock.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                # Out of file descriptors, or a connection reset while queued: that one is lost, the
                # port is not. Yield before the next accept so a persistent error cannot spin the loop.
                self._slots.release()
                log.warning("agent port: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self._take()
            task = loop.create_task(self._admit(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _take(self) -> None:
        self.admitted += 1
        self.peak = max(self.peak, self.admitted)

    def _give_back(self) -> None:
        self.admitted -= 1
        self._slots.release()

    async def _admit(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        handshake = loop.create_task(
            loop.connect_accepted_socket(
                self._factory, conn, ssl=self._context, ssl_handshake_timeout=self._handshake_timeout
            )
        )
        try:
            await asyncio.wait({handshake}, timeout=self._budget)
        except asyncio.CancelledError:
            handshake.cancel()
            conn.close()
            self._give_back()
            raise
        self._give_back()  # finished, or slow: a slow peer waits without a slot
        try:
            await handshake
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            # Failed handshakes are the peer's business (a scanner, an agent that gave up); asyncio
            # has closed the transport. Debug only: a storm of them must not flood the log.
            log.debug("agent port: handshake failed: %s", exc)
            conn.close()
        except asyncio.CancelledError:
            handshake.cancel()
            conn.close()
            raise
