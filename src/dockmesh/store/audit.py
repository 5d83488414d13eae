"""The audit log: who did what to which object, append-only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dockmesh.store.db import Database


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self, at: float, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (at, actor, action, target, json.dumps(detail or {})),
            )

    def recent(self, limit: int = 200) -> list[AuditEntry]:
        rows = self._db.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [
            AuditEntry(r["id"], r["at"], r["actor"], r["action"], r["target"], json.loads(r["detail"]))
            for r in rows
        ]
