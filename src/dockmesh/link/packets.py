"""Length-prefixed packets over a byte stream, for streams that carry messages (exec control, stats)."""

from __future__ import annotations

import enum
import json
import struct
from typing import Any

from dockmesh.link.errors import LinkError
from dockmesh.link.stream import Stream

_HEADER = struct.Struct(">BI")
MAX_PACKET = 1 << 20


class Kind(enum.IntEnum):
    DATA = 0  # raw bytes (terminal input/output)
    JSON = 1  # a control or data message as JSON


class PacketError(LinkError):
    """The peer sent a malformed packet."""


class PacketStream:
    """Wraps a Stream: `send` frames a packet, `recv` returns whole packets whatever the chunking."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    async def send(self, kind: Kind, payload: bytes) -> None:
        await self.stream.write(_HEADER.pack(kind, len(payload)) + payload)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(Kind.JSON, json.dumps(message, separators=(",", ":")).encode())

    async def recv(self) -> tuple[Kind, bytes] | None:
        """The next packet, or None at a clean end of stream."""
        while True:
            if len(self._buffer) >= _HEADER.size:
                kind, size = _HEADER.unpack_from(self._buffer)
                if size > MAX_PACKET or kind not in (Kind.DATA, Kind.JSON):
                    raise PacketError("malformed packet")
                end = _HEADER.size + size
                if len(self._buffer) >= end:
                    payload = bytes(self._buffer[_HEADER.size : end])
                    del self._buffer[:end]
                    return Kind(kind), payload
            chunk = await self.stream.read()
            if chunk is None:
                if self._buffer:
                    raise PacketError("stream ended inside a packet")
                return None
            self._buffer += chunk


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        raise PacketError("packet is not JSON") from None
    if not isinstance(value, dict):
        raise PacketError("packet is not a JSON object")
    return value
