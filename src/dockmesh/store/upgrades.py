"""Agent upgrade state and policy: every SQL statement about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockmesh.store.audit import AuditEvent
from dockmesh.store.db import Database
from dockmesh.store.schema import upgrade_settings, upgrades

DEFAULT_POLICY = "automatic"


@dataclass(frozen=True)
class UpgradeRecord:
    host_id: str
    current: str | None
    target: str | None
    state: str
    attempt_at: float | None
    error: str | None
    updated_at: float


def _record(row: sa.Row[Any]) -> UpgradeRecord:
    m = row._mapping
    return UpgradeRecord(
        m["host_id"], m["current"], m["target"], m["state"], m["attempt_at"], m["error"], m["updated_at"]
    )


class UpgradeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[UpgradeRecord]:
        async with self._db.read() as conn:
            return [_record(r) for r in await conn.execute(sa.select(upgrades).order_by(upgrades.c.host_id))]

    async def get(self, host_id: str) -> UpgradeRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(upgrades).where(upgrades.c.host_id == host_id))).first()
        return _record(row) if row is not None else None

    async def put(self, record: UpgradeRecord, event: AuditEvent | None = None) -> None:
        """Insert or replace the host's row, with its audit row in the same transaction."""
        values = {
            "current": record.current,
            "target": record.target,
            "state": record.state,
            "attempt_at": record.attempt_at,
            "error": record.error,
            "updated_at": record.updated_at,
        }
        async with self._db.write() as conn:
            result = await conn.execute(
                upgrades.update().where(upgrades.c.host_id == record.host_id).values(**values)
            )
            if result.rowcount == 0:
                await conn.execute(upgrades.insert().values(host_id=record.host_id, **values))
            if event is not None:
                await conn.execute(event.insert())

    async def policy(self) -> str:
        async with self._db.read() as conn:
            value = (await conn.execute(sa.select(upgrade_settings.c.policy))).scalar()
        return str(value) if value else DEFAULT_POLICY

    async def set_policy(self, policy: str, event: AuditEvent) -> None:
        async with self._db.write() as conn:
            result = await conn.execute(upgrade_settings.update().values(policy=policy))
            if result.rowcount == 0:
                await conn.execute(upgrade_settings.insert().values(id=1, policy=policy))
            await conn.execute(event.insert())
