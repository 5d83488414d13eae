"""Stacks: save (validated), list (engines merged with records), deploy, cancel, stop/start/remove, logs.

Every public method takes the caller first and raises `services.errors` classes; the API and the pages
render them. Deploys run as server tasks (`services.deploys.Deployer`), not inside the request.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dockmesh.link import LinkClosed, RemoteError, RequestTimeout
from dockmesh.proto import Limits, frames
from dockmesh.proto.methods import Stacks
from dockmesh.server.directory import HostDirectory, HostRef
from dockmesh.server.fanout import HostOutcome, fan_out
from dockmesh.server.localhost import LOCAL_ID
from dockmesh.server.services import access, compose_check
from dockmesh.server.services.access import Caller
from dockmesh.server.services.deploys import Deployer, deploy_params
from dockmesh.server.services.errors import Conflict, HostFailed, Invalid, NotFound, TooLarge, Unavailable
from dockmesh.server.services.stack_logs import merged_logs
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditStore
from dockmesh.store.stacks import Deployment, Placement, Revision, StackConflict, StackRecord, StackStore

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_TEXT = 1 << 20  # compose.yaml and .env together, in bytes
# A deploy's OPEN frame carries compose and env (JSON-encoded) and must fit one link frame, with room left
# for the registry credentials a deploy may add.
MAX_OPEN = Limits().max_frame - 64 * 1024
ACTION_TIMEOUT = 120.0  # stop/start/down of a whole stack: each container's stop grace, in order
# Registry credentials for a deploy: (host, images) → registry → {username, password, serveraddress}.
Credentials = Callable[[HostRef, list[str]], Awaitable[dict[str, dict[str, str]]]]


@dataclass(frozen=True)
class StackList:
    """`items`: one row per (stack, host) found on the engines or placed there by us; `hosts`: every
    selected host's outcome; `records`: every stack record (deployed or not)."""

    items: list[dict[str, Any]]
    hosts: list[HostOutcome]
    records: list[StackRecord]


@dataclass(frozen=True)
class StackDetail:
    record: StackRecord
    current: Revision
    placements: list[Placement]
    deployments: list[Deployment]


MAX_REGISTRIES = 16  # what the agent takes in one deploy's `auth` (docs/stacks.md)


def check_auth_fits(params: dict[str, Any], auth: dict[str, dict[str, str]]) -> None:
    """Refuse, before anything is recorded, a deploy whose credentials the agent or the link would refuse."""
    if len(auth) > MAX_REGISTRIES:
        raise Invalid(
            "too_many_registries",
            f"the stack's images need credentials for {len(auth)} registries; a deploy carries at most "
            f"{MAX_REGISTRIES}",
        )
    size = len(frames.open_frame(0xFFFFFFFF, Stacks.DEPLOY, {**params, "auth": auth}, None))
    if size > Limits().max_frame:
        raise TooLarge(
            "too_large",
            f"the stack with its registry credentials is {size} bytes, over the link's frame of "
            f"{Limits().max_frame}: shorten the compose file or the tokens",
        )


def open_frame_size(name: str, compose: str, env: str) -> int:
    """Bytes of the `stacks.deploy` OPEN frame this text makes (the deploy id at its longest)."""
    params = deploy_params("x" * 64, name, compose, env, allow_privileged=False)
    return len(frames.open_frame(0xFFFFFFFF, Stacks.DEPLOY, params, None))


