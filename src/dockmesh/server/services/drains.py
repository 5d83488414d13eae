"""Drain a host (issue 13): plan (dry run), start, follow, and resume after a server restart.

The drain cordons the source first (so nothing new lands on it while it empties), plans every stack
placed there onto the hosts the destination selector names (`server/drainplan.py`), persists the plan, and
runs it (`drainrun.py`). Who may: `hosts.manage` and `stacks.deploy` on the source (a drain is migrations
off it), and destinations are only the selected hosts where the caller holds `stacks.deploy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from typing import Any

from dockmesh.compose import ComposeError, load_project
from dockmesh.server.directory import HostDirectory, HostRef
from dockmesh.server.drainplan import ORDERS, Candidate, Plan, StackNeed, plan
from dockmesh.server.selector import SelectorError, parse
from dockmesh.server.services import access, maintenance
from dockmesh.server.services.access import Caller
from dockmesh.server.services.drainrun import MAX_CONCURRENCY, DrainRunner, Live, Migrations
from dockmesh.server.services.drainview import drain_view, plan_view
from dockmesh.server.services.errors import Conflict, Invalid, NotFound, ServiceError
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditStore
from dockmesh.store.drains import DrainConflict, DrainRecord, DrainStack, DrainStore
from dockmesh.store.stacks import StackStore
from dockmesh.store.users import UserStore

log = logging.getLogger(__name__)

# Pre-flight problems that concern the stack or its source, whatever the destination: the stack cannot
# move anywhere now. The others (a destination's disk, ports, images) are the planner's or the run's.
SOURCE_PROBLEMS = frozenset(
    {"source_offline", "not_deployed", "migration_running", "deploy_in_progress", "volume_external"}
)
FOLLOW_TICK = 1.0  # a follower gets a fresh view at least this often (time left moves on its own)


@dataclass(frozen=True)
class DrainRequest:
    source: str
    selector: str
    order: str = "smallest"
    concurrency: int = 1

    def checked(self) -> DrainRequest:
        if self.order not in ORDERS:
            raise Invalid("invalid_order", f"order must be one of {', '.join(ORDERS)}", key="order")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise Invalid(
                "invalid_concurrency", f"concurrency must be 1..{MAX_CONCURRENCY}", key="concurrency"
            )
        if not self.selector.strip():
            raise Invalid(
                "invalid_selector", "name the destination hosts (a host selector)", key="destinations"
            )
        return self


def candidate(host: HostRef, cordoned: bool, facts: dict[str, Any]) -> Candidate:
    """A destination as the planner sees it: free memory/disk from its last heartbeat (None: none yet)."""
    m = host.metrics or {}

    def free(total: str, used: str) -> int | None:
        t, u = m.get(total), m.get(used)
        return max(0, int(t) - int(u)) if isinstance(t, int) and isinstance(u, int) and t > 0 else None

    arch = facts.get("arch")
    return Candidate(
        host.id,
        host.name,
        online=host.online,
        cordoned=cordoned,
        arch=arch if isinstance(arch, str) and arch else None,
        memory_free=free("mem_total", "mem_used"),
        disk_free=free("disk_total", "disk_used"),
    )


def shared_of(name: str, compose: str, env: str) -> frozenset[str]:
    """The external volumes and networks a stack's compose file uses (stacks sharing one move together)."""
    try:
        project = load_project(name, compose, env or None)
    except ComposeError:
        return frozenset()
    volumes = {f"volume:{v.name}" for v in project.volumes.values() if v.external}
    networks = {f"network:{n.name}" for n in project.networks.values() if n.external}
    return frozenset(volumes | networks)


