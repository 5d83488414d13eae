"""Agent records: enrolment tokens, certificates, facts and tags."""

from __future__ import annotations

import asyncio
import enum
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from dockmesh.store.audit import AuditEvent
from dockmesh.store.db import Database
from dockmesh.store.probe import SharedRead
from dockmesh.store.schema import agents, versions


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


def _record(row: Sequence[Any]) -> AgentRecord:
    # Unpacked by position (the table's column order; select(agents) keeps it): name lookups on a Row
    # cost ~20 µs a record, and the full list of 1,000 agents is rebuilt on every change.
    (
        agent_id, name, state, _token_hash, token_expires_at, fingerprint, serial, not_before, not_after,
        _prev_fingerprint, _prev_until, facts, tags, cordoned, last_seen, last_error, created_at, enrolled_at,
    ) = row  # fmt: skip
    return AgentRecord(
        id=agent_id,
        name=name,
        state=AgentState(state),
        created_at=created_at,
        token_expires_at=token_expires_at,
        cert=CertRecord(fingerprint, serial, not_before, not_after) if fingerprint else None,
        facts=orjson.loads(facts),
        tags=tuple(orjson.loads(tags)),
        cordoned=bool(cordoned),
        last_seen=last_seen,
        last_error=last_error,
        enrolled_at=enrolled_at,
    )


@dataclass(frozen=True)
class _Snapshot:
    """Every agent as of one value of the `agents` version counter, indexed for the handshake."""

    version: int
    records: list[AgentRecord]
    by_id: dict[str, AgentRecord]
    by_cert: dict[str, AgentRecord]  # the current certificate's fingerprint
    by_prev_cert: dict[str, tuple[AgentRecord, float]]  # the renewed-away one, with its grace's end

    @classmethod
    def of(cls, version: int, rows: Sequence[Sequence[Any]]) -> _Snapshot:
        records, by_cert, by_prev = [], {}, {}
        for row in rows:
            record = _record(row)
            records.append(record)
            if record.cert is not None:
                by_cert[record.cert.fingerprint] = record
            prev_fingerprint, prev_until = row[9], row[10]
            if prev_fingerprint and prev_until is not None:
                by_prev[prev_fingerprint] = (record, prev_until)
        return cls(version, records, {r.id: r for r in records}, by_cert, by_prev)


def _later(seen: sa.ColumnElement[float]) -> sa.ColumnElement[float]:
    """The later of the stored and the batched time: a `touch` at link close may land mid-flush."""
    return sa.case((agents.c.last_seen > seen, agents.c.last_seen), else_=seen)


_FACTS_MANY = (
    agents.update().where(agents.c.id == sa.bindparam("agent_id")).values(facts=sa.bindparam("facts"))
)
_SEEN_MANY = (
    agents.update()
    .where(agents.c.id == sa.bindparam("agent_id"))
    .values(last_seen=_later(sa.bindparam("seen", type_=sa.Double())))
)
_SEEN_ROWS = sa.select(
    sa.func.unnest(sa.cast(sa.bindparam("ids"), postgresql.ARRAY(sa.Text))).label("agent_id"),
    sa.func.unnest(sa.cast(sa.bindparam("seens"), postgresql.ARRAY(sa.Double))).label("seen"),
).subquery("seen")
_SEEN_UNNEST = (
    agents.update().where(agents.c.id == _SEEN_ROWS.c.agent_id).values(last_seen=_later(_SEEN_ROWS.c.seen))
)
_VERSION = sa.select(versions.c.value).where(versions.c.name == "agents")
_BUMP = versions.update().where(versions.c.name == "agents").values(value=versions.c.value + 1)


