"""Volumes, networks and images through the real server and agents: create, remove, pull, prune."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Engine, Fleet, wait_for
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, ServerProc
from tests.integration.spine import wait_online

pytestmark = pytest.mark.docker

IMAGE = "local/busybox:1"


@dataclass
class Pair:
    server: ServerProc
    remote: str  # the agent's host id (engine 1); `local` is engine 0
    engines: list[Engine]


@pytest.fixture
def pair(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc], fleet: Fleet
) -> Pair:
    server = server_factory(docker_host=fleet.engine(0).docker_host)
    agent = agent_factory(server, "edge", engine=1)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    wait_for(lambda: server.api.host("local"), 15, message="local host never appeared")
    return Pair(server, agent.agent_id, [fleet.engine(0), fleet.engine(1)])


def lines(server: ServerProc, path: str, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """POST and read an NDJSON answer (or the JSON error) to the end."""
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {server.api.token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, [json.loads(x) for x in resp.read().splitlines() if x.strip()]
    except urllib.error.HTTPError as exc:
        return exc.code, [json.loads(exc.read())]


def audit(server: ServerProc) -> list[tuple[str, str]]:
    db = sqlite3.connect(server.data_dir / "dockmesh.db")
    try:
        return [(a, t) for a, t in db.execute("SELECT action, target FROM audit ORDER BY id")]
    finally:
        db.close()


def names(engine: Engine, kind: str) -> set[str]:
    return set(engine.docker(kind, "ls", "--format", "{{.Name}}").stdout.split())


def test_volume_and_network_lifecycle_on_a_remote_host(pair: Pair) -> None:
    api, host, eng = pair.server.api, pair.remote, pair.engines[1]
    base = f"/api/v1/hosts/{host}"

    status, row = api.call("POST", f"{base}/volumes", {"name": "dm-data"})
    assert status == 201, row
    assert (row["name"], row["driver"], row["host"]["id"]) == ("dm-data", "local", host)
    assert "dm-data" in names(eng, "volume")
    assert "dm-data" not in names(pair.engines[0], "volume")

    # In use: a clear 409, and the volume and its data stay.
    eng.docker(
        "run", "-d", "--network", "none", "--name", "dm-user", "-v", "dm-data:/data", IMAGE,
        "sh", "-c", "echo kept > /data/f; sleep 600",
    )  # fmt: skip
    wait_for(lambda: eng.docker("exec", "dm-user", "cat", "/data/f").stdout.strip() == "kept", 10)
    status, err = api.call("DELETE", f"{base}/volumes/dm-data")
    assert status == 409, err
    assert err["error"]["code"] == "in_use"
    assert "dm-data" in err["error"]["message"]
    assert "edge" in err["error"]["message"]
    assert eng.docker("exec", "dm-user", "cat", "/data/f").stdout.strip() == "kept"
    eng.docker("rm", "-f", "dm-user")
    status, ok = api.call("DELETE", f"{base}/volumes/dm-data")
    assert (status, ok) == (200, {"ok": True})
    assert "dm-data" not in names(eng, "volume")
    status, err = api.call("DELETE", f"{base}/volumes/dm-data")
    assert (status, err["error"]["code"]) == (404, "not_found")

    status, net = api.call("POST", f"{base}/networks", {"name": "dm-net", "internal": True})
    assert status == 201, net
    assert (net["name"], net["driver"], net["internal"]) == ("dm-net", "bridge", True)
    inspected = json.loads(eng.docker("network", "inspect", "dm-net").stdout)[0]
    assert (inspected["Driver"], inspected["Internal"]) == ("bridge", True)
    assert inspected["Id"].startswith(net["id"])
    status, err = api.call("POST", f"{base}/networks", {"name": "dm-net", "internal": True})
    assert (status, err["error"]["code"]) == (409, "conflict")
    eng.docker("run", "-d", "--network", "dm-net", "--name", "dm-netuser", IMAGE, "sleep", "600")
    status, err = api.call("DELETE", f"{base}/networks/dm-net")
    assert (status, err["error"]["code"]) == (409, "in_use"), err
    eng.docker("rm", "-f", "dm-netuser")
    assert api.call("DELETE", f"{base}/networks/{net['id']}") == (200, {"ok": True})
    assert "dm-net" not in names(eng, "network")

    assert ("volume.create", f"{host}/dm-data") in audit(pair.server)
    assert ("volume.remove", f"{host}/dm-data") in audit(pair.server)
    assert ("network.create", f"{host}/dm-net") in audit(pair.server)
    assert ("network.remove", f"{host}/{net['id']}") in audit(pair.server)


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "volumes", {"name": "../x"}, "invalid_name"),
        ("POST", "volumes", {"name": "a"}, "invalid_name"),
        ("POST", "volumes", {"name": "-dash"}, "invalid_name"),
        ("POST", "volumes", {}, "invalid_name"),
        ("POST", "volumes", {"name": "ok-name", "driver": "a b"}, "invalid_driver"),
        ("POST", "volumes", {"name": "ok-name", "extra": 1}, "invalid_body"),
        ("POST", "networks", {"name": "a/b"}, "invalid_name"),
        ("POST", "networks", {"name": "ok-net", "internal": "yes"}, "invalid_internal"),
        ("DELETE", "volumes/x%20y", None, "invalid_name"),
        ("DELETE", "networks/..", None, "invalid_name"),
        ("POST", "images/pull", {"image": "a b"}, "invalid_image"),
        ("POST", "images/pull", {"image": ""}, "invalid_image"),
    ],
)
def test_bad_input_is_a_400_and_nothing_changes(
    pair: Pair, method: str, path: str, body: dict[str, Any] | None, code: str
) -> None:
    before = names(pair.engines[1], "volume"), names(pair.engines[1], "network")
    status, err = pair.server.api.call(method, f"/api/v1/hosts/{pair.remote}/{path}", body)
    assert status == 400, err
    assert err["error"]["code"] == code
    assert (names(pair.engines[1], "volume"), names(pair.engines[1], "network")) == before


def test_prune_body_and_selector_are_checked(pair: Pair) -> None:
    api = pair.server.api
    status, err = api.call("POST", "/api/v1/volumes/prune?host=all", {"dry_run": "no"})
    assert (status, err["error"]["code"]) == (400, "invalid_dry_run")
    status, err = api.call("POST", "/api/v1/images/prune?host=all", {"dry_run": True, "mode": "every"})
    assert (status, err["error"]["code"]) == (400, "invalid_mode")
    status, err = api.call("POST", "/api/v1/images/prune?host=nosuch", {"dry_run": True})
    assert (status, err["error"]["code"]) == (404, "host_not_found")


def test_pull_streams_progress_and_fails_clearly_without_credentials(pair: Pair, fleet: Fleet) -> None:
    eng = pair.engines[1]
    open_reg = fleet.open_registry()
    ref = f"{open_reg.addr}/dm/pulled:1"
    # A layer of its own (the busybox one is on the engine already and would not be downloaded).
    eng.docker(
        "run", "--network", "none", "--name", "dm-blob", IMAGE,
        "dd", "if=/dev/urandom", "of=/blob", "bs=1024", "count=600",
    )  # fmt: skip
    eng.docker("commit", "dm-blob", ref)
    eng.docker("rm", "dm-blob")
    eng.docker("push", ref)
    eng.docker("rmi", ref)
    assert not eng.image_exists(ref)

    status, out = lines(pair.server, f"/api/v1/hosts/{pair.remote}/images/pull", {"image": ref})
    assert status == 200, out
    *progress, last = out
    assert last["type"] == "result", last
    assert last["id"].startswith("sha256:")
    assert last["image"] == ref
    assert eng.image_exists(ref)
    downloads = [p for p in progress if p["status"] == "Downloading"]
    assert downloads
    assert all(p["total"] > 0 and p["host"]["id"] == pair.remote for p in downloads)
    # Summed over layers: the running total never shrinks and ends at the image's compressed size.
    sums = [p["pulled"] for p in progress]
    assert sums == sorted(sums)
    assert progress[-1]["pulled"] == progress[-1]["size"] > 0
    assert ("image.pull", f"{pair.remote}/{ref}") in audit(pair.server)

    # The registry with auth and no credentials sent: the engine's refusal, clearly, before any stream.
    reg = fleet.registry()
    secret = f"{reg.addr}/dm/secret:1"
    cfg = {"DOCKER_CONFIG": str(pair.server.base / "dockercfg")}
    eng.docker("tag", IMAGE, secret)
    eng.docker("login", "-u", reg.username, "--password-stdin", reg.addr, input=reg.password, env=cfg)
    eng.docker("push", secret, env=cfg)
    eng.docker("rmi", secret)
    status, out = lines(pair.server, f"/api/v1/hosts/{pair.remote}/images/pull", {"image": secret})
    assert status == 403, out
    assert out[0]["error"]["code"] == "registry_unauthorized"
    assert "edge" in out[0]["error"]["message"]
    assert "credentials" in out[0]["error"]["message"]
    assert not eng.image_exists(secret)

    # Remove: refused while a container uses it (nothing lost), then the tag goes; a missing one is a 404.
    eng.docker("create", "--network", "none", "--name", "dm-imguser", ref, "true")
    status, err = pair.server.api.call("DELETE", f"/api/v1/hosts/{pair.remote}/images/{ref}")
    assert (status, err["error"]["code"]) == (409, "in_use"), err
    assert eng.image_exists(ref)
    eng.docker("rm", "dm-imguser")
    assert pair.server.api.call("DELETE", f"/api/v1/hosts/{pair.remote}/images/{ref}") == (200, {"ok": True})
    assert not eng.image_exists(ref)
    status, err = pair.server.api.call("DELETE", f"/api/v1/hosts/{pair.remote}/images/{ref}")
    assert (status, err["error"]["code"]) == (404, "not_found")


def test_pull_over_a_selection_reports_every_host(pair: Pair, fleet: Fleet) -> None:
    open_reg = fleet.open_registry()
    ref = f"{open_reg.addr}/dm/everywhere:1"
    e0, e1 = pair.engines
    e1.docker("tag", IMAGE, ref)
    e1.docker("push", ref)
    for eng in (e0, e1):
        if eng.image_exists(ref):
            eng.docker("rmi", ref)
    status, out = lines(pair.server, "/api/v1/images/pull?host=all", {"image": ref})
    assert status == 200, out
    last = out[-1]
    assert last["type"] == "result"
    assert {o["id"]: o["status"] for o in last["hosts"]} == {"local": "ok", pair.remote: "ok"}
    assert {i["host"]["id"] for i in last["items"]} == {"local", pair.remote}
    assert all(p["type"] == "progress" for p in out[:-1])
    assert e0.image_exists(ref)
    assert e1.image_exists(ref)
    for eng in (e0, e1):
        eng.docker("rmi", ref)

    status, out = lines(pair.server, "/api/v1/images/pull?host=all", {"image": f"{open_reg.addr}/dm/none:1"})
    assert status == 200
    outcomes = {o["id"]: o for o in out[-1]["hosts"]}
    assert {o["status"] for o in outcomes.values()} == {"error"}
    assert all("not found" in o["error"] or "unknown" in o["error"] for o in outcomes.values()), outcomes


def seed_prunable(eng: Engine, tag: str) -> dict[str, Any]:
    """On `eng`: busybox and volume `dm-kept` in use; two unused volumes, one unused tagged image and
    one dangling image. Returns the ids and names a prune must and must not touch."""
    eng.docker("volume", "create", "dm-kept")
    eng.docker("volume", "create", "dm-old-1")
    eng.docker("volume", "create", "dm-old-2")
    eng.docker("create", "--network", "none", "--name", "dm-keeper", "-v", "dm-kept:/k", IMAGE, "true")
    eng.docker("create", "--network", "none", "--name", "dm-src", IMAGE, "true")
    tagged = eng.docker("commit", "-c", "LABEL dm=tagged", "dm-src", tag).stdout.strip()
    dangling = eng.docker("commit", "-c", "LABEL dm=dangling", "dm-src").stdout.strip()
    eng.docker("rm", "dm-src")
    busybox = eng.docker("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()
    return {"tagged": tagged, "dangling": dangling, "busybox": busybox}


def image_ids(eng: Engine) -> set[str]:
    return set(eng.docker("images", "-aq", "--no-trunc").stdout.split())


def short(full: str) -> str:
    return full.split(":", 1)[-1][:12]


def test_prune_preview_is_exactly_what_the_prune_removes_on_one_host(pair: Pair) -> None:
    api, host, eng = pair.server.api, pair.remote, pair.engines[1]
    seeded = seed_prunable(eng, "local/dm-spare:1")
    volumes_before = names(eng, "volume")

    dangling = api.post(f"/api/v1/images/prune?host={host}", {"dry_run": True, "mode": "dangling"})
    [only] = dangling["results"]
    assert [i["id"] for i in only["items"]] == [short(seeded["dangling"])]

    preview = api.post(f"/api/v1/images/prune?host={host}", {"dry_run": True})
    assert preview["dry_run"] is True
    assert preview["mode"] == "unused"
    [result] = preview["results"]
    previewed = {i["id"] for i in result["items"]}
    assert {short(seeded["tagged"]), short(seeded["dangling"])} <= previewed
    assert short(seeded["busybox"]) not in previewed
    assert any(i["tags"] == ["local/dm-spare:1"] for i in result["items"])
    assert result["reclaimed"] >= 0
    assert image_ids(eng) >= {seeded["tagged"], seeded["dangling"]}  # a dry run removes nothing

    vol_preview = api.post(f"/api/v1/volumes/prune?host={host}", {"dry_run": True})
    [vresult] = vol_preview["results"]
    assert {v["name"] for v in vresult["items"]} == volumes_before - {"dm-kept"}
    assert names(eng, "volume") == volumes_before

    images_before = image_ids(eng)
    done = api.post(f"/api/v1/images/prune?host={host}", {"dry_run": False})
    [removed] = done["results"]
    assert {i["id"] for i in removed["items"]} == previewed
    assert removed["failed"] == []
    assert {short(i) for i in images_before - image_ids(eng)} >= previewed
    assert seeded["busybox"] in image_ids(eng)

    vdone = api.post(f"/api/v1/volumes/prune?host={host}", {"dry_run": False})
    assert [v["name"] for v in vdone["results"][0]["items"]] == [v["name"] for v in vresult["items"]]
    assert names(eng, "volume") == {"dm-kept"}
    assert ("image.prune", host) in audit(pair.server)
    assert ("volume.prune", host) in audit(pair.server)


def test_prune_over_all_hosts(pair: Pair) -> None:
    api = pair.server.api
    for i, eng in enumerate(pair.engines):
        seed_prunable(eng, f"local/dm-spare-{i}:1")
    preview = api.post("/api/v1/volumes/prune?host=all", {"dry_run": True})
    assert {o["id"]: o["status"] for o in preview["hosts"]} == {"local": "ok", pair.remote: "ok"}
    listed = {r["host"]["id"]: {v["name"] for v in r["items"]} for r in preview["results"]}
    assert listed == {"local": {"dm-old-1", "dm-old-2"}, pair.remote: {"dm-old-1", "dm-old-2"}}
    done = api.post("/api/v1/volumes/prune?host=all", {"dry_run": False})
    assert {r["host"]["id"]: {v["name"] for v in r["items"]} for r in done["results"]} == listed
    assert all(names(eng, "volume") == {"dm-kept"} for eng in pair.engines)

    ipreview = api.post("/api/v1/images/prune?host=all", {"dry_run": True})
    ilisted = {r["host"]["id"]: {i["id"] for i in r["items"]} for r in ipreview["results"]}
    assert all(len(ids) >= 2 for ids in ilisted.values()), ilisted
    idone = api.post("/api/v1/images/prune?host=all", {"dry_run": False})
    assert {r["host"]["id"]: {i["id"] for i in r["items"]} for r in idone["results"]} == ilisted
    assert idone["reclaimed"] == sum(r["reclaimed"] for r in idone["results"])
    for eng in pair.engines:
        assert eng.image_exists(IMAGE)


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    env.update(XDG_CONFIG_HOME=str(home), DOCKMESH_PASSWORD=ADMIN_PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr


def test_cli_creates_removes_pulls_and_prunes(pair: Pair, fleet: Fleet, tmp_path: Path) -> None:
    host, eng = pair.remote, pair.engines[1]
    assert cli(tmp_path, "login", "--url", pair.server.url).returncode == 0

    made = cli(tmp_path, "volumes", "create", "dm-cli", "--host", host)
    assert made.returncode == 0, made.stderr
    assert "dm-cli" in names(eng, "volume")
    assert "dm-cli" in cli(tmp_path, "volumes", "ls", "--host", host).stdout
    assert "name" in one_line_error(cli(tmp_path, "volumes", "create", "../x", "--host", host))
    net = cli(tmp_path, "networks", "create", "dm-clinet", "--host", host, "--internal")
    assert net.returncode == 0, net.stderr
    assert json.loads(eng.docker("network", "inspect", "dm-clinet").stdout)[0]["Internal"] is True
    assert cli(tmp_path, "networks", "rm", "dm-clinet", "--host", host).returncode == 0
    assert "dm-clinet" not in names(eng, "network")

    eng.docker("create", "--network", "none", "--name", "dm-cliuser", "-v", "dm-cli:/d", IMAGE, "true")
    assert "in use" in one_line_error(cli(tmp_path, "volumes", "rm", "dm-cli", "--host", host))
    eng.docker("rm", "dm-cliuser")

    preview = cli(tmp_path, "volumes", "prune", "--host", host, "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "dm-cli" in preview.stdout
    assert "would remove 1 volumes" in preview.stdout
    assert "dm-cli" in names(eng, "volume")
    assert "--force" in one_line_error(cli(tmp_path, "volumes", "prune", "--host", host)).split(": ", 1)[1]
    assert "dm-cli" in names(eng, "volume")
    pruned = cli(tmp_path, "volumes", "prune", "--host", host, "--force")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 volumes" in pruned.stdout
    assert "dm-cli" not in names(eng, "volume")

    ref = f"{fleet.open_registry().addr}/dm/cli:1"
    eng.docker("tag", IMAGE, ref)
    eng.docker("push", ref)
    eng.docker("rmi", ref)
    pulled = cli(tmp_path, "images", "pull", ref, "--host", host)
    assert pulled.returncode == 0, pulled.stderr
    assert f"edge: pulled {ref}" in pulled.stdout
    assert eng.image_exists(ref)
    assert cli(tmp_path, "images", "rm", ref, "--host", host).returncode == 0
    assert not eng.image_exists(ref)
    missing = cli(tmp_path, "images", "pull", f"{fleet.open_registry().addr}/dm/nothing:1", "--host", host)
    assert missing.returncode == 1
    assert "edge" in missing.stderr
