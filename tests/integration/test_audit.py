"""The audit log through a real server and agent on both engines: sessions recorded with their host, no
secret in any row, 50 concurrent audited changes leave one chain, and an edited row is named by `verify`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from dockmesh.store import Database
from dockmesh.store.schema import audit
from tests.fleet import Fleet
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, Api, ServerProc
from tests.integration.spine import wait_online

pytestmark = [pytest.mark.both_engines, pytest.mark.docker]

IMAGE = "local/busybox:1"
LIMIT = 60.0


def database_url(server: ServerProc) -> str:
    return server.extra_env.get("DOCKMESH_DATABASE_URL") or f"sqlite:///{server.data_dir / 'dockmesh.db'}"


async def _rows(url: str) -> list[dict[str, Any]]:
    db = await Database.open(url, migrate=False)
    try:
        async with db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(sa.select(audit).order_by(audit.c.seq))]
    finally:
        await db.close()


async def _edit(url: str, row_id: int, detail: str) -> None:
    db = await Database.open(url, migrate=False)
    try:
        async with db.write() as conn:
            await conn.execute(audit.update().where(audit.c.id == row_id).values(detail=detail))
    finally:
        await db.close()


def verify_cli(server: ServerProc) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    argv = ["audit", "verify", "--database-url", database_url(server)]
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *argv],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def _sessions(base: str, token: str) -> None:
    """One exec, one logs and one stats session on the container `audited`."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        asyncio.timeout(LIMIT),
    ):
        params = [("cmd", "echo"), ("cmd", "hi"), ("tty", "0")]
        async with http.ws_connect(f"{base}/exec", params=params) as ws:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and msg.json().get("type") == "exit":
                    break
        async with http.get(f"{base}/logs", params={"tail": "10"}) as resp:
            assert resp.status == 200
            await resp.read()
        async with http.ws_connect(f"{base}/stats") as ws:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg


@pytest.fixture
def remote(server: ServerProc, agent_factory: Callable[..., AgentProc], fleet: Fleet) -> tuple[str, str]:
    """The agent's host id, and its container `audited` (network none) as an API base path."""
    agent = agent_factory(server, "audited-host", engine=1)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    fleet.engine(1).docker("run", "-d", "--network", "none", "--name", "audited", IMAGE, "sleep", "1000")
    return agent.agent_id, f"/api/v1/hosts/{agent.agent_id}/containers/audited"


def test_sessions_and_changes_are_recorded_with_their_host_and_no_secret(
    server: ServerProc, remote: tuple[str, str]
) -> None:
    host, path = remote
    api = server.api
    wrong = Api(server.url, context=server.ssl_context())
    status, _ = wrong.call(
        "POST", "/api/v1/auth/login", {"username": "admin", "password": "not-the-password"}
    )
    assert status == 401
    created = server.create_agent("spare")
    assert created["token"]
    asyncio.run(_sessions(server.url + path, str(api.token)))
    api.post(f"{path}/restart")
    status, _ = api.call("POST", f"/api/v1/hosts/{host}/containers/dm-no-such/stop")
    assert status == 404

    page = api.get("/api/v1/audit?" + urllib.parse.urlencode({"action": "container.", "host": host}))
    seen = {(e["action"], e["outcome"]) for e in page["entries"]}
    for action in ("container.exec", "container.logs", "container.stats", "container.restart"):
        assert (action, "ok") in seen, (action, seen)
    assert ("container.stop", "failed") in seen
    assert all(e["host"] == host for e in page["entries"])
    exec_row = next(e for e in page["entries"] if e["action"] == "container.exec")
    assert exec_row["detail"]["program"] == "echo"
    assert exec_row["target"] == f"{host}/audited"
    logins = api.get("/api/v1/audit?action=auth.login")["entries"]
    assert {e["outcome"] for e in logins} == {"ok", "denied"}

    rows = asyncio.run(_rows(database_url(server)))
    dump = repr(rows)
    secrets = [ADMIN_PASSWORD, "not-the-password", created["token"], str(api.token)]
    assert [s for s in secrets if s in dump] == []
    assert any(r["action"] == "agent.create" and r["host"] == created["id"] for r in rows)

    verdict = api.get("/api/v1/audit/verify")
    assert verdict == {"ok": True, "count": len(rows), "broken": None, "head": rows[-1]["hash"]}
    result = verify_cli(server)
    assert (result.returncode, result.stdout.split(":")[0]) == (0, "OK"), result.stderr
    assert f"{len(rows)} audit rows, the chain is intact; head {rows[-1]['hash']}" in result.stdout

    victim = next(r for r in rows if r["action"] == "container.exec")
    asyncio.run(_edit(database_url(server), victim["id"], '{"program":"true"}'))
    verdict = api.get("/api/v1/audit/verify")
    assert verdict["ok"] is False
    assert (verdict["broken"]["id"], verdict["broken"]["kind"]) == (victim["id"], "edited")
    result = verify_cli(server)
    assert result.returncode == 1
    assert result.stdout.startswith(f"BROKEN at row {victim['id']} (")
    assert "edited" in result.stdout


def test_fifty_concurrent_audited_changes_keep_one_chain(server: ServerProc, remote: tuple[str, str]) -> None:
    host, _ = remote
    api = server.api

    def retag(i: int) -> int:
        status, _ = api.call("PUT", f"/api/v1/hosts/{host}/tags", {"tags": [f"t{i}"]})
        return status

    with ThreadPoolExecutor(max_workers=50) as pool:
        assert set(pool.map(retag, range(50))) == {200}
    tags = api.get("/api/v1/audit?action=host.tags&limit=500")["entries"]
    assert len(tags) == 50
    verdict = api.get("/api/v1/audit/verify")
    assert verdict["ok"] is True, verdict
    result = verify_cli(server)
    assert result.returncode == 0, result.stdout + result.stderr


def test_filters_are_bounded_and_pages_follow_the_cursor(server: ServerProc) -> None:
    api = server.api
    anonymous = Api(server.url, context=server.ssl_context())
    for i in range(5):
        status, _ = anonymous.call("POST", "/api/v1/auth/login", {"username": "admin", "password": f"x{i}"})
        assert status == 401
    # A password typed into the username field must not become a row.
    status, _ = anonymous.call("POST", "/api/v1/auth/login", {"username": "hunter2-pass", "password": "x"})
    assert status == 401
    targets: list[str] = []
    cursor = ""
    while True:
        page = api.get(f"/api/v1/audit?outcome=denied&limit=2&cursor={cursor}")
        targets += [e["target"] for e in page["entries"]]
        if page["next"] is None:
            break
        cursor = page["next"]
    assert targets == ["(unknown user)"] + ["admin"] * 5
    assert "hunter2" not in repr(api.get("/api/v1/audit?limit=500"))
    assert api.get("/api/v1/audit?outcome=denied&since=2999-01-01T00:00:00Z")["entries"] == []
    for bad in ("limit=501", "limit=0", "since=yesterday", "cursor=-1", "actor=" + "a" * 300):
        status, body = api.call("GET", f"/api/v1/audit?{bad}")
        assert status == 400, (bad, body)
        assert body["error"]["code"].startswith("invalid_")
