"""Events returned by Session.receive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from .errors import ErrorBody


@dataclass(frozen=True)
class RequestReceived:
    """The peer sent a request; answer it with Session.respond."""

    channel: int
    method: str
    params: dict[str, Any]
    deadline_ms: int


@dataclass(frozen=True)
class ResponseReceived:
    """The answer to one of our requests; the channel is gone."""

    channel: int
    result: Any
    error: ErrorBody | None


@dataclass(frozen=True)
class StreamOpened:
    """The peer opened a stream channel."""

    channel: int
    kind: str
    params: dict[str, Any]
    deadline_ms: int | None


@dataclass(frozen=True)
class DataReceived:
    """Stream bytes; report them to Session.consumed once processed."""

    channel: int
    data: bytes


@dataclass(frozen=True)
class WindowOpened:
    """The peer granted more credit; retry any unsent data."""

    channel: int


@dataclass(frozen=True)
class EofReceived:
    """The peer will send no more data on the channel."""

    channel: int


@dataclass(frozen=True)
class ChannelClosed:
    """The peer closed (or rejected) the channel; it is gone."""

    channel: int
    error: ErrorBody | None


@dataclass(frozen=True)
class Cancelled:
    """The peer abandoned a request or stream it started; it is gone."""

    channel: int


@dataclass(frozen=True)
class EventReceived:
    """A connection-level event (heartbeat, metrics, ...)."""

    name: str
    body: dict[str, Any]


# typing.Union rather than "|" so the alias still evaluates on Python 3.9.
Event = Union[
    RequestReceived,
    ResponseReceived,
    StreamOpened,
    DataReceived,
    WindowOpened,
    EofReceived,
    ChannelClosed,
    Cancelled,
    EventReceived,
]
