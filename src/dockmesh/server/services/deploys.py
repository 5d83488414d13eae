"""Deploys as server tasks: drive the host's `stacks.deploy` stream, keep its events for followers, write
the one final state, and settle deploys a restart or a dropped link left unsettled.

A deploy never depends on the HTTP request that started it, nor on the stream to the host: the host's job
carries on without either (docs/stacks.md). What the server must guarantee is that every deploy it
recorded ends in exactly one final state: the stream's result when it arrives, else the host's answer to
`stacks.deploy_status` once it is reachable again (on its hello, and on a periodic sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from dockmesh.link import Link, LinkClosed, RemoteError, RequestTimeout
from dockmesh.link.packets import Kind, PacketError, PacketStream, decode_json
from dockmesh.proto.methods import Stacks
from dockmesh.server.directory import HostDirectory, HostRef
from dockmesh.store.stacks import FINAL, Deployment, StackStore

log = logging.getLogger(__name__)

RING = 2000  # events kept per deploy for followers that join late; older ones are reported as a gap
KEEP_FINISHED = 256  # finished deploys kept in memory (later ones are answered from the database)
STATUS_TIMEOUT = 10.0
PHASES = frozenset(
    {"validate", "pull", "network", "volume", "create", "start", "health", "remove", "rollback"}
)
MAX_SERVICES = 256
_TEXT = 1000  # longest progress string kept; a hostile host cannot fill the ring with megabyte messages
_ERROR = 4000


def _text(value: Any, limit: int = _TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def progress_event(message: dict[str, Any]) -> dict[str, Any]:
    """A host's progress packet, with only the known fields, each bounded."""
    phase = message.get("phase")
    return {
        "type": "progress",
        "service": _text(message.get("service"), 128),
        "phase": phase if phase in PHASES else "other",
        "status": _text(message.get("status"), 200),
        "current": _count(message.get("current")),
        "total": _count(message.get("total")),
        "message": _text(message.get("message")),
    }


def clean_services(value: Any) -> list[dict[str, Any]]:
    """Per-service states from a host: known fields only, strings bounded, at most MAX_SERVICES."""
    if not isinstance(value, list):
        return []
    rows = []
    for item in value[:MAX_SERVICES]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        row: dict[str, Any] = {
            key: _text(item.get(key), 200) for key in ("name", "state", "health", "container_id", "image")
        }
        containers = _count(item.get("containers"))
        if containers is not None:
            row["containers"] = containers
        rows.append(row)
    return rows


def error_text(value: Any) -> str | None:
    """A host's error as one bounded string: `{"code","message"}` (the contract) or a plain string."""
    if isinstance(value, dict):
        message, code = _text(value.get("message"), _ERROR), _text(value.get("code"), 64)
        return message or code
    return _text(value, _ERROR)


def result_fields(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None]:
    """(state, services, error) of a host's result; a state that is not final counts as failed."""
    state = message.get("state")
    error = error_text(message.get("error"))
    if state not in FINAL:
        state, error = "failed", error or f"the host reported an unknown final state {str(state)[:40]!r}"
    return state, clean_services(message.get("services")), error


@dataclass(eq=False)
class DeployRun:
    """One deploy in memory: its events (a bounded ring) and the task driving it, if any."""

    id: str
    stack: str
    host: str
    state: str
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RING))
    published: int = 0
    result: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, event: dict[str, Any]) -> None:
        event["seq"] = self.published
        self.published += 1
        self.events.append(event)
        self._wake.set()
        self._wake = asyncio.Event()

    async def follow(self) -> AsyncGenerator[dict[str, Any], None]:
        """Every event from the first still kept, then live ones, ending with the result."""
        seen = 0
        while True:
            first = self.published - len(self.events)
            if seen < first:
                yield {"type": "gap", "missed": first - seen}
                seen = first
            for event in list(self.events)[seen - first :]:
                yield event
                seen += 1
            if self.result is not None and seen >= self.published:
                return
            wake = self._wake
            if seen >= self.published:
                await wake.wait()


