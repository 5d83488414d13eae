"""Running one drain: its stacks through the migration service, a few at a time, every step persisted first.

The rows in `drain_stacks` are the truth; this module only moves them forward. A stack's row goes
`queued → migrating` by a conditional update before its migration starts, so a resumed runner and a
still-live one cannot both start it; the migration's id is written as soon as the service returns it.
After a server restart (docs/drains.md):
- a `migrating` row with a migration id waits for that migration's outcome (the migration service rolls an
  interrupted one back, or finishes it when only bookkeeping was left);
- an interrupted-then-rolled-back migration puts the stack back in the queue once (it is on the source
  again, nothing moved), so the drain resumes it;
- a `migrating` row without an id (the server stopped between the two writes) is settled from where the
  stack is placed now: on the destination only → done; otherwise queued again. Never a second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import ServiceError
from dockmesh.store.audit import AuditStore
from dockmesh.store.drains import DrainRecord, DrainStack, DrainStore
from dockmesh.store.stacks import StackStore

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 8
_INTERRUPTED = "interrupted"  # the migration service's reason prefix for a restart's rollback
_MAX_ATTEMPTS = 2
_TEXT = 1000
HOST_WAIT = 120.0  # how long a stack waits for its source and destination to be connected
HOST_POLL = 0.5
# Pre-flight refusals that a moment can cure (a host reconnecting has no link or metrics for a few
# seconds; a deploy or migration of the stack finishing): asked again a few times before the stack is
# skipped. Anything else (ports, images, architecture …) skips it at once.
TRANSIENT = frozenset(
    {"source_offline", "destination_offline", "deploy_in_progress", "migration_running", "disk_space"}
)
PREFLIGHT_TRIES = 4
PREFLIGHT_PAUSE = 5.0


class ProblemLike(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...


class PreflightLike(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def problems(self) -> Sequence[ProblemLike]: ...
    @property
    def volume_bytes(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...
    @property
    def arch(self) -> str: ...


class MigrationLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def bytes_done(self) -> int: ...
    @property
    def bytes_total(self) -> int: ...
    @property
    def reason(self) -> str | None: ...


class Migrations(Protocol):
    """What the drain needs of `services.migrations.MigrationService` (docs/migration.md)."""

    async def preflight(self, caller: Caller, stack: str, source: str, destination: str) -> Any: ...
    async def start(
        self, caller: Caller, stack: str, source: str, destination: str, *, drain_id: str | None = None
    ) -> Any: ...
    async def wait(self, migration_id: str) -> Any: ...
    def follow(self, migration_id: str) -> AsyncIterator[Any]: ...


@dataclass
class Live:
    """What the rows do not hold: the phase and bytes of running migrations, for followers. A version
    counter and an event wake every follower on each change; followers read a fresh view, so a slow one
    skips intermediate states rather than queueing them."""

    phases: dict[str, str] = field(default_factory=dict)
    bytes_done: dict[str, int] = field(default_factory=dict)
    bytes_total: dict[str, int] = field(default_factory=dict)
    started: float | None = None  # when this process began moving bytes (for the rate; resumes restart it)
    moved_here: int = 0  # bytes moved by this process (for the rate)
    version: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        self.version += 1
        self._wake.set()
        self._wake = asyncio.Event()

    async def wait_change(self, seen: int, timeout: float) -> None:
        if self.version != seen:
            return
        wake = self._wake
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)


def problems_text(problems: Sequence[Any]) -> tuple[str, str]:
    """(first code, every message joined): what a skipped row records from a pre-flight refusal."""
    items = list(problems)
    codes = [str(_field(p, "code")) for p in items] or ["preflight_failed"]
    messages = [str(_field(p, "message")) for p in items]
    return codes[0][:64], ("; ".join(messages) or "pre-flight failed")[:_TEXT]


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


class DrainRunner:
    """Drives one drain to its end; `run` returns when every stack row is final (or on cancel)."""

    def __init__(
        self,
        drain: DrainRecord,
        caller: Caller,
        store: DrainStore,
        stacks: StackStore,
        migrations: Migrations,
        audit: AuditStore,
        clock: Callable[[], float],
        live: Live,
        online: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.drain = drain
        self._caller = caller
        self._store = store
        self._stacks = stacks
        self._migrations = migrations
        self._audit = audit
        self._clock = clock
        self.live = live
        self._online = online

    async def run(self) -> str:
        rows = await self._store.stacks(self.drain.id)
        await self._recover([r for r in rows if r.state == "migrating"])
        rows = await self._store.stacks(self.drain.id)
        groups: dict[int, list[DrainStack]] = {}
        for row in rows:
            if row.state == "queued":
                groups.setdefault(row.grp, []).append(row)
        queue: asyncio.Queue[list[DrainStack]] = asyncio.Queue()
        for grp in sorted(groups, key=lambda g: min(r.position for r in groups[g])):
            queue.put_nowait(sorted(groups[grp], key=lambda r: r.position))
        workers = max(1, min(self.drain.concurrency, MAX_CONCURRENCY, queue.qsize() or 1))
        await asyncio.gather(*(self._worker(queue) for _ in range(workers)))
        return await self._finish()

    async def _worker(self, queue: asyncio.Queue[list[DrainStack]]) -> None:
        while not queue.empty():
            group = queue.get_nowait()
            for row in group:  # a group (shared external networks) moves together, one after another
                await self._move(row)

    async def _recover(self, rows: list[DrainStack]) -> None:
        for row in rows:
            if row.migration_id is not None:
                await self._await_outcome(row, row.migration_id)
                continue
            placed = {p.host for p in await self._stacks.placements(row.stack)}
            if row.destination in placed and self.drain.source not in placed:
                await self._settle(row, "done", None, "moved; the server restarted before it recorded it")
            else:
                await self._store.update_stack(
                    self.drain.id, row.stack, expect=("migrating",), state="queued", started_at=None
                )

    async def _hosts_back(self, *host_ids: str) -> None:
        """Wait (bounded) for the hosts to be connected: after a server restart the agents dial back
        within seconds, and a stack started before would be skipped as offline for no lasting reason."""
        if self._online is None:
            return
        for _ in range(int(HOST_WAIT / HOST_POLL)):
            if all([await self._online(h) for h in host_ids]):
                return
            await asyncio.sleep(HOST_POLL)

    async def _move(self, row: DrainStack) -> None:
        assert row.destination is not None
        await self._hosts_back(self.drain.source, row.destination)
        if not await self._store.update_stack(
            self.drain.id,
            row.stack,
            expect=("queued",),
            state="migrating",
            attempts=row.attempts + 1,
            started_at=self._clock(),
        ):
            return  # another runner has it (or it was settled meanwhile)
        self._mark(row.stack, "preflight", 0, row.volume_bytes)
        for attempt in range(PREFLIGHT_TRIES):
            try:
                migration = await self._migrations.start(
                    self._caller, row.stack, self.drain.source, row.destination, drain_id=self.drain.id
                )
                break
            except ServiceError as exc:
                problems = (exc.details or {}).get("problems") or []
                codes = {str(_field(p, "code")) for p in problems}
                if problems and codes <= TRANSIENT and attempt + 1 < PREFLIGHT_TRIES:
                    # A host that just reconnected (no metrics yet, a link being replaced): ask again.
                    await asyncio.sleep(PREFLIGHT_PAUSE)
                    await self._hosts_back(self.drain.source, row.destination)
                    continue
                code, message = problems_text(problems) if problems else (exc.code, exc.message)
                await self._settle(row, "skipped", code, message)
                return
            except Exception as exc:  # the migration never began: say so on the row, go on with the others
                log.exception("drain %s: starting the migration of %s failed", self.drain.id, row.stack)
                await self._settle(row, "failed", "start_failed", str(exc)[:_TEXT] or type(exc).__name__)
                return
        await self._store.update_stack(self.drain.id, row.stack, migration_id=migration.id)
        await self._audit.add(
            self._clock(),
            self._caller.username,
            "drain.stack.start",
            row.stack,
            {"drain": self.drain.id, "migration": migration.id, "destination": row.destination},
            host=self.drain.source,
        )
        await self._await_outcome(row, migration.id)

    async def _await_outcome(self, row: DrainStack, migration_id: str) -> None:
        try:
            async for snap in self._migrations.follow(migration_id):
                self._mark(row.stack, snap.phase, snap.bytes_done, snap.bytes_total)
            final = await self._migrations.wait(migration_id)
        except ServiceError as exc:
            await self._settle(row, "failed", exc.code, exc.message)
            return
        self._mark(row.stack, final.phase, final.bytes_done, final.bytes_total)
        reason = final.reason
        interrupted = final.state == "rolled_back" and (reason or "").startswith(_INTERRUPTED)
        fresh = await self._row(row.stack) if interrupted else None
        if (
            fresh is not None
            and fresh.attempts < _MAX_ATTEMPTS
            and await self._store.update_stack(
                self.drain.id, row.stack, expect=("migrating",), state="queued", migration_id=None
            )
        ):
            # Back on the source, nothing moved: queue it again (at most once more).
            await self._move(replace(fresh, state="queued", migration_id=None))
            return
        state = final.state if final.state in ("done", "rolled_back") else "failed"
        await self._settle(row, state, None if state == "done" else final.state, reason, final.bytes_done)

    async def _row(self, stack: str) -> DrainStack | None:
        return next((r for r in await self._store.stacks(self.drain.id) if r.stack == stack), None)

    def _mark(self, stack: str, phase: str, done: int, total: int) -> None:
        before = self.live.bytes_done.get(stack, 0)
        if self.live.started is None and done > 0:
            self.live.started = self._clock()
        self.live.moved_here += max(0, done - before)
        self.live.phases[stack] = phase
        self.live.bytes_done[stack] = done
        self.live.bytes_total[stack] = total
        self.live.changed()

    async def _settle(
        self, row: DrainStack, state: str, code: str | None, message: str | None, bytes_done: int = 0
    ) -> None:
        await self._store.update_stack(
            self.drain.id,
            row.stack,
            state=state,
            code=code,
            message=(message or None) and message[:_TEXT],
            bytes_done=bytes_done,
            finished_at=self._clock(),
        )
        self.live.phases.pop(row.stack, None)
        self.live.changed()
        await self._audit.add(
            self._clock(),
            self._caller.username,
            f"drain.stack.{state}",
            row.stack,
            {"drain": self.drain.id, "destination": row.destination, "reason": message},
            host=self.drain.source,
            outcome="ok" if state == "done" else state,
        )

    async def _finish(self) -> str:
        rows = await self._store.stacks(self.drain.id)
        counts = {
            s: sum(1 for r in rows if r.state == s) for s in ("done", "skipped", "rolled_back", "failed")
        }
        status = "failed" if counts["failed"] else "done"
        if await self._store.finish(self.drain.id, status, self._clock()):
            await self._audit.add(
                self._clock(),
                self._caller.username,
                f"drain.{status}",
                self.drain.source,
                {"drain": self.drain.id, **counts},
                host=self.drain.source,
                outcome="ok" if status == "done" else "failed",
            )
        self.live.changed()
        return status
