"""dockmesh.docker.compose against a real dockerd: deploy, redeploy by config hash, rollback, down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from tests.fleet import BUSYBOX_IMAGE, Engine, Fleet
from tests.integration.compose_stack import NEVER_HEALTHY, STACK, ps

from dockmesh.compose import load_project
from dockmesh.docker import compose
from dockmesh.docker.engine import connect
from dockmesh.docker.errors import DockerFailure

pytestmark = pytest.mark.docker


@pytest.fixture
async def docker(fleet: Fleet) -> AsyncIterator[aiodocker.Docker]:
    client = connect(fleet.engine(0).docker_host)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def engine(fleet: Fleet) -> Engine:
    return fleet.engine(0)


class Events(list[dict[str, Any]]):
    def __call__(self, event: dict[str, Any]) -> None:
        self.append(event)

    def index_of(self, service: str, phase: str, status: str) -> int:
        for i, e in enumerate(self):
            if (e["service"], e["phase"], e["status"]) == (service, phase, status):
                return i
        raise AssertionError(f"no {service}/{phase}/{status} in {self}")


async def up(docker: aiodocker.Docker, env: str = "", text: str = STACK, name: str = "demo") -> Events:
    events = Events()
    await compose.deploy(docker, load_project(name, text, env), emit=events)
    return events


def names(engine: Engine, kind: str) -> set[str]:
    return set(engine.docker(kind, "ls", "--format", "{{.Name}}").stdout.split())


async def test_deploy_the_done_when_stack(docker: aiodocker.Docker, engine: Engine) -> None:
    events = await up(docker)
    assert set(ps(engine)) == {"demo-web-1", "demo-db-1"}
    # web starts only after db reported healthy (depends_on: service_healthy)
    assert events.index_of("db", "health", "healthy") < events.index_of("web", "create", "creating")
    assert "demo_data" in names(engine, "volume")
    assert "demo_back" in names(engine, "network")
    labels = json.loads(engine.docker("inspect", "demo-web-1", "--format", "{{json .Config.Labels}}").stdout)
    assert labels["com.docker.compose.project"] == "demo"
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert len(labels["com.docker.compose.config-hash"]) == 64
    net = json.loads(engine.docker("network", "inspect", "demo_back", "--format", "{{json .Labels}}").stdout)
    assert net["com.docker.compose.network"] == "back"
    rows = {r["name"]: r for r in await compose.services(docker, "demo")}
    assert rows["db"]["health"] == "healthy"
    assert rows["web"]["state"] == "running"
    assert rows["web"]["containers"] == 1


async def test_redeploy_keeps_unchanged_and_recreates_changed(
    docker: aiodocker.Docker, engine: Engine
) -> None:
    await up(docker)
    before = ps(engine)
    again = await up(docker)
    assert ps(engine) == before
    assert ("web", "start", "unchanged") in {(e["service"], e["phase"], e["status"]) for e in again}

    await up(docker, "MODE=two")
    after = ps(engine)
    assert set(after) == {"demo-web-1", "demo-db-1"}
    assert after["demo-db-1"] == before["demo-db-1"]
    assert after["demo-web-1"] != before["demo-web-1"]
    env = engine.docker("inspect", "demo-web-1", "--format", "{{json .Config.Env}}").stdout
    assert "MODE=two" in env


async def test_removed_service_is_removed(docker: aiodocker.Docker, engine: Engine) -> None:
    await up(docker)
    only_db = STACK.split("  db:\n")[1]
    await up(docker, text="services:\n  db:\n" + only_db.replace("volumes:\n  data:\n", ""))
    assert set(ps(engine)) == {"demo-db-1"}


async def test_down_keeps_volumes_unless_asked(docker: aiodocker.Docker, engine: Engine) -> None:
    await up(docker)
    await compose.down(docker, "demo")
    assert ps(engine) == {}
    assert "demo_back" not in names(engine, "network")
    assert "demo_data" in names(engine, "volume")
    await up(docker)
    await compose.down(docker, "demo", volumes=True)
    assert ps(engine) == {}
    assert "demo_data" not in names(engine, "volume")


async def test_stop_and_start(docker: aiodocker.Docker, engine: Engine) -> None:
    await up(docker)
    await compose.stop(docker, "demo")
    assert {r["state"] for r in await compose.services(docker, "demo")} == {"exited"}
    await compose.start(docker, "demo")
    assert {r["state"] for r in await compose.services(docker, "demo")} == {"running"}


async def test_missing_image_fails_with_the_engines_message_and_leaves_nothing(
    docker: aiodocker.Docker, fleet: Fleet, engine: Engine
) -> None:
    reg = fleet.registry()  # a loopback registry: the test stays off the network
    missing = f"{reg.addr}/dm/nope:1"
    auth = {reg.addr: {"username": reg.username, "password": reg.password}}
    text = STACK.replace(
        f'image: {BUSYBOX_IMAGE}\n    command: ["httpd"', f'image: {missing}\n    command: ["httpd"'
    )
    assert missing in text
    with pytest.raises(DockerFailure) as caught:
        await compose.deploy(docker, load_project("demo", text), emit=Events(), auth=auth)
    assert missing in caught.value.message
    assert "manifest unknown" in caught.value.message or "not found" in caught.value.message
    assert ps(engine) == {}
    assert "demo_back" not in names(engine, "network")
    assert "demo_data" not in names(engine, "volume")


async def test_failed_redeploy_restores_the_previous_containers(
    docker: aiodocker.Docker, engine: Engine
) -> None:
    await up(docker)
    before = ps(engine)
    broken = STACK.replace(
        "    stop_grace_period: 1s\n    depends_on:",
        "    user: nosuchuser\n    stop_grace_period: 1s\n    depends_on:",
    )
    assert "nosuchuser" in broken
    events = Events()
    with pytest.raises(DockerFailure):
        await compose.deploy(docker, load_project("demo", broken), emit=events)
    assert ps(engine) == before
    assert {r["state"] for r in await compose.services(docker, "demo")} == {"running"}
    assert events[-1]["phase"] == "rollback"


async def test_cancel_mid_deploy_leaves_nothing(docker: aiodocker.Docker, engine: Engine) -> None:
    waiting = asyncio.Event()

    def emit(event: dict[str, Any]) -> None:
        if (event["service"], event["phase"]) == ("db", "health"):
            waiting.set()

    task = asyncio.create_task(compose.deploy(docker, load_project("demo", NEVER_HEALTHY), emit=emit))
    async with asyncio.timeout(60):
        await waiting.wait()
    assert "demo-db-1" in ps(engine)  # it was mid-way: db created and started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ps(engine) == {}
    assert "demo_back" not in names(engine, "network")


async def test_unhealthy_dependency_fails_the_deploy(docker: aiodocker.Docker, engine: Engine) -> None:
    sick = STACK.replace('["CMD", "test", "-f", "/tmp/ready"]', '["CMD", "false"]').replace(
        "retries: 5", "retries: 1"
    )
    with pytest.raises(DockerFailure) as caught:
        await up(docker, text=sick)
    assert "did not become healthy" in caught.value.message
    assert ps(engine) == {}


async def test_pull_with_registry_auth(
    docker: aiodocker.Docker, fleet: Fleet, engine: Engine, tmp_path: Path
) -> None:
    reg = fleet.registry()
    ref = f"{reg.addr}/dm/stack:1"
    cfg = {"DOCKER_CONFIG": str(tmp_path)}
    # A layer of its own (2 MB), so the pull downloads bytes rather than finding every layer present.
    engine.docker(
        "run",
        "--name",
        "dm-mk",
        "--network",
        "none",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "head -c 2000000 /dev/urandom >/blob",
    )
    engine.docker("commit", "dm-mk", ref)
    engine.docker("rm", "dm-mk")
    engine.docker("login", "-u", reg.username, "--password-stdin", reg.addr, input=reg.password, env=cfg)
    engine.docker("push", ref, env=cfg)
    engine.docker("rmi", ref)
    text = f"services:\n  a:\n    image: {ref}\n    command: [sleep, '600']\n    network_mode: none\n"
    with pytest.raises(DockerFailure) as caught:
        await up(docker, text=text)
    assert caught.value.code == "unauthorized"
    events = Events()
    auth = {reg.addr: {"username": reg.username, "password": reg.password}}
    await compose.deploy(docker, load_project("demo", text), emit=events, auth=auth)
    pulls = [e for e in events if e["phase"] == "pull" and e["total"]]
    assert pulls
    assert max(e["total"] for e in pulls) >= 2_000_000
    assert all(e["current"] <= e["total"] for e in pulls)
    assert set(ps(engine)) == {"demo-a-1"}
    assert reg.password not in json.dumps(list(events))
    assert reg.password not in engine.docker("inspect", "demo-a-1").stdout


ONE_SHOT = f"""\
services:
  init:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "exit ${{CODE:-0}}"]
    network_mode: none
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
    depends_on:
      init: {{condition: service_completed_successfully}}
"""


async def test_depends_on_completed_successfully(docker: aiodocker.Docker, engine: Engine) -> None:
    events = await up(docker, text=ONE_SHOT)
    assert events.index_of("init", "health", "completed") < events.index_of("app", "create", "creating")
    states = {r["name"]: r["state"] for r in await compose.services(docker, "demo")}
    assert states == {"init": "exited", "app": "running"}


async def test_a_failed_one_shot_fails_the_deploy(docker: aiodocker.Docker, engine: Engine) -> None:
    with pytest.raises(DockerFailure) as caught:
        await up(docker, "CODE=3", text=ONE_SHOT)
    assert "exited with code 3" in caught.value.message
    assert ps(engine) == {}


async def test_missing_external_network(docker: aiodocker.Docker, engine: Engine) -> None:
    text = f"services:\n  a:\n    image: {BUSYBOX_IMAGE}\n    networks: [edge]\n"
    text += "networks:\n  edge: {external: true}\n"
    with pytest.raises(DockerFailure) as caught:
        await up(docker, text=text)
    assert caught.value.code == "not_found"
    assert "edge" in caught.value.message
    assert ps(engine) == {}
