"""The upgrade trial state machine: every step, and a kill (a fresh TrialFiles on the same dir) after each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockmesh.agent.trial import IllegalTrialStep, TrialFiles, TrialState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def files(path: Path, clock: Clock) -> TrialFiles:
    """A new TrialFiles over the same dir is what a process sees after a SIGKILL: only the files."""
    return TrialFiles(path, clock, bound=60.0)


def staged(path: Path, clock: Clock, name: str = "v2.pex") -> TrialFiles:
    f = files(path, clock)
    f.builds.mkdir(exist_ok=True)
    (f.builds / name).write_bytes(b"new")
    f.stage(f"builds/{name}", "0.2.0")
    return f


def test_no_record_runs_the_installed_build(tmp_path: Path, clock: Clock) -> None:
    f = files(tmp_path, clock)
    assert f.settle() is None
    assert f.current() is None
    assert f.outcome() is None


def test_happy_path_commits_and_moves_the_pointer(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    trial = f.settle()
    assert trial is not None
    assert trial.state is TrialState.TRYING
    assert trial.deadline == 1060.0
    assert f.current() is None  # the pointer moves only at commit
    assert f.pass_("builds/v2.pex")
    f.commit()
    assert f.trial() is None
    assert f.current() == "builds/v2.pex"
    assert f.outcome() is not None
    assert f.outcome()["outcome"] == "committed"


def test_only_the_build_on_trial_can_pass(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    f.settle()
    assert not f.pass_("builds/other.pex")
    assert f.trial().state is TrialState.TRYING  # type: ignore[union-attr]


def test_kill_after_stage_starts_the_trial(tmp_path: Path, clock: Clock) -> None:
    staged(tmp_path, clock)
    trial = files(tmp_path, clock).settle()
    assert trial is not None
    assert trial.state is TrialState.TRYING


def test_kill_mid_trial_resumes_with_the_same_deadline(tmp_path: Path, clock: Clock) -> None:
    staged(tmp_path, clock).settle()
    clock.now += 30
    resumed = files(tmp_path, clock).settle()
    assert resumed is not None
    assert resumed.state is TrialState.TRYING
    assert resumed.deadline == 1060.0


def test_kill_mid_trial_past_the_deadline_rolls_back(tmp_path: Path, clock: Clock) -> None:
    staged(tmp_path, clock).settle()
    clock.now += 61
    f = files(tmp_path, clock)
    assert f.settle() is None
    assert f.current() is None
    assert f.trial() is None
    outcome = f.outcome()
    assert outcome is not None
    assert outcome["outcome"] == "rolled_back"
    assert "within 60s" in outcome["error"]
    assert not (f.builds / "v2.pex").exists()  # the failed build is pruned; the installed one remains


def test_kill_after_pass_commits_on_start(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    f.settle()
    f.pass_("builds/v2.pex")
    g = files(tmp_path, clock)
    assert g.settle() is None
    assert g.current() == "builds/v2.pex"


def test_kill_between_pointer_and_record_commits_again(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    f.settle()
    f.pass_("builds/v2.pex")
    (tmp_path / "build.json").write_text(json.dumps({"current": "builds/v2.pex"}))  # commit's first write
    g = files(tmp_path, clock)
    assert g.settle() is None
    assert g.current() == "builds/v2.pex"
    assert g.trial() is None


def test_kill_after_fail_rolls_back_on_start(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    f.settle()
    f.fail("exited with code 3")
    g = files(tmp_path, clock)
    assert g.settle() is None
    assert g.current() is None
    assert g.outcome()["error"] == "exited with code 3"  # type: ignore[index]


def test_rollback_returns_to_the_previous_committed_build(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    f.settle()
    f.pass_("builds/v2.pex")
    f.commit()
    g = staged(tmp_path, clock, "v3.pex")
    assert g.trial().from_build == "builds/v2.pex"  # type: ignore[union-attr]
    g.settle()
    g.fail("crashed")
    g.settle()
    assert g.current() == "builds/v2.pex"
    assert (g.builds / "v2.pex").exists()


def test_staged_build_missing_rolls_back(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    (f.builds / "v2.pex").unlink()
    assert f.settle() is None
    assert f.outcome()["outcome"] == "rolled_back"


def test_interrupted_download_is_removed(tmp_path: Path, clock: Clock) -> None:
    f = files(tmp_path, clock)
    f.builds.mkdir()
    (f.builds / "v2.pex.part").write_bytes(b"half")
    f.settle()
    assert not (f.builds / "v2.pex.part").exists()


def test_unreadable_record_is_dropped(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "trial.json").write_text("{not json")
    f = files(tmp_path, clock)
    assert f.settle() is None
    assert f.current() is None
    (tmp_path / "trial.json").write_text(json.dumps({"state": "bogus", "to_build": "x", "version": "1"}))
    assert f.trial() is None
    assert not (tmp_path / "trial.json").exists()


def test_pointer_to_a_missing_build_falls_back_to_the_installed_one(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "build.json").write_text(json.dumps({"current": "builds/gone.pex"}))
    assert files(tmp_path, clock).current() is None


@pytest.mark.parametrize(
    "step",
    [
        lambda f: f.commit(),  # nothing passed
        lambda f: f.roll_back(),  # nothing failed
        lambda f: f.fail("x"),  # no trial
    ],
)
def test_illegal_steps_raise(tmp_path: Path, clock: Clock, step: object) -> None:
    with pytest.raises(IllegalTrialStep):
        step(files(tmp_path, clock))  # type: ignore[operator]


def test_a_second_stage_during_a_trial_is_illegal(tmp_path: Path, clock: Clock) -> None:
    f = staged(tmp_path, clock)
    with pytest.raises(IllegalTrialStep):
        f.stage("builds/v3.pex", "0.3.0")
    f.settle()
    with pytest.raises(IllegalTrialStep):
        f.commit()  # trying, not passed
