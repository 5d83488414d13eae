"""A byte stream over one link channel, with the channel's credit window as back-pressure."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from dockmesh.link.errors import LinkClosed, RemoteError
from dockmesh.proto import ErrorBody

if TYPE_CHECKING:
    from dockmesh.link.driver import Link


class Stream:
    """Reads return None at end of stream; writes wait for credit instead of buffering without bound."""

    def __init__(self, link: Link, channel: int, kind: str, params: dict[str, Any]) -> None:
        self._link = link
        self.channel = channel
        self.kind = kind
        self.params = params
        self._chunks: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._credit = asyncio.Event()
        self._eof_received = False
        self._closed = False
        self.error: ErrorBody | None = None

    # --- called by the link on incoming frames -------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        self._chunks.append(data)
        self._readable.set()

    def _on_eof(self) -> None:
        self._eof_received = True
        self._readable.set()

    def _on_window(self) -> None:
        self._credit.set()

    def _on_closed(self, error: ErrorBody | None) -> None:
        self._closed = True
        self._eof_received = True
        if error is not None and self.error is None:
            self.error = error
        self._readable.set()
        self._credit.set()

    # --- the user's side -----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self) -> bytes | None:
        """Next chunk, or None at the end; raises RemoteError if the peer closed with an error."""
        while not self._chunks:
            if self._eof_received:
                if self.error is not None:
                    raise RemoteError(self.error.code, self.error.message)
                return None
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._link._consumed(self.channel, len(chunk))
        return chunk

    async def write(self, data: bytes) -> None:
        """Send all of data, waiting for window credit as the reader drains."""
        while data:
            if self._closed:
                raise LinkClosed(reason="stream closed")
            self._credit.clear()
            sent = self._link._send_data(self.channel, data)
            data = data[sent:]
            if data:
                await self._credit.wait()

    def eof(self) -> None:
        if not self._closed:
            self._link._eof(self.channel)

    def close(self, error: ErrorBody | None = None) -> None:
        if not self._closed:
            self._closed = True
            self._link._close_channel(self.channel, error)
            self._readable.set()
            self._credit.set()

    def cancel(self) -> None:
        if not self._closed:
            self._closed = True
            self._link._cancel_channel(self.channel)
            self._readable.set()
            self._credit.set()
