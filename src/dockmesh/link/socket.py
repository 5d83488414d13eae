"""The message socket a link runs over, and its aiohttp adapter."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, Union

import aiohttp

from dockmesh.proto import CloseCode

if TYPE_CHECKING:  # the agent never serves: aiohttp.web is 1.5 MiB it need not load
    from aiohttp import web


class MessageSocket(Protocol):
    """Binary messages in and out; `recv` returns None once the socket is closed."""

    close_code: int | None
    close_reason: str

    async def send(self, message: bytes) -> None: ...

    async def recv(self) -> bytes | None: ...

    async def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None:
        """Drop the connection now, without a close handshake (the peer does not read)."""


_Ws = Union["web.WebSocketResponse", aiohttp.ClientWebSocketResponse]


class AiohttpSocket:
    """Adapts either end of an aiohttp WebSocket."""

    def __init__(self, ws: _Ws, transport: asyncio.Transport | None = None) -> None:
        self._ws = ws
        self._transport = transport  # what abort() drops; None: rely on aiohttp's own close timeout
        self.close_code: int | None = None
        self.close_reason = ""

    async def send(self, message: bytes) -> None:
        await self._ws.send_bytes(message)

    async def recv(self) -> bytes | None:
        msg = await self._ws.receive()
        if msg.type == aiohttp.WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type == aiohttp.WSMsgType.TEXT:
            await self.close(CloseCode.PROTOCOL_ERROR, "text messages are not part of the protocol")
            return None
        if msg.type == aiohttp.WSMsgType.CLOSE:
            self.close_code = int(msg.data)
            self.close_reason = str(msg.extra or "")
        elif msg.type == aiohttp.WSMsgType.ERROR:
            self.close_code = self._ws.close_code or CloseCode.PROTOCOL_ERROR
            self.close_reason = str(msg.data)
        elif self.close_code is None:
            self.close_code = self._ws.close_code
        return None

    async def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        await self._ws.close(code=code, message=reason.encode()[:120])

    def abort(self) -> None:
        if self.close_code is None:
            self.close_code = CloseCode.GOING_AWAY
        if self._transport is not None:
            self._transport.abort()
