"""The session counts queued control bytes, so a driver can bound them without walking the queue."""

from __future__ import annotations

import pytest

from dockmesh.proto import Limits, ProtocolError, Role, Session


def test_control_bytes_are_counted_until_drained() -> None:
    session = Session(Role.ACCEPTOR)
    assert session.control_buffered == 0
    session.event("heartbeat", {"pad": "x" * 100})
    channel = session.request("ping", {}, 1000)
    queued = session.control_buffered
    assert queued > 100
    frames = session.data_to_send()
    assert sum(map(len, frames)) == queued
    assert session.control_buffered == 0
    session.cancel(channel)
    assert session.control_buffered == 5  # the CANCEL header


def test_data_is_not_counted_it_is_bounded_by_credit() -> None:
    session = Session(Role.DIALER)
    channel = session.open("logs", {})
    session.data_to_send()
    session.send(channel, b"x" * 100_000)
    assert session.control_buffered == 0
    session.close(channel)  # queued behind the DATA, in the channel's lane
    assert session.control_buffered == 0


def test_a_protocol_error_forgets_what_was_queued() -> None:
    session = Session(Role.ACCEPTOR)
    session.event("heartbeat", {})
    with pytest.raises(ProtocolError):
        session.receive(b"\x63garbage")
    assert session.control_buffered == 0


def test_output_limits_must_be_ordered() -> None:
    Limits(output_low_water=0, output_high_water=0, max_output=0)
    for bad in (
        {"output_low_water": 2, "output_high_water": 1},
        {"output_high_water": 10 << 20, "max_output": 1 << 20},
        {"output_low_water": -1},
    ):
        with pytest.raises(ValueError, match="output"):
            Limits(**bad)  # type: ignore[arg-type]
