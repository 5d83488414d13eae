"""Stack records, revisions with diffs, deployments and placements, on both engines; migration 0003."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from dockmesh.store import Database, migrate
from dockmesh.store.agents import AgentStore
from dockmesh.store.stacks import Deployment, StackConflict, StackStore, unified_diff

V1 = "services:\n  web:\n    image: local/busybox:1\n"
V2 = "services:\n  web:\n    image: local/busybox:1\n    command: sleep 9\n"


@pytest.fixture
def store(db: Database) -> StackStore:
    return StackStore(db)


async def test_first_save_creates_revision_one_with_its_diff(store: StackStore) -> None:
    record, changed = await store.save("web", V1, "A=1\n", "admin", 100.0)
    assert changed
    assert record.revision == 1
    assert not record.allow_privileged
    rev = await store.revision("web")
    assert rev is not None
    assert (rev.number, rev.compose, rev.env, rev.author, rev.at) == (1, V1, "A=1\n", "admin", 100.0)
    assert "+++ b/compose.yaml" in rev.diff
    assert "+A=1" in rev.diff


async def test_every_save_keeps_the_previous_revision(store: StackStore) -> None:
    await store.save("web", V1, "", "admin", 100.0)
    record, changed = await store.save("web", V2, "", "bob", 200.0)
    assert changed
    assert record.revision == 2
    assert record.created_at == 100.0
    assert record.updated_at == 200.0
    first, second = await store.revision("web", 1), await store.revision("web", 2)
    assert first is not None
    assert first.compose == V1
    assert second is not None
    assert second.compose == V2
    assert second.author == "bob"
    assert second.diff == unified_diff(V1, V2, "", "")
    assert "+    command: sleep 9" in second.diff
    assert "compose.yaml" in second.diff
    listed = await store.revisions("web")
    assert [r.number for r in listed] == [2, 1]
    assert listed[0].diff == second.diff


async def test_same_text_again_adds_no_revision_but_the_flag_changes(store: StackStore) -> None:
    await store.save("web", V1, "", "admin", 100.0)
    record, changed = await store.save("web", V1, "", "admin", 150.0)
    assert not changed
    assert record.revision == 1
    assert record.updated_at == 100.0
    record, changed = await store.save("web", V1, "", "admin", 160.0, allow_privileged=True)
    assert not changed
    assert record.revision == 1
    assert record.allow_privileged
    stored = await store.get("web")
    assert stored is not None
    assert stored.allow_privileged
    # None keeps it.
    record, _ = await store.save("web", V2, "", "admin", 170.0)
    assert record.allow_privileged
    assert record.revision == 2


async def test_concurrent_saves_take_distinct_numbers(store: StackStore) -> None:
    await store.save("web", V1, "", "admin", 100.0)
    texts = [V1 + f"# {i}\n" for i in range(6)]
    results = await asyncio.gather(
        *(store.save("web", t, "", "admin", 200.0 + i) for i, t in enumerate(texts)), return_exceptions=True
    )
    numbers = sorted(r[0].revision for r in results if not isinstance(r, BaseException))
    assert all(isinstance(r, (tuple, StackConflict)) for r in results), results
    assert len(set(numbers)) == len(numbers)
    record = await store.get("web")
    assert record is not None
    assert record.revision == 1 + len(numbers)


def _deploy(deploy_id: str, host: str = "h1", revision: int = 1, at: float = 300.0) -> Deployment:
    return Deployment(deploy_id, "web", host, revision, "pending", "admin", at)


async def test_deployment_lifecycle_settles_once(store: StackStore) -> None:
    await store.save("web", V1, "", "admin", 100.0)
    await store.start_deployment(_deploy("d1"))
    assert [p.deploy_id for p in await store.placements("web")] == ["d1"]
    assert await store.set_running("d1")
    assert [d.id for d in await store.unsettled("h1")] == ["d1"]
    assert await store.unsettled("h2") == []
    services = [{"name": "web", "state": "running"}]
    assert await store.settle("d1", "done", services=services, error=None, now=400.0)
    # A late answer (a reconcile racing the stream's result) cannot change the outcome.
    assert not await store.settle("d1", "failed", services=None, error="late", now=401.0)
    assert not await store.set_running("d1")
    d = await store.deployment("d1")
    assert d is not None
    assert (d.state, d.services, d.error, d.finished_at) == ("done", services, None, 400.0)
    assert d.settled
    assert await store.unsettled() == []
    with pytest.raises(ValueError, match="not a final state"):
        await store.settle("d1", "running", services=None, error=None, now=1.0)


async def test_placement_follows_the_latest_deploy_and_blocks_delete(store: StackStore) -> None:
    await store.save("web", V1, "", "admin", 100.0)
    await store.start_deployment(_deploy("d1", "h1", 1, 300.0))
    await store.settle("d1", "done", services=[], error=None, now=310.0)
    await store.save("web", V2, "", "admin", 350.0)
    await store.start_deployment(_deploy("d2", "h1", 2, 400.0))
    await store.start_deployment(_deploy("d3", "h2", 2, 410.0))
    placements = await store.placements()
    assert [(p.host, p.deploy_id, p.revision, p.state) for p in placements] == [
        ("h1", "d2", 2, "pending"),
        ("h2", "d3", 2, "pending"),
    ]
    assert [d.id for d in await store.deployments("web")] == ["d3", "d2", "d1"]
    with pytest.raises(StackConflict, match="h1, h2"):
        await store.delete("web")
    assert await store.get("web") is not None
    assert await store.remove_placement("web", "h1")
    assert await store.remove_placement("web", "h2")
    assert not await store.remove_placement("web", "h2")
    assert await store.delete("web")
    assert await store.get("web") is None
    assert await store.revision("web", 1) is None
    assert await store.deployment("d1") is None
    assert not await store.delete("web")


async def test_one_unsettled_deploy_per_stack_and_host(store: StackStore) -> None:
    await store.save("web", V1, "", "admin", 100.0)
    results = await asyncio.gather(
        *(store.start_deployment(_deploy(f"d{i}", "h1")) for i in range(4)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, StackConflict) for r in results if r is not None)
    await store.start_deployment(_deploy("other-host", "h2"))  # another host is free
    winner = (await store.placements("web"))[0].deploy_id
    await store.settle(winner, "done", services=[], error=None, now=1.0)
    await store.start_deployment(_deploy("next", "h1"))  # settled: the next may start


async def test_unknown_names_answer_none(store: StackStore) -> None:
    assert await store.get("nope") is None
    assert await store.revision("nope") is None
    assert await store.revisions("nope") == []
    assert await store.all() == []


async def test_migration_0003_upgrades_an_existing_database(database_url: str) -> None:
    """A database at 0002 (agents in it) gains the stack tables and keeps its rows."""
    old = Database(database_url)
    try:
        await migrate.upgrade(old, "0002")
        await AgentStore(old).create("web-1", "h", 10.0, 1.0)
        async with old.read() as conn:
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert "stacks" not in names
    finally:
        await old.close()
    db = await Database.open(database_url)
    try:
        assert await migrate.current(db) == migrate.head() == "0005"
        assert [a.name for a in await AgentStore(db).all()] == ["web-1"]
        record, _ = await StackStore(db).save("web", V1, "", "admin", 1.0)
        assert record.revision == 1
    finally:
        await db.close()
