"""`dockmesh audit verify` on a database, with the server stopped: OK with the count, or the broken row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.unit.store.legacy import legacy_database

from dockmesh.cli.main import main


def test_verify_counts_then_names_the_edited_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy_database(tmp_path / "dockmesh.db")  # one audit row from before the chain
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 1 audit row, the chain is intact; head ")
    assert len(out.split()[-1]) == 64
    db = sqlite3.connect(tmp_path / "dockmesh.db")
    try:
        (first,) = db.execute("SELECT id FROM audit ORDER BY seq LIMIT 1").fetchone()
        db.execute("UPDATE audit SET target = 'elsewhere' WHERE id = ?", (first,))
        db.commit()
    finally:
        db.close()
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"BROKEN at row {first} (2023-11-14T22:13:22Z, position 1): edited: ")


def test_verify_without_a_database_or_before_the_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "dockmesh.db").exists()  # verifying creates nothing
    legacy_database(tmp_path / "dockmesh.db")
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 1
    assert "run `dockmesh db upgrade` first" in capsys.readouterr().err


def test_ls_needs_a_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(["audit", "ls", "--outcome", "denied"]) == 1
    assert "login" in capsys.readouterr().err
