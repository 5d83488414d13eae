"""The async engine (SQLite through aiosqlite, PostgreSQL through asyncpg) and its transactions.

Statements run off the event loop: aiosqlite in its own thread per connection, asyncpg on the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dockmesh.store import chain
from dockmesh.store.url import async_url, redact

_PRAGMAS = (
    "PRAGMA busy_timeout=5000",  # first: switching to WAL needs the lock another process may hold
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


class StoreError(Exception):
    """A database problem that is not the caller's fault."""


def _sqlite_setup(engine: AsyncEngine) -> None:
    """WAL and the pragmas on every new connection; we issue BEGIN ourselves.

    The sqlite3 module's own implicit BEGIN is deferred and comes too late (before the first write): two
    writers can both read, then one fails with SQLITE_BUSY on upgrade. Writes start BEGIN IMMEDIATE, which
    takes the write lock first and waits (busy_timeout, in aiosqlite's thread) instead of failing.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in _PRAGMAS:
            cur.execute(pragma)
        cur.close()
        # The audit chain trigger links each row with it (PostgreSQL has sha256() built in).
        dbapi_conn.create_function(chain.SQL_FUNCTION, 1, chain.sha256_hex, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get("dockmesh_peek"):
            return  # one SELECT on its own is atomic already
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("dockmesh_write") else "BEGIN")


class Database:
    """One database; every change runs inside `write()`, every read inside `read()`."""

    def __init__(self, url: str) -> None:
        self.url = url
        target = async_url(url)
        self.dialect = target.get_backend_name()
        self.engine = create_async_engine(target, pool_pre_ping=self.dialect == "postgresql")
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        self._writer = self.engine.execution_options(dockmesh_write=True)
        # SQLite has one writer at a time. Queued here, writers wait their turn in order; left to SQLite's
        # busy handler (sleeps, in each connection's thread) a burst of enrolments outwaits busy_timeout
        # and fails with "database is locked". busy_timeout still covers another process on the file.
        self._write_turn = asyncio.Lock() if self.dialect == "sqlite" else None
        # A lone SELECT needs no BEGIN/COMMIT around it: each is a round trip (a thread hop on SQLite).
        self._peeker = self.engine.execution_options(
            **({"dockmesh_peek": True} if self.dialect == "sqlite" else {"isolation_level": "AUTOCOMMIT"})
        )

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Database:
        """Connect and (by default) bring the schema to the newest revision."""
        from dockmesh.store import migrate as migrations

        db = cls(url)
        try:
            if migrate:
                await migrations.upgrade(db)
            else:
                async with db.read() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except StoreError:
            await db.close()
            raise
        except (OSError, sa.exc.DBAPIError) as exc:
            await db.close()
            detail = getattr(exc, "orig", None) or exc  # the driver's words, without SQLAlchemy's wrapping
            raise StoreError(f"cannot open the database {redact(url)}: {detail}") from exc
        return db

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction that may write: committed at the end, rolled back on any exception."""
        if self._write_turn is None:
            async with self._writer.begin() as conn:
                yield conn
            return
        async with self._write_turn, self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def peek(self, statement: sa.Select[tuple[Any]]) -> Any:
        """The one value of a single-row SELECT, outside any transaction."""
        async with self._peeker.connect() as conn:
            return (await conn.execute(statement)).scalar_one()

    async def first(self, statement: sa.Select[Any]) -> sa.Row[Any] | None:
        """The first row of one SELECT, outside any transaction (a single statement is atomic)."""
        async with self._peeker.connect() as conn:
            row: sa.Row[Any] | None = (await conn.execute(statement)).first()
            return row

    async def close(self) -> None:
        await self.engine.dispose()
