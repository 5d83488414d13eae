"""An in-process message socket pair: the server's own engine rides the same link code as remote agents."""

from __future__ import annotations

import asyncio

from dockmesh.proto import CloseCode


class MemorySocket:
    """One end of a pair; messages are handed over by reference, with no copy and no TLS."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.peer: MemorySocket | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    async def send(self, message: bytes) -> None:
        if self.close_code is not None or self.peer is None:
            raise ConnectionResetError("memory socket closed")
        self.peer._inbox.put_nowait(message)

    async def recv(self) -> bytes | None:
        if self.close_code is not None and self._inbox.empty():
            return None
        return await self._inbox.get()

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._inbox.put_nowait(None)
        peer = self.peer
        if peer is not None and peer.close_code is None:
            peer.close_code, peer.close_reason = code, reason
            peer._inbox.put_nowait(None)

    def abort(self) -> None:
        for end in (self, self.peer):
            if end is not None and end.close_code is None:
                end.close_code = CloseCode.GOING_AWAY
                end._inbox.put_nowait(None)


def socket_pair() -> tuple[MemorySocket, MemorySocket]:
    a, b = MemorySocket(), MemorySocket()
    a.peer, b.peer = b, a
    return a, b
