"""The deploy journal: atomic, bounded, and a job interrupted by a crash reads back as failed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from dockmesh.agent.journal import KEEP, Journal


def result(i: int, state: str = "done") -> dict[str, object]:
    return {"type": "result", "deploy_id": f"d{i}", "state": state, "error": None, "services": []}


def test_records_persist_and_are_private(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    Journal(path).record(result(1))
    assert Journal(path).get("d1") == result(1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["j.json"]  # no temp file left behind


def test_keeps_the_last_256(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.json")
    for i in range(KEEP + 10):
        journal.record(result(i))
    again = Journal(tmp_path / "j.json")
    assert again.get("d9") is None
    assert again.get("d10") == result(10)
    assert len(json.loads((tmp_path / "j.json").read_text())) == KEEP


def test_a_running_job_after_a_restart_is_failed(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    Journal(path).record(result(1, "running"))
    entry = Journal(path).get("d1")
    assert entry is not None
    assert entry["state"] == "failed"
    assert entry["error"]["code"] == "interrupted"  # type: ignore[index]
    assert json.loads(path.read_text())[0]["state"] == "failed"


def test_a_corrupt_journal_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text("{not json")
    journal = Journal(path)
    assert journal.get("d1") is None
    journal.record(result(1))
    assert Journal(path).get("d1") == result(1)


def test_memory_only(tmp_path: Path) -> None:
    journal = Journal(None)
    journal.record(result(1))
    assert journal.get("d1") == result(1)
    assert list(tmp_path.iterdir()) == []
