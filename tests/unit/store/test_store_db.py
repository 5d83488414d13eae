"""The engine, its transactions and the migrations, on both engines; the pre-Alembic data dir upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.unit.store.legacy import legacy_database

from dockmesh.store import Database, StoreError, migrate
from dockmesh.store.agents import AgentState, AgentStore
from dockmesh.store.audit import AuditEvent, AuditStore
from dockmesh.store.schema import metadata
from dockmesh.store.url import UrlError, async_url, check, redact
from dockmesh.store.users import UserStore


async def test_fresh_database_is_at_head(db: Database) -> None:
    assert await migrate.current(db) == migrate.head()
    async with db.read() as conn:
        tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    assert set(metadata.tables) | {"alembic_version"} == tables


async def test_migrations_match_the_schema(db: Database) -> None:
    """What the revisions built is what schema.py declares (else a column was added without a revision)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def diff(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_reopening_is_idempotent(database_url: str) -> None:
    first = await Database.open(database_url)
    await AgentStore(first).create("web-1", "h", 10.0, 1.0)
    await first.close()
    for _ in range(2):
        again = await Database.open(database_url)
        try:
            assert await migrate.current(again) == migrate.head()
            assert [a.name for a in await AgentStore(again).all()] == ["web-1"]
        finally:
            await again.close()


async def _insert_then_fail(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(AuditEvent(1.0, "a", "b", "c").insert())
        raise RuntimeError("boom")


async def test_a_failed_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await _insert_then_fail(db)
    assert await AuditStore(db).recent() == []


async def test_sqlite_keeps_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        async with db.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        await db.close()


async def test_an_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot open the database postgresql://u:\*\*\*@127.0.0.1:1/x"):
        await Database.open("postgresql://u:secret@127.0.0.1:1/x")


def test_urls_map_to_the_async_drivers(tmp_path: Path) -> None:
    assert async_url(f"sqlite:///{tmp_path}/d.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql://u@h:5432/db").drivername == "postgresql+asyncpg"
    assert async_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert check("postgresql+asyncpg://u@h/db") == "postgresql"
    for bad in ("mysql://u@h/db", "sqlite://", "sqlite:///", "postgresql+psycopg2://u@h/db", "nonsense"):
        with pytest.raises(UrlError):
            check(bad)
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


# --- a data dir from before Alembic ------------------------------------------------------------


async def test_a_pre_alembic_data_dir_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "dockmesh.db"
    legacy_database(path)
    db = await Database.open(f"sqlite:///{path}")
    try:
        assert await migrate.current(db) == migrate.head()
        users = UserStore(db)
        admin = await users.by_username("admin")
        assert admin is not None
        assert (admin.id, admin.password_hash, admin.is_admin) == (1, "argon-hash", True)
        assert await users.user_for_token("tok-hash", 1700000002.0) == admin
        agents = AgentStore(db)
        web, pending = await agents.get("a-1"), await agents.get("a-2")
        assert web is not None
        assert pending is not None
        assert web.state is AgentState.ENROLLED
        assert web.cert is not None
        assert (web.cert.fingerprint, web.cert.serial, web.cert.not_after) == ("fp1", "1a", 1702592000.0)
        assert (await agents.by_fingerprint("fp0", 1700000299.0)) == web  # the renewal grace survived
        assert web.facts == {"os": "linux"}
        assert web.tags == ("prod", "eu")
        assert web.cordoned
        assert web.last_seen == 1700000500.5
        assert web.last_error == "link closed with 4409"
        assert (web.created_at, web.enrolled_at) == (1699990000.0, 1699999999.0)
        assert await agents.pending_for_token("pending-hash", 1700000001.0) == pending
        assert [a.name for a in await agents.all()] == ["db-1", "web-1"]
        [entry] = await AuditStore(db).recent()
        assert (entry.id, entry.action, entry.detail) == (7, "agent.create", {"name": "db-1"})
        # ... and it goes on working: new rows get fresh ids after the old ones.
        assert (await users.create("bob", "h", False, 1.0)).id == 2
        async with db.read() as conn:
            tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert "schema_version" not in tables
    finally:
        await db.close()
    again = await Database.open(f"sqlite:///{path}")  # a second start finds it adopted
    try:
        assert len(await AgentStore(again).all()) == 2
    finally:
        await again.close()


async def test_an_unknown_pre_alembic_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dockmesh.db"
    legacy_database(path, version=2)
    with pytest.raises(StoreError, match="hand-written schema version 2"):
        await Database.open(f"sqlite:///{path}")
