"""Agent records: enrolment tokens, certificates, facts and tags."""

from __future__ import annotations

import enum
import json
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any

from dockmesh.store.db import Database


class AgentState(enum.Enum):
    """What the database knows; online/offline is derived from the live link, never stored."""

    PENDING = "pending"
    ENROLLED = "enrolled"
    REVOKED = "revoked"


@dataclass(frozen=True)
class CertRecord:
    fingerprint: str
    serial: str
    not_before: float
    not_after: float


@dataclass(frozen=True)
class AgentRecord:
    id: str
    name: str
    state: AgentState
    created_at: float
    token_expires_at: float | None = None
    cert: CertRecord | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    cordoned: bool = False
    last_seen: float | None = None
    last_error: str | None = None
    enrolled_at: float | None = None


def _record(row: sqlite3.Row) -> AgentRecord:
    cert = None
    if row["cert_fingerprint"]:
        cert = CertRecord(
            row["cert_fingerprint"], row["cert_serial"], row["cert_not_before"], row["cert_not_after"]
        )
    return AgentRecord(
        id=row["id"],
        name=row["name"],
        state=AgentState(row["state"]),
        created_at=row["created_at"],
        token_expires_at=row["token_expires_at"],
        cert=cert,
        facts=json.loads(row["facts"]),
        tags=tuple(json.loads(row["tags"])),
        cordoned=bool(row["cordoned"]),
        last_seen=row["last_seen"],
        last_error=row["last_error"],
        enrolled_at=row["enrolled_at"],
    )


class AgentStore:
    """Every SQL statement about agents."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Every write goes through this class (one process owns the file), so a cached list of all
        # records stays exact: each write drops it. Fan-outs and the dashboard read it on every request.
        self._all: list[AgentRecord] | None = None

    def create(self, name: str, token_hash: str, token_expires_at: float, now: float) -> AgentRecord:
        agent_id = str(uuid.uuid4())
        self._all = None
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO agents (id, name, state, token_hash, token_expires_at, created_at)"
                " VALUES (?, ?, 'pending', ?, ?, ?)",
                (agent_id, name, token_hash, token_expires_at, now),
            )
        record = self.get(agent_id)
        assert record is not None
        return record

    def get(self, agent_id: str) -> AgentRecord | None:
        row = self._db.query_one("SELECT * FROM agents WHERE id = ?", (agent_id,))
        return _record(row) if row else None

    def all(self) -> list[AgentRecord]:
        if self._all is None:
            self._all = [_record(r) for r in self._db.query("SELECT * FROM agents ORDER BY name, id")]
        return list(self._all)

    def pending_for_token(self, token_hash: str, now: float) -> AgentRecord | None:
        """The pending agent this unexpired token belongs to, if any."""
        row = self._db.query_one(
            "SELECT * FROM agents WHERE token_hash = ? AND state = 'pending' AND token_expires_at > ?",
            (token_hash, now),
        )
        return _record(row) if row else None

    def redeem(
        self, agent_id: str, token_hash: str, cert: CertRecord, facts: dict[str, Any], now: float
    ) -> bool:
        """Consume the token and bind the certificate; False when another request won the race."""
        self._all = None
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE agents SET state = 'enrolled', token_hash = NULL, token_expires_at = NULL,"
                " cert_fingerprint = ?, cert_serial = ?, cert_not_before = ?, cert_not_after = ?,"
                " prev_cert_fingerprint = NULL, prev_cert_until = NULL, facts = ?, enrolled_at = ?,"
                " last_error = NULL"
                " WHERE id = ? AND token_hash = ? AND state = 'pending' AND token_expires_at > ?",
                (
                    cert.fingerprint,
                    cert.serial,
                    cert.not_before,
                    cert.not_after,
                    json.dumps(facts),
                    now,
                    agent_id,
                    token_hash,
                    now,
                ),
            )
            return cur.rowcount == 1

    def by_fingerprint(self, fingerprint: str, now: float) -> AgentRecord | None:
        """The enrolled agent holding this certificate (or its predecessor within the renewal grace)."""
        row = self._db.query_one(
            "SELECT * FROM agents WHERE state = 'enrolled' AND (cert_fingerprint = ?"
            " OR (prev_cert_fingerprint = ? AND prev_cert_until > ?))",
            (fingerprint, fingerprint, now),
        )
        return _record(row) if row else None

    def renew(self, agent_id: str, cert: CertRecord, grace_until: float) -> bool:
        self._all = None
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE agents SET prev_cert_fingerprint = cert_fingerprint, prev_cert_until = ?,"
                " cert_fingerprint = ?, cert_serial = ?, cert_not_before = ?, cert_not_after = ?"
                " WHERE id = ? AND state = 'enrolled'",
                (grace_until, cert.fingerprint, cert.serial, cert.not_before, cert.not_after, agent_id),
            )
            return cur.rowcount == 1

    def revoke(self, agent_id: str) -> bool:
        self._all = None
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE agents SET state = 'revoked', token_hash = NULL, token_expires_at = NULL,"
                " prev_cert_fingerprint = NULL, prev_cert_until = NULL WHERE id = ?",
                (agent_id,),
            )
            return cur.rowcount == 1

    def rotate_token(self, agent_id: str, token_hash: str, expires_at: float) -> bool:
        """Back to pending with a fresh token; the old certificate stops working at once."""
        self._all = None
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE agents SET state = 'pending', token_hash = ?, token_expires_at = ?,"
                " cert_fingerprint = NULL, cert_serial = NULL, cert_not_before = NULL,"
                " cert_not_after = NULL, prev_cert_fingerprint = NULL, prev_cert_until = NULL"
                " WHERE id = ?",
                (token_hash, expires_at, agent_id),
            )
            return cur.rowcount == 1

    def update_facts(self, agent_id: str, facts: dict[str, Any], now: float) -> None:
        self._all = None
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE agents SET facts = ?, last_seen = ? WHERE id = ?",
                (json.dumps(facts), now, agent_id),
            )

    def touch(self, agent_id: str, now: float) -> None:
        self._all = None
        with self._db.transaction() as cur:
            cur.execute("UPDATE agents SET last_seen = ? WHERE id = ?", (now, agent_id))

    def set_error(self, agent_id: str, message: str) -> None:
        self._all = None
        with self._db.transaction() as cur:
            cur.execute("UPDATE agents SET last_error = ? WHERE id = ?", (message[:500], agent_id))

    def set_tags(self, agent_id: str, tags: list[str]) -> bool:
        self._all = None
        with self._db.transaction() as cur:
            cur.execute("UPDATE agents SET tags = ? WHERE id = ?", (json.dumps(tags), agent_id))
            return cur.rowcount == 1

    def set_cordoned(self, agent_id: str, cordoned: bool) -> bool:
        self._all = None
        with self._db.transaction() as cur:
            cur.execute("UPDATE agents SET cordoned = ? WHERE id = ?", (int(cordoned), agent_id))
            return cur.rowcount == 1
