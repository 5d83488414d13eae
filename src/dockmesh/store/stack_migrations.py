"""Stack migrations: every SQL statement about them (docs/migration.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from dockmesh.store.db import Database
from dockmesh.store.schema import stack_migrations as table
from dockmesh.store.stacks import StackConflict

FINAL_STATES = frozenset({"done", "rolled_back", "failed"})


@dataclass(frozen=True)
class MigrationRecord:
    id: str
    stack: str
    source: str
    destination: str
    actor: str
    state: str  # running · done · rolled_back · failed
    phase: str  # preflight · stopping · copying · deploying · health · rolling_back · finished
    created_at: float
    updated_at: float
    drain_id: str | None = None
    bytes_done: int = 0
    bytes_total: int = 0
    volumes: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    deploy_id: str | None = None
    keep_until: float | None = None
    source_volumes: str = "absent"  # kept · removed · absent
    cleanup: str = "none"  # none · pending (the destination's copy still to remove) · done

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stack": self.stack,
            "source": self.source,
            "destination": self.destination,
            "actor": self.actor,
            "drain_id": self.drain_id,
            "state": self.state,
            "phase": self.phase,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "volumes": self.volumes,
            "reason": self.reason,
            "deploy_id": self.deploy_id,
            "keep_until": self.keep_until,
            "source_volumes": self.source_volumes,
            "cleanup": self.cleanup,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _record(row: sa.Row[Any]) -> MigrationRecord:
    m = dict(row._mapping)
    m["volumes"] = json.loads(m["volumes"] or "[]")
    return MigrationRecord(**m)


def _values(record: MigrationRecord) -> dict[str, Any]:
    values = {k: v for k, v in record.__dict__.items()}
    values["volumes"] = json.dumps(record.volumes)
    return values


class MigrationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, record: MigrationRecord) -> None:
        """Insert a running migration; StackConflict(id) when the stack already has one running."""
        async with self._db.write() as conn:
            running = (
                await conn.execute(
                    sa.select(table.c.id).where(table.c.stack == record.stack, table.c.state == "running")
                )
            ).first()
            if running is not None:
                raise StackConflict(running[0])
            await conn.execute(table.insert().values(**_values(record)))

    async def save(self, record: MigrationRecord, **changes: Any) -> MigrationRecord:
        """Write the changed fields (and `updated_at`, which the caller passes); a final row stays final."""
        new = replace(record, **changes)
        values = {k: v for k, v in _values(new).items() if k in changes or k == "updated_at"}
        async with self._db.write() as conn:
            await conn.execute(
                table.update().where(table.c.id == record.id, table.c.state == "running").values(**values)
                if record.state == "running"
                else table.update().where(table.c.id == record.id).values(**values)
            )
        return new

    async def get(self, migration_id: str) -> MigrationRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(table).where(table.c.id == migration_id))).first()
        return _record(row) if row is not None else None

    async def running(self, stack: str | None = None) -> list[MigrationRecord]:
        query = sa.select(table).where(table.c.state == "running").order_by(table.c.created_at)
        if stack is not None:
            query = query.where(table.c.stack == stack)
        async with self._db.read() as conn:
            return [_record(r) for r in await conn.execute(query)]

    async def chores(self, now: float) -> list[MigrationRecord]:
        """Final migrations with work left: source volumes past their window, or a copy to discard."""
        query = sa.select(table).where(
            table.c.state != "running",
            sa.or_(
                sa.and_(table.c.source_volumes == "kept", table.c.keep_until <= now),
                table.c.cleanup == "pending",
            ),
        )
        async with self._db.read() as conn:
            return [_record(r) for r in await conn.execute(query.limit(100))]
