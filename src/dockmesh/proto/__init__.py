"""Sans-I/O multiplexing protocol spoken between server and agents over one WebSocket."""

from .codes import FATAL_CODES, PROTOCOL_VERSION, TOO_MANY_CHANNELS, CloseCode, FrameType
from .errors import ChannelError, ErrorBody, ProtocolError, ProtoError
from .events import (
    Cancelled,
    ChannelClosed,
    DataReceived,
    EofReceived,
    Event,
    EventReceived,
    RequestReceived,
    ResponseReceived,
    StreamOpened,
    WindowOpened,
)
from .session import Limits, Role, Session

__all__ = [
    "FATAL_CODES",
    "PROTOCOL_VERSION",
    "TOO_MANY_CHANNELS",
    "Cancelled",
    "ChannelClosed",
    "ChannelError",
    "CloseCode",
    "DataReceived",
    "EofReceived",
    "ErrorBody",
    "Event",
    "EventReceived",
    "FrameType",
    "Limits",
    "ProtoError",
    "ProtocolError",
    "RequestReceived",
    "ResponseReceived",
    "Role",
    "Session",
    "StreamOpened",
    "WindowOpened",
]
