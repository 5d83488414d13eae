"""The agent link end to end: real server and agent processes, real engines, real mTLS."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import psutil
import pytest

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.files import write_atomic
from dockmesh.pki.identity import cert_to_pem, load_cert
from dockmesh.pki.keys import generate_key, key_to_pem, make_csr
from dockmesh.pki.tls import client_context
from dockmesh.proto import CloseCode
from tests.fleet import Fleet, wait_for
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online
from tests.pg import Postgres

# SQLite; the store-sensitive tests (identity, revocation, tokens, restart) also run on PostgreSQL.

AgentFactory = Callable[..., AgentProc]


def exit_code(agent: AgentProc, timeout: float) -> int | None:
    assert agent.proc is not None
    return agent.proc.wait(timeout)


@pytest.mark.both_engines  # store-sensitive: also on PostgreSQL
def test_agent_enrols_comes_online_with_facts_and_listens_nowhere(
    server: ServerProc, agent_factory: AgentFactory, fleet: Fleet
) -> None:
    agent = agent_factory(server, "web-1")
    assert agent.agent_id is not None
    host = wait_online(server, agent.agent_id)
    engine_version = fleet.engine(0).info()["ServerVersion"]
    assert host["name"] == "web-1"
    assert host["hostname"] == socket.gethostname()
    assert host["docker_version"] == engine_version
    assert host["kind"] == "agent"
    metrics = wait_for(lambda: server.api.host(agent.agent_id)["metrics"], 10)  # type: ignore[index]
    assert metrics["mem_total"] > 0
    assert metrics["disk_total"] > 0
    assert 0.0 <= metrics["cpu_percent"] <= 100.0
    detail = server.api.agent(agent.agent_id)
    assert detail["status"] == "online"
    assert detail["version"]
    assert detail["os"]
    assert detail["arch"]
    assert detail["cert"]["not_after"]
    # The key stays on the host, private; the token is gone from disk after enrolment.
    key = agent.state_dir / "agent.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert not (agent.state_dir / "token").exists()
    # The agent dials out and never listens.
    assert agent.proc is not None
    # `run` is the supervisor; the agent proper is its child: neither listens.
    supervisor = psutil.Process(agent.proc.pid)
    procs = [supervisor, *supervisor.children(recursive=True)]
    assert len(procs) >= 2
    listening = [c for p in procs for c in p.net_connections(kind="all") if c.status == psutil.CONN_LISTEN]
    assert listening == []
    code, out = agent.run("status")
    assert code == 0
    assert "online" in out


@pytest.mark.both_engines  # store-sensitive: also on PostgreSQL
def test_revoke_cuts_the_link_within_a_second_and_agent_exits_zero(
    server: ServerProc, agent_factory: AgentFactory
) -> None:
    agent = agent_factory(server)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    started = time.monotonic()
    server.api.post(f"/api/v1/agents/{agent.agent_id}/revoke")
    assert exit_code(agent, 5) == 0
    # "Within a second" is the product's promise; the slack is for a busy CI machine and process exit.
    assert time.monotonic() - started < 3.0
    assert server.api.agent(agent.agent_id)["status"] == "revoked"
    assert "revoked or unknown" in agent.log_text()
    # Restarted, it is refused again and exits 0 without retrying.
    agent.start()
    assert exit_code(agent, 10) == 0
    assert agent.log_text().count("reconnecting") == 0
    # And a revocation survives a server restart.
    server.stop()
    server.start()
    agent.start()
    assert exit_code(agent, 10) == 0
    assert server.api.agent(agent.agent_id)["status"] == "revoked"


@pytest.mark.both_engines  # store-sensitive: also on PostgreSQL
def test_rotate_token_refuses_old_cert_and_reenrols_same_record(
    server: ServerProc, agent_factory: AgentFactory
) -> None:
    agent = agent_factory(server)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    old_serial = server.api.agent(agent.agent_id)["cert"]["serial"]
    rotated = server.api.post(f"/api/v1/agents/{agent.agent_id}/rotate-token")
    assert rotated["token"] != agent.token
    assert exit_code(agent, 5) == 0
    assert server.api.agent(agent.agent_id)["status"] == "pending"
    # Without the new token the old certificate is refused.
    agent.token = None
    agent.start()
    assert exit_code(agent, 10) == 0
    # With the new token the same agent record comes back.
    agent.token = rotated["token"]
    agent.start()
    wait_online(server, agent.agent_id)
    after = server.api.agent(agent.agent_id)
    assert after["cert"]["serial"] != old_serial
    assert len(server.api.get("/api/v1/agents")["items"]) == 1


@pytest.mark.both_engines  # store-sensitive: also on PostgreSQL
def test_server_killed_and_restarted_agents_come_back(
    server: ServerProc, agent_factory: AgentFactory, fleet: Fleet
) -> None:
    agents = [agent_factory(server, f"h{i}", engine=i) for i in range(2)]
    for a in agents:
        assert a.agent_id
        wait_online(server, a.agent_id)
    before = [a.log_text().count("reconnecting") for a in agents]
    server.kill()
    for a, seen in zip(agents, before, strict=True):
        # Each agent must have noticed the loss before the server comes back, or nothing is tested.
        wait_for(
            lambda a=a, seen=seen: a.log_text().count("reconnecting") > seen,
            15,
            message="agent never noticed the server died",
        )
    server.start()
    for a in agents:
        assert a.agent_id
        wait_online(server, a.agent_id, timeout=30)
        assert a.proc is not None
        assert a.proc.alive


@pytest.mark.both_engines  # store-sensitive: also on PostgreSQL
def test_silent_agent_goes_offline_and_returns(server: ServerProc, agent_factory: AgentFactory) -> None:
    agent = agent_factory(server)
    assert agent.agent_id
    assert agent.proc
    wait_online(server, agent.agent_id)
    agent.proc.pause(group=True)  # the supervisor and the agent it runs
    try:
        wait_for(
            lambda: server.api.host(agent.agent_id)["status"] == "offline",  # type: ignore[index]
            8,
            message="a frozen agent still shows online",
        )
    finally:
        agent.proc.resume(group=True)
    wait_online(server, agent.agent_id, timeout=30)


def test_agent_notices_a_hung_server(server: ServerProc, agent_factory: AgentFactory) -> None:
    agent = agent_factory(server)
    assert agent.agent_id
    assert server.proc
    wait_online(server, agent.agent_id)
    server.proc.pause()
    try:
        wait_for(lambda: "4408" in agent.log_text(), 15, message=agent.log_text)
        code, _out = agent.run("status")
        assert code == 1
    finally:
        server.proc.resume()
    wait_online(server, agent.agent_id, timeout=40)


def test_certificate_renews_in_band(
    server_factory: Callable[..., ServerProc], agent_factory: AgentFactory
) -> None:
    # 20 s: the restart at the end (a supervisor and the agent it starts, two interpreters) must connect
    # before the renewed certificate ends, also on a loaded machine; 9 s left too small a window.
    server = server_factory(env={"DOCKMESH_CERT_LIFETIME": "20s"})
    agent = agent_factory(server)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    first_cert = server.api.agent(agent.agent_id)["cert"]
    first = first_cert["serial"]
    wait_for(
        lambda: server.api.agent(agent.agent_id)["cert"]["serial"] != first,  # type: ignore[arg-type]
        15,
        message="certificate was not renewed",
    )
    assert server.api.agent(agent.agent_id)["status"] == "online"
    # Past the first certificate's expiry, a fresh start connects with the renewed one.
    first_expiry = datetime.fromisoformat(first_cert["not_after"]).timestamp()
    wait_for(lambda: time.time() > first_expiry + 0.5, 30, message="first certificate never expired")
    # The live link, opened with the first certificate, outlived it: the agent had renewed.
    assert "4401" not in agent.log_text()
    assert server.api.agent(agent.agent_id)["status"] == "online"
    agent.stop()
    agent.token = None
    agent.start()
    wait_online(server, agent.agent_id, timeout=20)
    assert "renewed" in agent.log_text()


def test_a_live_link_is_closed_when_its_certificate_expires(
    server_factory: Callable[..., ServerProc], tmp_path: Path
) -> None:
    # A peer that never renews: enrolled by hand, connected with its certificate, then silent.
    server = server_factory(env={"DOCKMESH_CERT_LIFETIME": "4s"})
    created = server.create_agent("h")
    ca = (server.data_dir / "pki" / "ca.crt").read_bytes()
    key = generate_key()

    async def go() -> tuple[object, object, float, float]:
        async with aiohttp.ClientSession() as http:
            body = {"token": created["token"], "csr": make_csr(key, "h").decode(), "host": {}}
            async with http.post(f"{server.agent_url}/enroll", json=body, ssl=client_context(ca)) as resp:
                assert resp.status == 200
                issued = await resp.json()
            write_atomic(tmp_path / "c.crt", issued["cert"].encode())
            write_atomic(tmp_path / "c.key", key_to_pem(key))
            not_after = load_cert(issued["cert"].encode()).not_valid_after_utc.timestamp()
            ctx = client_context(ca, tmp_path / "c.crt", tmp_path / "c.key")
            async with http.ws_connect(f"{server.agent_url}/connect", ssl=ctx) as ws:
                msg = await ws.receive(timeout=12)
                return msg.type, msg.data, time.time(), not_after

    kind, code, closed_at, not_after = asyncio.run(go())
    assert (kind, code) == (aiohttp.WSMsgType.CLOSE, CloseCode.UNAUTHORIZED)
    assert not_after - 0.5 <= closed_at < not_after + 3


def _ws_status(server: ServerProc, ctx: object) -> object:
    async def go() -> object:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(f"{server.agent_url}/connect", ssl=ctx) as ws:  # type: ignore[arg-type]
                    msg = await ws.receive(timeout=5)
                    return ("closed", msg.data)
            except aiohttp.WSServerHandshakeError as exc:
                return ("http", exc.status)
            except (aiohttp.ClientError, OSError) as exc:
                return ("tls", type(exc).__name__)

    return asyncio.run(go())


def test_connect_without_cert_or_with_foreign_cert_is_refused(server: ServerProc, tmp_path: Path) -> None:
    ca = (server.data_dir / "pki" / "ca.crt").read_bytes()
    assert _ws_status(server, client_context(ca)) == ("http", 401)
    foreign = CertificateAuthority.load_or_create(tmp_path / "foreign")
    key = generate_key()
    cert = foreign.issue_agent_cert(make_csr(key, "x"), "someone", timedelta(days=1))
    write_atomic(tmp_path / "c.crt", cert_to_pem(cert))
    write_atomic(tmp_path / "c.key", key_to_pem(key))
    outcome = _ws_status(server, client_context(ca, tmp_path / "c.crt", tmp_path / "c.key"))
    assert outcome[0] == "tls" or outcome == ("closed", CloseCode.UNAUTHORIZED)  # type: ignore[index]


async def _raw_link(agent: AgentProc, server: ServerProc, payload: bytes) -> tuple[object, object]:
    ctx = client_context(
        (agent.state_dir / "ca.crt").read_bytes(),
        agent.state_dir / "agent.crt",
        agent.state_dir / "agent.key",
    )
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.agent_url}/connect", ssl=ctx, max_msg_size=0) as ws:
            await ws.send_bytes(payload)
            msg = await ws.receive(timeout=5)
            return msg.type, msg.data


FRAMES = {
    "truncated": (b"\x01\x00", CloseCode.PROTOCOL_ERROR),
    "unknown-type": (b"\x63\x00\x00\x00\x01hello", CloseCode.PROTOCOL_ERROR),
    "bad-json": (b"\x07\x00\x00\x00\x01{not json", CloseCode.PROTOCOL_ERROR),
    "oversize": (b"\x02\x00\x00\x00\x01" + b"x" * (2 << 20), CloseCode.MESSAGE_TOO_BIG),
}


@pytest.mark.parametrize("case", sorted(FRAMES))
def test_malformed_frames_close_that_link_only(
    server: ServerProc, agent_factory: AgentFactory, case: str
) -> None:
    payload, code = FRAMES[case]
    good = agent_factory(server, "good", engine=0)
    bad = agent_factory(server, "bad", engine=1)
    assert good.agent_id
    assert bad.agent_id
    wait_online(server, good.agent_id)
    wait_online(server, bad.agent_id)
    bad.stop()
    kind, data = asyncio.run(_raw_link(bad, server, payload))
    assert kind == aiohttp.WSMsgType.CLOSE
    assert data == code
    assert server.api.host(good.agent_id)["status"] == "online"  # type: ignore[index]
    assert server.proc
    assert server.proc.alive


@pytest.mark.both_engines  # store-sensitive: also on PostgreSQL
def test_tokens_never_reach_logs_or_database(
    server: ServerProc, agent_factory: AgentFactory, database_engine: str, request: pytest.FixtureRequest
) -> None:
    agent = agent_factory(server)
    assert agent.agent_id
    assert agent.token
    wait_online(server, agent.agent_id)
    rotated = server.api.post(f"/api/v1/agents/{agent.agent_id}/rotate-token")["token"]
    server.api.call("GET", f"/install/agent.sh?token={rotated}")
    server.api.call("GET", "/install/agent.sh?token=bogus-token-value-that-is-long-enough-1234")
    secrets = [agent.token, agent.token.split(".")[0], rotated, rotated.split(".")[0]]
    exit_code(agent, 5)
    server.stop()
    blobs = [server.log_text(), agent.log_text()]
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            blobs.append(path.read_bytes().decode("latin-1"))
    if database_engine == "postgresql":
        postgres: Postgres = request.getfixturevalue("postgres")
        url = server.extra_env["DOCKMESH_DATABASE_URL"]
        blobs.append(postgres.dump(url))
        hashes: list[str | None] = [h or None for h in postgres.query(url, "SELECT token_hash FROM agents")]
    else:
        db = sqlite3.connect(server.data_dir / "dockmesh.db")
        hashes = [row[0] for row in db.execute("SELECT token_hash FROM agents")]
        db.close()
    assert hashes
    for secret in secrets:
        for blob in blobs:
            assert secret not in blob
    assert all(h is None or len(h) == 64 for h in hashes)


def test_doctor_explains_state(server: ServerProc, agent_factory: AgentFactory) -> None:
    agent = agent_factory(server)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    code, out = agent.run("doctor")
    assert code == 0, out
    for name in ("dns", "tcp", "tls", "certificate", "link", "docker"):
        assert f"ok   {name}" in out
    # The probe did not evict the live session.
    assert server.api.host(agent.agent_id)["status"] == "online"  # type: ignore[index]
    server.api.post(f"/api/v1/agents/{agent.agent_id}/revoke")
    exit_code(agent, 5)
    code, out = agent.run("doctor")
    assert code == 1
    assert "revoked" in out


def test_sigterm_stops_the_agent(server: ServerProc, agent_factory: AgentFactory) -> None:
    agent = agent_factory(server)
    assert agent.agent_id
    assert agent.proc
    wait_online(server, agent.agent_id)
    agent.proc.signal(signal.SIGTERM)
    assert exit_code(agent, 10) is not None
