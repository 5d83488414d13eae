"""Moving one stack with its volumes from host A to host B (issue 13; the contract is docs/migration.md).

Order matters for the one promise made to the user — they end where they started, and the stack never
runs on both hosts: A is stopped before the copy; B's copy is verified before it is deployed; on any
failure B is brought down (and its copy discarded) *before* A is started again. Every phase is written to
the database before its side effects, so a server restart finds each unfinished migration at a known
phase and rolls it back (or, past the finish line, completes it) — it never resumes a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dockmesh.compose import ComposeError, load_project
from dockmesh.link import LinkClosed, RemoteError, RequestTimeout
from dockmesh.proto.methods import Stacks, Volumes
from dockmesh.server.directory import HostDirectory, HostRef
from dockmesh.server.localhost import LOCAL_ID
from dockmesh.server.services import access, preflight
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import Conflict, Invalid, NotFound, ServiceError
from dockmesh.server.services.preflight import Preflight
from dockmesh.server.services.stacks import ACTION_TIMEOUT, StackService, check_name
from dockmesh.server.services.volume_relay import relay_volume
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditStore
from dockmesh.store.stack_migrations import MigrationRecord, MigrationStore
from dockmesh.store.stacks import StackConflict, StackStore

log = logging.getLogger(__name__)

KEEP_SECONDS = 24 * 3600.0  # the source's volumes stay this long after a move (the safety window)
HEALTH_TIMEOUT = 300.0
ASK_TIMEOUT = 30.0
SAVE_EVERY = 1.0  # seconds between progress writes to the database during a copy
PUBLISH_EVERY = 1 << 20  # bytes between progress snapshots to followers
Facts = Callable[[str], dict[str, Any]]
Credentials = Callable[[HostRef, list[str]], Awaitable[dict[str, dict[str, str]]]]


class PreflightFailed(Conflict):
    pass


class _Failed(Exception):
    """A step failed after the pre-flight: roll back with this reason."""


class _Waiting(Exception):
    """A host the rollback needs is offline: try again when it is back."""


@dataclass(eq=False)
class _Run:
    record: MigrationRecord
    caller: Caller | None = None
    keep: float = KEEP_SECONDS
    task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, record: MigrationRecord) -> None:
        self.record = record
        self._wake.set()
        self._wake = asyncio.Event()


class MigrationService:
    def __init__(
        self,
        store: MigrationStore,
        stacks: StackService,
        stack_store: StackStore,
        agents: AgentStore,
        directory: HostDirectory,
        audit: AuditStore,
        clock: Callable[[], float],
        facts: Facts,
        credentials: Credentials | None = None,
        *,
        keep_seconds: float = KEEP_SECONDS,
        health_timeout: float = HEALTH_TIMEOUT,
        sweep_interval: float = 15.0,
    ) -> None:
        self._store = store
        self._stacks = stacks
        self._stack_store = stack_store
        self._agents = agents
        self._directory = directory
        self._audit = audit
        self._clock = clock
        self._facts = facts
        self._credentials = credentials
        self.keep_seconds = keep_seconds
        self.health_timeout = health_timeout
        self._sweep_interval = sweep_interval
        self._runs: dict[str, _Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._booted = clock()

    # --- lifecycle ----------------------------------------------------------------------------
    def start_background(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        tasks = [t for t in (self._sweeper, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sweeper = None

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def host_online(self, host_id: str) -> None:
        self._spawn(self._tidy())

    async def _sweep(self) -> None:
        await asyncio.sleep(min(1.0, self._sweep_interval))
        while True:
            await self._tidy()
            await asyncio.sleep(self._sweep_interval)

    async def _tidy(self) -> None:
        """Recover migrations no task is driving (a restart), expire safety windows, discard copies."""
        try:
            for record in await self._store.running():
                run = self._runs.get(record.id)
                # A row from before this process started (a restart), or a rollback that waits for a
                # host; never a migration this process is just starting (its run is not registered yet).
                orphan = run is None and record.created_at < self._booted
                if orphan or (run is not None and run.task is not None and run.task.done()):
                    run = self._runs.setdefault(record.id, _Run(record))
                    run.task = self._spawn(self._recover(run))
            for record in await self._store.chores(self._clock()):
                await self._chore(record)
        except Exception:
            log.exception("migration sweep failed; retrying at the next one")

    # --- reads --------------------------------------------------------------------------------
    async def get(self, caller: Caller, migration_id: str) -> MigrationRecord:
        record = await self._store.get(migration_id) if len(migration_id) <= 64 else None
        if record is not None:
            hosts = {h.id: h for h in await self._directory.all()}
            for host_id in (record.source, record.destination):
                host = hosts.get(host_id)
                if host is not None and access.STACKS_VIEW in access.rights_on(caller, host):
                    return record
        raise NotFound("migration_not_found", f"no migration with id {migration_id!r}")

    async def wait(self, migration_id: str) -> MigrationRecord:
        async for record in self.follow(migration_id):
            if record.final:
                return record
        raise NotFound("migration_not_found", f"no migration with id {migration_id!r}")

    async def follow(self, migration_id: str) -> AsyncGenerator[MigrationRecord, None]:
        """The record now, then on every change, ending with the final one."""
        run = self._runs.get(migration_id)
        if run is None:
            record = await self._store.get(migration_id)
            if record is None:
                return
            yield record
            if record.final:
                return
            run = self._runs.setdefault(record.id, _Run(record))
        while True:
            wake = run._wake
            record = run.record
            yield record
            if record.final:
                return
            await wake.wait()

    async def source_of(self, caller: Caller, stack: str, given: str | None) -> str:
        """The source host: `given`, else the one host the stack is deployed on."""
        if given is not None:
            return given
        await self._stacks.record(caller, check_name(stack))
        placed = sorted({p.host for p in await self._stack_store.placements(stack)})
        if len(placed) > 1:
            raise Invalid("invalid_from", f"stack {stack!r} is on {len(placed)} hosts: say which with 'from'")
        if not placed:
            raise Conflict("not_deployed", f"stack {stack!r} is not deployed anywhere: deploy it instead")
        return placed[0]

    # --- pre-flight ---------------------------------------------------------------------------
    async def _hosts(self, caller: Caller, source: str, destination: str) -> tuple[HostRef, HostRef]:
        if not isinstance(source, str) or not isinstance(destination, str):
            raise Invalid("invalid_field", "'host' and 'from' must be host ids")
        by_id = {h.id: h for h in await self._directory.all()}
        found = []
        for host_id in (source, destination):
            host = by_id.get(host_id)
            if host is None:
                raise access.not_found(host_id)
            access.check_host(caller, host, access.STACKS_DEPLOY)
            found.append(host)
        if source == destination:
            raise Invalid("invalid_field", "the destination is the host the stack is on")
        return found[0], found[1]

    async def preflight(self, caller: Caller, stack: str, source: str, destination: str) -> Preflight:
        """Every check, each a named problem; raises only for what the caller may not see or do."""
        check_name(stack)
        await self._stacks.record(caller, stack)  # it exists (NotFound otherwise)
        a, b = await self._hosts(caller, source, destination)
        pf = Preflight(stack, a.id, b.id)
        revision = await self._stack_store.revision(stack)
        assert revision is not None
        try:
            project = await asyncio.to_thread(load_project, stack, revision.compose, revision.env or None)
        except ComposeError as exc:
            pf.add("invalid_compose", exc.message)
            return pf
        pf.images = sorted({s.image for s in project.services.values()})
        pf.memory_bytes = preflight.memory_of(project)
        names, external = preflight.project_volumes(project)
        pf.problems.extend(external)
        pf.warnings.extend(preflight.mount_findings(project))
        placed = {p.host for p in await self._stack_store.placements(stack)}
        if a.id not in placed:
            pf.add("not_deployed", f"stack {stack!r} is not deployed on {a.name!r}")
        if b.id in placed:
            pf.add("already_deployed", f"stack {stack!r} is already deployed on {b.name!r}")
        if await self._store.running(stack):
            pf.add("migration_running", f"another migration of {stack!r} has not finished")
        for host in (a, b):
            if any(d.stack == stack for d in await self._stack_store.unsettled(host.id)):
                pf.add("deploy_in_progress", f"a deploy of {stack!r} on {host.name!r} has not finished")
        if b.id != LOCAL_ID:
            agent = await self._agents.get(b.id)
            if agent is not None and agent.cordoned:
                pf.add("destination_cordoned", f"host {b.name!r} is cordoned and takes no new stacks")
        source_facts, dest_facts = self._facts(a.id), self._facts(b.id)
        pf.arch, pf.engine = (
            str(source_facts.get("arch") or ""),
            str(source_facts.get("docker_version") or ""),
        )
        pf.problems.extend(preflight.compat_problems(source_facts, dest_facts))
        if not a.online:
            pf.add("source_offline", f"host {a.name!r} is offline")
        else:
            await self._source_checks(pf, a, names)
        if not b.online:
            pf.add("destination_offline", f"host {b.name!r} is offline")
        else:
            await self._destination_checks(pf, b, project, names)
        return pf

    async def _source_checks(self, pf: Preflight, a: HostRef, names: list[str]) -> None:
        try:
            answer = await self._ask(a, Volumes.SIZE, {"names": names}) if names else {}
        except ServiceError as exc:
            pf.add("source_offline", exc.message)
            return
        pf.volumes = preflight.sizes_from(answer, names)

    async def _destination_checks(self, pf: Preflight, b: HostRef, project: Any, names: list[str]) -> None:
        try:
            await self._ask(b, "ping", {})
            ports = preflight.rows_from(await self._ask(b, Volumes.PORTS, {}), "ports")
            auth = await self._credentials(b, pf.images) if self._credentials else {}
            asked = {"images": pf.images, "auth": auth or None}
            missing = preflight.missing_from(await self._ask(b, Volumes.IMAGES, asked), pf.images)
            existing = {v.get("name") for v in preflight.rows_from(await self._ask(b, "volumes.list", {}))}
        except ServiceError as exc:
            pf.add("destination_offline", exc.message)
            return
        for image, reason in missing.items():
            pf.add("image_unavailable", f"image {image!r} cannot be pulled on {b.name!r}: {reason}")
        pf.problems.extend(preflight.port_problems(project, ports))
        for name in names:
            if name in existing:
                pf.add("volume_exists", f"volume {name!r} already exists on {b.name!r}")
        pf.problems.extend(preflight.resource_problems(pf.volume_bytes, pf.memory_bytes, b.metrics))

    async def _ask(
        self, host: HostRef, method: str, params: dict[str, Any], timeout: float = ASK_TIMEOUT
    ) -> Any:
        return await self._stacks._ask(host, method, params, timeout)

    # --- start --------------------------------------------------------------------------------
    async def start(
        self,
        caller: Caller,
        stack: str,
        source: str,
        destination: str,
        *,
        drain_id: str | None = None,
        keep_seconds: float | None = None,
        health_timeout: float | None = None,
    ) -> MigrationRecord:
        pf = await self.preflight(caller, stack, source, destination)
        if not pf.ok:
            raise PreflightFailed(
                "preflight_failed",
                "; ".join(p.message for p in pf.problems[:5]),
                problems=[p.view() for p in pf.problems],
            )
        now = self._clock()
        record = MigrationRecord(
            id=uuid.uuid4().hex,
            stack=stack,
            source=pf.source,
            destination=pf.destination,
            actor=caller.username,
            state="running",
            phase="preflight",
            created_at=now,
            updated_at=now,
            drain_id=drain_id,
            bytes_total=pf.volume_bytes,
            volumes=[{"name": v.name, "bytes": v.bytes, "sha256": None, "done": False} for v in pf.volumes],
        )
        try:
            await self._store.start(record)
        except StackConflict as exc:
            raise PreflightFailed(
                "preflight_failed",
                f"another migration of {stack!r} has not finished",
                problems=[{"code": "migration_running", "message": f"migration {exc} has not finished"}],
            ) from None
        await self._audit_event(record, "migration.start", {"warnings": [w.view() for w in pf.warnings]})
        run = self._runs[record.id] = _Run(record, caller, keep_seconds or self.keep_seconds)
        run.task = self._spawn(self._drive(run, pf, health_timeout or self.health_timeout))
        return record

    async def _save(self, run: _Run, **changes: Any) -> MigrationRecord:
        record = await self._store.save(run.record, updated_at=self._clock(), **changes)
        run.publish(record)
        return record

    async def _host(self, host_id: str) -> HostRef:
        for host in await self._directory.all():
            if host.id == host_id:
                return host
        raise _Waiting(f"host {host_id!r} is not known")

    # --- the run ------------------------------------------------------------------------------
    async def _drive(self, run: _Run, pf: Preflight, health_timeout: float) -> None:
        try:
            await self._steps(run, pf, health_timeout)
        except asyncio.CancelledError:
            raise  # the server is stopping: the next start recovers from the recorded phase
        except Exception as exc:
            reason = exc.message if isinstance(exc, (ServiceError, RemoteError)) else str(exc)
            if not isinstance(exc, (_Failed, ServiceError, RemoteError)):
                log.exception("migration %s failed unexpectedly", run.record.id)
                reason = f"{type(exc).__name__}: {exc}"
            await self._roll_back(run, reason[:2000])
            return
        await self._finish(run, run.keep)

    async def _steps(self, run: _Run, pf: Preflight, health_timeout: float) -> None:
        caller = run.caller
        assert caller is not None
        record = run.record
        a, b = await self._host(record.source), await self._host(record.destination)
        await self._save(run, phase="stopping")
        await self._ask(a, Stacks.STOP, {"project": record.stack}, ACTION_TIMEOUT)
        await self._save(run, phase="copying", cleanup="pending")
        await self._copy(run, a, b, pf)
        await self._save(run, phase="deploying", cleanup="stack")
        deployment = await self._stacks.deploy(caller, record.stack, record.destination)
        await self._save(run, deploy_id=deployment.id)
        settled = await self._settled(deployment.id)
        if settled.state != "done":
            raise _Failed(
                f"the deploy on the destination ended {settled.state}: {settled.error or 'no reason'}"
            )
        await self._save(run, phase="health")
        await self._healthy(b, record.stack, health_timeout)
        await self._save(run, phase="finished")

    async def _copy(self, run: _Run, a: HostRef, b: HostRef, pf: Preflight) -> None:
        image = pf.images[0] if pf.images else ""
        if a.link is None or b.link is None:
            raise _Failed("a host went offline before the copy")
        done = published = 0
        last = [self._clock()]

        def progress(n: int) -> None:
            nonlocal done, published
            done += n
            if done - published < PUBLISH_EVERY:
                return
            published = done
            run.publish(replace(run.record, bytes_done=done))
            if self._clock() - last[0] >= SAVE_EVERY:
                last[0] = self._clock()
                self._spawn(self._store.save(run.record, updated_at=last[0], bytes_done=done))

        volumes = list(run.record.volumes)
        labels = {"com.docker.compose.project": run.record.stack}
        auth = await self._credentials(b, [image]) if self._credentials and image else {}
        for i, vol in enumerate(volumes):
            key = vol["name"].removeprefix(f"{run.record.stack}_")
            result = await relay_volume(
                a.link,
                b.link,
                name=vol["name"],
                image=image,
                migration=run.record.id,
                labels={**labels, "com.docker.compose.volume": key},
                progress=progress,
                auth=auth or None,
            )
            volumes[i] = {**vol, "sha256": result["sha256"], "done": True, "tar_bytes": result["bytes"]}
            await self._save(run, volumes=list(volumes), bytes_done=done)

    async def _settled(self, deploy_id: str) -> Any:
        while True:
            deployment = await self._stack_store.deployment(deploy_id)
            if deployment is not None and deployment.settled:
                return deployment
            run = self._stacks.deployer.get(deploy_id)
            if run is not None and run.result is None:
                async for event in run.follow():
                    if event.get("type") == "result":
                        break
            else:  # not followed in memory (a restart), or its result is being written: ask again shortly
                await asyncio.sleep(0.2)

    async def _healthy(self, b: HostRef, stack: str, timeout: float) -> None:
        """Every service running, and healthy where it has a health check, within `timeout`."""
        deadline = self._clock() + timeout
        while True:
            services = (await self._ask(b, Stacks.SERVICES, {"project": stack}))["services"]
            bad = [s for s in services if s.get("state") != "running" or s.get("health") == "unhealthy"]
            if services and not bad and all(s.get("health") in (None, "healthy") for s in services):
                return
            for s in bad:
                if s.get("health") == "unhealthy" or s.get("state") in ("exited", "dead"):
                    raise _Failed(
                        f"service {str(s.get('name'))[:64]!r} on the destination is "
                        f"{s.get('health') or s.get('state')}"
                    )
            if self._clock() >= deadline:
                raise _Failed(f"the stack was not healthy on the destination within {timeout:g}s")
            await asyncio.sleep(0.5)

    async def _finish(self, run: _Run, keep: float) -> None:
        """Healthy on B: take A's containers down (its volumes stay for the window) and record it."""
        record = run.record
        try:
            a = await self._host(record.source)
            await self._ask(a, Stacks.DOWN, {"project": record.stack, "volumes": False}, ACTION_TIMEOUT)
        except (ServiceError, _Waiting) as exc:
            # The stack runs on B and A's containers are stopped: harmless, so the move stands; the
            # log says what is left on A.
            log.warning("migration %s: could not remove the source's containers: %s", record.id, exc)
        await self._stack_store.remove_placement(record.stack, record.source)
        await self._save(
            run,
            state="done",
            phase="finished",
            keep_until=self._clock() + keep,
            source_volumes="kept" if record.volumes else "absent",
            cleanup="none",
        )
        await self._audit_event(run.record, "migration.done", {"keep_until": run.record.keep_until})

    # --- rollback and recovery ----------------------------------------------------------------
    async def _roll_back(self, run: _Run, reason: str) -> None:
        record = await self._save(run, phase="rolling_back", reason=reason)
        try:
            await self._undo(run)
        except _Waiting as exc:
            log.warning("migration %s waits to roll back: %s", record.id, exc)
            return  # the sweep and the hosts' hellos try again
        except Exception as exc:
            await self._save(run, state="failed", reason=f"{reason}; the rollback failed: {exc}")
            await self._audit_event(run.record, "migration.failed", {"reason": run.record.reason}, ok=False)
            return
        await self._save(run, state="rolled_back")
        await self._audit_event(run.record, "migration.rolled_back", {"reason": reason}, ok=False)

    async def _undo(self, run: _Run) -> None:
        """B down and its copy gone (when it may run the stack: before A starts), then A started."""
        record = run.record
        b = await self._host(record.destination)
        if record.cleanup == "stack":
            if not b.online:
                raise _Waiting("the destination is offline and may be running the stack")
            if record.deploy_id:
                with contextlib.suppress(ServiceError):
                    await self._ask(b, Stacks.CANCEL, {"deploy_id": record.deploy_id})
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._settled(record.deploy_id), ACTION_TIMEOUT)
            await self._ask(b, Stacks.DOWN, {"project": record.stack, "volumes": False}, ACTION_TIMEOUT)
            await self._stack_store.remove_placement(record.stack, record.destination)
        if record.cleanup in ("stack", "pending"):
            if b.online:
                await self._ask(b, Volumes.DISCARD, {"migration": record.id})
                record = await self._save(run, cleanup="done")
            else:
                record = await self._save(run, cleanup="pending")
        a = await self._host(record.source)
        if not a.online:
            raise _Waiting("the source is offline: the stack starts there when it is back")
        await self._ask(a, Stacks.START, {"project": record.stack}, ACTION_TIMEOUT)

    async def _recover(self, run: _Run) -> None:
        record = run.record
        if record.phase == "finished":
            await self._finish(run, self.keep_seconds)
            return
        reason = record.reason or f"interrupted: the server restarted during {record.phase}"
        await self._roll_back(run, reason)

    async def _chore(self, record: MigrationRecord) -> None:
        try:
            if record.cleanup == "pending":
                b = await self._host(record.destination)
                if b.online:
                    await self._ask(b, Volumes.DISCARD, {"migration": record.id})
                    await self._store.save(record, updated_at=self._clock(), cleanup="done")
            if record.source_volumes == "kept" and (record.keep_until or 0) <= self._clock():
                a = await self._host(record.source)
                if record.source in {p.host for p in await self._stack_store.placements(record.stack)}:
                    # The stack is deployed on the source again (moved back, redeployed): those volumes
                    # are its live data now, not the kept copy.
                    await self._store.save(record, updated_at=self._clock(), source_volumes="in_use")
                elif a.online:
                    for vol in record.volumes:
                        with contextlib.suppress(ServiceError):
                            await self._ask(a, "volumes.remove", {"name": vol["name"]})
                    await self._store.save(record, updated_at=self._clock(), source_volumes="removed")
                    await self._audit_event(record, "migration.volumes_removed", {})
        except (_Waiting, ServiceError, LinkClosed, RequestTimeout) as exc:
            log.info("migration %s: chore postponed: %s", record.id, exc)

    async def _audit_event(
        self, record: MigrationRecord, action: str, detail: dict[str, Any], *, ok: bool = True
    ) -> None:
        await self._audit.add(
            self._clock(),
            record.actor,
            action,
            f"{record.source}/{record.stack}",
            {"id": record.id, "destination": record.destination, "drain_id": record.drain_id, **detail},
            host=record.source,
            outcome="ok" if ok else "failed",
        )
