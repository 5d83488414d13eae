"""The audit hash chain on both engines: concurrent writers, tampering found and named, the migration."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from dockmesh.store import Database, migrate
from dockmesh.store.audit import AuditEvent, AuditFilter, AuditStore
from dockmesh.store.schema import audit, audit_head, versions


async def _fill(store: AuditStore, n: int) -> None:
    for i in range(n):
        await store.add(100.0 + i, "admin", f"thing.{i % 3}", f"t{i}", {"i": i}, host=f"h{i % 2}")


async def _ids(db: Database) -> list[int]:
    async with db.read() as conn:
        return list((await conn.execute(sa.select(audit.c.id).order_by(audit.c.seq))).scalars())


async def test_concurrent_writers_keep_one_chain(db: Database) -> None:
    """50 writers at once, half inside another store's transaction (AuditEvent.insert): one unbroken chain."""
    store = AuditStore(db)

    async def inside_other_write(i: int) -> None:
        async with db.write() as conn:
            await conn.execute(sa.update(versions).where(versions.c.name == "agents").values(value=i))
            await conn.execute(AuditEvent(float(i), "agent", "agent.enrol", f"a{i}", {"i": i}).insert())

    writers = [
        store.add(float(i), "admin", "container.start", f"h/c{i}", host="h")
        if i % 2
        else inside_other_write(i)
        for i in range(50)
    ]
    await asyncio.gather(*writers)
    verdict = await store.verify()
    assert verdict.ok, verdict.broken
    assert verdict.count == 50
    async with db.read() as conn:
        seqs = sorted((await conn.execute(sa.select(audit.c.seq))).scalars())
        head = (await conn.execute(sa.select(audit_head))).one()
    assert seqs == list(range(1, 51))
    assert head.seq == 50


async def test_a_rolled_back_write_leaves_no_gap(db: Database) -> None:
    store = AuditStore(db)
    await _fill(store, 2)

    async def abandoned() -> None:
        async with db.write() as conn:
            await conn.execute(AuditEvent(1.0, "admin", "x", "y").insert())
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError):
        await abandoned()
    await _fill(store, 1)
    verdict = await store.verify()
    assert verdict.ok
    assert verdict.count == 3


async def test_editing_a_detail_is_found_and_named(db: Database) -> None:
    store = AuditStore(db)
    await _fill(store, 6)
    victim = (await _ids(db))[3]
    async with db.write() as conn:
        await conn.execute(audit.update().where(audit.c.id == victim).values(detail='{"i":99}'))
    verdict = await store.verify()
    assert verdict.broken is not None
    assert (verdict.broken.id, verdict.broken.kind, verdict.broken.at) == (victim, "edited", 103.0)
    assert verdict.count == 3


async def test_editing_content_and_its_digest_breaks_the_hash(db: Database) -> None:
    store = AuditStore(db)
    await _fill(store, 3)
    victim = (await _ids(db))[1]
    async with db.write() as conn:
        await conn.execute(
            audit.update().where(audit.c.id == victim).values(actor="mallory", digest="0" * 64)
        )
    verdict = await store.verify()
    assert verdict.broken is not None
    assert (verdict.broken.id, verdict.broken.kind) == (victim, "edited")


async def test_deleting_a_row_names_the_row_after_it(db: Database) -> None:
    store = AuditStore(db)
    await _fill(store, 6)
    ids = await _ids(db)
    async with db.write() as conn:
        await conn.execute(audit.delete().where(audit.c.id == ids[2]))
    verdict = await store.verify()
    assert verdict.broken is not None
    assert (verdict.broken.id, verdict.broken.kind) == (ids[3], "removed")
    assert "positions 3-3" in verdict.broken.message


async def test_deleting_the_newest_row_is_found_by_the_head(db: Database) -> None:
    store = AuditStore(db)
    await _fill(store, 4)
    ids = await _ids(db)
    async with db.write() as conn:
        await conn.execute(audit.delete().where(audit.c.id == ids[-1]))
    verdict = await store.verify()
    assert verdict.broken is not None
    assert (verdict.broken.id, verdict.broken.kind) == (ids[-2], "removed")
    assert "newest 1 row" in verdict.broken.message


