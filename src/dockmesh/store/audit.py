"""The audit log: who did what to which object, append-only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dockmesh.store.db import Database
from dockmesh.store.schema import audit


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditEvent:
    """An entry to be written, by `AuditStore.add` or inside another store's transaction."""

    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)

    def insert(self) -> sa.Insert:
        detail = json.dumps(self.detail)
        return audit.insert().values(
            at=self.at, actor=self.actor, action=self.action, target=self.target, detail=detail
        )


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, at: float, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        async with self._db.write() as conn:
            await conn.execute(AuditEvent(at, actor, action, target, detail or {}).insert())

    async def recent(self, limit: int = 200) -> list[AuditEntry]:
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(audit).order_by(audit.c.id.desc()).limit(limit))
            return [AuditEntry(r.id, r.at, r.actor, r.action, r.target, json.loads(r.detail)) for r in rows]