class Deployer:
    """Runs deploys and settles them; one per server."""

    def __init__(
        self,
        store: StackStore,
        directory: HostDirectory,
        clock: Callable[[], float],
        *,
        sweep_interval: float = 15.0,
    ) -> None:
        self._store = store
        self._directory = directory
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._runs: dict[str, DeployRun] = {}
        self._finished: deque[str] = deque()
        self._reconciling: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # Hosts that said hello since the last reconcile of hellos: a restarted server hears a whole
        # fleet at once, and one query then serves them all (one per hello was 1,000 in a second).
        self._hello_hosts: set[str] = set()
        self._hello_task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        """Stop following; the hosts' jobs carry on and are settled by the next start's reconcile."""
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

    async def _sweep(self) -> None:
        await asyncio.sleep(min(1.0, self._sweep_interval))  # the local engine's link comes up first
        while True:
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconciling unsettled deploys failed; retrying at the next sweep")
            await asyncio.sleep(self._sweep_interval)

    def host_online(self, host_id: str) -> None:
        """The gateway's signal that a host said hello: settle what it may have finished meanwhile."""
        self._hello_hosts.add(host_id)
        if self._hello_task is None or self._hello_task.done():
            self._hello_task = self._spawn(self._reconcile_hellos())

    async def _reconcile_hellos(self) -> None:
        while self._hello_hosts:
            hosts, self._hello_hosts = self._hello_hosts, set()
            try:
                await self.reconcile(hosts=hosts)
            except Exception:
                log.exception("reconciling the deploys of %d host(s) that said hello failed", len(hosts))

    # --- runs ---------------------------------------------------------------------------------
    def get(self, deploy_id: str) -> DeployRun | None:
        return self._runs.get(deploy_id)

    def run_for(self, deployment: Deployment) -> DeployRun:
        """The in-memory run of an unsettled deploy (made if the server restarted since it began)."""
        run = self._runs.get(deployment.id)
        if run is None:
            run = self._runs[deployment.id] = DeployRun(
                deployment.id, deployment.stack, deployment.host, deployment.state
            )
        return run

    def launch(self, deployment: Deployment, link: Link, params: dict[str, Any]) -> DeployRun:
        """Start driving a recorded deploy on its host's link; returns at once."""
        run = self.run_for(deployment)
        run.publish({"type": "state", "deploy_id": run.id, "state": run.state})
        run.task = self._spawn(self._drive(run, link, params))
        return run

    async def _drive(self, run: DeployRun, link: Link, params: dict[str, Any]) -> None:
        stream = None
        try:
            stream = link.open_stream(Stacks.DEPLOY, params)
            if run.state == "pending":
                await self._store.set_running(run.id)
                run.state = "running"
                run.publish({"type": "state", "deploy_id": run.id, "state": "running"})
            packets = PacketStream(stream)
            while (packet := await packets.recv()) is not None:
                kind, payload = packet
                if kind is not Kind.JSON:
                    continue
                message = decode_json(payload)
                if message.get("type") == "progress":
                    run.publish(progress_event(message))
                elif message.get("type") == "result":
                    await self._finish(run, *result_fields(message))
                    return
            if link.closed:
                raise LinkClosed()
            await self._finish(run, "failed", [], "the host ended the deploy stream without a result")
        except RemoteError as exc:
            if exc.code == "link_closed" or link.closed:
                self._dropped(run)
            else:
                # Refused before the job began (bad parameters, policy, no such method on an old agent).
                await self._finish(run, "failed", [], _refusal(exc))
        except PacketError as exc:
            await self._finish(run, "failed", [], f"the host sent a malformed deploy packet: {exc}")
        except LinkClosed:
            self._dropped(run)
        except Exception:
            # The database may be away: the deploy stays unsettled and the sweep asks the host later.
            log.exception("deploy %s: following it failed; the sweep will settle it", run.id)
        finally:
            if stream is not None:
                stream.cancel()  # the host's job does not depend on this stream (docs/stacks.md)
            run.task = None

    def _dropped(self, run: DeployRun) -> None:
        run.publish(
            {
                "type": "state",
                "deploy_id": run.id,
                "state": run.state,
                "message": "the link to the host dropped; the host carries on and its outcome is "
                "fetched when it is back",
            }
        )

    async def _finish(
        self, run: DeployRun, state: str, services: list[dict[str, Any]], error: str | None
    ) -> None:
        if not await self._store.settle(run.id, state, services=services, error=error, now=self._clock()):
            # Settled meanwhile (a reconcile won the race): the database's outcome is the one.
            recorded = await self._store.deployment(run.id)
            if recorded is not None and recorded.settled:
                state, services, error = recorded.state, recorded.services, recorded.error
        run.state = state
        run.result = {
            "type": "result",
            "deploy_id": run.id,
            "state": state,
            "error": error,
            "services": services,
        }
        run.publish(dict(run.result))
        self._finished.append(run.id)
        while len(self._finished) > KEEP_FINISHED:
            self._runs.pop(self._finished.popleft(), None)

    # --- reconciliation -----------------------------------------------------------------------
    async def reconcile(self, host_id: str | None = None, *, hosts: set[str] | None = None) -> None:
        """Settle (or resume following) every unsettled deploy no task is driving, on reachable hosts
        (all hosts, `host_id`, or the set `hosts`)."""
        unsettled = await self._store.unsettled(host_id)
        if hosts is not None:
            unsettled = [d for d in unsettled if d.host in hosts]
        if not unsettled:
            return  # the usual case; the host list below costs a walk over every agent
        known = {h.id: h for h in await self._directory.all()}
        for deployment in unsettled:
            run = self._runs.get(deployment.id)
            if (run is not None and run.task is not None) or deployment.id in self._reconciling:
                continue
            host = known.get(deployment.host)
            if host is None:
                await self._finish(
                    self.run_for(deployment), "failed", [], "the host was removed before the deploy ended"
                )
                continue
            if host.link is None or host.link.closed:
                continue
            self._reconciling.add(deployment.id)
            try:
                await self._recover(deployment, host, host.link)
            finally:
                self._reconciling.discard(deployment.id)

    async def _recover(self, deployment: Deployment, host: HostRef, link: Link) -> None:
        run = self.run_for(deployment)
        try:
            answer = await link.request(
                Stacks.DEPLOY_STATUS, {"deploy_id": deployment.id}, timeout=STATUS_TIMEOUT
            )
        except RemoteError as exc:
            if exc.code in ("unknown_method", "unknown_stream"):
                await self._finish(run, "failed", [], _refusal(exc))
            else:
                log.warning("deploy %s: %s answered deploy_status with %s", deployment.id, host.name, exc)
            return
        except (LinkClosed, RequestTimeout):
            return  # asked again when the host is back or at the next sweep
        state = answer.get("state") if isinstance(answer, dict) else None
        if state in FINAL:
            result = answer.get("result") if isinstance(answer.get("result"), dict) else {}
            _state, services, error = result_fields({**result, "state": state})
            await self._finish(run, state, services, error)
        elif state == "running":
            # Opening the stream with the same id follows the running job; it never deploys twice.
            params = await self.params_for(deployment)
            if params is None:
                await self._finish(run, "failed", [], "the stack's revision is gone")
                return
            run.state = "running"
            run.task = self._spawn(self._drive(run, link, params))
        else:
            await self._finish(
                run,
                "failed",
                [],
                f"host {host.name} has no record of this deploy: it never began there (the server stopped "
                "or the link dropped before it arrived); deploy again",
            )

    async def params_for(self, deployment: Deployment) -> dict[str, Any] | None:
        """The `stacks.deploy` parameters of a recorded deploy (its revision's text, the stack's flag)."""
        record = await self._store.get(deployment.stack)
        revision = await self._store.revision(deployment.stack, deployment.revision)
        if record is None or revision is None:
            return None
        return deploy_params(
            deployment.id, deployment.stack, revision.compose, revision.env, record.allow_privileged
        )

    async def settle_now(self, deployment: Deployment) -> None:
        """Ask the host at once (a follower opened an unsettled deploy nothing drives)."""
        with contextlib.suppress(Exception):
            await self.reconcile(deployment.host)


def deploy_params(
    deploy_id: str, project: str, compose: str, env: str, allow_privileged: bool
) -> dict[str, Any]:
    return {
        "deploy_id": deploy_id,
        "project": project,
        "compose": compose,
        "env": env,
        "allow_privileged": allow_privileged,
    }


def _refusal(exc: RemoteError) -> str:
    if exc.code in ("unknown_method", "unknown_stream"):
        return "the host's agent does not know stacks: upgrade it to this server's version"
    return exc.message[:_ERROR]
