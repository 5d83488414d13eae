"""Verifying the audit chain: walk it in order and name the first row that breaks it, and how.

Reads in one snapshot (PostgreSQL: REPEATABLE READ; SQLite: one read transaction in WAL), so rows written
while it walks neither break it nor count. Batched by chain position, so a long log is not held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dockmesh.store import chain
from dockmesh.store.db import Database
from dockmesh.store.schema import audit, audit_head


@dataclass(frozen=True)
class Break:
    """Where the chain breaks: the row (id, time, position), how, and why."""

    id: int | None
    at: float | None
    seq: int | None
    kind: str  # edited · removed · reordered · unchained
    message: str


@dataclass(frozen=True)
class Verdict:
    count: int
    broken: Break | None
    head: str | None = None  # the newest row's hash when intact: kept elsewhere, it anchors this state

    @property
    def ok(self) -> bool:
        return self.broken is None


def _at(row: Any, kind: str, message: str) -> Break:
    return Break(row.id, row.at, row.seq, kind, message)


def _content_break(row: Any) -> Break | None:
    digest = chain.digest(row.at, row.actor, row.action, row.target, row.detail, row.host, row.outcome)
    if digest != row.digest:
        return _at(row, "edited", "its content no longer matches the digest it was written with")
    if row.prev_hash is None or chain.link(row.prev_hash, row.digest) != row.hash:
        return _at(row, "edited", "its hash does not match its content and the row before it")
    return None


async def _link_break(conn: AsyncConnection, row: Any, expected_seq: int) -> Break:
    owner = (
        await conn.execute(sa.select(audit.c.id, audit.c.seq).where(audit.c.hash == row.prev_hash).limit(1))
    ).first()
    if owner is not None and owner.seq is not None and owner.seq > row.seq:
        return _at(row, "reordered", f"it was written after row {owner.id}, which now comes after it")
    if owner is not None:
        return _at(
            row, "reordered", f"it was written right after row {owner.id}, which is not the row before it"
        )
    if row.seq > expected_seq:
        missing = row.seq - expected_seq
        return _at(
            row, "removed", f"{missing} row(s) before it are missing (positions {expected_seq}-{row.seq - 1})"
        )
    return _at(row, "removed", "the row it was written after is missing")


async def _walk(conn: AsyncConnection, batch: int) -> Verdict:
    loose = (await conn.execute(sa.select(audit).where(audit.c.seq.is_(None)).limit(1))).first()
    if loose is not None:
        return Verdict(0, _at(loose, "unchained", "it was written outside the chain (no position)"))
    head = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).first()
    if head is None:
        return Verdict(0, Break(None, None, None, "removed", "the chain head row (audit_head) is missing"))
    expected, prev, count, last = 1, chain.GENESIS, 0, None
    while True:
        query = sa.select(audit).where(audit.c.seq >= expected).order_by(audit.c.seq).limit(batch)
        rows = (await conn.execute(query)).all()
        for row in rows:
            broken = _content_break(row)
            if broken is None and (row.seq != expected or row.prev_hash != prev):
                broken = await _link_break(conn, row, expected)
            if broken is not None:
                return Verdict(count, broken)
            prev, expected, count, last = row.hash, row.seq + 1, count + 1, row
        if len(rows) < batch:
            break
    if head.seq == count and head.hash == prev:
        return Verdict(count, None, prev)
    if head.seq > count:
        missing = head.seq - count
        message = f"the newest {missing} row(s) are missing: the head records {head.seq} rows"
        if last is None:
            return Verdict(count, Break(None, None, None, "removed", message))
        return Verdict(count, _at(last, "removed", message + ", this is the last one left"))
    return Verdict(
        count, Break(None, None, head.seq, "edited", "the chain head does not match the newest row")
    )


async def walk(db: Database, batch: int = 1000) -> Verdict:
    if db.dialect == "postgresql":
        async with db.engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                return await _walk(conn, batch)
    async with db.read() as conn:
        return await _walk(conn, batch)
