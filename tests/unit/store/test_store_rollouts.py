"""Migration 0010 and the rollout rows on both engines: plan, record and audit row in one transaction,
one running rollout at a time, guarded host moves, wave advance and finish happen once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dockmesh.store import Database, migrate
from dockmesh.store.audit import AuditEvent, AuditStore
from dockmesh.store.rollouts import RolloutConflict, RolloutHost, RolloutRecord, RolloutStore


def rollout(rollout_id: str = "r1") -> RolloutRecord:
    return RolloutRecord(
        rollout_id, "0.2.0", "all", ("tag:canary", "100%"), 0.0, 1800.0, "running", 0, 100.0, "admin", 100.0
    )


def rows(rollout_id: str = "r1") -> list[RolloutHost]:
    return [
        RolloutHost(rollout_id, "h2", "two", 1, 0, "pending"),
        RolloutHost(rollout_id, "h1", "one", 0, 0, "pending"),
        RolloutHost(rollout_id, "h3", "three", 1, 1, "current"),
    ]


def started(rollout_id: str = "r1") -> AuditEvent:
    return AuditEvent(100.0, "admin", "rollout.started", rollout_id)


@pytest.fixture
def store(db: Database) -> RolloutStore:
    return RolloutStore(db)


async def test_migration_0010_upgrades_a_database_at_0009(database_url: str) -> None:
    old = Database(database_url)
    try:
        await migrate.upgrade(old, "0009")
        async with old.read() as conn:
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert "rollouts" not in names
    finally:
        await old.close()
    db = await Database.open(database_url)
    try:
        assert await migrate.current(db) == migrate.head()
        await RolloutStore(db).create(rollout(), rows(), started())
        assert (await RolloutStore(db).get("r1")) == rollout()
    finally:
        await db.close()


async def test_create_and_read_back_in_wave_order(store: RolloutStore, db: Database) -> None:
    await store.create(rollout(), rows(), started())
    got = await store.get("r1")
    assert got == rollout()
    assert got is not None
    assert got.steps == ("tag:canary", "100%")
    assert [(h.host_id, h.wave) for h in await store.hosts("r1")] == [("h1", 0), ("h2", 1), ("h3", 1)]
    assert [r.id for r in await store.running()] == ["r1"]
    assert [e.action for e in await AuditStore(db).recent()] == ["rollout.started"]
    assert await store.get("nope") is None


async def test_second_running_rollout_conflicts_and_writes_nothing(store: RolloutStore, db: Database) -> None:
    await store.create(rollout(), rows(), started())
    with pytest.raises(RolloutConflict, match="r1"):
        await store.create(rollout("r2"), rows("r2"), started("r2"))
    assert await store.get("r2") is None
    assert await store.hosts("r2") == []
    assert len(await AuditStore(db).recent()) == 1


async def test_guarded_host_move_happens_once(store: RolloutStore) -> None:
    await store.create(rollout(), rows(), started())
    assert await store.update_host("r1", "h1", "pending", state="offered", offered_at=5.0)
    assert not await store.update_host("r1", "h1", "pending", state="offered", offered_at=6.0)
    h1 = (await store.hosts("r1"))[0]
    assert (h1.state, h1.offered_at) == ("offered", 5.0)


async def test_advance_and_finish_happen_once(store: RolloutStore, db: Database) -> None:
    await store.create(rollout(), rows(), started())
    assert await store.advance("r1", 0, 150.0)
    assert not await store.advance("r1", 0, 160.0)
    got = await store.get("r1")
    assert got is not None
    assert (got.wave, got.wave_started_at) == (1, 150.0)
    halted = AuditEvent(200.0, "system", "rollout.halted", "r1")
    assert await store.finish("r1", "halted", 200.0, "1 of 1 failed", halted)
    assert not await store.finish("r1", "completed", 201.0, None, halted)
    got = await store.get("r1")
    assert got is not None
    assert (got.status, got.reason, got.finished_at) == ("halted", "1 of 1 failed", 200.0)
    assert not await store.advance("r1", 1, 300.0)
    assert await store.running() == []
    assert [e.action for e in await AuditStore(db).recent()].count("rollout.halted") == 1
    with pytest.raises(ValueError, match="final"):
        await store.finish("r1", "running", 1.0, None, halted)
    await store.create(rollout("r2"), rows("r2"), started("r2"))  # none running now: a new one may start
    assert {r.id for r in await store.recent()} == {"r1", "r2"}