def check_name(name: str) -> str:
    """A compose project name, or `invalid_name` (also refuses `../x` and `a/b`)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise Invalid(
            "invalid_name",
            f"stack name {str(name)[:80]!r} must be lower-case letters, digits, '_' or '-', starting with a "
            "letter or digit, at most 63 characters",
        )
    return name


class StackService:
    def __init__(
        self,
        store: StackStore,
        agents: AgentStore,
        directory: HostDirectory,
        deployer: Deployer,
        audit: AuditStore,
        clock: Callable[[], float],
        credentials: Credentials | None = None,
    ) -> None:
        self._credentials = credentials
        self._store = store
        self._agents = agents
        self._directory = directory
        self.deployer = deployer
        self._audit = audit
        self._clock = clock

    # --- records ------------------------------------------------------------------------------
    async def save(
        self, caller: Caller, name: str, compose: str, env: str = "", allow_privileged: bool | None = None
    ) -> tuple[StackRecord, bool]:
        """Create or update a stack; `(record, changed)`. Validated before anything is stored.

        Raises Invalid (`invalid_name`, `invalid_compose`/`unsupported_key`/`not_allowed` with `key` and
        `line`), TooLarge (over 1 MiB), Forbidden (allow_privileged set by a non-administrator),
        Conflict (a concurrent save won).
        """
        check_name(name)
        access.require_any(caller, access.STACKS_DEPLOY)
        if not isinstance(compose, str) or not compose.strip():
            raise Invalid("invalid_field", "'compose' must be the non-empty text of compose.yaml")
        if not isinstance(env, str):
            raise Invalid("invalid_field", "'env' must be the text of the .env file")
        if len(compose.encode()) + len(env.encode()) > MAX_TEXT:
            raise TooLarge("too_large", f"compose.yaml and .env together exceed {MAX_TEXT >> 20} MiB")
        if (size := open_frame_size(name, compose, env)) > MAX_OPEN:
            raise TooLarge(
                "too_large",
                f"compose.yaml and .env encode to {size} bytes in a deploy's opening frame; the link carries "
                f"at most {MAX_OPEN}: shorten them (long lines of escaped characters count double)",
            )
        if allow_privileged:
            access.require_allow_privileged(caller)
        existing = await self._store.get(name)
        flag = (
            allow_privileged if allow_privileged is not None else bool(existing and existing.allow_privileged)
        )
        # In a thread: a 1 MiB file takes the YAML parser a noticeable while, the loop serves meanwhile.
        await asyncio.to_thread(compose_check.validate, name, compose, env, allow_privileged=flag)
        try:
            record, changed = await self._store.save(
                name, compose, env, caller.username, self._clock(), allow_privileged
            )
        except StackConflict as exc:
            raise Conflict("conflict", str(exc)) from None
        await self._audit.add(
            self._clock(),
            caller.username,
            "stack.save",
            name,
            {"revision": record.revision, "changed": changed, "allow_privileged": record.allow_privileged},
        )
        return record, changed

    async def _sees(self, caller: Caller, permission: str) -> Callable[[str], bool]:
        """Whether the caller may see what a deploy or placement on a host id shows: a known host by its
        rights there; a host no longer known (a removed agent) only with the permission on every host."""
        hosts = {h.id: h for h in await self._directory.all()}
        everywhere = access.has_global(caller, permission)

        def sees(host_id: str) -> bool:
            host = hosts.get(host_id)
            return permission in access.rights_on(caller, host) if host is not None else everywhere

        return sees

    async def record(self, caller: Caller, name: str) -> StackRecord:
        """A stack record (not bound to a host): any caller with `stacks.view` on some host reads it."""
        access.require_any(caller, access.STACKS_VIEW)
        record = await self._store.get(check_name(name))
        if record is None:
            raise NotFound("stack_not_found", f"no stack {name!r}")
        return record

    async def detail(self, caller: Caller, name: str) -> StackDetail:
        """The record, its current revision (with text), where it is deployed, and its deploy history."""
        record = await self.record(caller, name)
        current = await self._store.revision(name)
        assert current is not None  # saved with the record, in the same transaction
        sees = await self._sees(caller, access.STACKS_VIEW)
        # Where it runs on hosts out of the caller's reach is not shown, nor those hosts' deploys.
        return StackDetail(
            record,
            current,
            [p for p in await self._store.placements(name) if sees(p.host)],
            [d for d in await self._store.deployments(name) if sees(d.host)],
        )

    async def revisions(self, caller: Caller, name: str) -> list[Revision]:
        """Newest first, with their diffs (texts left out; ask `revision`)."""
        await self.record(caller, name)
        return await self._store.revisions(name)

    async def revision(self, caller: Caller, name: str, number: int) -> Revision:
        access.require_any(caller, access.STACKS_VIEW)
        revision = await self._store.revision(check_name(name), number)
        if revision is None:
            raise NotFound("revision_not_found", f"stack {name!r} has no revision {number}")
        return revision

    async def delete(self, caller: Caller, name: str) -> None:
        """Delete the record, its revisions and history; Conflict (`stack_deployed`) while deployed."""
        access.require_any(caller, access.STACKS_DEPLOY)
        try:
            deleted = await self._store.delete(check_name(name))
        except StackConflict:
            # Named only where the caller may look: a host out of reach is counted, never named.
            sees = await self._sees(caller, access.STACKS_VIEW)
            hosts = sorted({p.host for p in await self._store.placements(name)})
            shown = [h for h in hosts if sees(h)]
            hidden = len(hosts) - len(shown)
            where = ", ".join(shown + ([f"{hidden} host(s) out of your reach"] if hidden else []))
            raise Conflict(
                "stack_deployed", f"stack {name!r} is deployed on {where or 'a host'}: remove it there first"
            ) from None
        if not deleted:
            raise NotFound("stack_not_found", f"no stack {name!r}")
        await self._audit.add(self._clock(), caller.username, "stack.delete", name)

    # --- the fan-out list ---------------------------------------------------------------------
    async def list(self, caller: Caller, selector: str, deadline: float) -> StackList:
        """Stacks on the selected hosts, each row with its host and `external` (no record here), plus
        `revision`, `deployed_revision`, `deploy_state`, `deploy_id` for ours; placed stacks a host no
        longer shows (a failed first deploy) are rows too, with `total` 0."""
        hosts = await self._directory.select(selector, caller, access.STACKS_VIEW)
        gathered = await fan_out(hosts, "stacks.list", {}, deadline)
        records = {r.name: r for r in await self._store.all()}
        placed = {(p.stack, p.host): p for p in await self._store.placements()}
        answered = {o.id for o in gathered.outcomes if o.status == "ok"}
        items: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for row in gathered.items:
            key = (str(row.get("name")), str(row["host"]["id"]))
            seen.add(key)
            items.append(_annotate(row, records.get(key[0]), placed.get(key)))
        for host in hosts:
            if host.id not in answered:
                continue
            for (stack, host_id), placement in placed.items():
                if host_id == host.id and (stack, host_id) not in seen and stack in records:
                    row = {"name": stack, "services": [], "running": 0, "total": 0, "host": host.summary()}
                    items.append(_annotate(row, records[stack], placement))
        order = {h.id: i for i, h in enumerate(hosts)}
        items.sort(key=lambda r: (order.get(r["host"]["id"], 0), str(r.get("name"))))
        return StackList(items, gathered.outcomes, list(records.values()))

    # --- deploys ------------------------------------------------------------------------------
    async def _host(self, caller: Caller, host_id: str, permission: str) -> HostRef:
        if not isinstance(host_id, str) or host_id in ("", "all") or host_id.startswith("tag:"):
            raise Invalid("bad_host", "address one host by its id")
        for host in await self._directory.all():
            if host.id == host_id:
                access.check_host(caller, host, permission)
                return host
        raise access.not_found(host_id)

    async def deploy(self, caller: Caller, name: str, host_id: str) -> Deployment:
        """Start deploying the stack's current revision to one host; returns the pending deployment.

        Refuses: unknown stack or host (NotFound), a cordoned host (Conflict `host_cordoned`), an offline
        host (Unavailable `host_offline`), a deploy already running there (Conflict `deploy_in_progress`),
        and a revision the stack's policy no longer allows (Invalid `not_allowed`).
        """
        record = await self.record(caller, name)
        host = await self._host(caller, host_id, "stacks.deploy")
        if host.id != LOCAL_ID:
            agent = await self._agents.get(host.id)
            if agent is not None and agent.cordoned:
                raise Conflict(
                    "host_cordoned",
                    f"host {host.name!r} is cordoned and takes no new deploys: uncordon it or pick another",
                )
        if host.link is None or host.link.closed:
            raise Unavailable("host_offline", f"host {host.name!r} is offline; deploy when it is back")
        for running in await self._store.unsettled(host.id):
            if running.stack == name:
                raise Conflict(
                    "deploy_in_progress",
                    f"deploy {running.id} of {name!r} on {host.name!r} has not finished; follow or cancel it",
                    deploy_id=running.id,
                )
        current = await self._store.revision(name)
        assert current is not None
        images = await asyncio.to_thread(
            compose_check.validate,
            name,
            current.compose,
            current.env,
            allow_privileged=record.allow_privileged,
        )
        # Picked for this host before anything is recorded (an unreadable credential refuses the deploy);
        # sent with this one stream only, never stored with the deployment.
        auth = await self._credentials(host, images) if self._credentials is not None else {}
        deploy_id = str(uuid.uuid4())
        params = deploy_params(deploy_id, name, current.compose, current.env, record.allow_privileged)
        if auth:
            check_auth_fits(params, auth)
            params["auth"] = auth
        deployment = Deployment(
            deploy_id, name, host.id, current.number, "pending", caller.username, self._clock()
        )
        try:
            await self._store.start_deployment(deployment)
        except StackConflict as exc:  # another deploy began between the check above and this one
            raise Conflict(
                "deploy_in_progress",
                f"deploy {exc} of {name!r} on {host.name!r} has not finished; follow or cancel it",
                deploy_id=str(exc),
            ) from None
        await self._audit.add(
            self._clock(),
            caller.username,
            "stack.deploy",
            f"{host.id}/{name}",
            {"deploy_id": deployment.id, "revision": current.number},
            host=host.id,
        )
        self.deployer.launch(deployment, host.link, params)
        return deployment

    async def deployment(self, caller: Caller, deploy_id: str) -> Deployment:
        deployment = await self._store.deployment(deploy_id) if _DEPLOY_ID.fullmatch(deploy_id) else None
        if deployment is not None and not (await self._sees(caller, access.STACKS_VIEW))(deployment.host):
            deployment = None  # a deploy on a host out of reach is not there, like an unknown id
        if deployment is None:
            raise NotFound("deploy_not_found", f"no deploy {deploy_id[:80]!r}")
        return deployment

    async def events(self, caller: Caller, deploy_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """The deploy's events so far, then live ones, ending with its result (NDJSON rows)."""
        deployment = await self.deployment(caller, deploy_id)
        if deployment.settled and self.deployer.get(deploy_id) is None:
            return _settled_events(deployment)
        run = self.deployer.get(deploy_id) or self.deployer.run_for(deployment)
        if run.task is None and run.result is None:
            await self.deployer.settle_now(deployment)  # nothing drives it: ask the host now
        return run.follow()

    async def cancel(self, caller: Caller, deploy_id: str) -> Deployment:
        """Ask the host to stop the deploy (it rolls back); the result arrives as the deploy's events."""
        deployment = await self.deployment(caller, deploy_id)
        if deployment.settled:
            raise Conflict("deploy_finished", f"deploy {deploy_id} already ended: {deployment.state}")
        host = await self._host(caller, deployment.host, "stacks.deploy")
        await self._ask(host, Stacks.CANCEL, {"deploy_id": deploy_id}, 30.0)
        await self._audit.add(
            self._clock(),
            caller.username,
            "stack.cancel",
            f"{host.id}/{deployment.stack}",
            {"deploy_id": deploy_id},
            host=host.id,
        )
        return deployment

    # --- whole-stack actions on one host ------------------------------------------------------
    async def _ask(self, host: HostRef, method: str, params: dict[str, Any], timeout: float) -> Any:
        if host.link is None or host.link.closed:
            raise Unavailable("host_offline", f"host {host.name!r} is offline")
        try:
            return await host.link.request(method, params, timeout=timeout)
        except RemoteError as exc:
            status = {"not_found": NotFound, "bad_request": Invalid, "conflict": Conflict}.get(
                exc.code, HostFailed
            )
            raise status(exc.code, f"{host.name}: {exc.message}") from None
        except RequestTimeout:
            raise HostFailed(
                "host_timeout", f"host {host.name!r} did not answer within {timeout:g}s"
            ) from None
        except LinkClosed:
            raise Unavailable("host_offline", f"host {host.name!r} went offline during the request") from None

    async def action(self, caller: Caller, name: str, host_id: str, action: str) -> None:
        """`stop` or `start` every container of the stack on one host (external stacks too)."""
        if action not in ("stop", "start"):
            raise Invalid("bad_action", f"unknown stack action {action!r}")
        host = await self._host(caller, host_id, "stacks.deploy")
        await self._ask(
            host,
            Stacks.STOP if action == "stop" else Stacks.START,
            {"project": check_name(name)},
            ACTION_TIMEOUT,
        )
        await self._audit.add(
            self._clock(), caller.username, f"stack.{action}", f"{host.id}/{name}", host=host.id
        )

    async def remove(self, caller: Caller, name: str, host_id: str, *, volumes: bool = False) -> None:
        """`down` on one host: containers and networks, the stack's volumes only with `volumes`."""
        host = await self._host(caller, host_id, "stacks.deploy")
        check_name(name)
        for running in await self._store.unsettled(host.id):
            if running.stack == name:
                raise Conflict(
                    "deploy_in_progress",
                    f"deploy {running.id} of {name!r} is still running there; cancel it first",
                    deploy_id=running.id,
                )
        await self._ask(host, Stacks.DOWN, {"project": name, "volumes": volumes}, ACTION_TIMEOUT)
        await self._store.remove_placement(name, host.id)
        await self._audit.add(
            self._clock(),
            caller.username,
            "stack.down",
            f"{host.id}/{name}",
            {"volumes": volumes},
            host=host.id,
        )

    async def logs(
        self, caller: Caller, name: str, host_id: str, *, follow: bool, tail: int | None
    ) -> AsyncGenerator[bytes, None]:
        """Logs of every container of the stack on one host, merged by line, each `service | line`."""
        host = await self._host(caller, host_id, "containers.view")
        check_name(name)
        rows = await self._ask(host, "containers.list", {"all": True}, 10.0)
        containers = [
            (str(r.get("service") or r.get("name")), str(r["id"]))
            for r in rows
            if isinstance(r, dict) and r.get("stack") == name and isinstance(r.get("id"), str)
        ]
        if not containers:
            raise NotFound("stack_not_found", f"no containers of stack {name!r} on {host.name!r}")
        assert host.link is not None
        await self._audit.add(
            self._clock(),
            caller.username,
            "stack.logs",
            f"{host.id}/{name}",
            {"follow": follow, "containers": len(containers)},
            host=host.id,
        )
        return merged_logs(host.link, sorted(containers), follow=follow, tail=tail)


_DEPLOY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def _annotate(row: dict[str, Any], record: StackRecord | None, placement: Placement | None) -> dict[str, Any]:
    row["external"] = record is None
    if record is not None:
        row["revision"] = record.revision
        row["allow_privileged"] = record.allow_privileged
    if placement is not None:
        row["deployed_revision"] = placement.revision
        row["deploy_state"] = placement.state
        row["deploy_id"] = placement.deploy_id
    return row


async def _settled_events(deployment: Deployment) -> AsyncGenerator[dict[str, Any], None]:
    yield {
        "type": "result",
        "deploy_id": deployment.id,
        "state": deployment.state,
        "error": deployment.error,
        "services": deployment.services,
        "seq": 0,
    }
