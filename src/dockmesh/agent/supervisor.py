"""`dockmesh-agent run`: a small stdlib-only supervisor that runs the selected build as its child and
drives the upgrade trial (agent/trial.py) — start it, commit it when the child passes, roll back when the
child crashes or misses the deadline.

It stays small on purpose: it is resident on every host (the footprint budget) and must never need an
upgrade itself to roll one back.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from dockmesh.agent.trial import Trial, TrialFiles, TrialState, bound_from_env


def say(message: str, *args: object) -> None:
    """One line on stderr (the agent's log). Not `logging`: ~2.5 MB RSS for the resident supervisor."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} dockmesh.supervisor: {message % args}\n")
    sys.stderr.flush()


RESTART = 75  # the child's exit code for "a build is staged: restart me into it"
POLL = 0.25
_PR_SET_PDEATHSIG = 1


def installed_command() -> list[str]:
    """How to start the installed build: the pex we run from (pex sets PEX), else this interpreter."""
    pex = os.environ.get("PEX")
    if pex and Path(pex).is_file():
        return [pex]
    return [sys.executable, "-m", "dockmesh.cli.agent"]


def _die_with_parent() -> None:
    # A killed supervisor must not leave its child running next to the next supervisor's child.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Supervisor:
    def __init__(
        self,
        state_dir: Path,
        installed: Optional[list[str]] = None,
        clock: Callable[[], float] = time.time,
        bound: Optional[float] = None,
        args: Optional[list[str]] = None,
    ) -> None:
        self.files = TrialFiles(state_dir, clock, bound if bound is not None else bound_from_env())
        self.installed = installed or installed_command()
        self._clock = clock
        self.args = list(args or [])
        self._child: Optional[subprocess.Popen[bytes]] = None
        self._stopping = False

    def command(self, build: Optional[str]) -> list[str]:
        if build is None:
            return [*self.installed, "child", *self.args]
        return [str(self.files.dir / build), "child", *self.args]

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signum)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        while not self._stopping:
            trial = self.files.settle()
            build = trial.to_build if trial else self.files.current()
            code = self._run_child(build, trial)
            if code is None:
                continue  # the trial failed: settle() rolls it back and starts the previous build
            if code == RESTART and not self._stopping:
                continue
            return 0 if self._stopping else code
        return 0

    def _run_child(self, build: Optional[str], trial: Optional[Trial]) -> Optional[int]:
        env = dict(os.environ, DOCKMESH_BUILD=build or "")
        if trial is not None:
            env["DOCKMESH_TRIAL"] = "1"
            say("starting %s on trial (deadline in %.0fs)", trial.version, trial.deadline - self._clock())
        else:
            env.pop("DOCKMESH_TRIAL", None)
        self._child = child = subprocess.Popen(self.command(build), env=env, preexec_fn=_die_with_parent)
        while True:
            try:
                code: Optional[int] = child.wait(timeout=POLL)
            except subprocess.TimeoutExpired:
                code = None
            if trial is not None and not self._stopping:
                trial = self._watch_trial(child, trial, code)
                if trial is not None and trial.state is TrialState.FAILED:
                    return None
            if code is not None:
                return code

    def _watch_trial(
        self, child: subprocess.Popen[bytes], trial: Trial, code: Optional[int]
    ) -> Optional[Trial]:
        """The trial after one look: None once committed; state FAILED when it must be rolled back."""
        current = self.files.trial()
        if current is not None and current.state is TrialState.PASSED:
            self.files.commit()
            say("upgrade to %s committed", trial.version)
            return None
        if code is not None:
            error = f"{trial.version} exited with code {code} during its trial"
        elif self._clock() >= trial.deadline:
            error = self.files.missed(trial)
            child.kill()
            child.wait()
        else:
            return trial
        say("upgrade to %s failed, rolling back: %s", trial.version, error)
        self.files.fail(error)
        return self.files.trial()


def main(state_dir: Path, args: list[str]) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    return Supervisor(state_dir, args=args).run()
