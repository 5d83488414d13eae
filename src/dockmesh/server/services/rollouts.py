"""Upgrade rollouts (issue 12): plan the waves, persist them, drive them one wave at a time, halt on failure.

The plan is `server/rollout.py` (pure); this drives it. A wave's online hosts are offered the upgrade at
once (`UpgradeService.offer`), an offline one when it connects; each host's outcome is read from its
upgrade state after this offer. The runner wakes when an upgrade state changes or an agent connects, and at
least every TICK seconds (the wave's deadline moves on its own). docs/upgrades.md "Rollouts".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from dockmesh.proto.manifest import ManifestError, parse_version
from dockmesh.server.directory import HostDirectory
from dockmesh.server.gateway import Gateway
from dockmesh.server.localhost import LOCAL_ID
from dockmesh.server.rollout import OPEN, Candidate, PlanError, decide, expire, parse_steps, plan
from dockmesh.server.selector import MAX_LENGTH
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    Unavailable,
)
from dockmesh.server.services.upgrades import SYSTEM, UNSETTLED, UpgradeService
from dockmesh.store.audit import AuditEvent
from dockmesh.store.rollouts import RolloutConflict, RolloutHost, RolloutRecord, RolloutStore

log = logging.getLogger(__name__)

TICK = 5.0
DEFAULT_WAVE_TIMEOUT = 1800.0
WAVE_TIMEOUT_RANGE = (30.0, 86400.0)


def up_to_date(version: object, target: str) -> bool:
    try:
        return parse_version(version) >= parse_version(target)
    except ManifestError:
        return False


class RolloutService:
    def __init__(
        self,
        store: RolloutStore,
        upgrades: UpgradeService,
        directory: HostDirectory,
        gateway: Gateway,
        clock: Callable[[], float],
        tick: float = TICK,
    ) -> None:
        self._store = store
        self._upgrades = upgrades
        self._directory = directory
        self._gateway = gateway
        self._clock = clock
        self._tick = tick
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        upgrades.on_change.append(lambda _host: self._wake.set())
        gateway.on_online.append(lambda _host: self._wake.set())

    # --- starting -----------------------------------------------------------------------------
    async def start(
        self,
        caller: Caller,
        waves: list[str],
        hosts: str = "all",
        max_failure_rate: float = 0.0,
        wave_timeout: float = DEFAULT_WAVE_TIMEOUT,
    ) -> dict[str, Any]:
        access.require_any(caller, access.AGENTS_MANAGE)
        try:
            steps = parse_steps(waves)
        except PlanError as exc:
            raise Invalid("invalid_wave", exc.message, key="waves") from None
        if not 0.0 <= max_failure_rate <= 1.0 or math.isnan(max_failure_rate):
            raise Invalid(
                "invalid_rate", "max_failure_rate is a fraction from 0 to 1", key="max_failure_rate"
            )
        low, high = WAVE_TIMEOUT_RANGE
        if not low <= wave_timeout <= high:
            raise Invalid(
                "invalid_timeout", f"wave_timeout is {low:.0f} to {high:.0f} seconds", key="wave_timeout"
            )
        if len(hosts) > MAX_LENGTH:
            raise Invalid("invalid_selector", f"hosts is at most {MAX_LENGTH} characters", key="hosts")
        if await self._upgrades.policy() != "manual":
            raise Conflict(
                "policy_automatic",
                "the upgrade policy is automatic (every agent upgrades when it connects): "
                "set it to manual first (`dockmesh upgrades policy manual`)",
            )
        if self._upgrades.manifests.offer() is None:
            raise Conflict(
                "no_artifact", "this server has no agent artifact to offer; see `dockmesh build-agent`"
            )
        version = self._upgrades.version
        selected = [
            h for h in await self._directory.select(hosts, caller, access.AGENTS_MANAGE) if h.id != LOCAL_ID
        ]
        if not selected:
            raise Invalid("no_hosts", f"no agent you may upgrade matches {hosts!r}", key="hosts")
        records = await self._upgrades.records()
        now = self._clock()
        rollout = RolloutRecord(
            uuid.uuid4().hex,
            version,
            hosts,
            tuple(s.text for s in steps),
            float(max_failure_rate),
            float(wave_timeout),
            "running",
            0,
            now,
            caller.username,
            now,
        )
        rows = []
        planned = plan([Candidate(h.id, h.name, h.tags) for h in selected], steps)
        for index, wave in enumerate(planned):
            for position, host in enumerate(wave):
                conn = self._gateway.conn(host.id)
                known = conn.facts.get("version") if conn else None
                if known is None and host.id in records:
                    known = records[host.id].current
                state = "current" if up_to_date(known, version) else "pending"
                rows.append(RolloutHost(rollout.id, host.id, host.name, index, position, state))
        detail = {
            "version": version,
            "hosts": hosts,
            "waves": list(rollout.steps),
            "sizes": [len(w) for w in planned],
            "max_failure_rate": rollout.max_failure_rate,
        }
        event = AuditEvent(now, caller.username, "rollout.started", rollout.id, detail)
        try:
            await self._store.create(rollout, rows, event)
        except RolloutConflict as exc:
            raise Conflict(
                "rollout_running", f"rollout {exc} is still running: cancel it or wait for it"
            ) from None
        self._launch(rollout.id)
        return await self._view(caller, rollout, rows)

    def _launch(self, rollout_id: str) -> None:
        task = asyncio.create_task(self._run(rollout_id))
        self._tasks[rollout_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(rollout_id, None))

    async def resume(self) -> int:
        """Pick up every rollout a stopped server left running; returns how many."""
        count = 0
        for rollout in await self._store.running():
            if rollout.id in self._tasks:
                continue
            if rollout.version != self._upgrades.version:
                now_serving = self._upgrades.version
                reason = f"this server now serves {now_serving}, not {rollout.version}: start a new rollout"
                await self._finish(rollout, "halted", reason)
                continue
            self._launch(rollout.id)
            count += 1
        return count

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self, rollout_id: str) -> None:
        """Until the rollout's runner in this process ends (tests)."""
        task = self._tasks.get(rollout_id)
        if task is not None:
            await asyncio.shield(task)

    # --- driving ------------------------------------------------------------------------------
    async def _run(self, rollout_id: str) -> None:
        while True:
            self._wake.clear()  # before reading: a change from here on wakes the wait below
            rollout = await self._store.get(rollout_id)
            if rollout is None or rollout.status != "running":
                return
            try:
                pause = await self._step(rollout)
            except asyncio.CancelledError:
                raise  # the server is stopping: the rows say where it stopped, the next start resumes
            except Exception as exc:
                log.exception("rollout %s failed", rollout_id)
                with contextlib.suppress(Exception):
                    await self._finish(rollout, "halted", f"the server failed driving it: {exc}"[:500])
                return
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def _step(self, rollout: RolloutRecord) -> float:
        """Move the current wave on; returns how long to wait before looking again (0: at once)."""
        now = self._clock()
        rows = [h for h in await self._store.hosts(rollout.id) if h.wave == rollout.wave]
        records = await self._upgrades.records()
        for row in rows:
            if row.state == "pending":
                await self._offer(rollout, row, now)
            elif row.state == "offered":
                record = records.get(row.host_id)
                if (
                    record is not None
                    and record.target == rollout.version
                    and record.attempt_at is not None
                    and row.offered_at is not None
                    and record.attempt_at >= row.offered_at
                    and record.state in ("done", *UNSETTLED)
                ):
                    error = record.error if record.state != "done" else None
                    await self._store.update_host(
                        rollout.id, row.host_id, "offered", state=record.state, error=error, finished_at=now
                    )
        deadline = rollout.wave_started_at + rollout.wave_timeout
        rows = [h for h in await self._store.hosts(rollout.id) if h.wave == rollout.wave]
        if now >= deadline:
            for row in rows:
                if row.state in OPEN:
                    state, error = expire(row.state)
                    await self._store.update_host(
                        rollout.id, row.host_id, row.state, state=state, error=error, finished_at=now
                    )
            rows = [h for h in await self._store.hosts(rollout.id) if h.wave == rollout.wave]
        verdict = decide([h.state for h in rows], rollout.max_failure_rate)
        if verdict.outcome == "halt":
            await self._finish(rollout, "halted", f"wave {rollout.wave + 1}: {verdict.reason}")
            return 0
        if verdict.outcome == "next":
            if rollout.wave + 1 >= len(rollout.steps):
                await self._finish(rollout, "completed", None)
            else:
                await self._store.advance(rollout.id, rollout.wave, self._clock())
            return 0
        return max(0.0, min(self._tick, deadline - now))

    async def _offer(self, rollout: RolloutRecord, row: RolloutHost, now: float) -> None:
        conn = self._gateway.conn(row.host_id)
        if conn is None:
            return  # offline: offered when it connects, while the wave lasts
        if up_to_date(conn.facts.get("version"), rollout.version):
            await self._store.update_host(
                rollout.id, row.host_id, "pending", state="current", finished_at=now
            )
            return
        if not await self._store.update_host(
            rollout.id, row.host_id, "pending", state="offered", offered_at=now
        ):
            return
        try:
            await self._upgrades.offer(row.host_id, rollout.actor)
        except Unavailable:  # it went away between the look and the offer
            await self._store.update_host(
                rollout.id, row.host_id, "offered", state="pending", offered_at=None
            )
        except ServiceError as exc:
            await self._store.update_host(
                rollout.id, row.host_id, "offered", state="failed", error=exc.message[:500], finished_at=now
            )

    async def _finish(
        self, rollout: RolloutRecord, status: str, reason: str | None, actor: str = SYSTEM
    ) -> bool:
        now = self._clock()
        detail: dict[str, Any] = {"version": rollout.version, "wave": rollout.wave + 1}
        if reason:
            detail["reason"] = reason
        event = AuditEvent(
            now,
            actor,
            f"rollout.{status}",
            rollout.id,
            detail,
            outcome="failed" if status == "halted" else "ok",
        )
        done = await self._store.finish(rollout.id, status, now, reason, event)
        self._wake.set()
        return done

    # --- the operator -------------------------------------------------------------------------
    async def cancel(self, caller: Caller, rollout_id: str) -> dict[str, Any]:
        access.require_any(caller, access.AGENTS_MANAGE)
        rollout = await self._visible(caller, rollout_id)
        planned = {r.host_id for r in await self._store.hosts(rollout.id)}
        for host in await self._directory.all():
            if host.id in planned and access.AGENTS_MANAGE not in access.rights_on(caller, host):
                raise Forbidden(
                    "forbidden", "cancelling this rollout needs 'agents.manage' on every host it covers"
                )
        if rollout.status != "running" or not await self._finish(
            rollout, "halted", f"cancelled by {caller.username}", caller.username
        ):
            raise Conflict("rollout_finished", f"rollout {rollout_id} is not running")
        return await self.get(caller, rollout_id)

    # --- reading ------------------------------------------------------------------------------
    async def _scope(self, caller: Caller) -> tuple[set[str], set[str]]:
        """Host ids the caller may see, and ids of every host that still exists."""
        hosts = await self._directory.all()
        return {h.id for h in hosts if access.visible(caller, h)}, {h.id for h in hosts}

    def _shown(
        self, caller: Caller, rows: list[RolloutHost], seen: set[str], known: set[str]
    ) -> list[RolloutHost]:
        # A removed host is shown to administrators only (nobody's scope names it any more).
        admin = access.is_admin(caller)
        return [r for r in rows if r.host_id in seen or (admin and r.host_id not in known)]

    async def _visible(self, caller: Caller, rollout_id: str) -> RolloutRecord:
        rollout = await self._store.get(rollout_id)
        if rollout is not None:
            if access.is_admin(caller):
                return rollout
            seen, known = await self._scope(caller)
            if self._shown(caller, await self._store.hosts(rollout.id), seen, known):
                return rollout
        raise NotFound("rollout_not_found", f"no rollout with id {rollout_id!r}")

    async def get(self, caller: Caller, rollout_id: str) -> dict[str, Any]:
        rollout = await self._visible(caller, rollout_id)
        fresh = await self._store.get(rollout.id)
        assert fresh is not None
        return await self._view(caller, fresh, await self._store.hosts(rollout.id))

    async def recent(self, caller: Caller) -> list[dict[str, Any]]:
        seen, known = await self._scope(caller)
        out = []
        for rollout in await self._store.recent():
            rows = self._shown(caller, await self._store.hosts(rollout.id), seen, known)
            if rows or access.is_admin(caller):
                out.append(self._render(rollout, rows))
        return out

    async def _view(self, caller: Caller, rollout: RolloutRecord, rows: list[RolloutHost]) -> dict[str, Any]:
        seen, known = await self._scope(caller)
        return self._render(rollout, self._shown(caller, rows, seen, known))

    @staticmethod
    def _render(rollout: RolloutRecord, rows: list[RolloutHost]) -> dict[str, Any]:
        waves = []
        for index, step in enumerate(rollout.steps):
            mine = [r for r in rows if r.wave == index]
            waves.append(
                {
                    "index": index,
                    "step": step,
                    "hosts": [
                        {"id": r.host_id, "name": r.name, "state": r.state, "error": r.error} for r in mine
                    ],
                    "counts": dict(sorted(Counter(r.state for r in mine).items())),
                }
            )
        return {
            "id": rollout.id,
            "version": rollout.version,
            "hosts": rollout.hosts,
            "steps": list(rollout.steps),
            "max_failure_rate": rollout.max_failure_rate,
            "wave_timeout": rollout.wave_timeout,
            "status": rollout.status,
            "wave": rollout.wave,
            "reason": rollout.reason,
            "actor": rollout.actor,
            "created_at": rollout.created_at,
            "finished_at": rollout.finished_at,
            "waves": waves,
        }
