"""Upgrade rollouts: the rollout record and its planned hosts. Every change is one transaction, with its
audit row; a host's state moves only from the state the caller saw (`expect`), and a rollout finishes only
while it runs, so a resumed runner racing a still-live one cannot act twice."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockmesh.store.audit import AuditEvent
from dockmesh.store.db import Database, StoreError
from dockmesh.store.schema import rollout_hosts, rollouts

ROLLOUT_FINAL = ("halted", "completed")


class RolloutConflict(StoreError):
    """Another rollout is still running (its id is the message)."""


@dataclass(frozen=True)
class RolloutRecord:
    id: str
    version: str
    hosts: str
    steps: tuple[str, ...]
    max_failure_rate: float
    wave_timeout: float
    status: str
    wave: int
    wave_started_at: float
    actor: str
    created_at: float
    finished_at: float | None = None
    reason: str | None = None

    def row(self) -> dict[str, Any]:
        values = dict(self.__dict__)
        values["steps"] = json.dumps(list(self.steps))
        return values


@dataclass(frozen=True)
class RolloutHost:
    rollout_id: str
    host_id: str
    name: str
    wave: int
    position: int
    state: str
    error: str | None = None
    offered_at: float | None = None
    finished_at: float | None = None


def _rollout(row: Any) -> RolloutRecord:
    values = {c.name: getattr(row, c.name) for c in rollouts.columns}
    values["steps"] = tuple(json.loads(values["steps"]))
    return RolloutRecord(**values)


def _host(row: Any) -> RolloutHost:
    return RolloutHost(**{c.name: getattr(row, c.name) for c in rollout_hosts.columns})


class RolloutStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, rollout: RolloutRecord, rows: list[RolloutHost], event: AuditEvent) -> None:
        """The rollout, its plan and its audit row in one transaction; RolloutConflict while one runs."""
        async with self._db.write() as conn:
            busy = (
                await conn.execute(
                    sa.select(rollouts.c.id).where(rollouts.c.status == "running").with_for_update()
                )
            ).scalar()
            if busy is not None:
                raise RolloutConflict(busy)
            await conn.execute(rollouts.insert().values(**rollout.row()))
            if rows:
                await conn.execute(rollout_hosts.insert(), [r.__dict__ for r in rows])
            await conn.execute(event.insert())

    async def get(self, rollout_id: str) -> RolloutRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id))).first()
            return _rollout(row) if row is not None else None

    async def hosts(self, rollout_id: str) -> list[RolloutHost]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(rollout_hosts)
                .where(rollout_hosts.c.rollout_id == rollout_id)
                .order_by(rollout_hosts.c.wave, rollout_hosts.c.position)
            )
            return [_host(r) for r in rows]

    async def running(self) -> list[RolloutRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(rollouts).where(rollouts.c.status == "running").order_by(rollouts.c.created_at)
            )
            return [_rollout(r) for r in rows]

    async def recent(self, limit: int = 50) -> list[RolloutRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(rollouts).order_by(rollouts.c.created_at.desc()).limit(limit))
            return [_rollout(r) for r in rows]

    async def update_host(self, rollout_id: str, host_id: str, expect: str, **values: Any) -> bool:
        """Change a host's row only while its state is `expect` (False otherwise)."""
        async with self._db.write() as conn:
            result = await conn.execute(
                rollout_hosts.update()
                .where(
                    rollout_hosts.c.rollout_id == rollout_id,
                    rollout_hosts.c.host_id == host_id,
                    rollout_hosts.c.state == expect,
                )
                .values(**values)
            )
            return bool(result.rowcount)

    async def advance(self, rollout_id: str, wave: int, now: float) -> bool:
        """Start wave `wave + 1` (only from `wave`, while running)."""
        async with self._db.write() as conn:
            result = await conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout_id, rollouts.c.status == "running", rollouts.c.wave == wave)
                .values(wave=wave + 1, wave_started_at=now)
            )
            return bool(result.rowcount)

    async def finish(
        self, rollout_id: str, status: str, now: float, reason: str | None, event: AuditEvent
    ) -> bool:
        """End a running rollout with its audit row; False (nothing written) if it had ended already."""
        if status not in ROLLOUT_FINAL:
            raise ValueError(f"not a final rollout status: {status!r}")
        async with self._db.write() as conn:
            result = await conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout_id, rollouts.c.status == "running")
                .values(status=status, finished_at=now, reason=reason)
            )
            if not result.rowcount:
                return False
            await conn.execute(event.insert())
            return True
