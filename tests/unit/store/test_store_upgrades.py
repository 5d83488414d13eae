"""Migration 0007 on both engines, and the upgrade rows: upsert with the audit row, policy default."""

from __future__ import annotations

import sqlalchemy as sa

from dockmesh.store import Database, migrate
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditEvent, AuditStore
from dockmesh.store.upgrades import UpgradeRecord, UpgradeStore


async def test_migration_0007_upgrades_a_database_at_0006(database_url: str) -> None:
    old = Database(database_url)
    try:
        await migrate.upgrade(old, "0006")
        await AgentStore(old).create("web-1", "h", 10.0, 1.0)
        async with old.read() as conn:
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert "upgrades" not in names
    finally:
        await old.close()
    db = await Database.open(database_url)
    try:
        assert await migrate.current(db) == migrate.head()
        assert [a.name for a in await AgentStore(db).all()] == ["web-1"]
        store = UpgradeStore(db)
        assert await store.policy() == "automatic"
        await store.set_policy("manual", AuditEvent(1.0, "admin", "upgrade.policy", "fleet"))
        await store.set_policy("manual", AuditEvent(2.0, "admin", "upgrade.policy", "fleet"))
        assert await store.policy() == "manual"
        record = UpgradeRecord("h1", "0.1.0", "0.2.0", "offered", 5.0, None, 5.0)
        await store.put(record, AuditEvent(5.0, "admin", "upgrade.offered", "h1", host="h1"))
        await store.put(UpgradeRecord("h1", "0.1.0", "0.2.0", "refused", 5.0, "bad hash", 6.0))
        assert await store.all() == [UpgradeRecord("h1", "0.1.0", "0.2.0", "refused", 5.0, "bad hash", 6.0)]
        actions = [e.action for e in await AuditStore(db).recent()]
        assert actions.count("upgrade.policy") == 2
        assert "upgrade.offered" in actions
    finally:
        await db.close()