class DrainService:
    def __init__(
        self,
        store: DrainStore,
        stacks: StackStore,
        directory: HostDirectory,
        agents: AgentStore,
        users: UserStore,
        audit: AuditStore,
        migrations: Migrations,
        clock: Callable[[], float],
        facts: Callable[[str], dict[str, Any]],
    ) -> None:
        self._store = store
        self._stacks = stacks
        self._directory = directory
        self._agents = agents
        self._users = users
        self._audit = audit
        self._migrations = migrations
        self._clock = clock
        self._facts = facts  # host id → its hello facts (arch …)
        self._live: dict[str, Live] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # --- planning -----------------------------------------------------------------------------
    async def _source(self, caller: Caller, host_id: str) -> HostRef:
        for host in await self._directory.all():
            if host.id == host_id:
                access.check_host(caller, host, access.HOSTS_MANAGE)
                access.check_host(caller, host, access.STACKS_DEPLOY)
                return host
        raise access.not_found(host_id)

    async def check_source(self, caller: Caller, host_id: str) -> None:
        """404 (unknown or out of scope) or 403 unless the caller may drain this host."""
        await self._source(caller, host_id)

    @staticmethod
    def selector_of(destinations: str | list[str]) -> str:
        """One selector from the API's `destinations`: a selector, or a list whose items are each a host
        id (exactly), or a selector; the drain may use any host of any item."""
        items = [destinations] if isinstance(destinations, str) else list(destinations)
        parts = []
        for item in items:
            text = item.strip()
            if not text:
                raise Invalid("invalid_selector", "an empty destination", key="destinations")
            try:
                parse(text)
            except SelectorError as exc:
                raise Invalid(
                    "invalid_selector", f"destinations: {exc.message} (at {exc.position})", key="destinations"
                ) from None
            parts.append(text)
        if len(parts) == 1:
            return parts[0]
        return " or ".join(f"({p})" for p in parts)

    async def plan(self, caller: Caller, request: DrainRequest) -> tuple[HostRef, Plan]:
        """The plan a drain would run now (the dry run shows it; `start` persists and runs it)."""
        request = request.checked()
        source = await self._source(caller, request.source)
        cordoned = await maintenance.cordoned_ids(self._agents)
        hosts = [
            h
            for h in await self._directory.select(request.selector, caller, access.STACKS_DEPLOY)
            if h.id != source.id
        ]
        candidates = [candidate(h, h.id in cordoned, self._facts(h.id)) for h in hosts]
        usable = [c for c in candidates if c.online and not c.cordoned]
        needs = [
            await self._need(caller, p.stack, source.id, usable[0].id if usable else None)
            for p in await self._stacks.placements()
            if p.host == source.id
        ]
        return source, plan(source.id, needs, candidates, request.order)

    async def _need(self, caller: Caller, stack: str, source: str, probe: str | None) -> StackNeed:
        """A stack's sizes from the migration pre-flight (against any usable destination: the source-side
        facts are the same for all), and its shared external volumes/networks from its compose file."""
        shared: frozenset[str] = frozenset()
        record = await self._stacks.get(stack)
        revision = await self._stacks.revision(stack) if record is not None else None
        if revision is None:
            return StackNeed(stack, problem=("stack_not_found", "the stack's record is gone"))
        shared = shared_of(stack, revision.compose, revision.env)
        if probe is None:
            return StackNeed(stack, shared=shared)
        try:
            pf = await self._migrations.preflight(caller, stack, source, probe)
        except ServiceError as exc:
            return StackNeed(stack, shared=shared, problem=(exc.code, exc.message))
        blocking = [p for p in pf.problems if p.code in SOURCE_PROBLEMS]
        return StackNeed(
            stack,
            volume_bytes=int(pf.volume_bytes),
            memory_bytes=int(pf.memory_bytes),
            arch=pf.arch or None,
            shared=shared,
            problem=(blocking[0].code, "; ".join(p.message for p in blocking)) if blocking else None,
        )

    async def dry_run(self, caller: Caller, request: DrainRequest) -> dict[str, Any]:
        source, planned = await self.plan(caller, request)
        return plan_view(source, request.selector, planned)

    # --- running ------------------------------------------------------------------------------
    async def start(self, caller: Caller, request: DrainRequest) -> DrainRecord:
        """Cordon the source, persist the plan, run it; returns at once with the drain's record."""
        request = request.checked()
        source, planned = await self.plan(caller, request)
        await maintenance.set_cordoned(self._agents, self._audit, self._clock(), caller, source.id, True)
        drain = DrainRecord(
            uuid.uuid4().hex,
            source.id,
            source.name,
            request.selector,
            request.order,
            request.concurrency,
            "running",
            caller.username,
            self._clock(),
        )
        rows = [
            DrainStack(
                drain.id,
                s.stack,
                s.position,
                s.group,
                "skipped" if s.skipped else "queued",
                destination=s.destination,
                destination_name=s.destination_name,
                code=s.skip_code,
                message=s.skip_message,
                volume_bytes=s.volume_bytes,
                finished_at=drain.created_at if s.skipped else None,
            )
            for s in planned.steps
        ]
        try:
            await self._store.create(drain, rows)
        except DrainConflict as exc:
            raise Conflict("drain_running", f"host {source.name} is being drained already ({exc})") from None
        await self._audit.add(
            drain.created_at,
            caller.username,
            "drain.start",
            source.id,
            {
                "drain": drain.id,
                "destinations": request.selector,
                "order": request.order,
                "moving": len(planned.moving),
                "skipped": [{"stack": s.stack, "code": s.skip_code} for s in planned.skipped],
            },
            host=source.id,
        )
        self._launch(drain, caller)
        return drain

    def _launch(self, drain: DrainRecord, caller: Caller) -> None:
        live = self._live.setdefault(drain.id, Live())
        runner = DrainRunner(
            drain,
            caller,
            self._store,
            self._stacks,
            self._migrations,
            self._audit,
            self._clock,
            live,
            self._host_online,
        )
        task = asyncio.create_task(self._drive(runner))
        self._tasks[drain.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(drain.id, None))

    async def _drive(self, runner: DrainRunner) -> None:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise  # the server is stopping: the rows say where it stopped, the next start resumes
        except Exception as exc:
            log.exception("drain %s failed", runner.drain.id)
            with contextlib.suppress(Exception):
                await self._store.finish(runner.drain.id, "failed", self._clock(), str(exc)[:1000])
            runner.live.changed()

    async def _host_online(self, host_id: str) -> bool:
        return any(h.id == host_id and h.online for h in await self._directory.all())

    async def resume(self) -> int:
        """Pick up every drain a stopped server left running; returns how many."""
        count = 0
        for drain in await self._store.running():
            if drain.id in self._tasks:
                continue
            user = await self._users.by_username(drain.actor)
            if user is None:
                await self._store.finish(
                    drain.id,
                    "failed",
                    self._clock(),
                    f"user {drain.actor} was removed; start the drain again",
                )
                continue
            self._launch(drain, user)
            count += 1
        return count

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self, drain_id: str) -> None:
        """Until the drain's runner in this process ends (tests, the CLI's server-side counterpart)."""
        task = self._tasks.get(drain_id)
        if task is not None:
            await asyncio.shield(task)

    # --- reading ------------------------------------------------------------------------------
    async def _visible(self, caller: Caller, drain_id: str) -> DrainRecord:
        drain = await self._store.get(drain_id)
        if drain is not None:
            for host in await self._directory.all():
                if host.id == drain.source and access.HOSTS_VIEW in access.rights_on(caller, host):
                    return drain
            if drain.source not in {h.id for h in await self._directory.all()} and access.is_admin(caller):
                return drain  # the source was removed since; administrators still see its record
        raise NotFound("drain_not_found", f"no drain with id {drain_id!r}")

    async def get(self, caller: Caller, drain_id: str) -> dict[str, Any]:
        drain = await self._visible(caller, drain_id)
        return await self._view(caller, drain, await self._store.stacks(drain.id))

    async def _view(self, caller: Caller, drain: DrainRecord, rows: list[DrainStack]) -> dict[str, Any]:
        """The drain as this caller may see it: a destination out of the caller's scope is invisible
        (its id and name are left out), as every out-of-scope host is."""
        hidden = {h.id for h in await self._directory.all() if not access.visible(caller, h)}
        rows = [
            replace(r, destination="hidden", destination_name="(out of your scope)")
            if r.destination in hidden
            else r
            for r in rows
        ]
        return drain_view(drain, rows, self._live.get(drain.id), self._clock())

    async def recent(self, caller: Caller, source: str) -> list[DrainRecord]:
        await self._source_visible(caller, source)
        return await self._store.recent(source, limit=20)

    async def _source_visible(self, caller: Caller, host_id: str) -> None:
        for host in await self._directory.all():
            if host.id == host_id:
                access.check_host(caller, host, access.HOSTS_VIEW)
                return
        raise access.not_found(host_id)

    async def follow(self, caller: Caller, drain_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """The drain's view now, then again on every change (at least every FOLLOW_TICK), until final."""
        await self._visible(caller, drain_id)
        live = self._live.setdefault(drain_id, Live())
        while True:
            seen = live.version
            current = await self._store.get(drain_id)
            assert current is not None
            yield await self._view(caller, current, await self._store.stacks(drain_id))
            if current.status != "running":
                return
            await live.wait_change(seen, FOLLOW_TICK)
