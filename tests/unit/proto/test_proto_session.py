"""Requests, streams, cancellation and channel bookkeeping between two Sessions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from dockmesh.proto import (
    TOO_MANY_CHANNELS,
    Cancelled,
    ChannelClosed,
    ChannelError,
    DataReceived,
    EofReceived,
    ErrorBody,
    EventReceived,
    FrameType,
    ProtocolError,
    RequestReceived,
    ResponseReceived,
    StreamOpened,
)

if TYPE_CHECKING:  # fixtures come from conftest.py; imported only for annotations
    from conftest import Pair


def test_request_response_round_trip(pair: Pair) -> None:
    channel = pair.dialer.request("hello", {"version": "1.0", "protocol": 1}, 5000)
    assert channel == 1
    assert pair.to_acceptor() == [RequestReceived(1, "hello", {"version": "1.0", "protocol": 1}, 5000)]
    pair.acceptor.respond(1, {"heartbeat_interval_s": 15})
    assert pair.to_dialer() == [ResponseReceived(1, {"heartbeat_interval_s": 15}, None)]
    assert pair.dialer.open_channels() == pair.acceptor.open_channels() == 0


def test_error_response(pair: Pair) -> None:
    pair.acceptor.request("exec", {}, 100)
    pair.to_dialer()
    pair.dialer.respond(2, error=ErrorBody("not_found", "no such container"))
    assert pair.to_acceptor() == [ResponseReceived(2, None, ErrorBody("not_found", "no such container"))]


def test_null_result_is_a_result(pair: Pair) -> None:
    pair.dialer.request("ping", {}, 100)
    pair.to_acceptor()
    pair.acceptor.respond(1)
    assert pair.to_dialer() == [ResponseReceived(1, None, None)]


def test_channel_ids_follow_parity(pair: Pair) -> None:
    assert [pair.dialer.request("x", {}, 1) for _ in range(3)] == [1, 3, 5]
    assert [pair.acceptor.open("x", {}) for _ in range(3)] == [2, 4, 6]


def test_events(pair: Pair) -> None:
    pair.dialer.event("heartbeat", {"metrics": {"cpu_percent": 1.5}})
    assert pair.to_acceptor() == [EventReceived("heartbeat", {"metrics": {"cpu_percent": 1.5}})]


def test_stream_both_ways(pair: Pair) -> None:
    channel = pair.acceptor.open("exec", {"cmd": ["sh"]}, deadline_ms=None)
    assert pair.acceptor.send(channel, b"ls\n") == 3
    assert pair.to_dialer() == [
        StreamOpened(channel, "exec", {"cmd": ["sh"]}, None),
        DataReceived(channel, b"ls\n"),
    ]
    pair.dialer.send(channel, b"file\n")
    pair.dialer.eof(channel)
    assert pair.to_acceptor() == [DataReceived(channel, b"file\n"), EofReceived(channel)]
    # Half-closed: the other direction still works.
    pair.acceptor.send(channel, b"more")
    assert pair.to_dialer() == [DataReceived(channel, b"more")]
    assert pair.dialer.open_channels() == 1
    pair.acceptor.eof(channel)
    assert pair.acceptor.open_channels() == 0  # both EOFs seen
    assert pair.to_dialer() == [EofReceived(channel)]
    assert pair.dialer.open_channels() == 0


def test_close_with_error_rejects_open(pair: Pair) -> None:
    channel = pair.dialer.open("bogus", {}, deadline_ms=2000)
    [opened] = pair.to_acceptor()
    assert opened == StreamOpened(channel, "bogus", {}, 2000)
    pair.acceptor.close(channel, ErrorBody("unknown_kind", "bogus"))
    assert pair.to_dialer() == [ChannelClosed(channel, ErrorBody("unknown_kind", "bogus"))]
    assert pair.dialer.open_channels() == pair.acceptor.open_channels() == 0


def test_close_is_idempotent(pair: Pair) -> None:
    channel = pair.dialer.open("logs", {})
    pair.to_acceptor()
    pair.acceptor.close(channel)
    pair.dialer.close(channel)  # crossing closes: both sides drop the other's
    assert pair.to_dialer() == []
    assert pair.to_acceptor() == []
    pair.dialer.close(channel)


def test_cancel_request(pair: Pair) -> None:
    channel = pair.dialer.request("slow", {}, 10)
    pair.to_acceptor()
    pair.dialer.cancel(channel)
    assert pair.to_acceptor() == [Cancelled(channel)]
    # The responder finishing after the cancel is a normal race.
    pair.acceptor.respond(channel, "too late")
    assert pair.acceptor.data_to_send() == []


def test_late_response_after_cancel_is_dropped(pair: Pair) -> None:
    channel = pair.dialer.request("slow", {}, 10)
    pair.to_acceptor()
    pair.acceptor.respond(channel, "done")  # crosses the CANCEL on the wire
    pair.dialer.cancel(channel)
    assert pair.to_dialer() == []
    assert pair.to_acceptor() == []
    assert not pair.dialer.failed
    assert not pair.acceptor.failed


def test_cancel_stream_drops_late_data(pair: Pair) -> None:
    channel = pair.dialer.open("logs", {"follow": True})
    pair.dialer.send(channel, b"queued but abandoned")
    pair.to_acceptor()
    pair.acceptor.send(channel, b"log line")
    pair.dialer.cancel(channel)
    assert pair.to_dialer() == []  # DATA for a cancelled channel: dropped
    assert pair.to_acceptor() == [Cancelled(channel)]
    assert pair.acceptor.open_channels() == 0


def test_cancel_discards_queued_data(pair: Pair) -> None:
    channel = pair.dialer.open("logs", {})
    pair.dialer.send(channel, b"x" * 1000)
    pair.dialer.cancel(channel)
    # OPEN then CANCEL; the DATA never leaves.
    assert [type(e) for e in pair.to_acceptor()] == [StreamOpened, Cancelled]


def test_too_many_channels(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(max_channels=2)
    for _ in range(3):
        pair.dialer.open("logs", {})
    assert [type(e) for e in pair.to_acceptor()] == [StreamOpened, StreamOpened]
    assert pair.to_dialer() == [ChannelClosed(5, ErrorBody(TOO_MANY_CHANNELS, "peer limit of 2 channels"))]
    # The link is fine: requests still work, and a freed slot can be reused.
    pair.acceptor.close(1)
    pair.to_dialer()
    request = pair.dialer.request("ping", {}, 10)
    assert pair.to_acceptor() == [RequestReceived(request, "ping", {}, 10)]
    assert not pair.acceptor.failed
    assert not pair.dialer.failed


def test_own_channels_do_not_count_against_peer_limit(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(max_channels=1)
    pair.dialer.open("logs", {})
    pair.acceptor.open("exec", {})
    assert [type(e) for e in pair.to_dialer()] == [StreamOpened]
    assert [type(e) for e in pair.to_acceptor()] == [StreamOpened]
    assert pair.dialer.open_channels() == pair.acceptor.open_channels() == 2


def test_local_misuse_raises_channel_error(pair: Pair) -> None:
    with pytest.raises(ChannelError):
        pair.dialer.send(99, b"x")
    request = pair.dialer.request("ping", {}, 10)
    with pytest.raises(ChannelError):
        pair.dialer.send(request, b"x")
    with pytest.raises(ChannelError):
        pair.dialer.respond(request, "own request")
    stream = pair.dialer.open("logs", {})
    with pytest.raises(ChannelError):
        pair.dialer.respond(stream, 1)
    pair.dialer.eof(stream)
    with pytest.raises(ChannelError):
        pair.dialer.send(stream, b"x")
    with pytest.raises(ChannelError):
        pair.dialer.eof(stream)
    assert pair.dialer.credit(stream) == 0
    pair.to_acceptor()
    with pytest.raises(ChannelError):
        pair.acceptor.cancel(stream)  # only the opener cancels
    with pytest.raises(ChannelError):
        pair.acceptor.consumed(stream, 1)  # more than was received
    with pytest.raises(ChannelError):
        pair.dialer.request("x", {"bad": object()}, 10)
    with pytest.raises(ChannelError):
        pair.dialer.request("x", {}, -1)


def test_oversize_control_frame_refused_locally(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(max_frame=200)
    channel = pair.dialer.request("list", {}, 10)
    pair.to_acceptor()
    with pytest.raises(ChannelError):
        pair.acceptor.respond(channel, "x" * 500)
    # The request is still answerable, e.g. with an error.
    pair.acceptor.respond(channel, error=ErrorBody("too_big", "result exceeds max_frame"))
    [response] = pair.to_dialer()
    assert response == ResponseReceived(channel, None, ErrorBody("too_big", "result exceeds max_frame"))


def test_response_to_a_live_non_request_is_a_violation(pair: Pair) -> None:
    # An unknown id is a benign race; a live stream id getting a RESPONSE is a broken peer.
    channel = pair.dialer.open("logs", {})
    pair.to_acceptor()
    pair.acceptor.request("ping", {}, 10)
    pair.to_dialer()
    pair.dialer.respond(2, "pong")
    response = pair.dialer.data_to_send()[0]
    forged = response[:1] + channel.to_bytes(4, "big") + response[5:]
    with pytest.raises(ProtocolError, match="not our request"):
        pair.acceptor.receive(forged)


def test_cancel_from_non_opener_is_a_violation(pair: Pair) -> None:
    channel = pair.dialer.open("logs", {})
    pair.to_acceptor()
    forged = bytes([FrameType.CANCEL]) + channel.to_bytes(4, "big")
    with pytest.raises(ProtocolError, match="CANCEL"):
        pair.dialer.receive(forged)


def test_request_over_limit_is_closed_too(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(max_channels=1)
    pair.dialer.request("a", {}, 10)
    second = pair.dialer.request("b", {}, 10)
    assert [e.method for e in pair.to_acceptor() if isinstance(e, RequestReceived)] == ["a"]
    [closed] = pair.to_dialer()
    assert isinstance(closed, ChannelClosed)
    assert closed.channel == second
    assert closed.error is not None
    assert closed.error.code == TOO_MANY_CHANNELS


def test_channel_ids_wrap_around_skipping_live_ones(pair: Pair) -> None:
    first = pair.dialer.open("x", {})
    pair.dialer._next_id = 0xFFFFFFFF  # white-box: jump to the end of the id space
    assert pair.dialer.open("x", {}) == 0xFFFFFFFF
    assert pair.dialer.open("x", {}) == first + 2
