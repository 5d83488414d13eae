"""Drains: the drain record and its per-stack rows (issue 13). Every state change is one transaction, and
a stack's move from `queued` is conditional on its current state, so two runners (a resume racing a
still-live task) cannot both start the same stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockmesh.store.db import Database, StoreError
from dockmesh.store.schema import drain_stacks, drains

# A stack's row: queued → migrating → done | rolled_back | failed; or skipped (pre-flight or plan).
STACK_FINAL = ("done", "rolled_back", "failed", "skipped")
DRAIN_FINAL = ("done", "failed")


class DrainConflict(StoreError):
    """Another drain of the same source is still running (its id is the message)."""


@dataclass(frozen=True)
class DrainRecord:
    id: str
    source: str
    source_name: str
    selector: str
    ordering: str
    concurrency: int
    status: str
    actor: str
    created_at: float
    finished_at: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class DrainStack:
    drain_id: str
    stack: str
    position: int
    grp: int
    state: str
    destination: str | None = None
    destination_name: str | None = None
    code: str | None = None
    message: str | None = None
    migration_id: str | None = None
    attempts: int = 0
    volume_bytes: int = 0
    bytes_done: int = 0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def final(self) -> bool:
        return self.state in STACK_FINAL


def _drain(row: Any) -> DrainRecord:
    return DrainRecord(**{c.name: getattr(row, c.name) for c in drains.columns})


def _stack(row: Any) -> DrainStack:
    return DrainStack(**{c.name: getattr(row, c.name) for c in drain_stacks.columns})


class DrainStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, drain: DrainRecord, rows: list[DrainStack]) -> None:
        """The drain and its plan in one transaction; DrainConflict while the source has a running drain."""
        async with self._db.write() as conn:
            busy = (
                await conn.execute(
                    sa.select(drains.c.id)
                    .where(drains.c.source == drain.source, drains.c.status == "running")
                    .with_for_update()
                )
            ).scalar()
            if busy is not None:
                raise DrainConflict(busy)
            await conn.execute(drains.insert().values(**drain.__dict__))
            if rows:
                await conn.execute(drain_stacks.insert(), [r.__dict__ for r in rows])

    async def get(self, drain_id: str) -> DrainRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(drains).where(drains.c.id == drain_id))).first()
            return _drain(row) if row is not None else None

    async def stacks(self, drain_id: str) -> list[DrainStack]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(drain_stacks)
                .where(drain_stacks.c.drain_id == drain_id)
                .order_by(drain_stacks.c.position)
            )
            return [_stack(r) for r in rows]

    async def running(self) -> list[DrainRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(drains).where(drains.c.status == "running").order_by(drains.c.created_at)
            )
            return [_drain(r) for r in rows]

    async def recent(self, source: str | None = None, limit: int = 50) -> list[DrainRecord]:
        query = sa.select(drains)
        if source is not None:
            query = query.where(drains.c.source == source)
        async with self._db.read() as conn:
            rows = await conn.execute(query.order_by(drains.c.created_at.desc()).limit(limit))
            return [_drain(r) for r in rows]

    async def update_stack(
        self, drain_id: str, stack: str, *, expect: tuple[str, ...] | None = None, **values: Any
    ) -> bool:
        """Change a stack's row; with `expect`, only while its state is one of those (False otherwise)."""
        where = [drain_stacks.c.drain_id == drain_id, drain_stacks.c.stack == stack]
        if expect is not None:
            where.append(drain_stacks.c.state.in_(expect))
        async with self._db.write() as conn:
            result = await conn.execute(drain_stacks.update().where(*where).values(**values))
            return bool(result.rowcount)

    async def finish(self, drain_id: str, status: str, now: float, error: str | None = None) -> bool:
        if status not in DRAIN_FINAL:
            raise ValueError(f"not a final drain status: {status!r}")
        async with self._db.write() as conn:
            result = await conn.execute(
                drains.update()
                .where(drains.c.id == drain_id, drains.c.status == "running")
                .values(status=status, finished_at=now, error=error)
            )
            return bool(result.rowcount)
