"""The agent's lifecycle as a checked state machine: an illegal transition is a bug and raises."""

from __future__ import annotations

import enum
from collections.abc import Callable


class Phase(enum.Enum):
    STARTING = "starting"
    ENROLLING = "enrolling"
    CONNECTING = "connecting"
    ONLINE = "online"
    BACKOFF = "backoff"
    FATAL = "fatal"
    STOPPED = "stopped"


_ALLOWED: dict[Phase, frozenset[Phase]] = {
    Phase.STARTING: frozenset({Phase.ENROLLING, Phase.CONNECTING, Phase.FATAL}),
    Phase.ENROLLING: frozenset({Phase.CONNECTING, Phase.FATAL, Phase.BACKOFF}),
    Phase.CONNECTING: frozenset({Phase.ONLINE, Phase.BACKOFF, Phase.FATAL}),
    Phase.ONLINE: frozenset({Phase.BACKOFF, Phase.FATAL}),
    Phase.BACKOFF: frozenset({Phase.CONNECTING, Phase.ENROLLING, Phase.FATAL}),
    Phase.FATAL: frozenset(),
    Phase.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


class Lifecycle:
    def __init__(self, on_change: Callable[[Phase, Phase], None] | None = None) -> None:
        self.phase = Phase.STARTING
        self._on_change = on_change

    def to(self, phase: Phase) -> None:
        if phase is not Phase.STOPPED and phase not in _ALLOWED[self.phase]:
            raise IllegalTransition(f"{self.phase.value} → {phase.value}")
        previous, self.phase = self.phase, phase
        if self._on_change:
            self._on_change(previous, phase)
