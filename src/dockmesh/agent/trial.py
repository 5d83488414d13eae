"""The upgrade trial as a checked state machine over files in the state dir (stdlib only: the supervisor
imports it).

    (none) ─stage→ staged ─start→ trying ─pass→ passed ─commit→ (none)
                                    │ └─resume (after a kill, before the deadline)→ trying
                                    └─fail→ failed ─roll back→ (none)

Every step is one atomic file write, so a SIGKILL between any two steps leaves a record that `settle()`
finishes on the next start. `build.json` changes only at commit: until then the previous build stays the
one to run, and it is never deleted before a commit.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from dockmesh.pki.files import write_atomic

__all__ = ["IllegalTrialStep", "Trial", "TrialFiles", "TrialState"]

DEFAULT_BOUND = 60.0


class TrialState(enum.Enum):
    STAGED = "staged"
    TRYING = "trying"
    PASSED = "passed"
    FAILED = "failed"


# None is "no attempt in progress".
_ALLOWED: dict[Optional[TrialState], frozenset[Optional[TrialState]]] = {
    None: frozenset({TrialState.STAGED}),
    TrialState.STAGED: frozenset({TrialState.TRYING, TrialState.FAILED}),
    TrialState.TRYING: frozenset({TrialState.TRYING, TrialState.PASSED, TrialState.FAILED}),
    TrialState.PASSED: frozenset({None}),
    TrialState.FAILED: frozenset({None}),
}


class IllegalTrialStep(RuntimeError):
    pass


class Trial:
    """One attempt, never changed in place (`but` makes a copy).

    A plain class, not a dataclass: `dataclasses` costs the resident supervisor ~3 MB RSS (`inspect`).
    """

    __slots__ = ("deadline", "error", "from_build", "state", "to_build", "version")

    def __init__(
        self,
        state: TrialState,
        from_build: Optional[str],  # relative to the state dir; None = the installed build
        to_build: str,
        version: str,
        deadline: float = 0.0,
        error: str = "",
    ) -> None:
        self.state = state
        self.from_build = from_build
        self.to_build = to_build
        self.version = version
        self.deadline = deadline
        self.error = error

    def but(self, **changes: Any) -> Trial:
        """A copy with some fields changed."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Trial(**fields)

    def to_json(self) -> dict[str, Any]:
        doc = {name: getattr(self, name) for name in self.__slots__}
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Trial:
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        return cls(
            TrialState(doc["state"]),
            doc.get("from_build"),
            str(doc["to_build"]),
            str(doc["version"]),
            float(doc.get("deadline") or 0.0),
            str(doc.get("error") or ""),
        )


