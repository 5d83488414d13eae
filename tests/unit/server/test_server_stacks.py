"""The stack service's checks with the real store (both engines) and the real compose validation: names,
sizes, compose errors with key and line, the privileged flag, cordoned/offline/busy hosts, delete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockmesh.link import Link
from dockmesh.link.memory import socket_pair
from dockmesh.proto import Role
from dockmesh.server.directory import HostRef
from dockmesh.server.services.deploys import Deployer
from dockmesh.server.services.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge, Unavailable
from dockmesh.server.services.stacks import StackService, check_name
from dockmesh.store import Database
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditStore
from dockmesh.store.stacks import Deployment, StackStore
from dockmesh.store.users import RoleRecord, UserRecord

ADMIN = UserRecord(1, "admin", "x", True)
# Not an administrator: the built-in operator role, on every host.
USER = UserRecord(2, "dev", "x", False, (RoleRecord(2, "operator", (), "", True),))
COMPOSE = "services:\n  web:\n    image: local/busybox:1\n    command: sleep 600\n"


class Hosts:
    def __init__(self) -> None:
        self.hosts: list[HostRef] = []

    async def all(self) -> list[HostRef]:
        return list(self.hosts)

    async def select(self, selector: str) -> list[HostRef]:
        return list(self.hosts)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[tuple[StackService, StackStore, AgentStore, Hosts, AuditStore]]:
    store, agents, hosts, audit = StackStore(db), AgentStore(db), Hosts(), AuditStore(db)
    deployer = Deployer(store, hosts, lambda: 5.0, sweep_interval=3600)  # type: ignore[arg-type]
    yield StackService(store, agents, hosts, deployer, audit, lambda: 5.0), store, agents, hosts, audit  # type: ignore[arg-type]
    await deployer.stop()


@pytest.mark.parametrize("name", ["../x", "a/b", "Web", "", "-web", "a" * 64, "web stack", "wéb"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(Invalid) as info:
        check_name(name)
    assert info.value.code == "invalid_name"
    assert info.value.status == 400


@pytest.mark.parametrize("name", ["web", "a", "0-x_y", "a" * 63])
def test_good_names_pass(name: str) -> None:
    assert check_name(name) == name


async def test_save_keeps_revisions_and_audits(env: Any) -> None:
    service, _store, _agents, _hosts, audit = env
    record, changed = await service.save(ADMIN, "web", COMPOSE)
    assert (record.revision, changed) == (1, True)
    record, changed = await service.save(ADMIN, "web", COMPOSE.replace("600", "700"), "A=1\n")
    assert (record.revision, changed) == (2, True)
    revisions = await service.revisions(ADMIN, "web")
    assert [r.number for r in revisions] == [2, 1]
    assert "-    command: sleep 600" in revisions[0].diff
    assert "+A=1" in revisions[0].diff
    assert [(e.action, e.target, e.detail["revision"]) for e in await audit.recent()] == [
        ("stack.save", "web", 2),
        ("stack.save", "web", 1),
    ]


async def test_an_unknown_key_names_key_and_line_and_stores_nothing(env: Any) -> None:
    service, store, *_ = env
    with pytest.raises(Invalid) as info:
        await service.save(ADMIN, "web", COMPOSE + "    bogus: 1\n")
    assert info.value.code == "unsupported_key"
    assert info.value.details == {"key": "services.web.bogus", "line": 5}
    assert await store.get("web") is None


async def test_too_large_is_413_before_parsing(env: Any) -> None:
    service, store, *_ = env
    with pytest.raises(TooLarge):
        await service.save(ADMIN, "web", COMPOSE + "#" * (1 << 20))
    assert await store.get("web") is None


async def test_text_that_would_not_fit_one_link_frame_is_413(env: Any) -> None:
    service, store, *_ = env
    # Under 1 MiB as text, but each newline is two bytes once JSON-encoded into the deploy's OPEN frame.
    with pytest.raises(TooLarge) as info:
        await service.save(ADMIN, "web", COMPOSE + "\n" * 600_000)
    assert "opening frame" in info.value.message
    assert await store.get("web") is None


async def test_privileged_needs_the_flag_and_the_flag_needs_an_admin(env: Any) -> None:
    service, store, *_ = env
    privileged = COMPOSE + "    privileged: true\n"
    with pytest.raises(Invalid) as info:
        await service.save(ADMIN, "web", privileged)
    assert info.value.code == "not_allowed"
    assert info.value.details["key"] == "services.web.privileged"
    with pytest.raises(Forbidden):
        await service.save(USER, "web", privileged, allow_privileged=True)
    assert await store.get("web") is None
    record, _ = await service.save(ADMIN, "web", privileged, allow_privileged=True)
    assert record.allow_privileged
    # Later saves keep the flag without repeating it.
    record, _ = await service.save(USER, "web", privileged + "    user: '1'\n")
    assert record.allow_privileged


async def _online_host(hosts: Hosts, host_id: str, name: str) -> list[Any]:
    server_end, host_end = socket_pair()
    link, peer = Link(server_end, Role.ACCEPTOR), Link(host_end, Role.DIALER)
    tasks = [asyncio.create_task(link.run()), asyncio.create_task(peer.run())]
    hosts.hosts.append(HostRef(host_id, name, (), link))
    return [link, peer, *tasks]


async def test_deploy_refusals(env: Any) -> None:
    service, store, agents, hosts, _audit = env
    await service.save(ADMIN, "web", COMPOSE)
    with pytest.raises(NotFound) as missing:
        await service.deploy(ADMIN, "web", "nope")
    assert missing.value.code == "host_not_found"
    with pytest.raises(NotFound):
        await service.deploy(ADMIN, "other", "nope")
    cordoned = await agents.create("edge-1", "t1", 99.0, 1.0)
    await agents.set_cordoned(cordoned.id, True)
    hosts.hosts.append(HostRef(cordoned.id, "edge-1", (), None))
    with pytest.raises(Conflict) as refused:
        await service.deploy(ADMIN, "web", cordoned.id)
    assert refused.value.code == "host_cordoned"
    assert "edge-1" in refused.value.message
    offline = await agents.create("edge-2", "t2", 99.0, 1.0)
    hosts.hosts.append(HostRef(offline.id, "edge-2", (), None))
    with pytest.raises(Unavailable) as away:
        await service.deploy(ADMIN, "web", offline.id)
    assert away.value.code == "host_offline"
    cleanup = await _online_host(hosts, "h3", "edge-3")
    try:
        await store.start_deployment(Deployment("d-1", "web", "h3", 1, "running", "admin", 1.0))
        with pytest.raises(Conflict) as busy:
            await service.deploy(ADMIN, "web", "h3")
        assert busy.value.code == "deploy_in_progress"
        assert busy.value.details == {"deploy_id": "d-1"}
    finally:
        for item in cleanup:
            if isinstance(item, Link):
                await item.close()
    assert [d.id for d in await store.deployments("web")] == ["d-1"]


async def test_delete_is_refused_while_deployed(env: Any) -> None:
    service, store, *_ = env
    await service.save(ADMIN, "web", COMPOSE)
    await store.start_deployment(Deployment("d-1", "web", "h1", 1, "done", "admin", 1.0))
    with pytest.raises(Conflict) as info:
        await service.delete(ADMIN, "web")
    assert info.value.code == "stack_deployed"
    await store.remove_placement("web", "h1")
    await service.delete(ADMIN, "web")
    with pytest.raises(NotFound):
        await service.delete(ADMIN, "web")


async def test_settled_deploys_answer_their_result_as_the_only_event(env: Any) -> None:
    service, store, *_ = env
    await service.save(ADMIN, "web", COMPOSE)
    await store.start_deployment(Deployment("d-1", "web", "h1", 1, "pending", "admin", 1.0))
    await store.settle("d-1", "failed", services=[], error="boom", now=2.0)
    events = [e async for e in await service.events(ADMIN, "d-1")]
    assert [(e["type"], e["state"], e["error"]) for e in events] == [("result", "failed", "boom")]
    with pytest.raises(NotFound):
        await service.deployment(ADMIN, "../etc")
    with pytest.raises(Conflict) as info:
        await service.cancel(ADMIN, "d-1")
    assert info.value.code == "deploy_finished"
