"""Agent self-upgrade on the server: per-host state, the policy, offering, and what the API and pages show.

State of a host's last attempt: offered → downloading → restarting → trial → done, or failed · rolled_back ·
refused (docs/upgrades.md). The hello of each agent drives it: it carries the agent's version and its report
of the last attempt, and under the `automatic` policy an older agent is offered the upgrade right there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from dockmesh.link import LinkError, RemoteError
from dockmesh.proto.manifest import ManifestError, parse_version
from dockmesh.proto.methods import Upgrade
from dockmesh.server.directory import HostDirectory
from dockmesh.server.gateway import Gateway
from dockmesh.server.manifests import Manifests
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import Conflict, Invalid, Unavailable
from dockmesh.store.audit import AuditEvent
from dockmesh.store.upgrades import UpgradeRecord, UpgradeStore

log = logging.getLogger(__name__)

POLICIES = ("automatic", "manual")
STATES = ("offered", "downloading", "restarting", "trial", "done", "failed", "rolled_back", "refused")
UNSETTLED = ("failed", "rolled_back", "refused")
OFFER_TIMEOUT = 600.0  # the download of ~30 MB rides inside this request
SYSTEM = "system"


def older(version: object, than: str) -> bool:
    try:
        return parse_version(version) < parse_version(than)
    except ManifestError:
        return False


def view(record: UpgradeRecord | None, host_id: str, version: str | None) -> dict[str, Any]:
    return {
        "host": host_id,
        "current": version or (record.current if record else None),
        "target": record.target if record else None,
        "state": record.state if record else None,
        "last_attempt": record.attempt_at if record else None,
        "error": record.error if record else None,
    }


class UpgradeService:
    def __init__(
        self,
        store: UpgradeStore,
        manifests: Manifests,
        gateway: Gateway,
        directory: HostDirectory,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self.manifests = manifests
        self._gateway = gateway
        self._directory = directory
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_change: list[Callable[[str], None]] = []  # host id; a rollout waits on its wave's hosts
        gateway.upgrade_public_key = manifests.key.public_b64()
        gateway.artifact_path = manifests.path_for
        gateway.on_hello.append(self._hello_hook)
        gateway.on_download.append(lambda host_id: self._spawn(self._set_state(host_id, "downloading")))

    @property
    def version(self) -> str:
        return self.manifests.version

    async def _put(self, record: UpgradeRecord, event: AuditEvent | None = None) -> None:
        await self._store.put(record, event)
        for hook in self.on_change:
            hook(record.host_id)

    async def records(self) -> dict[str, UpgradeRecord]:
        return {r.host_id: r for r in await self._store.all()}

    async def policy(self) -> str:
        return await self._store.policy()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the hello drives the state ----------------------------------------------------------
    def _hello_hook(self, host_id: str, facts: dict[str, Any], report: dict[str, str] | None) -> None:
        self._spawn(self.hello(host_id, facts.get("version"), report))

    async def hello(self, host_id: str, version: object, report: dict[str, str] | None) -> None:
        try:
            await self._hello(host_id, str(version) if isinstance(version, str) else None, report)
        except Exception:
            log.exception("upgrade bookkeeping failed for agent %s", host_id)

    async def _hello(self, host_id: str, version: str | None, report: dict[str, str] | None) -> None:
        now = self._clock()
        stored = await self._store.get(host_id)
        record = stored or UpgradeRecord(host_id, version, None, "done", None, None, now)
        record = replace(record, current=version, updated_at=now)
        event = None
        target = record.target
        if target is not None and record.state not in ("done", *UNSETTLED) and report is not None:
            outcome = report["outcome"]
            if report["to"] == target and outcome in ("trial", "committed") and version == target:
                record = replace(record, state="done", error=None)
            elif report["to"] == target and outcome in ("rolled_back", "refused"):
                record = replace(record, state=outcome, error=report["error"] or None)
                action = "upgrade.rolled_back" if outcome == "rolled_back" else "upgrade.failed"
                detail = {"to": target, "error": report["error"]}
                event = AuditEvent(now, SYSTEM, action, host_id, detail, host=host_id, outcome="failed")
        elif target is not None and version == target and record.state != "done":
            record = replace(record, state="done", error=None)
        # A reconnect that changes nothing writes nothing: a restarted server hears its whole fleet at
        # once, and a write per hello made that a thousand transactions (issue 9).
        if event is not None or stored is None or replace(stored, updated_at=now) != record:
            await self._put(record, event)
        if await self._store.policy() != "automatic" or version is None or not older(version, self.version):
            return
        if record.target == self.version and record.state in UNSETTLED:
            return  # that version already failed here: an operator starts it again, not a loop
        await self.offer(host_id, SYSTEM)

    # --- offering ----------------------------------------------------------------------------
    async def offer(self, host_id: str, actor: str) -> dict[str, Any]:
        conn = self._gateway.conn(host_id)
        if conn is None:
            raise Unavailable("host_offline", f"host {host_id!r} is offline")
        params = self.manifests.offer()
        if params is None:
            raise Conflict(
                "no_artifact", "this server has no agent artifact to offer; see `dockmesh build-agent`"
            )
        now = self._clock()
        prior = await self._store.get(host_id)
        current = conn.facts.get("version") if isinstance(conn.facts.get("version"), str) else None
        record = UpgradeRecord(
            host_id, current or (prior.current if prior else None), self.version, "offered", now, None, now
        )
        event = AuditEvent(now, actor, "upgrade.offered", host_id, {"to": self.version}, host=host_id)
        await self._put(record, event)
        self._spawn(self._deliver(host_id, conn.link, params))
        return view(record, host_id, current)

    async def _deliver(self, host_id: str, link: Any, params: dict[str, str]) -> None:
        try:
            await link.request(Upgrade.OFFER, params, timeout=OFFER_TIMEOUT)
        except RemoteError as exc:
            state = "refused" if exc.code == "upgrade_refused" else "failed"
            await self._finish(host_id, state, exc.message)
        except (LinkError, TimeoutError) as exc:
            await self._finish(host_id, "failed", f"the link failed during the upgrade: {exc}")
        else:
            await self._set_state(host_id, "restarting")

    async def _finish(self, host_id: str, state: str, error: str) -> None:
        record = await self._store.get(host_id)
        if record is None:
            return
        now = self._clock()
        detail = {"to": record.target, "error": error[:300]}
        event = AuditEvent(now, SYSTEM, "upgrade.failed", host_id, detail, host=host_id, outcome="failed")
        await self._put(replace(record, state=state, error=error[:500], updated_at=now), event)

    async def _set_state(self, host_id: str, state: str) -> None:
        record = await self._store.get(host_id)
        # Only forward: a late "downloading" must not overwrite the refusal that ended the attempt.
        if record is not None and record.state not in ("done", *UNSETTLED):
            await self._put(replace(record, state=state, updated_at=self._clock()))

    # --- API and pages -----------------------------------------------------------------------
    async def overview(self, caller: Caller) -> dict[str, Any]:
        hosts = await self._directory.visible(caller, access.HOSTS_VIEW)
        records = {r.host_id: r for r in await self._store.all()}
        items = []
        skew: Counter[str] = Counter()
        for host in hosts:
            conn = self._gateway.conn(host.id)
            version = conn.facts.get("version") if conn else None
            if host.id == "local":
                version = self.version
            item = view(records.get(host.id), host.id, version if isinstance(version, str) else None)
            item["name"] = host.name
            item["online"] = host.online
            items.append(item)
            if item["current"]:
                skew[item["current"]] += 1
        return {
            "server_version": self.version,
            "policy": await self._store.policy(),
            "skew": dict(sorted(skew.items())),
            "items": items,
        }

    async def states(self) -> dict[str, dict[str, Any]]:
        """Each host's last attempt, as the hosts list shows it: {state, target, error}."""
        return {
            r.host_id: {"state": r.state, "target": r.target, "error": r.error}
            for r in await self._store.all()
        }

    async def set_policy(self, caller: Caller, policy: Any) -> str:
        access.require_global(caller, access.AGENTS_MANAGE)
        if policy not in POLICIES:
            raise Invalid("invalid_policy", f"the policy must be one of {', '.join(POLICIES)}")
        event = AuditEvent(self._clock(), caller.username, "upgrade.policy", "fleet", {"policy": policy})
        await self._store.set_policy(policy, event)
        return str(policy)

    async def start(self, caller: Caller, host_id: str) -> dict[str, Any]:
        """Offer this server's build to one host now (whatever the policy and the last outcome)."""
        if host_id == "local":
            raise Invalid("not_an_agent", "the local host runs inside the server: upgrade the server")
        await self._directory.require(host_id, caller, access.AGENTS_MANAGE)
        return await self.offer(host_id, caller.username)
