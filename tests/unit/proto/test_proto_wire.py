"""Frame decoding, validation errors and the failed state."""

from __future__ import annotations

import json
import struct

import pytest

from dockmesh.proto import (
    FATAL_CODES,
    ChannelError,
    CloseCode,
    EventReceived,
    FrameType,
    Limits,
    ProtocolError,
    ProtoError,
    Role,
    Session,
    StreamOpened,
)


def frame(type_: int, channel: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BI", type_, channel) + payload


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


def acceptor(**limits: int) -> Session:
    return Session(Role.ACCEPTOR, Limits(**limits))


def expect_error(session: Session, message: bytes, code: CloseCode = CloseCode.PROTOCOL_ERROR) -> None:
    with pytest.raises(ProtocolError) as info:
        session.receive(message)
    assert info.value.code is code
    assert session.failed


def test_codes() -> None:
    assert CloseCode.UNAUTHORIZED in FATAL_CODES
    assert len(FATAL_CODES) == 1
    assert int(CloseCode.HEARTBEAT_TIMEOUT) == 4408
    assert int(CloseCode.REPLACED) == 4409
    assert [int(t) for t in FrameType] == list(range(1, 10))


def test_exception_tree() -> None:
    assert issubclass(ProtocolError, ProtoError)
    assert issubclass(ChannelError, ProtoError)
    error = ProtocolError(CloseCode.PROTOCOL_ERROR, "é" * 200)
    assert len(error.reason.encode()) <= 120
    error.reason.encode().decode()  # not cut inside a code point
    assert error.code is CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("message", [b"", b"\x01", b"\x02\x00\x00\x00"])
def test_truncated_header(message: bytes) -> None:
    expect_error(acceptor(), message)


@pytest.mark.parametrize("type_", [0, 10, 255])
def test_unknown_type(type_: int) -> None:
    expect_error(acceptor(), frame(type_, 1))


def test_oversize_message() -> None:
    session = acceptor(max_frame=1000)
    session.receive(frame(FrameType.EVENT, 0, js({"name": "x", "body": {"pad": "a" * 900}})))
    expect_error(session, frame(FrameType.DATA, 1, b"x" * 996), CloseCode.MESSAGE_TOO_BIG)


@pytest.mark.parametrize(
    "message",
    [
        frame(FrameType.REQUEST, 1, b"{not json"),
        frame(FrameType.REQUEST, 1, b"\xff\xfe"),
        frame(FrameType.REQUEST, 1, js([1, 2])),
        frame(FrameType.REQUEST, 1, js({"method": "x", "params": {}})),
        frame(FrameType.REQUEST, 1, js({"method": 1, "params": {}, "deadline_ms": 5})),
        frame(FrameType.REQUEST, 1, js({"method": "x", "params": [], "deadline_ms": 5})),
        frame(FrameType.REQUEST, 1, js({"method": "x", "params": {}, "deadline_ms": True})),
        frame(FrameType.REQUEST, 1, js({"method": "x", "params": {}, "deadline_ms": -1})),
        frame(FrameType.REQUEST, 1, b'{"method":"x","params":{"a":NaN},"deadline_ms":1}'),
        frame(FrameType.REQUEST, 1, b"[" * 100_000 + b"]" * 100_000),
        frame(FrameType.OPEN, 1, js({"kind": "logs", "params": {}, "deadline_ms": "soon"})),
        frame(FrameType.OPEN, 1, js({"params": {}})),
        frame(FrameType.EVENT, 0, js({"name": "heartbeat"})),
        frame(FrameType.EVENT, 0, js({"name": "heartbeat", "body": "x"})),
        frame(FrameType.RESPONSE, 2, js({})),
        frame(FrameType.RESPONSE, 2, js({"result": 1, "error": {"code": "x", "message": "y"}})),
        frame(FrameType.RESPONSE, 2, js({"error": "boom"})),
        frame(FrameType.RESPONSE, 2, js({"error": {"code": "x"}})),
        frame(FrameType.CLOSE, 2, js({"reason": "x"})),
        frame(FrameType.WINDOW, 2, b"\x00\x00\x01"),
        frame(FrameType.WINDOW, 2, struct.pack(">I", 0)),
        frame(FrameType.WINDOW, 2, struct.pack(">I", 2**31)),
        frame(FrameType.EOF, 2, b"x"),
        frame(FrameType.CANCEL, 2, b"x"),
    ],
    # Short ids: pytest exports the test id in PYTEST_CURRENT_TEST, and a 200 KB one breaks every
    # subprocess started while the test runs (E2BIG).
    ids=lambda message: f"type{message[0] if message else 0}-{len(message)}b",
)
def test_malformed_payloads(message: bytes) -> None:
    # Shape is checked even for channels that are unknown: it never depends on a race.
    expect_error(acceptor(), message)


def test_wrong_parity() -> None:
    # The acceptor's peer is the dialer, which must use odd ids.
    expect_error(acceptor(), frame(FrameType.REQUEST, 2, js({"method": "x", "params": {}, "deadline_ms": 1})))
    dialer = Session(Role.DIALER)
    expect_error(dialer, frame(FrameType.OPEN, 3, js({"kind": "x", "params": {}, "deadline_ms": None})))


def test_reused_live_id() -> None:
    session = acceptor()
    session.receive(frame(FrameType.OPEN, 1, js({"kind": "x", "params": {}, "deadline_ms": None})))
    expect_error(session, frame(FrameType.REQUEST, 1, js({"method": "x", "params": {}, "deadline_ms": 1})))


def test_closed_id_may_be_reused() -> None:
    session = acceptor()
    session.receive(frame(FrameType.OPEN, 1, js({"kind": "x", "params": {}, "deadline_ms": None})))
    session.receive(frame(FrameType.CLOSE, 1))
    [event] = session.receive(frame(FrameType.OPEN, 1, js({"kind": "y", "params": {}, "deadline_ms": 1})))
    assert event == StreamOpened(1, "y", {}, 1)


def test_event_on_nonzero_channel() -> None:
    expect_error(acceptor(), frame(FrameType.EVENT, 1, js({"name": "x", "body": {}})))


@pytest.mark.parametrize(
    "message",
    [
        frame(FrameType.DATA, 0, b"x"),
        frame(FrameType.OPEN, 0, js({"kind": "x", "params": {}, "deadline_ms": None})),
        frame(FrameType.CLOSE, 0),
    ],
)
def test_channel_zero_is_for_events_only(message: bytes) -> None:
    session = Session(Role.DIALER)
    expect_error(session, message)


def test_failed_session_stays_failed() -> None:
    session = acceptor()
    session.request("ping", {}, 1000)
    expect_error(session, b"\x01")
    assert session.data_to_send() == []
    assert session.open_channels() == 0
    with pytest.raises(ProtocolError) as info:
        session.receive(frame(FrameType.EVENT, 0, js({"name": "x", "body": {}})))
    assert info.value.code is CloseCode.PROTOCOL_ERROR
    assert session.error is not None
    for call in (
        lambda: session.request("ping", {}, 1000),
        lambda: session.open("logs", {}),
        lambda: session.event("heartbeat", {}),
        lambda: session.send(2, b"x"),
        lambda: session.close(2),
    ):
        with pytest.raises(ProtocolError):
            call()


def test_valid_minimal_frames_accepted() -> None:
    session = acceptor()
    # Unknown keys are tolerated so the payloads can grow compatibly.
    [event] = session.receive(frame(FrameType.EVENT, 0, js({"name": "hb", "body": {}, "extra": 1})))
    assert event == EventReceived("hb", {})
    # Frames for channels we never saw are dropped, not errors.
    assert session.receive(frame(FrameType.DATA, 7, b"late")) == []
    assert session.receive(frame(FrameType.RESPONSE, 4, js({"result": None}))) == []
    assert session.receive(frame(FrameType.WINDOW, 4, struct.pack(">I", 10))) == []
    assert session.receive(frame(FrameType.CLOSE, 9)) == []
    assert not session.failed


def test_limits_validation() -> None:
    with pytest.raises(ValueError, match="max_frame"):
        Limits(max_frame=5)
    with pytest.raises(ValueError, match="initial_window"):
        Limits(initial_window=2**31)
