"""`dockmesh users|roles|tokens` against a real server (its own engine as the host `local`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fleet import Fleet, wait_for
from tests.integration.harness import ADMIN_PASSWORD, ServerProc

# SQLite only: the users/roles store runs on both engines in tests/unit/store.
pytestmark = pytest.mark.docker


def run(
    home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    full.update({"XDG_CONFIG_HOME": str(home), "DOCKMESH_PASSWORD": ADMIN_PASSWORD, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *args],
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    out = run(home, *args, stdin=stdin, env=env)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


def refused(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """A refusal: exit 1 and one line on stderr, which is returned."""
    out = run(home, *args, stdin=stdin, env=env)
    assert out.returncode == 1, (args, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}


def test_cli_manages_roles_users_tokens_and_shows_effective_access(
    server_factory: Callable[..., ServerProc], fleet: Fleet, tmp_path: Path
) -> None:
    server = server_factory(docker_host=fleet.engine(0).docker_host)
    wait_for(lambda: server.api.host("local"), 15, message="local host never appeared")
    admin = tmp_path / "admin"
    ok(admin, "login", "--url", server.url)

    # Roles: a bad scope says where; an unknown permission says which; a good one is stored canonical.
    where = refused(admin, "roles", "add", "ops", "--permission", "hosts.view", "--scope", "name:local and (")
    assert "(at 16)" in where
    assert "unknown permission 'hosts.fly'" in refused(
        admin, "roles", "add", "ops", "--permission", "hosts.fly"
    )
    ok(
        admin,
        *("roles", "add", "ops", "--permission", "hosts.view", "--permission", "containers.view"),
        *("--scope", "name:local or edge"),
    )
    listed = rows(ok(admin, "roles", "ls"))
    assert listed["ops"] == ["name:local", "or", "edge", "containers.view,hosts.view"]
    assert listed["admin"][0] == "yes"

    # Users: the password from stdin only; argv is not an option and no terminal means no prompt.
    assert run(admin, "users", "add", "dave", "--password", "x").returncode == 2
    assert "--password-stdin" in refused(admin, "users", "add", "dave", "--role", "ops", stdin="")
    ok(admin, "users", "add", "dave", "--role", "ops", "--password-stdin", stdin="dave-password-1\n")
    assert rows(ok(admin, "users", "ls"))["2"] == ["dave", "ops"]
    assert "8 to 1024" in refused(admin, "users", "add", "erin", "--password-stdin", stdin="short\n")

    access = ok(admin, "users", "access", "dave")
    assert "global: none" in access
    local = [line.split() for line in access.splitlines() if line.startswith("local ")]
    assert local == [["local", "local", "containers.view,hosts.view"]]

    # A script token: the secret alone on stdout; it works as the user, within the user's rights.
    token = ok(admin, "tokens", "add", "ci", "--user", "dave", "--expires", "1h").strip()
    assert token.startswith("dmt_")
    script = tmp_path / "script"
    as_token = {"DOCKMESH_URL": server.url, "DOCKMESH_API_TOKEN": token}
    assert "local" in ok(script, "hosts", env=as_token)
    assert "users.manage" in refused(script, "users", "ls", env=as_token)
    (token_id, *rest) = ok(admin, "tokens", "ls", "--user", "dave").splitlines()[1].split()
    assert rest[:2] == ["ci", "ops"]
    ok(admin, "tokens", "rm", "--user", "dave", token_id)
    assert "dockmesh login" in refused(script, "hosts", env=as_token)
    assert "no user named 'nobody'" in refused(admin, "tokens", "ls", "--user", "nobody")

    # A new password works for a login; the old one no longer does.
    ok(admin, "users", "passwd", "dave", "--password-stdin", stdin="dave-password-2\n")
    dave = tmp_path / "dave"
    old = {"DOCKMESH_PASSWORD": "dave-password-1"}
    assert "password" in refused(dave, "login", "--url", server.url, "--username", "dave", env=old)
    new = {"DOCKMESH_PASSWORD": "dave-password-2"}
    ok(dave, "login", "--url", server.url, "--username", "dave", env=new)
    assert "local" in ok(dave, "hosts")

    # A narrower scope applies to the very next request.
    ok(admin, "roles", "update", "ops", "--scope", "name:elsewhere")
    assert "reaches no host" in ok(admin, "users", "access", "dave")
    assert "local" not in ok(dave, "hosts")
    ok(admin, "users", "set-roles", "dave", "viewer")
    assert rows(ok(admin, "users", "ls"))["2"] == ["dave", "viewer"]

    # Built-in roles and the last administrator stay.
    assert "built-in" in refused(admin, "roles", "rm", "admin")
    assert "admin" in refused(admin, "users", "rm", "admin")
    ok(admin, "users", "rm", "dave")
    ok(admin, "roles", "rm", "ops")
    assert "ops" not in rows(ok(admin, "roles", "ls"))
