"""Exception tree and the wire error body."""

from __future__ import annotations

from dataclasses import dataclass

from .codes import CloseCode

# WebSocket close frames carry at most 123 bytes of reason; keep a margin.
_MAX_REASON = 120


@dataclass(frozen=True)
class ErrorBody:
    """Error carried by RESPONSE and CLOSE frames."""

    code: str
    message: str


class ProtoError(Exception):
    """Base of every exception raised by dockmesh.proto."""


class ProtocolError(ProtoError):
    """The peer broke the protocol; close the WebSocket with ``code`` and ``reason``."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        reason = reason.encode()[:_MAX_REASON].decode(errors="ignore")
        # Both go to args so the exception survives pickling/copying intact.
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code.name}: {self.reason}"


class ChannelError(ProtoError):
    """Local misuse of the session API; always a bug in the caller."""