class TrialFiles:
    """`build.json`, `trial.json` and `upgrade.json` in the state dir, moved only by legal steps."""

    def __init__(
        self, state_dir: Path, clock: Callable[[], float] = time.time, bound: float = DEFAULT_BOUND
    ) -> None:
        self.dir = state_dir
        self.builds = state_dir / "builds"
        self.build_file = state_dir / "build.json"
        self.trial_file = state_dir / "trial.json"
        self.outcome_file = state_dir / "upgrade.json"
        self._clock = clock
        self.bound = bound

    # --- reads ---------------------------------------------------------------------------------
    def trial(self) -> Optional[Trial]:
        doc = _read(self.trial_file)
        if doc is None:
            return None
        try:
            return Trial.from_json(doc)
        except (KeyError, ValueError, TypeError):
            # A record we cannot read cannot be finished: keep running the committed build.
            self.trial_file.unlink(missing_ok=True)
            return None

    def current(self) -> Optional[str]:
        """The committed build (relative path), or None for the installed one (also when it is gone)."""
        doc = _read(self.build_file)
        build = doc.get("current") if isinstance(doc, dict) else None
        if isinstance(build, str) and (self.dir / build).is_file():
            return build
        return None

    def outcome(self) -> Optional[dict[str, Any]]:
        doc = _read(self.outcome_file)
        return doc if isinstance(doc, dict) else None

    # --- steps ---------------------------------------------------------------------------------
    def _move(self, new: Optional[Trial]) -> None:
        old = self.trial()
        old_state = old.state if old else None
        new_state = new.state if new else None
        if new_state not in _ALLOWED[old_state]:
            raise IllegalTrialStep(f"{old_state and old_state.value} → {new_state and new_state.value}")
        if new is None:
            self.trial_file.unlink(missing_ok=True)
        else:
            write_atomic(self.trial_file, json.dumps(new.to_json()).encode(), 0o600)

    def stage(self, to_build: str, version: str) -> Trial:
        """The new build is on disk (renamed into builds/): record the attempt before restarting."""
        trial = Trial(TrialState.STAGED, self.current(), to_build, version)
        self._move(trial)
        return trial

    def start(self, trial: Trial) -> Trial:
        """Start the trial, or resume one a kill interrupted (its deadline does not move)."""
        deadline = trial.deadline if trial.state is TrialState.TRYING else self._clock() + self.bound
        started = trial.but(state=TrialState.TRYING, deadline=deadline)
        self._move(started)
        return started

    def pass_(self, build: str) -> bool:
        """Called by the build on trial once healthy; False when it is not the build on trial."""
        trial = self.trial()
        if trial is None or trial.state is not TrialState.TRYING or trial.to_build != build:
            return False
        self._move(trial.but(state=TrialState.PASSED))
        return True

    def fail(self, error: str) -> None:
        trial = self.trial()
        if trial is None:
            raise IllegalTrialStep("no trial to fail")
        self._move(trial.but(state=TrialState.FAILED, error=error))

    def commit(self) -> None:
        trial = self.trial()
        if trial is None or trial.state is not TrialState.PASSED:
            raise IllegalTrialStep("commit needs a passed trial")
        # The pointer first: a kill after it leaves `passed`, and committing again is harmless.
        write_atomic(self.build_file, json.dumps({"current": trial.to_build}).encode(), 0o600)
        self._report(trial.version, "committed", "")
        self._move(None)
        self._prune(keep={trial.to_build, trial.from_build})

    def roll_back(self) -> None:
        trial = self.trial()
        if trial is None or trial.state is not TrialState.FAILED:
            raise IllegalTrialStep("roll back needs a failed trial")
        self._report(trial.version, "rolled_back", trial.error)
        self._move(None)
        self._prune(keep={self.current()})

    def refused(self, version: str, error: str) -> None:
        """An offer this build would not apply (bad signature, hash…): reported, nothing else changes."""
        self._report(version, "refused", error)

    # --- the supervisor's entry -----------------------------------------------------------------
    def settle(self) -> Optional[Trial]:
        """Finish whatever a previous run left, and return the trial to run now (state trying), if any."""
        for part in self.builds.glob("*.part") if self.builds.is_dir() else ():
            part.unlink(missing_ok=True)  # an interrupted download
        trial = self.trial()
        if trial is None:
            return None
        if trial.state is TrialState.PASSED:
            self.commit()
            return None
        if trial.state is TrialState.TRYING and self._clock() >= trial.deadline:
            self.fail(
                f"{trial.version} did not come online and pass its health check within {self.bound:.0f}s"
            )
            trial = self.trial()
        if (
            trial is not None
            and trial.state is TrialState.STAGED
            and not (self.dir / trial.to_build).is_file()
        ):
            self.fail(f"the staged build {trial.to_build} is missing")
            trial = self.trial()
        if trial is not None and trial.state is TrialState.FAILED:
            self.roll_back()
            return None
        assert trial is not None
        return self.start(trial)

    def missed(self, trial: Trial) -> str:
        return f"{trial.version} did not come online and pass its health check within {self.bound:.0f}s"

    def _report(self, version: str, outcome: str, error: str) -> None:
        doc = {"to": version, "outcome": outcome, "error": error[:500], "at": self._clock()}
        write_atomic(self.outcome_file, json.dumps(doc).encode(), 0o600)

    def _prune(self, keep: set[Optional[str]]) -> None:
        if not self.builds.is_dir():
            return
        for path in self.builds.iterdir():
            if f"builds/{path.name}" not in keep:
                path.unlink(missing_ok=True)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bound_from_env() -> float:
    try:
        return float(os.environ.get("DOCKMESH_UPGRADE_TRIAL_S", "") or DEFAULT_BOUND)
    except ValueError:
        return DEFAULT_BOUND
