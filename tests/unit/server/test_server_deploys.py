"""Deploys as server tasks over an in-memory link, with the real store on both engines: events and their
ring, one final state, link drops and restarts settled by `stacks.deploy_status`, hostile host packets.

The host here follows docs/stacks.md: jobs keyed by deploy id that outlive the stream that started them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from dockmesh.link import Link, RemoteError, Stream
from dockmesh.link.memory import socket_pair
from dockmesh.link.packets import PacketStream
from dockmesh.proto import Role
from dockmesh.server.directory import HostRef
from dockmesh.server.services.deploys import RING, Deployer, DeployRun, deploy_params
from dockmesh.store import Database
from dockmesh.store.stacks import Deployment, StackStore

COMPOSE = "services:\n  web:\n    image: local/busybox:1\n"
SERVICES = [{"name": "web", "state": "running", "health": None, "container_id": "c1", "image": "i"}]


@dataclass
class Job:
    state: str = "running"
    result: dict[str, Any] | None = None
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = "done"


class Host:
    """A host keeping deploy jobs by id: a job runs until `finish` is set, whatever happens to streams."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.started: list[str] = []
        self.followed: list[str] = []
        self.refuse: RemoteError | None = None
        self.packets: list[dict[str, Any]] | None = None  # sent instead of the normal progress

    def job(self, deploy_id: str) -> Job:
        return self.jobs[deploy_id]

    async def _run(self, deploy_id: str) -> None:
        job = self.jobs[deploy_id]
        await job.finish.wait()
        job.state = job.outcome
        error = {"code": "unhealthy", "message": "db is unhealthy"} if job.outcome == "failed" else None
        job.result = {"type": "result", "deploy_id": deploy_id, "state": job.outcome, "error": error,
                      "services": SERVICES}  # fmt: skip

    async def on_request(self, method: str, params: dict[str, Any]) -> Any:
        if method == "stacks.deploy_status":
            job = self.jobs.get(params["deploy_id"])
            if job is None:
                return {"state": "unknown", "result": None}
            return {"state": job.state, "result": job.result}
        if method == "stacks.cancel":
            job = self.jobs[params["deploy_id"]]
            job.outcome = "cancelled"
            job.finish.set()
            return {"ok": True}
        raise RemoteError("unknown_method", method)

    async def on_stream(self, stream: Stream) -> None:
        if self.refuse is not None:
            raise self.refuse
        deploy_id = stream.params["deploy_id"]
        packets = PacketStream(stream)
        if deploy_id not in self.jobs:
            self.started.append(deploy_id)
            self.jobs[deploy_id] = Job()
            asyncio.get_running_loop().create_task(self._run(deploy_id))
        else:
            self.followed.append(deploy_id)
        for packet in self.packets or [
            {"type": "progress", "service": "web", "phase": "pull", "status": "downloading", "current": 5,
             "total": 10, "message": None},
        ]:  # fmt: skip
            await packets.send_json(packet)
        job = self.jobs[deploy_id]
        while job.result is None:
            await asyncio.sleep(0.01)
        await packets.send_json(job.result)


class Hosts:
    """The directory the deployer sees: one host, reachable over whatever link is current."""

    def __init__(self) -> None:
        self.link: Link | None = None

    async def all(self) -> list[HostRef]:
        return [HostRef("h1", "edge-1", (), self.link)]


@pytest.fixture
async def wired(db: Database) -> AsyncIterator[tuple[StackStore, Hosts, Host, list[Any]]]:
    store = StackStore(db)
    await store.save("web", COMPOSE, "", "admin", 1.0)
    cleanup: list[Any] = []
    yield store, Hosts(), Host(), cleanup
    for item in reversed(cleanup):
        if isinstance(item, Deployer):
            await item.stop()
        elif isinstance(item, Link):
            await item.close()
        else:
            item.cancel()


def connect(hosts: Hosts, host: Host, cleanup: list[Any]) -> tuple[Link, Link]:
    server_end, host_end = socket_pair()
    server_link = Link(server_end, Role.ACCEPTOR)
    host_link = Link(host_end, Role.DIALER, on_request=host.on_request, on_stream=host.on_stream)
    cleanup += [
        server_link,
        host_link,
        asyncio.create_task(server_link.run()),
        asyncio.create_task(host_link.run()),
    ]
    hosts.link = server_link
    return server_link, host_link


def deployer(store: StackStore, hosts: Hosts, cleanup: list[Any]) -> Deployer:
    made = Deployer(store, hosts, lambda: 50.0, sweep_interval=3600)  # type: ignore[arg-type]
    cleanup.append(made)
    return made