async def test_swapping_two_rows_is_found_as_reordered(db: Database) -> None:
    store = AuditStore(db)
    await _fill(store, 6)
    ids = await _ids(db)
    a, b = ids[2], ids[3]
    async with db.write() as conn:  # swap their chain positions (3 and 4) through a free one
        await conn.execute(audit.update().where(audit.c.id == a).values(seq=-1))
        await conn.execute(audit.update().where(audit.c.id == b).values(seq=3))
        await conn.execute(audit.update().where(audit.c.id == a).values(seq=4))
    verdict = await store.verify()
    assert verdict.broken is not None
    assert (verdict.broken.id, verdict.broken.kind) == (b, "reordered")
    assert str(a) in verdict.broken.message


async def test_a_row_written_around_the_chain_is_refused(db: Database) -> None:
    """A raw INSERT without a digest cannot join (or dodge) the chain."""
    with pytest.raises(sa.exc.DBAPIError, match="digest"):
        async with db.write() as conn:
            await conn.execute(audit.insert().values(at=1.0, actor="x", action="y", target="z"))


async def test_secret_looking_detail_is_redacted(db: Database) -> None:
    store = AuditStore(db)
    await store.add(
        1.0, "admin", "registry.create", "r", {"password": "hunter2", "nested": {"api_token": "t"}}
    )
    (entry,) = await store.recent()
    assert entry.detail == {"password": "[redacted]", "nested": {"api_token": "[redacted]"}}


async def test_page_filters_and_cursor(db: Database) -> None:
    store = AuditStore(db)
    await _fill(store, 12)
    await store.add(500.0, "bob", "auth.login", "bob", outcome="denied")
    seen: list[str] = []
    before = None
    while True:
        entries, before = await store.page(AuditFilter(host="h0"), before, 4)
        seen += [e.target for e in entries]
        if before is None:
            break
    assert seen == [f"t{i}" for i in (10, 8, 6, 4, 2, 0)]
    entries, _ = await store.page(AuditFilter(action="thing.1", since=103.0, until=108.0), None, 50)
    assert [e.target for e in entries] == ["t7", "t4"]
    entries, _ = await store.page(AuditFilter(actor="bob", outcome="denied"), None, 50)
    assert [e.action for e in entries] == ["auth.login"]
    entries, _ = await store.page(AuditFilter(action="thing_"), None, 50)  # a LIKE wildcard is literal
    assert entries == []


async def test_migration_0005_chains_existing_rows(database_url: str) -> None:
    old = Database(database_url)
    try:
        await migrate.upgrade(old, "0003")
        async with old.write() as conn:
            for i in range(5):
                await conn.execute(
                    sa.text(
                        "INSERT INTO audit (at, actor, action, target, detail) VALUES (:at, 'a', 'b', :t, :d)"
                    ),
                    {"at": 10.0 + i, "t": f"t{i}", "d": '{"z": 1, "a": 2}'},
                )
    finally:
        await old.close()
    db = await Database.open(database_url)
    try:
        store = AuditStore(db)
        verdict = await store.verify()
        assert verdict.ok
        assert verdict.count == 5
        await store.add(20.0, "admin", "c", "d")
        verdict = await store.verify()
        assert verdict.ok
        assert verdict.count == 6
    finally:
        await db.close()


async def test_migration_0005_downgrades_and_upgrades_again(database_url: str) -> None:
    from alembic import command

    db = await Database.open(database_url)
    try:
        await AuditStore(db).add(1.0, "admin", "host.tags", "h1", host="h1")
        async with db.write() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrate.config(c), "0004"))
        assert await migrate.current(db) == "0004"
        await migrate.upgrade(db)
        verdict = await AuditStore(db).verify()
        assert verdict.ok
        assert verdict.count == 1
    finally:
        await db.close()
