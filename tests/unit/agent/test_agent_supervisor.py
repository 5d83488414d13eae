"""The supervisor, with small scripts for builds: restart into a staged build, commit, roll back."""

from __future__ import annotations

import sys
from pathlib import Path

from dockmesh.agent.supervisor import RESTART, Supervisor
from dockmesh.agent.trial import TrialFiles

# The installed build: stages v2 and asks for a restart the first time, then exits 0 (a clean stop).
INSTALLED = f"""
import os, sys
from pathlib import Path
from dockmesh.agent.trial import TrialFiles
state = Path(sys.argv[1])
f = TrialFiles(state)
log = state / "ran.log"
log.open("a").write("installed\\n")
if f.outcome() is None:
    f.builds.mkdir(exist_ok=True)
    src = state / "v2-src"
    (f.builds / "v2").write_bytes(src.read_bytes())
    os.chmod(f.builds / "v2", 0o755)
    f.stage("builds/v2", "0.2.0")
    sys.exit({RESTART})
sys.exit(0)
"""

GOOD = f"""#!{sys.executable}
import os
from pathlib import Path
from dockmesh.agent.trial import TrialFiles
state = Path(os.environ["STATE"])
(state / "ran.log").open("a").write("v2\\n")
assert os.environ["DOCKMESH_TRIAL"] == "1"
assert TrialFiles(state).pass_(os.environ["DOCKMESH_BUILD"])
"""

CRASH = '#!/bin/sh\necho v2 >> "$STATE/ran.log"\nexit 3\n'
HANG = f"#!{sys.executable}\nimport time\nwhile True: time.sleep(1)\n"


def supervisor(tmp_path: Path, build: str, bound: float = 30.0) -> Supervisor:
    (tmp_path / "v2-src").write_text(build)
    script = tmp_path / "installed.py"
    script.write_text(INSTALLED)
    # The child arguments come after "child"; the stand-in reads the state dir from argv[1].
    sup = Supervisor(tmp_path, installed=[sys.executable, str(script), str(tmp_path)], bound=bound)
    sup.args = []
    return sup


def run(sup: Supervisor, monkeypatch: object, tmp_path: Path) -> int:
    monkeypatch.setenv("STATE", str(tmp_path))  # type: ignore[attr-defined]
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[3] / "src"))  # type: ignore[attr-defined]
    return sup.run()


def ran(tmp_path: Path) -> list[str]:
    return (tmp_path / "ran.log").read_text().split()


def test_restart_into_a_good_build_commits(tmp_path: Path, monkeypatch: object) -> None:
    sup = supervisor(tmp_path, GOOD)
    assert run(sup, monkeypatch, tmp_path) == 0
    f = TrialFiles(tmp_path)
    assert f.current() == "builds/v2"
    assert f.trial() is None
    assert f.outcome()["outcome"] == "committed"  # type: ignore[index]
    assert ran(tmp_path) == ["installed", "v2"]


def test_a_crashing_build_is_rolled_back(tmp_path: Path, monkeypatch: object) -> None:
    sup = supervisor(tmp_path, CRASH)
    assert run(sup, monkeypatch, tmp_path) == 0
    f = TrialFiles(tmp_path)
    assert f.current() is None
    assert f.trial() is None
    outcome = f.outcome()
    assert outcome is not None
    assert outcome["outcome"] == "rolled_back"
    assert "exited with code 3" in outcome["error"]
    assert ran(tmp_path) == ["installed", "v2", "installed"]  # back on the installed build


def test_a_build_that_never_passes_is_killed_at_the_deadline(tmp_path: Path, monkeypatch: object) -> None:
    sup = supervisor(tmp_path, HANG, bound=1.0)
    assert run(sup, monkeypatch, tmp_path) == 0
    outcome = TrialFiles(tmp_path).outcome()
    assert outcome is not None
    assert outcome["outcome"] == "rolled_back"
    assert "within 1s" in outcome["error"]
    assert ran(tmp_path) == ["installed", "installed"]
