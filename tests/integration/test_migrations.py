"""Stack migration end to end (issue 13): a real server, two real agents, two real engines.

50 MB of known data moves byte-identical (8 MB on PostgreSQL: the store's part is the same records); a
destination that fails health rolls back with the data still on the source; killing the destination's
agent mid-copy rolls back and its partial copy is discarded when it returns; the pre-flight names its
refusals; the CLI follows a migration to the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import BUSYBOX_IMAGE, Engine, Fleet, wait_for
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, Api, ServerProc
from tests.integration.spine import wait_online

pytestmark = [pytest.mark.docker]

STACK = f"""\
services:
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
    volumes: ["data:/data", "/tmp:/host-tmp:ro"]
volumes:
  data: {{}}
"""
UNHEALTHY = STACK.replace(
    "    stop_grace_period: 1s\n",
    "    stop_grace_period: 1s\n"
    '    healthcheck: {test: ["CMD", "test", "-f", "/data/never"], interval: 1s, timeout: 1s, retries: 2}\n',
)
# What the volume holds: a blob of known bytes ({mb} MB), a file owned by another user, a symlink, a subdir.
FILL = (
    "dd if=/dev/urandom of=/data/blob bs=1M count={mb} 2>/dev/null && mkdir -p /data/sub/deep && "
    "echo hello > /data/sub/deep/note && chown 1234:5678 /data/sub/deep/note && chmod 640 /data/sub/deep/note"
    " && ln -s sub/deep/note /data/link"
)
LISTING = "cd /data && find . | sort | xargs ls -ldn --full-time | awk '{print $1,$3,$4,$5,$9,$10,$11}'"
DIGESTS = "cd /data && find . -type f | sort | xargs sha256sum"


@pytest.fixture
def pair(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc]
) -> tuple[ServerProc, AgentProc, AgentProc]:
    server = server_factory()
    a = agent_factory(server, "alpha", engine=1)
    b = agent_factory(server, "beta", engine=2)
    for agent in (a, b):
        assert agent.agent_id
        wait_online(server, agent.agent_id)
    # The disk check needs the destination's first heartbeat.
    wait_for(lambda: (server.api.host(b.agent_id or "") or {}).get("metrics"), 60, message="no metrics")
    return server, a, b


def in_volume(engine: Engine, volume: str, script: str) -> str:
    return engine.docker(
        "run", "--rm", "--network", "none", "-v", f"{volume}:/data", BUSYBOX_IMAGE, "sh", "-c", script
    ).stdout  # fmt: skip


def deploy(server: ServerProc, name: str, host: str, compose: str = STACK) -> None:
    assert server.api.call("PUT", f"/api/v1/stacks/{name}", {"compose": compose})[0] == 200
    status, body = server.api.call("POST", f"/api/v1/stacks/{name}/deploy", {"host": host})
    assert status == 202, body
    wait_for(lambda: server.api.get(f"/api/v1/deploys/{body['id']}")["state"] == "done", 120, interval=0.2)


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    env.update(XDG_CONFIG_HOME=str(home), DOCKMESH_PASSWORD=ADMIN_PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def running(engine: Engine, name: str) -> list[str]:
    label = f"label=com.docker.compose.project={name}"
    return engine.docker("ps", "--filter", label, "--format", "{{.Names}}").stdout.split()


def settled(server: ServerProc, migration_id: str, timeout: float = 300) -> dict[str, Any]:
    record: dict[str, Any] = wait_for(
        lambda: (m := server.api.get(f"/api/v1/migrations/{migration_id}"))["state"] != "running" and m,
        timeout,
        interval=0.2,
        message="the migration never settled",
    )
    return record


def volumes(engine: Engine) -> list[str]:
    return engine.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()


@pytest.mark.both_engines
def test_fifty_megabytes_move_byte_identical(
    pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet, database_engine: str
) -> None:
    # The data path is the same on both engines; what the store adds (the migration's record, its
    # progress, the audit) is the same for 8 MB, so the 50 MB copy runs once.
    mb = 50 if database_engine == "sqlite" else 8
    server, a, b = pair
    ea, eb = fleet.engine(1), fleet.engine(2)
    deploy(server, "vault", a.agent_id or "")
    in_volume(ea, "vault_data", FILL.format(mb=mb))
    before = (in_volume(ea, "vault_data", DIGESTS), in_volume(ea, "vault_data", LISTING))
    assert "blob" in before[0]
    assert "1234 5678" in before[1]

    pf = server.api.post("/api/v1/stacks/vault/migrate/preflight", {"host": b.agent_id}, expect=200)
    assert pf["ok"] is True, pf
    assert [w["code"] for w in pf["warnings"]] == ["bind_mount"]  # /tmp is flagged, not copied
    assert pf["volumes"][0]["name"] == "vault_data"
    assert pf["volume_bytes"] >= mb << 20

    status, body = server.api.call("POST", "/api/v1/stacks/vault/migrate", {"host": b.agent_id})
    assert status == 202, body
    record = settled(server, body["id"])
    assert record["state"] == "done", record
    assert record["bytes_done"] >= mb << 20
    assert record["volumes"][0]["done"] is True
    assert len(record["volumes"][0]["sha256"]) == 64
    assert record["source_volumes"] == "kept"
    assert record["keep_until"] - record["updated_at"] == pytest.approx(24 * 3600, abs=5)

    assert running(eb, "vault") == ["vault-app-1"]
    assert running(ea, "vault") == []
    assert (in_volume(eb, "vault_data", DIGESTS), in_volume(eb, "vault_data", LISTING)) == before
    assert "vault_data" in volumes(ea)  # kept on the source for the safety window
    hosts = [h["host"] for h in server.api.get("/api/v1/stacks/vault")["hosts"]]
    assert hosts == [b.agent_id]
    entries = server.api.get("/api/v1/audit?action=migration.")["entries"]
    assert [e["action"] for e in entries] == ["migration.done", "migration.start"]
    assert entries[0]["detail"]["destination"] == b.agent_id
    assert entries[0]["host"] == a.agent_id

    # Moving it again to where it is now is refused by name, and nothing moves.
    status, body = server.api.call("POST", "/api/v1/stacks/vault/migrate", {"host": b.agent_id})
    assert status == 400, body


def test_unhealthy_destination_rolls_back_with_the_data_on_the_source(
    pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet
) -> None:
    server, a, b = pair
    ea, eb = fleet.engine(1), fleet.engine(2)
    deploy(server, "sick", a.agent_id or "")
    in_volume(ea, "sick_data", "echo precious > /data/keep")
    # The current revision (the one a migration deploys) never becomes healthy.
    assert server.api.call("PUT", "/api/v1/stacks/sick", {"compose": UNHEALTHY})[0] == 200
    status, body = server.api.call("POST", "/api/v1/stacks/sick/migrate", {"host": b.agent_id})
    assert status == 202, body
    record = settled(server, body["id"])
    assert record["state"] == "rolled_back", record
    assert "unhealthy" in record["reason"]
    assert running(ea, "sick") == ["sick-app-1"]
    assert running(eb, "sick") == []
    assert in_volume(ea, "sick_data", "cat /data/keep") == "precious\n"
    assert "sick_data" not in volumes(eb)
    assert [h["host"] for h in server.api.get("/api/v1/stacks/sick")["hosts"]] == [a.agent_id]


def test_killing_the_destination_agent_mid_copy_rolls_back(
    pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet
) -> None:
    server, a, b = pair
    ea, eb = fleet.engine(1), fleet.engine(2)
    deploy(server, "bulky", a.agent_id or "")
    in_volume(ea, "bulky_data", "dd if=/dev/urandom of=/data/blob bs=1M count=400 2>/dev/null")
    status, body = server.api.call("POST", "/api/v1/stacks/bulky/migrate", {"host": b.agent_id})
    assert status == 202, body
    mid = f"/api/v1/migrations/{body['id']}"
    wait_for(lambda: server.api.get(mid)["bytes_done"] > 0, 60, interval=0.02, message="the copy never began")
    assert b.proc is not None
    b.proc.kill()
    record = settled(server, body["id"])
    assert record["state"] == "rolled_back", record
    assert record["cleanup"] == "pending"  # the destination is away: its partial copy goes when it is back
    assert running(ea, "bulky") == ["bulky-app-1"]
    assert running(eb, "bulky") == []
    b.start()
    wait_online(server, b.agent_id or "")
    wait_for(lambda: server.api.get(mid)["cleanup"] == "done", 60, interval=0.2, message="never discarded")
    assert "bulky_data" not in volumes(eb)


def test_preflight_refusals_are_named(pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet) -> None:
    server, a, b = pair
    deploy(server, "named", a.agent_id or "")
    assert server.api.call("POST", f"/api/v1/hosts/{b.agent_id}/cordon")[0] == 200
    fleet.engine(2).docker("volume", "create", "named_data")
    status, body = server.api.call("POST", "/api/v1/stacks/named/migrate", {"host": b.agent_id})
    assert status == 409, body
    assert body["error"]["code"] == "preflight_failed"
    codes = {p["code"] for p in body["error"]["problems"]}
    assert codes == {"destination_cordoned", "volume_exists"}, body
    assert running(fleet.engine(1), "named") == ["named-app-1"]  # nothing was touched
    status, body = server.api.call(
        "POST", "/api/v1/stacks/named/migrate", {"host": b.agent_id, "from": b.agent_id}
    )
    assert status == 400, body
    status, body = server.api.call("POST", "/api/v1/stacks/nowhere/migrate", {"host": b.agent_id})
    assert status == 404, body


def test_caller_without_deploy_on_the_destination_cannot_see_it(
    pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet
) -> None:
    server, a, b = pair
    deploy(server, "scoped", a.agent_id or "")
    admin = server.api
    assert admin.call("PUT", f"/api/v1/hosts/{a.agent_id}/tags", {"tags": ["prod"]})[0] == 200
    perms = ["hosts.view", "stacks.view", "stacks.deploy"]
    admin.post("/api/v1/roles", {"name": "prod-deployer", "permissions": perms, "scope": "prod"}, expect=201)
    admin.post(
        "/api/v1/users",
        {"username": "dee", "password": "dee-password-1", "roles": ["prod-deployer"]},
        expect=201,
    )

    status, login = Api(server.url).call(
        "POST", "/api/v1/auth/login", {"username": "dee", "password": "dee-password-1"}
    )
    assert status == 200
    user = Api(server.url, login["token"])
    status, body = user.call("POST", "/api/v1/stacks/scoped/migrate", {"host": b.agent_id})
    assert status == 404, body
    assert body["error"]["code"] == "host_not_found"
    assert running(fleet.engine(1), "scoped") == ["scoped-app-1"]


def test_cli_migrates_with_progress(
    pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet, tmp_path: Path
) -> None:
    server, a, _b = pair
    deploy(server, "clied", a.agent_id or "")
    assert cli(tmp_path, "login", "--url", server.url).returncode == 0
    done = cli(tmp_path, "stacks", "migrate", "clied", "--to", "beta")
    assert done.returncode == 0, done.stderr
    assert "copying" in done.stdout
    assert "done" in done.stdout
    assert running(fleet.engine(2), "clied") == ["clied-app-1"]
    again = cli(tmp_path, "stacks", "migrate", "clied", "--to", "beta")
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1


SLOW_HEALTH = UNHEALTHY.replace("retries: 2", "retries: 600")  # "starting" for ten minutes


@pytest.mark.both_engines
def test_server_killed_while_the_destination_runs_the_stack_rolls_back_once(
    pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet
) -> None:
    server, a, b = pair
    ea, eb = fleet.engine(1), fleet.engine(2)
    deploy(server, "twice", a.agent_id or "")
    in_volume(ea, "twice_data", "echo mine > /data/keep")
    assert server.api.call("PUT", "/api/v1/stacks/twice", {"compose": SLOW_HEALTH})[0] == 200
    status, body = server.api.call("POST", "/api/v1/stacks/twice/migrate", {"host": b.agent_id})
    assert status == 202, body
    mid = f"/api/v1/migrations/{body['id']}"
    wait_for(
        lambda: server.api.get(mid)["phase"] == "health", 120, interval=0.1, message="never reached health"
    )
    assert running(eb, "twice") == ["twice-app-1"]
    assert running(ea, "twice") == []
    server.kill()
    server.start()
    record = settled(server, body["id"])
    assert record["state"] == "rolled_back", record
    assert "server restarted during health" in record["reason"]
    assert running(eb, "twice") == []
    assert running(ea, "twice") == ["twice-app-1"]
    assert "twice_data" not in volumes(eb)
    assert in_volume(ea, "twice_data", "cat /data/keep") == "mine\n"
    assert [h["host"] for h in server.api.get("/api/v1/stacks/twice")["hosts"]] == [a.agent_id]


def test_the_sweep_removes_the_source_volumes_after_the_safety_window(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc], fleet: Fleet
) -> None:
    server = server_factory(env={"DOCKMESH_MIGRATION_KEEP": "3s"})
    a, b = agent_factory(server, "alpha", engine=1), agent_factory(server, "beta", engine=2)
    for agent in (a, b):
        wait_online(server, agent.agent_id or "")
    wait_for(lambda: (server.api.host(b.agent_id or "") or {}).get("metrics"), 60, message="no metrics")
    deploy(server, "brief", a.agent_id or "")
    status, body = server.api.call("POST", "/api/v1/stacks/brief/migrate", {"host": b.agent_id})
    assert status == 202, body
    record = settled(server, body["id"])
    assert (record["state"], record["source_volumes"]) == ("done", "kept")
    mid = f"/api/v1/migrations/{body['id']}"
    wait_for(
        lambda: server.api.get(mid)["source_volumes"] == "removed", 90, interval=0.5, message="never swept"
    )
    assert "brief_data" not in volumes(fleet.engine(1))
    assert "brief_data" in volumes(fleet.engine(2))
    assert running(fleet.engine(2), "brief") == ["brief-app-1"]
    actions = [e["action"] for e in server.api.get("/api/v1/audit?action=migration.")["entries"]]
    assert actions[0] == "migration.volumes_removed"


def test_a_private_image_the_destination_never_had_is_pulled_with_its_scoped_credential(
    pair: tuple[ServerProc, AgentProc, AgentProc], fleet: Fleet, tmp_path: Path
) -> None:
    server, a, b = pair
    ea, eb = fleet.engine(1), fleet.engine(2)
    reg = fleet.registry()
    private = f"{reg.addr}/dm/mig-private:{secrets.token_hex(3)}"
    cfg = {"DOCKER_CONFIG": str(tmp_path / "dockercfg")}
    ea.docker("tag", BUSYBOX_IMAGE, private)
    ea.docker("login", "-u", reg.username, "--password-stdin", reg.addr, input=reg.password, env=cfg)
    ea.docker("push", private, env=cfg)
    assert not eb.image_exists(private)
    assert server.api.call("PUT", f"/api/v1/hosts/{b.agent_id}/tags", {"tags": ["dest"]})[0] == 200
    cred = {"url": reg.addr, "username": reg.username, "password": reg.password, "scope": "dest"}
    assert server.api.call("POST", "/api/v1/registries", cred)[0] == 201
    deploy(server, "priv", a.agent_id or "", STACK.replace(BUSYBOX_IMAGE, private))
    in_volume(ea, "priv_data", "echo sealed > /data/keep")
    status, body = server.api.call("POST", "/api/v1/stacks/priv/migrate", {"host": b.agent_id})
    assert status == 202, body
    record = settled(server, body["id"])
    assert record["state"] == "done", record
    assert eb.image_exists(private)
    assert in_volume(eb, "priv_data", "cat /data/keep") == "sealed\n"
