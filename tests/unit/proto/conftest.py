"""Fixtures wiring two proto Sessions back to back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dockmesh.proto import Event, Limits, Role, Session


class Pair:
    """A dialer and an acceptor connected by an in-memory pump."""

    def __init__(self, limits: Limits) -> None:
        self.dialer = Session(Role.DIALER, limits)
        self.acceptor = Session(Role.ACCEPTOR, limits)

    @staticmethod
    def move(src: Session, dst: Session, max_bytes: int | None = None) -> list[Event]:
        """Deliver whatever src has queued to dst; return dst's events."""
        events: list[Event] = []
        for message in src.data_to_send(max_bytes):
            events.extend(dst.receive(message))
        return events

    def to_acceptor(self) -> list[Event]:
        """Deliver dialer -> acceptor."""
        return self.move(self.dialer, self.acceptor)

    def to_dialer(self) -> list[Event]:
        """Deliver acceptor -> dialer."""
        return self.move(self.acceptor, self.dialer)


@pytest.fixture
def make_pair() -> Callable[..., Pair]:
    """Factory for a Pair with custom Limits."""

    def make(**limits: int) -> Pair:
        return Pair(Limits(**limits))

    return make


@pytest.fixture
def pair() -> Pair:
    """A Pair with default Limits."""
    return Pair(Limits())
