"""What must hold with concurrent writers, on both engines: one redemption per token, revocation seen by
the next lookup, no lost tag update, and a second server replica on the same database seeing every write."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing

import pytest

from dockmesh.server.tokens import token_hash
from dockmesh.store import Database, migrate
from dockmesh.store.agents import AgentStore, CertRecord
from dockmesh.store.audit import AuditEvent, AuditStore

NOW = 1_700_000_000.0
TTL = 3600.0


async def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    # An empty database (no `db` fixture here): three servers race to create the schema. On SQLite the
    # file is in WAL mode already, as after any start: a brand-new file still in rollback-journal mode can
    # deadlock two first openers until busy_timeout, and two servers on one SQLite file is not a setup.
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    opened = await asyncio.gather(*(Database.open(database_url) for _ in range(3)))
    try:
        for db in opened:
            assert await migrate.current(db) == migrate.head()
        assert await AgentStore(opened[0]).all() == []
    finally:
        for db in opened:
            await db.close()


@pytest.fixture
async def replica(database_url: str, db: Database) -> AsyncIterator[AgentStore]:
    """A second process's view: its own engine, pool and cache on the same database."""
    other = await Database.open(database_url)
    try:
        yield AgentStore(other)
    finally:
        await other.close()


async def test_a_token_is_redeemed_once_under_50_concurrent_attempts(
    agents: AgentStore, replica: AgentStore, db: Database
) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    # Half the attempts through each replica: two pools, so the race is between connections too.
    attempts = [
        (agents if i % 2 else replica).redeem(
            record.id,
            token_hash("tok"),
            CertRecord(f"{i:064x}", str(i), NOW, NOW + TTL),
            {},
            NOW + 1,
            AuditEvent(NOW + 1, "agent", "agent.enroll", record.id, {"attempt": i}),
        )
        for i in range(50)
    ]
    results = await asyncio.gather(*attempts)
    assert sum(results) == 1
    winner = results.index(True)
    # The audit entry is written in the redeeming transaction: the winner's alone.
    entries = await AuditStore(db).recent()
    assert [(e.action, e.detail) for e in entries] == [("agent.enroll", {"attempt": winner})]
    enrolled = await agents.get(record.id)
    assert enrolled is not None
    assert enrolled.cert is not None
    assert enrolled.cert.fingerprint == f"{winner:064x}"


async def test_revocation_is_seen_by_the_next_lookup_on_another_replica(
    agents: AgentStore, replica: AgentStore
) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    cert = CertRecord("c" * 64, "1", NOW, NOW + TTL)
    assert await agents.redeem(record.id, token_hash("tok"), cert, {}, NOW)
    assert await replica.by_fingerprint(cert.fingerprint, NOW) is not None
    assert await agents.revoke(record.id)
    assert await replica.by_fingerprint(cert.fingerprint, NOW) is None


async def test_concurrent_tag_writes_leave_one_whole_list(agents: AgentStore, replica: AgentStore) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    lists = [[f"t{i}", f"u{i}"] for i in range(20)]
    await asyncio.gather(
        *((agents if i % 2 else replica).set_tags(record.id, t) for i, t in enumerate(lists))
    )
    final = await agents.get(record.id)
    assert final is not None
    assert list(final.tags) in lists  # one writer's whole list, never a mix or a lost write in the middle


async def test_the_agent_list_cache_follows_writes_from_another_replica(
    agents: AgentStore, replica: AgentStore
) -> None:
    first = await agents.create("alpha", token_hash("a"), NOW + TTL, NOW)
    assert [a.name for a in await replica.all()] == ["alpha"]  # the replica caches this list now
    await agents.create("beta", token_hash("b"), NOW + TTL, NOW)
    assert [a.name for a in await replica.all()] == ["alpha", "beta"]
    assert await agents.set_tags(first.id, ["prod"])
    assert (await replica.all())[0].tags == ("prod",)
    assert await agents.revoke(first.id)
    assert (await replica.all())[0].state.value == "revoked"
