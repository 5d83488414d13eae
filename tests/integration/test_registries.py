"""Registry credentials with real parts: the fleet's htpasswd registry, two agents on two engines, one host
tagged `prod`. A credential scoped to `prod` lets that host pull and deploy from the private registry; the
other host gets the registry's refusal; the password is found nowhere on disk or in any log afterwards."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fleet import Fleet
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, ServerProc
from tests.integration.spine import wait_online
from tests.integration.test_objects import lines
from tests.integration.test_stacks import deploy, events, put

pytestmark = pytest.mark.docker

IMAGE = "local/busybox:1"
STACK = """\
services:
  app:
    image: {image}
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
"""


def files_under(root: Path, skip: tuple[Path, ...] = ()) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in filenames:
            path = here / name
            if path.is_file() and not path.is_symlink():
                yield path


def holding(secret: bytes, paths: Iterator[Path]) -> list[str]:
    found = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # a socket or a file gone meanwhile
        if secret in data:
            found.append(str(path))
    return found


def test_prod_scoped_credential_reaches_only_the_prod_host_and_leaves_no_trace(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    fleet: Fleet,
    tmp_path: Path,
) -> None:
    server = server_factory()
    prod_agent = agent_factory(server, "prod-1", engine=1)
    dev_agent = agent_factory(server, "dev-1", engine=2)
    prod, dev = prod_agent.agent_id or "", dev_agent.agent_id or ""
    for agent_id in (prod, dev):
        wait_online(server, agent_id)
    assert server.api.call("PUT", f"/api/v1/hosts/{prod}/tags", {"tags": ["prod"]})[0] == 200
    prod_eng, dev_eng = fleet.engine(1), fleet.engine(2)

    # The test image in the private registry (pushed with a login kept in this test's own dir).
    reg = fleet.registry()
    private = f"{reg.addr}/dm/reg-private:1"
    cfg = {"DOCKER_CONFIG": str(tmp_path / "dockercfg")}
    prod_eng.docker("tag", IMAGE, private)
    prod_eng.docker("login", "-u", reg.username, "--password-stdin", reg.addr, input=reg.password, env=cfg)
    prod_eng.docker("push", private, env=cfg)
    prod_eng.docker("rmi", private)
    assert not prod_eng.image_exists(private)
    assert not dev_eng.image_exists(private)

    # The credential: accepted, listed and shown without its password.
    status, bad = server.api.call(
        "POST",
        "/api/v1/registries",
        {"url": reg.addr, "username": reg.username, "password": reg.password, "scope": "prod and ("},
    )
    assert (status, bad["error"]["code"]) == (400, "invalid_scope"), bad
    assert reg.password not in str(bad)
    status, made = server.api.call(
        "POST",
        "/api/v1/registries",
        {"url": f"http://{reg.addr}/", "username": reg.username, "password": reg.password, "scope": "prod"},
    )
    assert status == 201, made
    assert made["url"] == reg.addr
    assert made["scope"] == "prod"
    listed = server.api.get("/api/v1/registries")
    assert [c["id"] for c in listed["items"]] == [made["id"]]
    assert reg.password not in str(listed)
    assert reg.password not in str(server.api.get(f"/api/v1/registries/{made['id']}"))

    # API pull: the prod host pulls; the other host gets the registry's refusal.
    status, out = lines(server, f"/api/v1/hosts/{prod}/images/pull", {"image": private})
    assert status == 200, out
    assert out[-1]["type"] == "result", out[-1]
    assert prod_eng.image_exists(private)
    status, out = lines(server, f"/api/v1/hosts/{dev}/images/pull", {"image": private})
    assert status == 403, out
    assert out[0]["error"]["code"] == "registry_unauthorized"
    assert not dev_eng.image_exists(private)

    # Over a selection each host gets its own answer: prod's credential is not sent to dev.
    prod_eng.docker("rmi", private)
    status, out = lines(server, "/api/v1/images/pull?host=all", {"image": private})
    assert status == 200, out
    outcomes = {h["id"]: h["status"] for h in out[-1]["hosts"]}
    assert outcomes == {prod: "ok", dev: "error"}, out[-1]
    assert prod_eng.image_exists(private)
    assert not dev_eng.image_exists(private)

    # Deploy a stack whose image is in the private registry: the pull inside the deploy uses the credential.
    prod_eng.docker("rmi", private)
    assert put(server, "priv", STACK.format(image=private))[0] == 200
    done = events(server, deploy(server, "priv", prod))[-1]
    assert done["state"] == "done", done
    assert prod_eng.image_exists(private)
    failed = events(server, deploy(server, "priv", dev))[-1]
    assert failed["state"] == "failed", failed
    assert "no basic auth credentials" in failed["error"], failed  # the registry's 401, as the engine says it
    assert not dev_eng.image_exists(private)

    # The password is nowhere: agents' state dirs, engines' data roots and logs, the server's data dir
    # (the database holds only ciphertext, the key file only the key), any row, any process log.
    secret = reg.password.encode()
    places: list[Path] = []
    for agent in (prod_agent, dev_agent):
        places += [*files_under(agent.state_dir), agent.log_path]
    for eng in (prod_eng, dev_eng):
        places += [*files_under(eng.data_root), eng.log_path, eng.config_file]
    places += [*files_under(server.data_dir), server.log_path, reg.log_path]
    assert holding(secret, iter(places)) == []
    # The scan reads what was written: the image's name is in the engines' and the server's files.
    assert len(holding(b"dm/reg-private", iter(places))) >= 2
    db = sqlite3.connect(server.data_dir / "dockmesh.db")
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [row for t in tables for row in db.execute(f'SELECT * FROM "{t}"')]
    finally:
        db.close()
    assert rows
    assert reg.password not in repr(rows)


def cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    env.update(XDG_CONFIG_HOME=str(home), DOCKMESH_PASSWORD=ADMIN_PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *args],
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_adds_lists_updates_and_removes_without_the_password_on_argv(
    server: ServerProc, tmp_path: Path
) -> None:
    secret = "cli-Pa55-" + os.urandom(6).hex()
    assert cli(tmp_path, "login", "--url", server.url).returncode == 0
    added = cli(
        tmp_path, "registries", "add", "ghcr.io/acme", "-u", "bot", "--scope", "prod", "--password-stdin",
        stdin=secret + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = cli(tmp_path, "registries", "ls")
    assert "ghcr.io/acme" in listed.stdout
    assert "prod" in listed.stdout
    assert secret not in listed.stdout
    (made,) = server.api.get("/api/v1/registries")["items"]
    # No terminal and no --password-stdin: one line saying what to do, nothing added.
    refused = cli(tmp_path, "registries", "add", "quay.io", "-u", "x")
    assert refused.returncode == 1
    assert "--password-stdin" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    bad = cli(
        tmp_path, "registries", "add", "quay.io", "-u", "x", "--scope", "(", "--password-stdin", stdin="p"
    )
    assert bad.returncode == 1
    assert "scope" in bad.stderr
    assert len(server.api.get("/api/v1/registries")["items"]) == 1

    updated = cli(
        tmp_path, "registries", "update", str(made["id"]), "--scope", "", "--password-stdin",
        stdin="n3w-" + secret,
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    assert server.api.get(f"/api/v1/registries/{made['id']}")["scope"] == "all"
    assert cli(tmp_path, "registries", "rm", str(made["id"])).returncode == 0
    assert server.api.get("/api/v1/registries")["items"] == []
    gone = cli(tmp_path, "registries", "rm", str(made["id"]))
    assert gone.returncode == 1
    assert "no registry credential" in gone.stderr
    assert secret not in server.log_text()


def test_bad_bodies_are_refused_by_field_and_never_echo_the_password(server: ServerProc) -> None:
    long_secret = "L0ng-" + "x" * 5000
    cases = [
        ({"url": "ghcr.io", "username": "u", "password": long_secret}, "invalid_password"),
        ({"url": "ghcr.io", "username": "u", "password": 12345}, "invalid_password"),
        ({"url": "ghcr.io", "username": "u", "password": "p", "extra": 1}, "invalid_body"),
        ({"url": "not a host", "username": "u", "password": "p"}, "invalid_url"),
        ({"url": "ghcr.io", "password": "p"}, "invalid_username"),
        ({"url": "ghcr.io", "username": "u", "password": "p", "scope": "prod or"}, "invalid_scope"),
    ]
    for body, code in cases:
        status, err = server.api.call("POST", "/api/v1/registries", body)
        assert (status, err["error"]["code"]) == (400, code), (body, err)
        assert "L0ng-" not in str(err)
    assert server.api.get("/api/v1/registries")["items"] == []
    status, made = server.api.call(
        "POST", "/api/v1/registries", {"url": "q.io", "username": "u", "password": "p"}
    )
    assert status == 201
    assert made["scope"] == "all"
    for method, path, body in (
        ("PATCH", f"/api/v1/registries/{made['id']}", {"password": long_secret}),
        ("PATCH", f"/api/v1/registries/{made['id']}", {}),
    ):
        status, err = server.api.call(method, path, body)
        assert status == 400, err
        assert "L0ng-" not in str(err)
    assert server.api.call("GET", "/api/v1/registries/999")[0] == 404
    assert server.api.call("GET", "/api/v1/registries/abc")[0] == 404
    assert server.api.call("PATCH", "/api/v1/registries/999", {"scope": "x"})[0] == 404
