"""The drain runner over a real SQLite store and a scripted migration service (pure run logic: order,
concurrency, skips, resume after a restart, never a stack twice)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockmesh.server.services.drainrun import DrainRunner, Live
from dockmesh.server.services.drainview import drain_view
from dockmesh.server.services.errors import Conflict
from dockmesh.store import Database
from dockmesh.store.audit import AuditStore
from dockmesh.store.drains import DrainRecord, DrainStack, DrainStore
from dockmesh.store.stacks import Deployment, StackStore
from dockmesh.store.users import UserRecord

CALLER = UserRecord(1, "alice", "", True)


@dataclass
class Snap:
    id: str
    state: str
    phase: str
    bytes_done: int
    bytes_total: int
    reason: str | None = None


class FakeMigrations:
    """Scripted outcomes per stack; counts starts and the most running at once."""

    def __init__(self, outcomes: dict[str, list[tuple[str, str | None]]] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.started: list[str] = []
        self.running = 0
        self.peak = 0
        self.final: dict[str, Snap] = {}
        self.gate = asyncio.Event()
        self.gate.set()

    async def preflight(self, caller: Any, stack: str, source: str, destination: str) -> Any:
        raise AssertionError("the runner does not plan")

    async def start(
        self, caller: Any, stack: str, source: str, destination: str, *, drain_id: str | None = None
    ) -> Any:
        script = self.outcomes.get(stack) or [("done", None)]
        state, reason = script.pop(0) if len(script) > 1 else script[0]
        if state == "busy":
            raise Conflict(
                "preflight_failed",
                "busy",
                problems=[{"code": "destination_offline", "message": "reconnecting"}],
            )
        if state == "refused":
            raise Conflict(
                "preflight_failed",
                "pre-flight failed",
                problems=[{"code": "port_collision", "message": "8080/tcp taken"}],
            )
        mid = f"m-{stack}-{len(self.started)}"
        self.started.append(stack)
        self.final[mid] = Snap(mid, state, "finished", 100, 100, reason)
        return Snap(mid, "running", "preflight", 0, 100)

    async def follow(self, migration_id: str) -> AsyncIterator[Any]:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            yield Snap(migration_id, "running", "copying", 50, 100)
            await self.gate.wait()
            await asyncio.sleep(0)
            yield self.final[migration_id]
        finally:
            self.running -= 1

    async def wait(self, migration_id: str) -> Any:
        return self.final[migration_id]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        yield database
    finally:
        await database.close()


def record(concurrency: int = 2) -> DrainRecord:
    return DrainRecord("d1", "src", "src", "tag:b", "smallest", concurrency, "running", "alice", 1.0)


def row(stack: str, position: int, state: str = "queued", **kw: Any) -> DrainStack:
    values: dict[str, Any] = {"destination": "h1", "destination_name": "one", "volume_bytes": 100}
    values.update(kw)
    grp = values.pop("grp", position)
    return DrainStack("d1", stack, position, grp, state, **values)


async def run(
    db: Database, rows: list[DrainStack], fake: FakeMigrations, concurrency: int = 2
) -> tuple[str, DrainStore]:
    store = DrainStore(db)
    await store.create(record(concurrency), rows)
    runner = DrainRunner(
        record(concurrency), CALLER, store, StackStore(db), fake, AuditStore(db), lambda: 5.0, Live()
    )
    return await runner.run(), store


async def test_moves_every_queued_stack_once_within_the_concurrency_limit(db: Database) -> None:
    fake = FakeMigrations()
    fake.gate.clear()
    rows = [row("a", 0), row("b", 1), row("c", 2), row("x", 3, "skipped", code="no_memory", destination=None)]
    task = asyncio.create_task(run(db, rows, fake, concurrency=2))
    while fake.running < 2:  # two are held at the gate; the third must wait for a free slot
        await asyncio.sleep(0.01)
    assert fake.started == ["a", "b"]
    fake.gate.set()
    status, store = await task
    assert status == "done"
    assert sorted(fake.started) == ["a", "b", "c"]
    assert fake.peak == 2
    states = {r.stack: (r.state, r.migration_id is not None) for r in await store.stacks("d1")}
    assert states == {"a": ("done", True), "b": ("done", True), "c": ("done", True), "x": ("skipped", False)}
    drain = await store.get("d1")
    assert drain is not None
    assert drain.status == "done"
    view = drain_view(drain, await store.stacks("d1"), None, 9.0)
    assert [m["stack"] for m in view["summary"]["moved"]] == ["a", "b", "c"]
    assert view["summary"]["skipped"][0]["code"] == "no_memory"
    assert view["bytes_done"] == view["bytes_total"] == 300
    actions = [e.action for e in await AuditStore(db).recent()]
    assert actions.count("drain.stack.done") == 3
    assert "drain.done" in actions


async def test_concurrency_one_runs_in_plan_order(db: Database) -> None:
    fake = FakeMigrations()
    await run(db, [row("b", 1), row("a", 0), row("c", 2)], fake, concurrency=1)
    assert fake.started == ["a", "b", "c"]
    assert fake.peak == 1


async def test_preflight_refusal_skips_the_stack_and_goes_on(db: Database) -> None:
    fake = FakeMigrations({"a": [("refused", None)]})
    status, store = await run(db, [row("a", 0), row("b", 1)], fake)
    assert status == "done"
    a, b = await store.stacks("d1")
    assert (a.state, a.code) == ("skipped", "port_collision")
    assert "8080/tcp" in (a.message or "")
    assert b.state == "done"


async def test_rolled_back_is_reported_and_failed_fails_the_drain(db: Database) -> None:
    fake = FakeMigrations(
        {"a": [("rolled_back", "health timed out")], "b": [("failed", "source unreachable")]}
    )
    status, store = await run(db, [row("a", 0), row("b", 1)], fake)
    assert status == "failed"
    a, b = await store.stacks("d1")
    assert (a.state, a.message) == ("rolled_back", "health timed out")
    assert (b.state, b.message) == ("failed", "source unreachable")


async def test_group_moves_together_in_one_worker(db: Database) -> None:
    fake = FakeMigrations()
    fake.gate.clear()
    rows = [row("a", 0, grp=0), row("b", 1, grp=0), row("c", 2, grp=1)]
    task = asyncio.create_task(run(db, rows, fake, concurrency=2))
    while fake.running < 2:
        await asyncio.sleep(0.01)
    assert fake.started == ["a", "c"]  # b follows a in the same worker, not alongside it
    fake.gate.set()
    await task
    assert fake.started == ["a", "c", "b"]


async def test_resume_waits_for_the_recorded_migration_and_never_starts_it_again(db: Database) -> None:
    fake = FakeMigrations()
    fake.final["m-old"] = Snap("m-old", "done", "finished", 100, 100)
    rows = [row("a", 0, "migrating", migration_id="m-old", attempts=1), row("b", 1)]
    status, store = await run(db, rows, fake)
    assert status == "done"
    assert fake.started == ["b"]
    assert [r.state for r in await store.stacks("d1")] == ["done", "done"]


async def test_resume_retries_a_migration_the_restart_rolled_back_once(db: Database) -> None:
    fake = FakeMigrations()
    fake.final["m-old"] = Snap(
        "m-old", "rolled_back", "finished", 10, 100, "interrupted: the server restarted during copying"
    )
    status, store = await run(db, [row("a", 0, "migrating", migration_id="m-old", attempts=1)], fake)
    assert status == "done"
    assert fake.started == ["a"]
    (a,) = await store.stacks("d1")
    assert (a.state, a.attempts) == ("done", 2)


async def test_interrupted_twice_is_reported_not_retried_forever(db: Database) -> None:
    fake = FakeMigrations()
    fake.final["m-old"] = Snap("m-old", "rolled_back", "finished", 0, 100, "interrupted: again")
    status, store = await run(db, [row("a", 0, "migrating", migration_id="m-old", attempts=2)], fake)
    assert fake.started == []
    (a,) = await store.stacks("d1")
    assert a.state == "rolled_back"
    assert status == "done"


async def _placed(db: Database, stack: str, host: str) -> None:
    stacks = StackStore(db)
    await stacks.save(stack, "services: {}\n", "", "alice", 1.0)
    await stacks.start_deployment(Deployment(f"dep-{host}", stack, host, 1, "done", "alice", 1.0))


async def test_resume_without_migration_id_settles_from_placement(db: Database) -> None:
    await _placed(db, "moved", "h1")  # on the destination only: it moved before the restart
    await _placed(db, "stayed", "src")
    fake = FakeMigrations()
    rows = [row("moved", 0, "migrating", attempts=1), row("stayed", 1, "migrating", attempts=1)]
    status, store = await run(db, rows, fake)
    assert status == "done"
    assert fake.started == ["stayed"]
    moved, stayed = await store.stacks("d1")
    assert moved.state == "done"
    assert moved.migration_id is None
    assert stayed.state == "done"


async def test_two_runners_at_once_start_each_stack_once(db: Database) -> None:
    fake = FakeMigrations()
    fake.gate.clear()
    store = DrainStore(db)
    await store.create(record(), [row("a", 0), row("b", 1), row("c", 2)])

    def runner() -> DrainRunner:
        return DrainRunner(record(), CALLER, store, StackStore(db), fake, AuditStore(db), lambda: 5.0, Live())

    first = asyncio.create_task(runner().run())
    second = asyncio.create_task(runner().run())
    while len(fake.started) < 3 and not (first.done() and second.done()):
        await asyncio.sleep(0.01)
    fake.gate.set()
    await asyncio.gather(first, second)
    assert sorted(fake.started) == ["a", "b", "c"]


async def test_a_stack_waits_for_its_hosts_to_reconnect(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dockmesh.server.services.drainrun.HOST_POLL", 0.001)
    asked: list[str] = []
    fake = FakeMigrations()

    async def online(host: str) -> bool:
        asked.append(host)
        assert fake.started == []  # nothing starts while a host is away
        return len(asked) > 4

    store = DrainStore(db)
    await store.create(record(), [row("a", 0)])
    runner = DrainRunner(
        record(), CALLER, store, StackStore(db), fake, AuditStore(db), lambda: 5.0, Live(), online
    )
    assert await runner.run() == "done"
    assert fake.started == ["a"]
    assert {"src", "h1"} <= set(asked)


async def test_a_transient_refusal_is_asked_again_then_the_stack_moves(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dockmesh.server.services.drainrun.PREFLIGHT_PAUSE", 0)
    fake = FakeMigrations({"a": [("busy", None), ("busy", None), ("done", None)]})
    status, store = await run(db, [row("a", 0)], fake)
    assert status == "done"
    assert fake.started == ["a"]
    (a,) = await store.stacks("d1")
    assert a.state == "done"


async def test_a_refusal_that_stays_transient_ends_skipped(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dockmesh.server.services.drainrun.PREFLIGHT_PAUSE", 0)
    fake = FakeMigrations({"a": [("busy", None)]})
    status, store = await run(db, [row("a", 0)], fake)
    (a,) = await store.stacks("d1")
    assert (a.state, a.code, a.message) == ("skipped", "destination_offline", "reconnecting")
    assert status == "done"