class AgentStore:
    """Every SQL statement about agents."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # The full list is read on every fan-out and dashboard request, and the certificate lookup on every
        # agent handshake: rebuilding it for 1,000 agents takes ~30 ms (either engine), checking it one
        # small SELECT. So it is cached here, keyed by the `agents` version counter that every write below
        # bumps in its own transaction: a write by another server replica on the same database invalidates
        # it too. Nothing here is known to this process alone except heartbeat times not yet flushed (see
        # flush_seen).
        self._cache: _Snapshot | None = None
        self._version = SharedRead(lambda: self._db.peek(_VERSION))
        self._rebuild = asyncio.Lock()  # one rebuild at a time: a storm of lookups would each start one
        # Heartbeat times and hello facts waiting for the next flush (see note_seen, note_facts).
        self._seen: dict[str, float] = {}
        self._facts: dict[str, dict[str, Any]] = {}

    async def _write(self, conn: AsyncConnection, statement: sa.Executable) -> bool:
        """Run one UPDATE/INSERT and bump the version in the same transaction; True if a row changed."""
        result = await conn.execute(statement)
        changed = result.rowcount == 1
        if changed:
            await conn.execute(_BUMP)
        return changed

    async def _update(self, agent_id: str, *where: sa.ColumnElement[bool], **values: Any) -> bool:
        async with self._db.write() as conn:
            return await self._write(
                conn, agents.update().where(agents.c.id == agent_id, *where).values(**values)
            )

    async def create(self, name: str, token_hash: str, token_expires_at: float, now: float) -> AgentRecord:
        agent_id = str(uuid.uuid4())
        async with self._db.write() as conn:
            await self._write(
                conn,
                agents.insert().values(
                    id=agent_id,
                    name=name,
                    state=AgentState.PENDING.value,
                    token_hash=token_hash,
                    token_expires_at=token_expires_at,
                    created_at=now,
                ),
            )
        record = await self.get(agent_id)
        assert record is not None
        return record

    async def _one(self, *where: sa.ColumnElement[bool]) -> AgentRecord | None:
        row = await self._db.first(sa.select(agents).where(*where))
        return _record(row) if row else None

    async def get(self, agent_id: str) -> AgentRecord | None:
        return await self._one(agents.c.id == agent_id)

    async def _snapshot(self) -> _Snapshot:
        """The agents as of a version read after this call began: every earlier commit is in it."""
        version = int(await self._version.get())
        cached = self._cache
        if cached is not None and cached.version >= version:
            return cached
        async with self._rebuild:
            cached = self._cache
            if cached is not None and cached.version >= version:
                return cached  # rebuilt by another caller while this one waited
            async with self._db.read() as conn:
                # Version first: the list read after it is at least as new, never older than its label.
                version = int((await conn.execute(_VERSION)).scalar_one())
                rows = (await conn.execute(sa.select(agents).order_by(agents.c.name, agents.c.id))).all()
            self._cache = _Snapshot.of(version, rows)
            return self._cache

    async def all(self) -> list[AgentRecord]:
        return list((await self._snapshot()).records)

    async def current(self, agent_id: str) -> AgentRecord | None:
        """The agent as of now, from the cached list (checked against the version row, as `all` is)."""
        return (await self._snapshot()).by_id.get(agent_id)

    async def pending_for_token(self, token_hash: str, now: float) -> AgentRecord | None:
        """The pending agent this unexpired token belongs to, if any."""
        return await self._one(
            agents.c.token_hash == token_hash,
            agents.c.state == AgentState.PENDING.value,
            agents.c.token_expires_at > now,
        )

    async def redeem(
        self,
        agent_id: str,
        token_hash: str,
        cert: CertRecord,
        facts: dict[str, Any],
        now: float,
        audit: AuditEvent | None = None,
    ) -> bool:
        """Consume the token and bind the certificate; False when another request won the race.

        One conditional UPDATE: on SQLite the write lock serialises it, on PostgreSQL a concurrent
        UPDATE of the row waits and then re-checks the WHERE against the winner's row, so exactly one
        redemption sees rowcount 1. The winner's audit entry goes in the same transaction: one write
        per enrolment instead of two, and no enrolment without its entry (nor an entry for a loser).
        """
        statement = (
            agents.update()
            .where(
                agents.c.id == agent_id,
                agents.c.token_hash == token_hash,
                agents.c.state == AgentState.PENDING.value,
                agents.c.token_expires_at > now,
            )
            .values(
                state=AgentState.ENROLLED.value,
                token_hash=None,
                token_expires_at=None,
                cert_fingerprint=cert.fingerprint,
                cert_serial=cert.serial,
                cert_not_before=cert.not_before,
                cert_not_after=cert.not_after,
                prev_cert_fingerprint=None,
                prev_cert_until=None,
                facts=json.dumps(facts),
                enrolled_at=now,
                last_error=None,
            )
        )
        async with self._db.write() as conn:
            won = await self._write(conn, statement)
            if won and audit is not None:
                await conn.execute(audit.insert())
        return won

    async def by_fingerprint(self, fingerprint: str, now: float) -> AgentRecord | None:
        """The enrolled agent holding this certificate (or its predecessor within the renewal grace).

        From the cached list: every agent handshake asks, and a revocation (which bumps the version) is
        seen by the next one, on this server replica or another.
        """
        snapshot = await self._snapshot()
        record = snapshot.by_cert.get(fingerprint)
        if record is None:
            record, until = snapshot.by_prev_cert.get(fingerprint, (None, 0.0))
            if until <= now:
                return None
        return record if record is not None and record.state is AgentState.ENROLLED else None

    async def renew(self, agent_id: str, cert: CertRecord, grace_until: float) -> bool:
        return await self._update(
            agent_id,
            agents.c.state == AgentState.ENROLLED.value,
            prev_cert_fingerprint=agents.c.cert_fingerprint,
            prev_cert_until=grace_until,
            cert_fingerprint=cert.fingerprint,
            cert_serial=cert.serial,
            cert_not_before=cert.not_before,
            cert_not_after=cert.not_after,
        )

    async def revoke(self, agent_id: str) -> bool:
        return await self._update(
            agent_id,
            state=AgentState.REVOKED.value,
            token_hash=None,
            token_expires_at=None,
            prev_cert_fingerprint=None,
            prev_cert_until=None,
        )

    async def rotate_token(self, agent_id: str, token_hash: str, expires_at: float) -> bool:
        """Back to pending with a fresh token; the old certificate stops working at once."""
        return await self._update(
            agent_id,
            state=AgentState.PENDING.value,
            token_hash=token_hash,
            token_expires_at=expires_at,
            cert_fingerprint=None,
            cert_serial=None,
            cert_not_before=None,
            cert_not_after=None,
            prev_cert_fingerprint=None,
            prev_cert_until=None,
        )

    async def update_facts(self, agent_id: str, facts: dict[str, Any], now: float) -> None:
        await self._update(agent_id, facts=json.dumps(facts), last_seen=now)

    async def touch(self, agent_id: str, now: float) -> None:
        """The link ended: its time is final, and facts from its hello not flushed yet go with it."""
        self._seen.pop(agent_id, None)
        facts = self._facts.pop(agent_id, None)
        extra = {"facts": json.dumps(facts)} if facts is not None else {}
        await self._update(agent_id, last_seen=now, **extra)

    async def set_error(self, agent_id: str, message: str) -> None:
        await self._update(agent_id, last_error=message[:500])

    async def set_tags(self, agent_id: str, tags: list[str]) -> bool:
        # One UPDATE replacing the whole list: there is no read-modify-write to lose an update in.
        return await self._update(agent_id, tags=json.dumps(tags))

    async def set_cordoned(self, agent_id: str, cordoned: bool) -> bool:
        return await self._update(agent_id, cordoned=cordoned)

    # --- heartbeats ---------------------------------------------------------------------------
    def note_seen(self, agent_id: str, now: float) -> None:
        """Remember a heartbeat; `flush_seen` writes them all in one transaction.

        10,000 agents at a 10 s interval would otherwise be 1,000 write transactions a second.
        """
        self._seen[agent_id] = now

    def note_facts(self, agent_id: str, facts: dict[str, Any], now: float) -> None:
        """Remember a hello's facts; written by the next `flush_seen` (or `touch`).

        After a server restart every agent says hello within seconds: a write transaction each (SQLite has
        one writer at a time) kept 1,000 agents from coming back for 20 s. The replica holding the link
        shows its facts from memory meanwhile.
        """
        self._facts[agent_id] = facts
        self._seen[agent_id] = now

    async def flush_seen(self) -> int:
        """Write the remembered heartbeat times (and hello facts) in one transaction; returns how many.

        Heartbeat times do not bump the version: a live agent's last_seen is shown as "now" by the replica
        holding its link, and the link's end is recorded by `touch`, which does. So heartbeats never
        invalidate the agent list, which 10,000 agents would otherwise do every few seconds.
        """
        if not self._seen and not self._facts:
            return 0
        batch, self._seen = self._seen, {}
        facts, self._facts = self._facts, {}
        async with self._db.write() as conn:
            if facts:
                # Facts are in the cached list (offline hosts show them): these bump the version.
                rows = [{"agent_id": k, "facts": json.dumps(v)} for k, v in facts.items()]
                await conn.execute(_FACTS_MANY, rows)
                await conn.execute(_BUMP)
            if self._db.dialect == "postgresql":
                # Two array parameters unnested server-side: 1,000 agents in ~25 ms, against ~45 ms for
                # executemany (a statement per agent), and no bound-parameter limit to chunk around.
                await conn.execute(_SEEN_UNNEST, {"ids": list(batch), "seens": list(batch.values())})
            elif batch:
                # SQLite: executemany loops over one prepared statement in aiosqlite's thread (~15 ms).
                await conn.execute(_SEEN_MANY, [{"agent_id": k, "seen": v} for k, v in batch.items()])
        return len(batch)
