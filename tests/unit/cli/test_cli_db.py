"""`dockmesh db upgrade` / `db current` on a data dir, including one from before Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.store.legacy import legacy_database

from dockmesh.cli.main import main
from dockmesh.store import migrate


def test_upgrade_then_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.startswith(f"{migrate.head()} (head {migrate.head()}) sqlite:///{data}")
    assert main(["db", "current", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.startswith(f"{migrate.head()} (head {migrate.head()})")


def test_current_leaves_an_old_data_dir_alone_and_upgrade_adopts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy_database(tmp_path / "dockmesh.db")
    assert main(["db", "current", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("empty ")  # not adopted yet: no Alembic revision
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"{migrate.head()} ")


def test_a_bad_url_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--database-url", "mysql://u@h/db"]) == 2
    assert "sqlite:/// or postgresql://" in capsys.readouterr().err
