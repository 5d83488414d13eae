"""The agent lifecycle state machine."""

from __future__ import annotations

import pytest

from dockmesh.agent.lifecycle import IllegalTransition, Lifecycle, Phase


def test_starts_in_starting() -> None:
    assert Lifecycle().phase is Phase.STARTING


def test_legal_path_and_callback() -> None:
    seen: list[tuple[Phase, Phase]] = []
    life = Lifecycle(lambda prev, new: seen.append((prev, new)))
    path = [Phase.ENROLLING, Phase.CONNECTING, Phase.ONLINE, Phase.BACKOFF, Phase.CONNECTING, Phase.ONLINE]
    for phase in path:
        life.to(phase)
        assert life.phase is phase
    assert seen == [
        (Phase.STARTING, Phase.ENROLLING),
        (Phase.ENROLLING, Phase.CONNECTING),
        (Phase.CONNECTING, Phase.ONLINE),
        (Phase.ONLINE, Phase.BACKOFF),
        (Phase.BACKOFF, Phase.CONNECTING),
        (Phase.CONNECTING, Phase.ONLINE),
    ]


def test_already_enrolled_agent_goes_straight_to_connecting() -> None:
    life = Lifecycle()
    life.to(Phase.CONNECTING)
    assert life.phase is Phase.CONNECTING


def test_enrolment_can_back_off_and_retry() -> None:
    life = Lifecycle()
    for phase in (Phase.ENROLLING, Phase.BACKOFF, Phase.ENROLLING, Phase.CONNECTING):
        life.to(phase)
    assert life.phase is Phase.CONNECTING


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], Phase.ONLINE),
        ([], Phase.BACKOFF),
        ([], Phase.STARTING),
        ([Phase.ENROLLING], Phase.ONLINE),
        ([Phase.ENROLLING], Phase.ENROLLING),
        ([Phase.CONNECTING], Phase.ENROLLING),
        ([Phase.CONNECTING, Phase.ONLINE], Phase.CONNECTING),
        ([Phase.CONNECTING, Phase.ONLINE], Phase.ONLINE),
        ([Phase.CONNECTING, Phase.ONLINE], Phase.ENROLLING),
        ([Phase.CONNECTING, Phase.BACKOFF], Phase.ONLINE),
    ],
)
def test_illegal_transition_raises_and_keeps_the_phase(path: list[Phase], illegal: Phase) -> None:
    seen: list[tuple[Phase, Phase]] = []
    life = Lifecycle(lambda prev, new: seen.append((prev, new)))
    for phase in path:
        life.to(phase)
    before = life.phase
    calls = len(seen)
    with pytest.raises(IllegalTransition, match=f"{before.value} → {illegal.value}"):
        life.to(illegal)
    assert life.phase is before
    assert len(seen) == calls  # no callback for a refused transition


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.STOPPED])
def test_fatal_is_terminal(phase: Phase) -> None:
    life = Lifecycle()
    life.to(Phase.FATAL)
    with pytest.raises(IllegalTransition):
        life.to(phase)
    assert life.phase is Phase.FATAL


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.STOPPED])
def test_stopped_is_terminal(phase: Phase) -> None:
    life = Lifecycle()
    life.to(Phase.STOPPED)
    with pytest.raises(IllegalTransition):
        life.to(phase)


@pytest.mark.parametrize("start", [Phase.ENROLLING, Phase.CONNECTING])
def test_stop_is_allowed_from_anywhere(start: Phase) -> None:
    seen: list[tuple[Phase, Phase]] = []
    life = Lifecycle(lambda prev, new: seen.append((prev, new)))
    life.to(start)
    life.to(Phase.STOPPED)
    assert life.phase is Phase.STOPPED
    assert seen[-1] == (start, Phase.STOPPED)


@pytest.mark.parametrize("phase", [Phase.ENROLLING, Phase.CONNECTING, Phase.BACKOFF, Phase.ONLINE])
def test_fatal_reachable_from_every_live_phase(phase: Phase) -> None:
    life = Lifecycle()
    route = {
        Phase.ENROLLING: [Phase.ENROLLING],
        Phase.CONNECTING: [Phase.CONNECTING],
        Phase.BACKOFF: [Phase.CONNECTING, Phase.BACKOFF],
        Phase.ONLINE: [Phase.CONNECTING, Phase.ONLINE],
    }[phase]
    for step in route:
        life.to(step)
    life.to(Phase.FATAL)
    assert life.phase is Phase.FATAL


def test_illegal_transition_is_a_runtime_error() -> None:
    assert issubclass(IllegalTransition, RuntimeError)
