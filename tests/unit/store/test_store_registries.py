"""Migration 0006 on both engines: a database at 0003 gains the credentials table and keeps its rows."""

from __future__ import annotations

import sqlalchemy as sa

from dockmesh.store import Database, migrate
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditEvent
from dockmesh.store.registries import CredentialStore


async def test_migration_0006_upgrades_a_database_at_0003(database_url: str) -> None:
    old = Database(database_url)
    try:
        await migrate.upgrade(old, "0003")
        await AgentStore(old).create("web-1", "h", 10.0, 1.0)
        async with old.read() as conn:
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert "registry_credentials" not in names
    finally:
        await old.close()
    db = await Database.open(database_url)
    try:
        assert await migrate.current(db) == migrate.head()
        assert [a.name for a in await AgentStore(db).all()] == ["web-1"]
        store = CredentialStore(db)
        made = await store.add(
            "ghcr.io",
            "acme",
            "u",
            "sealed",
            "prod",
            "admin",
            1.0,
            AuditEvent(1.0, "admin", "registry.add", ""),
        )
        assert [(r.id, r.registry, r.path, r.scope) for r in await store.all()] == [
            (made.id, "ghcr.io", "acme", "prod")
        ]
        assert await store.all("quay.io") == []
    finally:
        await db.close()