async def begin(store: StackStore, d: Deployer, link: Link, deploy_id: str = "d-1") -> DeployRun:
    deployment = Deployment(deploy_id, "web", "h1", 1, "pending", "admin", 10.0)
    await store.start_deployment(deployment)
    return d.launch(deployment, link, deploy_params(deploy_id, "web", COMPOSE, "", False))


async def until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def collect(run: DeployRun) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        return [event async for event in run.follow()]


async def test_a_deploy_streams_its_events_and_settles_done(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    d = deployer(store, hosts, cleanup)
    run = await begin(store, d, server_link)
    follower = asyncio.create_task(collect(run))
    await until(lambda: _has(host, "d-1"))
    host.job("d-1").finish.set()
    events = await follower
    assert [e["type"] for e in events] == ["state", "state", "progress", "result"]
    assert [e.get("state") for e in events[:2]] == ["pending", "running"]
    assert events[2] == {"type": "progress", "service": "web", "phase": "pull", "status": "downloading",
                         "current": 5, "total": 10, "message": None, "seq": 2}  # fmt: skip
    assert events[-1]["state"] == "done"
    assert events[-1]["services"][0]["container_id"] == "c1"
    assert [e["seq"] for e in events] == [0, 1, 2, 3]
    recorded = await store.deployment("d-1")
    assert recorded is not None
    assert (recorded.state, recorded.services[0]["name"], recorded.finished_at) == ("done", "web", 50.0)
    # A follower arriving after the end gets the whole story too.
    assert [e["type"] for e in await collect(run)] == ["state", "state", "progress", "result"]


async def _has(host: Host, deploy_id: str) -> bool:
    return deploy_id in host.jobs


async def test_cancel_ends_in_cancelled(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    run = await begin(store, deployer(store, hosts, cleanup), server_link)
    await until(lambda: _has(host, "d-1"))
    await server_link.request("stacks.cancel", {"deploy_id": "d-1"}, timeout=5)
    events = await collect(run)
    assert events[-1]["state"] == "cancelled"
    recorded = await store.deployment("d-1")
    assert recorded is not None
    assert recorded.state == "cancelled"


async def test_a_dropped_link_leaves_it_running_then_the_host_settles_it(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    d = deployer(store, hosts, cleanup)
    run = await begin(store, d, server_link)
    await until(lambda: _has(host, "d-1"))
    await server_link.close()
    await until(lambda: _idle(run))
    recorded = await store.deployment("d-1")
    assert recorded is not None
    assert recorded.state == "running"
    assert "dropped" in run.events[-1]["message"]
    # Meanwhile the job finishes on the host; the link comes back and the hello triggers a reconcile.
    host.job("d-1").finish.set()
    await until(lambda: _result(host, "d-1"))
    connect(hosts, host, cleanup)
    d.host_online("h1")
    events = await collect(run)
    assert events[-1]["state"] == "done"
    recorded = await store.deployment("d-1")
    assert recorded is not None
    assert recorded.state == "done"
    assert host.started == ["d-1"]  # never deployed twice


async def _idle(run: DeployRun) -> bool:
    return run.task is None


async def _result(host: Host, deploy_id: str) -> bool:
    return host.jobs[deploy_id].result is not None


async def test_after_a_restart_a_running_job_is_followed_again_with_the_same_id(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    first = deployer(store, hosts, cleanup)
    await begin(store, first, server_link)
    await until(lambda: _has(host, "d-1"))
    await first.stop()  # the server stops; its memory of the deploy is gone
    second = deployer(store, hosts, cleanup)
    await second.reconcile()
    run = second.get("d-1")
    assert run is not None
    assert run.task is not None  # following the job again
    host.job("d-1").finish.set()
    events = await collect(run)
    assert events[-1]["state"] == "done"
    assert host.started == ["d-1"]
    assert host.followed == ["d-1"]
    assert await store.unsettled() == []


async def test_a_deploy_the_host_never_saw_fails_with_a_reason(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    connect(hosts, host, cleanup)
    await store.start_deployment(Deployment("d-9", "web", "h1", 1, "pending", "admin", 10.0))
    d = deployer(store, hosts, cleanup)
    await d.reconcile("h1")
    recorded = await store.deployment("d-9")
    assert recorded is not None
    assert recorded.state == "failed"
    assert "no record of this deploy" in (recorded.error or "")
    assert host.started == []


async def test_an_offline_host_is_left_for_later(wired: Any) -> None:
    store, hosts, _host, cleanup = wired
    await store.start_deployment(Deployment("d-9", "web", "h1", 1, "pending", "admin", 10.0))
    await deployer(store, hosts, cleanup).reconcile()
    assert [u.id for u in await store.unsettled()] == ["d-9"]


async def test_a_refusal_fails_the_deploy_with_the_hosts_words(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    host.refuse = RemoteError("not_allowed", "services.web.privileged: not allowed for this stack")
    events = await collect(await begin(store, deployer(store, hosts, cleanup), server_link))
    assert events[-1]["state"] == "failed"
    assert events[-1]["error"] == "services.web.privileged: not allowed for this stack"


async def test_an_old_agent_is_told_to_upgrade(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    host.refuse = RemoteError("unknown_stream", "this agent has no stream 'stacks.deploy'")
    events = await collect(await begin(store, deployer(store, hosts, cleanup), server_link))
    assert "upgrade it" in events[-1]["error"]


async def test_a_failed_job_carries_the_hosts_message(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    run = await begin(store, deployer(store, hosts, cleanup), server_link)
    await until(lambda: _has(host, "d-1"))
    host.job("d-1").outcome = "failed"
    host.job("d-1").finish.set()
    events = await collect(run)
    assert (events[-1]["state"], events[-1]["error"]) == ("failed", "db is unhealthy")
    recorded = await store.deployment("d-1")
    assert recorded is not None
    assert recorded.error == "db is unhealthy"


async def test_hostile_packets_are_bounded(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    host.packets = [
        {"type": "progress", "service": "w" * 5000, "phase": "rm -rf", "status": ["x"], "current": -4,
         "total": True, "message": "m" * 100_000, "extra": "dropped"},
        {"type": "mystery"},
    ]  # fmt: skip
    run = await begin(store, deployer(store, hosts, cleanup), server_link)
    await until(lambda: _has(host, "d-1"))
    job = host.job("d-1")
    job.outcome = "exploded"  # not a final state
    job.finish.set()
    events = await collect(run)
    progress = next(e for e in events if e["type"] == "progress")
    assert len(progress["service"]) == 128
    assert progress["phase"] == "other"
    assert progress["status"] is None
    assert progress["current"] is None
    assert progress["total"] is None
    assert len(progress["message"]) == 1000
    assert "extra" not in progress
    assert [e["type"] for e in events].count("progress") == 1
    assert events[-1]["state"] == "failed"
    assert "unknown final state" in events[-1]["error"]


async def test_late_followers_see_a_gap_when_the_ring_overflowed() -> None:
    run = DeployRun("d", "web", "h1", "running")
    for i in range(RING + 5):
        run.publish({"type": "progress", "n": i})
    run.result = {"type": "result"}
    run.publish({"type": "result", "state": "done"})
    events = [e async for e in run.follow()]
    assert events[0] == {"type": "gap", "missed": 6}
    assert events[1]["n"] == 6
    assert events[-1]["type"] == "result"
    assert len(events) == RING + 1


class CountingHosts(Hosts):
    def __init__(self) -> None:
        super().__init__()
        self.walks = 0

    async def all(self) -> list[HostRef]:
        self.walks += 1
        return await super().all()


async def test_a_storm_of_hellos_costs_a_few_queries_and_no_host_walk(wired: Any) -> None:
    # A restarted server hears its whole fleet within seconds; with nothing unsettled, a hello must not
    # cost a walk over every host (that made a restart quadratic in the number of agents).
    store, _, _, cleanup = wired
    hosts = CountingHosts()
    d = deployer(store, hosts, cleanup)
    queries = 0
    unsettled = store.unsettled

    async def counted(host: str | None = None) -> list[Deployment]:
        nonlocal queries
        queries += 1
        return await unsettled(host)

    store.unsettled = counted  # type: ignore[method-assign]
    for i in range(500):
        d.host_online(f"h{i}")
    await until(lambda: _hellos_settled(d))
    assert 1 <= queries <= 3
    assert hosts.walks == 0


async def test_a_hello_during_a_storm_still_settles_its_host(wired: Any) -> None:
    store, hosts, host, cleanup = wired
    server_link, _ = connect(hosts, host, cleanup)
    d = deployer(store, hosts, cleanup)
    run = await begin(store, d, server_link)
    await until(lambda: _has(host, "d-1"))
    await server_link.close()
    await until(lambda: _idle(run))
    host.job("d-1").finish.set()
    await until(lambda: _result(host, "d-1"))
    connect(hosts, host, cleanup)
    for i in range(200):  # other hosts' hellos around this one's
        d.host_online(f"other-{i}")
    d.host_online("h1")
    events = await collect(run)
    assert events[-1]["state"] == "done"


async def _hellos_settled(d: Deployer) -> bool:
    task = d._hello_task
    return task is not None and task.done()
