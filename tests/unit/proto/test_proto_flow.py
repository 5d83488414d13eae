"""Credit flow control and output ordering (control first, fair DATA, per-channel order)."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from dockmesh.proto import (
    ChannelClosed,
    CloseCode,
    DataReceived,
    EofReceived,
    FrameType,
    Limits,
    ProtocolError,
    RequestReceived,
    Role,
    Session,
    StreamOpened,
    WindowOpened,
)

if TYPE_CHECKING:  # fixtures come from conftest.py; imported only for annotations
    from conftest import Pair

WINDOW = Limits().initial_window


def kinds(messages: list[bytes]) -> list[tuple[FrameType, int]]:
    return [(FrameType(m[0]), int.from_bytes(m[1:5], "big")) for m in messages]


def test_sender_stops_at_window_and_resumes(pair: Pair) -> None:
    channel = pair.acceptor.open("logs", {})
    payload = bytes(range(256)) * (WINDOW // 256 + 100)
    sent = pair.acceptor.send(channel, payload)
    assert sent == WINDOW
    assert pair.acceptor.credit(channel) == 0
    assert pair.acceptor.send(channel, payload[sent:]) == 0
    received = b"".join(e.data for e in pair.to_dialer() if isinstance(e, DataReceived))
    assert received == payload[:WINDOW]

    pair.dialer.consumed(channel, WINDOW // 2 - 1)
    assert pair.dialer.data_to_send() == []  # batched: below half a window
    pair.dialer.consumed(channel, 1)
    assert pair.to_acceptor() == [WindowOpened(channel)]
    assert pair.acceptor.credit(channel) == WINDOW // 2
    sent += pair.acceptor.send(channel, payload[sent:])
    assert sent == len(payload)
    received += b"".join(e.data for e in pair.to_dialer() if isinstance(e, DataReceived))
    assert received == payload


def test_data_beyond_credit_is_a_protocol_error(pair: Pair) -> None:
    channel = pair.dialer.open("exec", {})
    pair.to_acceptor()
    pair.dialer.send(channel, b"x" * (WINDOW - 10))
    pair.to_acceptor()
    overrun = struct.pack(">BI", FrameType.DATA, channel) + b"y" * 11
    with pytest.raises(ProtocolError) as info:
        pair.acceptor.receive(overrun)
    assert info.value.code is CloseCode.PROTOCOL_ERROR
    assert pair.acceptor.failed


def test_window_overflow_is_a_protocol_error(pair: Pair) -> None:
    channel = pair.dialer.open("exec", {})
    pair.to_acceptor()
    window = struct.pack(">BI", FrameType.WINDOW, channel) + struct.pack(">I", 2**31 - WINDOW)
    with pytest.raises(ProtocolError, match="overflow"):
        pair.dialer.receive(window)


def test_no_window_after_close_or_peer_eof(pair: Pair) -> None:
    first = pair.dialer.open("logs", {})
    second = pair.dialer.open("logs", {})
    pair.to_acceptor()
    for channel in (first, second):
        pair.dialer.send(channel, b"z" * WINDOW)
    pair.dialer.eof(second)
    pair.to_acceptor()
    pair.acceptor.close(first)
    pair.acceptor.consumed(first, WINDOW)  # gone: ignored
    pair.acceptor.consumed(second, WINDOW)  # peer finished sending: nothing to grant
    assert kinds(pair.acceptor.data_to_send()) == [(FrameType.CLOSE, first)]


def test_control_frames_overtake_bulk_data(pair: Pair) -> None:
    channel = pair.acceptor.open("logs", {})
    pair.to_dialer()
    pair.acceptor.send(channel, b"b" * WINDOW)
    request = pair.acceptor.request("stats", {}, 1000)
    pair.acceptor.event("heartbeat", {})
    out = kinds(pair.acceptor.data_to_send())
    assert out[:2] == [(FrameType.REQUEST, request), (FrameType.EVENT, 0)]
    assert set(out[2:]) == {(FrameType.DATA, channel)}


def test_byte_budget_lets_new_control_jump_ahead(pair: Pair) -> None:
    channel = pair.acceptor.open("logs", {})
    pair.acceptor.send(channel, b"b" * WINDOW)
    first = pair.acceptor.data_to_send(max_bytes=1)
    assert kinds(first) == [(FrameType.OPEN, channel), (FrameType.DATA, channel)]
    request = pair.acceptor.request("stats", {}, 1000)
    second = kinds(pair.acceptor.data_to_send(max_bytes=100_000))
    assert second[0] == (FrameType.REQUEST, request)
    assert second[1:] == [(FrameType.DATA, channel)] * 2  # 64 KiB chunks: stops once >= budget
    assert pair.acceptor.data_to_send(max_bytes=0) == []
    rest = kinds(pair.acceptor.data_to_send())
    assert rest == [(FrameType.DATA, channel)]


def test_round_robin_between_channels(pair: Pair) -> None:
    bulk = pair.acceptor.open("logs", {})
    small = pair.acceptor.open("logs", {})
    pair.acceptor.send(bulk, b"B" * WINDOW)
    pair.acceptor.send(small, b"s" * 1024)
    data = [c for t, c in kinds(pair.acceptor.data_to_send()) if t is FrameType.DATA]
    assert data.index(small) <= 1  # not behind the whole bulk queue
    assert data.count(bulk) == WINDOW // Limits().max_chunk


def test_round_robin_is_fair_across_slices(pair: Pair) -> None:
    a = pair.acceptor.open("a", {})
    b = pair.acceptor.open("b", {})
    for channel in (a, b):
        pair.acceptor.send(channel, b"x" * WINDOW)
    order: list[int] = []
    while batch := pair.acceptor.data_to_send(max_bytes=1):
        order += [c for t, c in kinds(batch) if t is FrameType.DATA]
    assert order == [a, b] * 4


def test_eof_and_close_do_not_overtake_queued_data(pair: Pair) -> None:
    channel = pair.dialer.open("attach", {})
    other = pair.dialer.open("logs", {})
    pair.dialer.send(channel, b"1" * 100_000)
    pair.dialer.send(other, b"2" * 100_000)
    pair.dialer.eof(channel)
    pair.dialer.close(other)
    pair.dialer.request("ping", {}, 10)  # control queued after the EOF still goes first
    out: list[tuple[FrameType, int]] = []
    while batch := pair.dialer.data_to_send(max_bytes=1):
        out += kinds(batch)
    assert out[:3] == [(FrameType.OPEN, channel), (FrameType.OPEN, other), (FrameType.REQUEST, 5)]
    mine = [t for t, c in out if c == channel]
    theirs = [t for t, c in out if c == other]
    assert mine == [FrameType.OPEN, FrameType.DATA, FrameType.DATA, FrameType.EOF]
    assert theirs == [FrameType.OPEN, FrameType.DATA, FrameType.DATA, FrameType.CLOSE]


def test_eof_with_nothing_queued_is_not_held_by_budget(pair: Pair) -> None:
    channel = pair.dialer.open("attach", {})
    pair.dialer.eof(channel)
    assert kinds(pair.dialer.data_to_send(max_bytes=0)) == [
        (FrameType.OPEN, channel),
        (FrameType.EOF, channel),
    ]


def test_send_splits_at_max_frame(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(max_frame=105)
    channel = pair.dialer.open("x", {})
    assert pair.dialer.send(channel, bytes(250)) == 250
    out = pair.dialer.data_to_send()
    assert [len(m) for m in out[1:]] == [105, 105, 55]
    events = [pair.acceptor.receive(m) for m in out]
    assert [len(e[0].data) for e in events[1:] if isinstance(e[0], DataReceived)] == [100, 100, 50]


def test_send_splits_at_max_chunk(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(max_chunk=10)
    channel = pair.dialer.open("x", {})
    pair.dialer.send(channel, bytes(25))
    assert [len(m) - 5 for m in pair.dialer.data_to_send()[1:]] == [10, 10, 5]


def test_empty_send_queues_nothing(pair: Pair) -> None:
    channel = pair.dialer.open("x", {})
    pair.dialer.data_to_send()
    assert pair.dialer.send(channel, b"") == 0
    assert pair.dialer.data_to_send() == []


def test_random_chunks_arrive_intact_and_in_order(make_pair: Callable[..., Pair]) -> None:
    rng = random.Random(20240611)
    pair = make_pair(initial_window=4096, max_chunk=700, max_frame=1500, max_channels=8)
    sides = {"dialer": pair.dialer, "acceptor": pair.acceptor}
    peer = {"dialer": pair.acceptor, "acceptor": pair.dialer}
    streams: list[tuple[str, int, bytes]] = []
    for _ in range(6):
        opener = rng.choice(list(sides))
        channel = sides[opener].open("blob", {})
        total = rng.randrange(1, 40_000)
        streams.append((opener, channel, rng.randbytes(total)))
    offsets = {channel: 0 for _, channel, _ in streams}
    writer = {channel: opener for opener, channel, _ in streams}
    received = {channel: bytearray() for _, channel, _ in streams}
    unconsumed = {channel: 0 for _, channel, _ in streams}
    eof_seen: set[int] = set()
    windows = 0

    def deliver(src: str, budget: int | None = -1) -> None:
        if budget == -1:
            budget = rng.choice([None, 0, 1, 500, 3000])
        for message in sides[src].data_to_send(budget):
            for event in peer[src].receive(message):
                if isinstance(event, DataReceived):
                    received[event.channel] += event.data
                    unconsumed[event.channel] += len(event.data)
                elif isinstance(event, EofReceived):
                    if writer[event.channel] == src:  # else it is the reader's own EOF coming back
                        eof_seen.add(event.channel)
                        peer[src].eof(event.channel)  # reader finishes too, so the channel goes away
                elif isinstance(event, WindowOpened):
                    nonlocal windows
                    windows += 1
                else:
                    assert isinstance(event, StreamOpened)

    for _ in range(100_000):
        if len(eof_seen) == len(streams):
            break
        for opener, channel, blob in streams:
            if offsets[channel] < len(blob):
                size = rng.randrange(1, 5000)
                chunk = blob[offsets[channel] : offsets[channel] + size]
                offsets[channel] += sides[opener].send(channel, chunk)
                if offsets[channel] == len(blob):
                    sides[opener].eof(channel)
            reader = peer[opener]
            if unconsumed[channel] and channel not in eof_seen:
                n = rng.randrange(0, unconsumed[channel] + 1)
                reader.consumed(channel, n)
                unconsumed[channel] -= n
        deliver(rng.choice(list(sides)))
    else:
        pytest.fail("transfer stalled")
    for _ in range(2):  # flush with no byte budget so the final EOFs surely go out
        for side in sides:
            deliver(side, None)
    for _, channel, blob in streams:
        assert bytes(received[channel]) == blob
    assert windows > 5  # the windows really were the bottleneck
    assert pair.dialer.open_channels() == pair.acceptor.open_channels() == 0


def test_many_channels_interleave_without_loss() -> None:
    dialer = Session(Role.DIALER, Limits(initial_window=1000, max_chunk=100))
    acceptor = Session(Role.ACCEPTOR, Limits(initial_window=1000, max_chunk=100))
    channels = [dialer.open("c", {"i": i}) for i in range(20)]
    for i, channel in enumerate(channels):
        dialer.send(channel, bytes([i]) * 1000)
        dialer.close(channel)
    got: dict[int, bytes] = {c: b"" for c in channels}
    closed = []
    for message in dialer.data_to_send():
        for event in acceptor.receive(message):
            if isinstance(event, DataReceived):
                got[event.channel] += event.data
            elif isinstance(event, ChannelClosed):
                closed.append(event.channel)
            else:
                assert isinstance(event, (StreamOpened, RequestReceived))
    assert sorted(closed) == channels
    assert all(got[c] == bytes([i]) * 1000 for i, c in enumerate(channels))
