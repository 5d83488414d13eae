"""Sans-I/O state machine for one multiplexed agent link."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from . import frames
from .codes import TOO_MANY_CHANNELS, CloseCode, FrameType
from .errors import ChannelError, ErrorBody, ProtocolError
from .events import Cancelled, DataReceived, EofReceived, Event, WindowOpened
from .frames import HEADER_SIZE, MAX_WINDOW, Frame
from .outbox import Outbox


class Role(enum.Enum):
    """Which end of the WebSocket we are; decides channel id parity."""

    DIALER = "dialer"
    ACCEPTOR = "acceptor"


@dataclass(frozen=True)
class Limits:
    """Per-link limits; both ends must use the same values."""

    max_frame: int = 1 << 20  # whole message incl. header
    max_channels: int = 1024  # live channels opened by the PEER
    initial_window: int = 256 * 1024  # credit each side grants per channel at open
    # DATA is cut smaller than max_frame so control frames can slip in between slices.
    max_chunk: int = 64 * 1024
    # Local only (the peer need not agree): bytes of queued control frames (replies, requests,
    # WINDOW, CLOSE...). Above the high-water mark the driver stops reading until the writer has
    # drained below the low-water mark; past max_output it closes the link with 1008. Without
    # them 9.6 MB of OPEN frames from one peer queued 16.5 MB of replies to a peer not reading.
    output_high_water: int = 1 << 20
    output_low_water: int = 256 * 1024
    max_output: int = 8 << 20

    def __post_init__(self) -> None:
        if self.max_frame <= HEADER_SIZE:
            raise ValueError("max_frame must exceed the 5-byte header")
        if self.max_channels < 1:
            raise ValueError("max_channels must be positive")
        if not 1 <= self.initial_window <= MAX_WINDOW:
            raise ValueError("initial_window must be in 1..2**31-1")
        if self.max_chunk < 1:
            raise ValueError("max_chunk must be positive")
        if not 0 <= self.output_low_water <= self.output_high_water <= self.max_output:
            raise ValueError("need 0 <= output_low_water <= output_high_water <= max_output")


class _Kind(enum.Enum):
    REQUEST = "request"
    STREAM = "stream"


@dataclass
class _Channel:
    id: int
    kind: _Kind
    mine: bool  # we sent the OPEN/REQUEST
    send_credit: int = 0  # bytes we may still send
    recv_credit: int = 0  # bytes the peer may still send
    unconsumed: int = 0  # received, not yet reported by consumed()
    ungranted: int = 0  # consumed, not yet returned in a WINDOW
    sent_eof: bool = False
    recv_eof: bool = False


class Session:
    """Protocol state for one link: feed it messages, drain frames, act on events."""

    def __init__(self, role: Role, limits: Limits = Limits()) -> None:
        self.role = role
        self.limits = limits
        self._channels: dict[int, _Channel] = {}
        self._peer_live = 0
        self._first_id = 1 if role is Role.DIALER else 2
        self._next_id = self._first_id
        self._peer_parity = 0 if role is Role.DIALER else 1
        self._outbox = Outbox()
        self._error: ProtocolError | None = None
        self._window_batch = max(1, limits.initial_window // 2)
        self._chunk = min(limits.max_chunk, limits.max_frame - HEADER_SIZE)
        self._handlers: dict[FrameType, Callable[[Frame], list[Event]]] = {
            FrameType.OPEN: self._on_open,
            FrameType.DATA: self._on_data,
            FrameType.WINDOW: self._on_window,
            FrameType.EOF: self._on_eof,
            FrameType.CLOSE: self._on_close,
            FrameType.CANCEL: self._on_cancel,
            FrameType.REQUEST: self._on_request,
            FrameType.RESPONSE: self._on_response,
            FrameType.EVENT: self._on_event,
        }

    # -- inbound -------------------------------------------------------------

    def receive(self, message: bytes) -> list[Event]:
        """Process one WebSocket binary message; raises ProtocolError if the peer misbehaved."""
        self._check()
        try:
            frame = frames.decode(message, self.limits.max_frame)
            if (frame.channel == 0) != (frame.type is FrameType.EVENT):
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"{frame.type.name} on channel {frame.channel}")
            return self._handlers[frame.type](frame)
        except ProtocolError as exc:
            self._error = exc
            # Nothing may follow a protocol error except the WebSocket close.
            self._outbox.clear()
            self._channels.clear()
            self._peer_live = 0
            raise

    def _on_open(self, frame: Frame) -> list[Event]:
        event = frames.parse_open(frame)
        return [event] if self._adopt(frame.channel, _Kind.STREAM) else []

    def _on_request(self, frame: Frame) -> list[Event]:
        event = frames.parse_request(frame)
        return [event] if self._adopt(frame.channel, _Kind.REQUEST) else []

    def _on_data(self, frame: Frame) -> list[Event]:
        ch = self._channels.get(frame.channel)
        if ch is None:
            return []
        if ch.kind is _Kind.REQUEST:
            _violation("DATA on a request channel")
        if ch.recv_eof:
            _violation("DATA after EOF")
        size = len(frame.payload)
        if size > ch.recv_credit:
            _violation(f"DATA of {size} bytes exceeds credit {ch.recv_credit}")
        ch.recv_credit -= size
        ch.unconsumed += size
        return [DataReceived(ch.id, frame.payload)] if size else []

    def _on_window(self, frame: Frame) -> list[Event]:
        increment = frames.parse_window(frame)
        ch = self._channels.get(frame.channel)
        if ch is None:
            return []
        if ch.kind is _Kind.REQUEST:
            _violation("WINDOW on a request channel")
        if ch.send_credit + increment > MAX_WINDOW:
            _violation("WINDOW overflows 2**31-1")
        ch.send_credit += increment
        return [] if ch.sent_eof else [WindowOpened(ch.id)]

    def _on_eof(self, frame: Frame) -> list[Event]:
        frames.parse_empty(frame)
        ch = self._channels.get(frame.channel)
        if ch is None:
            return []
        if ch.kind is _Kind.REQUEST:
            _violation("EOF on a request channel")
        if ch.recv_eof:
            _violation("duplicate EOF")
        ch.recv_eof = True
        if ch.sent_eof:
            self._forget(ch)
        return [EofReceived(ch.id)]

    def _on_close(self, frame: Frame) -> list[Event]:
        event = frames.parse_close(frame)
        ch = self._channels.get(frame.channel)
        if ch is None:
            return []
        self._forget(ch)
        # The peer has dropped the channel; queued DATA would only be discarded there.
        self._outbox.drop(ch.id)
        return [event]

    def _on_cancel(self, frame: Frame) -> list[Event]:
        frames.parse_empty(frame)
        ch = self._channels.get(frame.channel)
        if ch is None:
            return []
        if ch.mine:
            _violation("CANCEL from the side that did not open the channel")
        self._forget(ch)
        self._outbox.drop(ch.id)
        return [Cancelled(ch.id)]

    def _on_response(self, frame: Frame) -> list[Event]:
        event = frames.parse_response(frame)
        ch = self._channels.get(frame.channel)
        if ch is None:
            return []
        if ch.kind is not _Kind.REQUEST or not ch.mine:
            _violation("RESPONSE on a channel that is not our request")
        self._forget(ch)
        return [event]

    def _on_event(self, frame: Frame) -> list[Event]:
        return [frames.parse_event(frame)]

    def _adopt(self, channel: int, kind: _Kind) -> bool:
        """Register a peer-opened channel; False if it was refused for exceeding max_channels."""
        if channel % 2 != self._peer_parity:
            _violation(f"channel {channel} has the wrong parity")
        if channel in self._channels:
            _violation(f"channel {channel} is already open")
        if self._peer_live >= self.limits.max_channels:
            # A busy peer is not a broken peer: refuse the channel, keep the link.
            error = ErrorBody(TOO_MANY_CHANNELS, f"peer limit of {self.limits.max_channels} channels")
            self._outbox.control(frames.close_frame(channel, error))
            return False
        window = self.limits.initial_window if kind is _Kind.STREAM else 0
        self._channels[channel] = _Channel(channel, kind, mine=False, send_credit=window, recv_credit=window)
        self._peer_live += 1
        return True

    # -- outbound ------------------------------------------------------------

    def data_to_send(self, max_bytes: int | None = None) -> list[bytes]:
        """Drain queued frames: all control frames, then DATA round-robin up to about max_bytes."""
        return self._outbox.drain(max_bytes)

    def request(self, method: str, params: dict[str, Any], deadline_ms: int) -> int:
        """Send a request; returns its channel id."""
        self._check()
        _check_deadline(deadline_ms)
        channel = self._allocate()
        self._control(frames.request_frame(channel, method, params, deadline_ms))
        self._channels[channel] = _Channel(channel, _Kind.REQUEST, mine=True)
        return channel

    def respond(self, channel: int, result: Any = None, error: ErrorBody | None = None) -> None:
        """Answer a request received from the peer; a no-op if the peer already cancelled it."""
        self._check()
        ch = self._channels.get(channel)
        if ch is None:
            return
        if ch.kind is not _Kind.REQUEST or ch.mine:
            raise ChannelError(f"channel {channel} is not a request from the peer")
        if error is not None and result is not None:
            raise ChannelError("respond() takes a result or an error, not both")
        self._control(frames.response_frame(channel, result, error))
        self._forget(ch)

    def open(self, kind: str, params: dict[str, Any], deadline_ms: int | None = None) -> int:
        """Open a stream channel; returns its id. Data may be sent right away."""
        self._check()
        if deadline_ms is not None:
            _check_deadline(deadline_ms)
        channel = self._allocate()
        self._control(frames.open_frame(channel, kind, params, deadline_ms))
        window = self.limits.initial_window
        self._channels[channel] = _Channel(
            channel, _Kind.STREAM, mine=True, send_credit=window, recv_credit=window
        )
        return channel

    def send(self, channel: int, data: bytes) -> int:
        """Queue as much of data as credit allows; returns the number of bytes accepted."""
        self._check()
        ch = self._stream(channel)
        if ch.sent_eof:
            raise ChannelError(f"send after EOF on channel {channel}")
        accepted = min(len(data), ch.send_credit)
        view = memoryview(data)
        for start in range(0, accepted, self._chunk):
            chunk = bytes(view[start : min(start + self._chunk, accepted)])
            self._outbox.data(channel, frames.encode(FrameType.DATA, channel, chunk))
        ch.send_credit -= accepted
        return accepted

    def credit(self, channel: int) -> int:
        """Bytes we may still send on the stream channel."""
        self._check()
        ch = self._stream(channel)
        return 0 if ch.sent_eof else ch.send_credit

    def eof(self, channel: int) -> None:
        """Half-close: we send no more DATA; queued DATA still goes out first."""
        self._check()
        ch = self._stream(channel)
        if ch.sent_eof:
            raise ChannelError(f"EOF already sent on channel {channel}")
        ch.sent_eof = True
        self._outbox.after_data(channel, frames.encode(FrameType.EOF, channel))
        if ch.recv_eof:
            self._forget(ch)

    def close(self, channel: int, error: ErrorBody | None = None) -> None:
        """Close (or reject) a channel after its queued DATA; a no-op if it is already gone."""
        self._check()
        ch = self._channels.get(channel)
        if ch is None:
            return
        frame = frames.close_frame(channel, error)
        self._check_size(frame)
        self._outbox.after_data(channel, frame)
        self._forget(ch)

    def cancel(self, channel: int) -> None:
        """Abandon a request or stream we started, discarding its queued DATA; no-op if gone."""
        self._check()
        ch = self._channels.get(channel)
        if ch is None:
            return
        if not ch.mine:
            raise ChannelError(f"channel {channel} was opened by the peer; close it instead")
        self._outbox.drop(channel)
        self._control(frames.encode(FrameType.CANCEL, channel))
        self._forget(ch)

    def consumed(self, channel: int, n: int) -> None:
        """Report n received bytes as processed, returning credit to the peer in batches."""
        self._check()
        ch = self._channels.get(channel)
        if ch is None:
            return
        if ch.kind is _Kind.REQUEST:
            raise ChannelError(f"channel {channel} is a request channel")
        if not 0 <= n <= ch.unconsumed:
            raise ChannelError(f"consumed({n}) but only {ch.unconsumed} bytes are outstanding")
        ch.unconsumed -= n
        if ch.recv_eof:
            return  # the peer sends nothing more; credit would be wasted
        ch.ungranted += n
        # Batching: one WINDOW per half window instead of one per read.
        if ch.ungranted >= self._window_batch:
            self._control(frames.window_frame(channel, ch.ungranted))
            ch.recv_credit += ch.ungranted
            ch.ungranted = 0

    def event(self, name: str, body: dict[str, Any]) -> None:
        """Send a connection-level event on channel 0."""
        self._check()
        self._control(frames.event_frame(name, body))

    def open_channels(self) -> int:
        """Number of live channels, opened by either side."""
        return len(self._channels)

    @property
    def control_buffered(self) -> int:
        """Bytes of control frames queued and not yet drained by data_to_send()."""
        return self._outbox.control_bytes

    def queued(self, channel: int) -> int:
        """Bytes of DATA (and trailing EOF/CLOSE) still queued for the channel."""
        return self._outbox.queued(channel)

    @property
    def failed(self) -> bool:
        """True once a ProtocolError was raised; the link must be closed."""
        return self._error is not None

    @property
    def error(self) -> ProtocolError | None:
        """The ProtocolError that failed the session, if any."""
        return self._error

    # -- helpers -------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise ProtocolError(self._error.code, self._error.reason)

    def _check_size(self, frame: bytes) -> None:
        # The peer would fail the whole link with MESSAGE_TOO_BIG; refuse locally instead.
        if len(frame) > self.limits.max_frame:
            raise ChannelError(f"frame of {len(frame)} bytes exceeds max_frame {self.limits.max_frame}")

    def _control(self, frame: bytes) -> None:
        self._check_size(frame)
        self._outbox.control(frame)

    def _stream(self, channel: int) -> _Channel:
        ch = self._channels.get(channel)
        if ch is None:
            raise ChannelError(f"channel {channel} is not open")
        if ch.kind is not _Kind.STREAM:
            raise ChannelError(f"channel {channel} is a request channel")
        return ch

    def _allocate(self) -> int:
        # Ids wrap after 2**31 channels; skipping live ids guarantees a hit within len+1 tries.
        for _ in range(len(self._channels) + 1):
            channel = self._next_id
            self._next_id = channel + 2 if channel + 2 <= frames.MAX_CHANNEL else self._first_id
            if channel not in self._channels:
                return channel
        raise ChannelError("no free channel id")  # pragma: no cover - unreachable by pigeonhole

    def _forget(self, ch: _Channel) -> None:
        del self._channels[ch.id]
        if not ch.mine:
            self._peer_live -= 1


def _violation(reason: str) -> NoReturn:
    raise ProtocolError(CloseCode.PROTOCOL_ERROR, reason)


def _check_deadline(deadline_ms: int) -> None:
    if deadline_ms < 0:
        raise ChannelError("deadline_ms must not be negative")
