"""Outgoing frame queues: control first, then DATA round-robin across channels."""

from __future__ import annotations

from collections import OrderedDict, deque

from .codes import FrameType


class Outbox:
    """A control queue plus one FIFO lane per channel for DATA and what must follow it."""

    def __init__(self) -> None:
        self._control: deque[bytes] = deque()
        # Insertion order is the round-robin order; a served lane moves to the back.
        self._lanes: OrderedDict[int, deque[bytes]] = OrderedDict()
        # Bytes waiting in the control queue, kept as a running sum (one add per frame) so the
        # driver can bound it without walking the queue. DATA is not counted: it is bounded by
        # the credit the peer granted, and control replies are what a peer can make us queue.
        self.control_bytes = 0

    def control(self, frame: bytes) -> None:
        """Queue a frame that may overtake any DATA."""
        self._control.append(frame)
        self.control_bytes += len(frame)

    def data(self, channel: int, frame: bytes) -> None:
        """Queue a DATA frame behind the channel's earlier DATA."""
        self._lanes.setdefault(channel, deque()).append(frame)

    def after_data(self, channel: int, frame: bytes) -> None:
        """Queue EOF/CLOSE so it cannot overtake the channel's queued DATA."""
        lane = self._lanes.get(channel)
        if lane:
            lane.append(frame)
        else:
            # Nothing to wait for: send it with the control frames so a byte budget never holds it back.
            self.control(frame)

    def drop(self, channel: int) -> None:
        """Discard the channel's queued DATA (it was cancelled or closed by the peer)."""
        self._lanes.pop(channel, None)

    def queued(self, channel: int) -> int:
        """Bytes of frames waiting in the channel's lane."""
        return sum(len(frame) for frame in self._lanes.get(channel, ()))

    def clear(self) -> None:
        """Forget everything."""
        self._control.clear()
        self.control_bytes = 0
        self._lanes.clear()

    def drain(self, max_bytes: int | None = None) -> list[bytes]:
        """Return all control frames, then DATA round-robin until about max_bytes were taken."""
        out = list(self._control)
        self._control.clear()
        self.control_bytes = 0
        taken = 0
        while self._lanes and (max_bytes is None or taken < max_bytes):
            channel, lane = next(iter(self._lanes.items()))
            frame = lane.popleft()
            out.append(frame)
            taken += len(frame)
            # Trailing EOF/CLOSE are tiny: ship them now rather than a whole rotation later.
            while lane and lane[0][0] != FrameType.DATA:
                out.append(lane.popleft())
            if lane:
                self._lanes.move_to_end(channel)
            else:
                del self._lanes[channel]
        return out
