"""The audit log: who did what to which object on which host, and how it ended; append-only, hash-chained.

Rows are linked by the database's trigger (migration 0005, formula in store/chain.py), so an
`AuditEvent(...).insert()` executed inside any store's transaction joins the chain like `AuditStore.add`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dockmesh.store import chain
from dockmesh.store.db import Database
from dockmesh.store.schema import audit
from dockmesh.store.verify import Break, Verdict, walk

__all__ = ["AuditEntry", "AuditEvent", "AuditFilter", "AuditStore", "Break", "Verdict"]

MAX_PAGE = 500
MAX_DETAIL = 8192  # characters of detail JSON; an audit row records a decision, not a payload
_SECRET_KEY = re.compile(r"pass|secret|token|credential|private.?key|authorization|^auth$", re.IGNORECASE)
REDACTED = "[redacted]"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    host: str | None = None
    outcome: str = "ok"
    seq: int | None = None


def _scrub(value: Any) -> Any:
    """Drop values under secret-looking keys: a caller's mistake must not put a secret in the log."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


@dataclass(frozen=True)
class AuditEvent:
    """An entry to be written, by `AuditStore.add` or inside another store's transaction."""

    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    outcome: str = "ok"

    def insert(self) -> sa.Insert:
        detail = chain.detail_text(_scrub(self.detail))
        if len(detail) > MAX_DETAIL:
            detail = chain.detail_text({"truncated": len(detail)})
        digest = chain.digest(self.at, self.actor, self.action, self.target, detail, self.host, self.outcome)
        return audit.insert().values(
            at=self.at,
            actor=self.actor,
            action=self.action,
            target=self.target,
            detail=detail,
            host=self.host,
            outcome=self.outcome,
            digest=digest,
        )


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # a prefix: "container." matches every container action
    host: str | None = None
    since: float | None = None
    until: float | None = None
    outcome: str | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        c = audit.c
        clauses: list[sa.ColumnElement[bool]] = []
        if self.actor is not None:
            clauses.append(c.actor == self.actor)
        if self.action:
            clauses.append(c.action.startswith(self.action, autoescape=True))
        if self.host is not None:
            clauses.append(c.host == self.host)
        if self.since is not None:
            clauses.append(c.at >= self.since)
        if self.until is not None:
            clauses.append(c.at < self.until)
        if self.outcome is not None:
            clauses.append(c.outcome == self.outcome)
        return clauses


def _entry(r: Any) -> AuditEntry:
    try:
        detail = json.loads(r.detail)
    except ValueError:
        detail = {"unreadable": r.detail[:200]}
    return AuditEntry(r.id, r.at, r.actor, r.action, r.target, detail, r.host, r.outcome, r.seq)


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        at: float,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
        *,
        host: str | None = None,
        outcome: str = "ok",
    ) -> None:
        async with self._db.write() as conn:
            await conn.execute(AuditEvent(at, actor, action, target, detail or {}, host, outcome).insert())

    async def recent(self, limit: int = 200) -> list[AuditEntry]:
        entries, _ = await self.page(AuditFilter(), None, limit)
        return entries

    async def page(
        self, where: AuditFilter, before: int | None, limit: int
    ) -> tuple[list[AuditEntry], int | None]:
        """Newest first; `before` is the cursor (a chain position) the previous page returned."""
        limit = max(1, min(limit, MAX_PAGE))
        clauses = where.where()
        if before is not None:
            clauses.append(audit.c.seq < before)
        query = sa.select(audit).where(*clauses).order_by(audit.c.seq.desc()).limit(limit + 1)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        entries = [_entry(r) for r in rows[:limit]]
        more = len(rows) > limit and entries[-1].seq is not None
        return entries, (entries[-1].seq if more else None)

    async def verify(self, batch: int = 1000) -> Verdict:
        """Walk the chain in order; the first break found, or the number of rows that verify."""
        return await walk(self._db, batch)
