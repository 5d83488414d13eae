"""The drain rows on both engines: plan and record in one transaction, guarded state moves, resume list."""

from __future__ import annotations

import pytest

from dockmesh.store import Database
from dockmesh.store.drains import DrainConflict, DrainRecord, DrainStack, DrainStore


def drain(drain_id: str = "d1", source: str = "h-src") -> DrainRecord:
    return DrainRecord(drain_id, source, "src", "tag:b", "smallest", 2, "running", "admin", 100.0)


def rows(drain_id: str = "d1") -> list[DrainStack]:
    return [
        DrainStack(drain_id, "web", 0, 0, "queued", "h1", "one", volume_bytes=10),
        DrainStack(drain_id, "db", 1, 1, "skipped", code="no_memory", message="too big"),
    ]


@pytest.fixture
def store(db: Database) -> DrainStore:
    return DrainStore(db)


async def test_create_and_read_back(store: DrainStore) -> None:
    await store.create(drain(), rows())
    got = await store.get("d1")
    assert got == drain()
    stacks = await store.stacks("d1")
    assert [s.stack for s in stacks] == ["web", "db"]
    assert stacks[0].volume_bytes == 10
    assert stacks[1].code == "no_memory"
    assert not stacks[0].final
    assert stacks[1].final
    assert [d.id for d in await store.running()] == ["d1"]
    assert await store.get("nope") is None


async def test_second_running_drain_of_a_source_conflicts_and_writes_nothing(store: DrainStore) -> None:
    await store.create(drain(), rows())
    with pytest.raises(DrainConflict, match="d1"):
        await store.create(drain("d2"), rows("d2"))
    assert await store.get("d2") is None
    assert await store.stacks("d2") == []
    await store.create(drain("d3", source="other"), rows("d3"))  # another source is fine


async def test_guarded_stack_move_happens_once(store: DrainStore) -> None:
    await store.create(drain(), rows())
    assert await store.update_stack("d1", "web", expect=("queued",), state="migrating", migration_id="m1")
    assert not await store.update_stack("d1", "web", expect=("queued",), state="migrating", migration_id="m2")
    (web, _db) = await store.stacks("d1")
    assert web.state == "migrating"
    assert web.migration_id == "m1"


async def test_finish_is_final_once(store: DrainStore) -> None:
    await store.create(drain(), rows())
    assert await store.finish("d1", "done", 200.0)
    assert not await store.finish("d1", "failed", 300.0, "late")
    got = await store.get("d1")
    assert got is not None
    assert (got.status, got.finished_at, got.error) == ("done", 200.0, None)
    assert await store.running() == []
    assert [d.id for d in await store.recent("h-src")] == ["d1"]
    with pytest.raises(ValueError, match="final"):
        await store.finish("d1", "running", 1.0)
