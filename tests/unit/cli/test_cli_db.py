"""`dockmesh db upgrade` / `db current` on a data dir, including one from before Alembic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.store.legacy import legacy_database

import dockmesh
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


@pytest.mark.parametrize(
    ("missing", "command"),
    [("sqlalchemy", "db"), ("jinja2", "serve"), ("argon2", "serve"), ("sqlalchemy", "serve")],
)
def test_without_the_server_extra_server_commands_say_what_to_install(
    tmp_path: Path, missing: str, command: str
) -> None:
    # A fresh interpreter in which a server-only library cannot be imported, as on an install without
    # `[server]` (the agent's dependencies alone).
    # Any free agent port: `serve` binds it before its imports, and the default (8443) may be another
    # test's at the same moment (two workers).
    argv = (
        ["db", "current"]
        if command == "db"
        else ["serve", "--http", "127.0.0.1:1", "--agent-listen", "127.0.0.1:0"]
    )
    probe = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from dockmesh.cli.main import main\n"
        f"sys.exit(main({argv!r} + ['--data-dir', {str(tmp_path)!r}]))\n"
    )
    src = str(Path(dockmesh.__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": src},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dockmesh: the server needs the 'server' extra ({missing} is not installed): "
        "pip install 'dockmesh[server]'"
    ]
