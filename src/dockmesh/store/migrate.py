"""Alembic, configured in code (no alembic.ini at run time), run at start and by `dockmesh db`.

A data dir from before Alembic carries the hand-written `schema_version` table; its one version is exactly
our first revision, so it is stamped there (no DDL runs) and then upgraded like any other.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from dockmesh.store.db import Database, StoreError

FIRST = "0001"
LEGACY_VERSION = 1  # the last entry of the hand-written MIGRATIONS list, which revision 0001 reproduces


def config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "dockmesh.store:migrations")
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def _adopt_legacy(connection: sa.Connection, cfg: Config) -> None:
    tables = set(sa.inspect(connection).get_table_names())
    if "schema_version" not in tables or "alembic_version" in tables:
        return
    version = connection.execute(sa.text("SELECT version FROM schema_version")).scalar()
    if version != LEGACY_VERSION:
        raise StoreError(
            f"the database has hand-written schema version {version}; this release adopts only version "
            f"{LEGACY_VERSION}: start the release that made it once, then this one"
        )
    command.stamp(cfg, FIRST)


def _upgrade(connection: sa.Connection, target: str) -> None:
    cfg = config(connection)
    _adopt_legacy(connection, cfg)
    command.upgrade(cfg, target)


def _current(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


# Any constant, the same in every release: replicas starting together on PostgreSQL migrate one at a time.
_MIGRATION_LOCK = 0x646D7368  # "dmsh"


async def upgrade(db: Database, target: str = "head") -> None:
    """Bring the schema to `target` in one transaction (DDL is transactional on both engines)."""
    async with db.write() as conn:
        if db.dialect == "postgresql":
            # Held to the end of this transaction; the next replica then finds the schema at head. (SQLite's
            # BEGIN IMMEDIATE already serialises: one writer at a time.)
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
        await conn.run_sync(_upgrade, target)


async def current(db: Database) -> str | None:
    """The revision the database is at (None: empty, or not yet adopted from before Alembic)."""
    async with db.read() as conn:
        return await conn.run_sync(_current)
