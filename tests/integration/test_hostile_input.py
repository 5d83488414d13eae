"""Hostile input to the HTTP side of a real server: bodies in pieces, odd numbers in query strings,
login floods from many addresses behind a trusted proxy while an agent's heartbeats keep flowing."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.fleet import wait_for
from tests.integration.harness import ADMIN_PASSWORD, Api, ServerProc
from tests.integration.spine import wait_online

LOGIN = "/api/v1/auth/login"


def _recv_response(sock: socket.socket) -> tuple[int, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), json.loads(body)


def test_json_body_in_two_tcp_segments(server: ServerProc) -> None:
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    first, second = body[:10], body[10:]
    head = (
        f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head + first)
        # A server that parses the first piece answers now (400); one that waits for the rest stays quiet.
        sock.settimeout(1.0)
        try:
            early = sock.recv(65536)
        except TimeoutError:
            early = b""
        assert early == b"", early[:200]
        sock.settimeout(30)
        sock.sendall(second)
        status, answer = _recv_response(sock)
    assert status == 200, answer
    assert answer["token"]


def test_body_past_the_limit_is_413(server: ServerProc) -> None:
    status, body = server.api.call("POST", "/api/v1/agents", {"name": "x" * (2 << 20)})
    assert status == 413
    assert body["error"]["code"] == "too_large"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("logs?tail=%C2%B2", "invalid_tail"),  # '²': isdigit() says yes, int() says no
        ("logs?tail=%D9%A1", "invalid_tail"),  # Arabic-Indic one
        ("logs?tail=-1", "invalid_tail"),
        ("logs?tail=99999999999", "invalid_tail"),
        ("exec?cols=%C2%B2", "invalid_cols"),
        ("exec?rows=0", "invalid_rows"),
        ("exec?rows=1000", "invalid_rows"),
    ],
)
def test_odd_numbers_in_query_strings_are_400(server: ServerProc, query: str, code: str) -> None:
    status, body = server.api.call("GET", f"/api/v1/hosts/local/containers/c1/{query}")
    assert status == 400, body
    assert body["error"]["code"] == code


@pytest.mark.parametrize("timeout", ["%D9%A1", "1_0", "nan", "0", "31"])
def test_odd_fanout_timeouts_are_400(server: ServerProc, timeout: str) -> None:
    status, body = server.api.call("GET", f"/api/v1/containers?timeout={timeout}")
    assert status == 400, body
    assert body["error"]["code"] == "invalid_timeout"


def _login(api: Api, forwarded_for: str | None, password: str = "wrong") -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        api.base + LOGIN,
        data=json.dumps({"username": "admin", "password": password}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if forwarded_for:
        req.add_header("X-Forwarded-For", forwarded_for)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_limits_follow_the_client_behind_a_trusted_proxy(server_factory: Callable[..., ServerProc]) -> None:
    server = server_factory(env={"DOCKMESH_TRUSTED_PROXIES": "127.0.0.0/8"})
    anon = Api(server.url)
    # The client wrote its own "X-Forwarded-For: 192.0.2.1"; the proxy appended the real 198.51.100.7.
    statuses = [_login(anon, "192.0.2.1, 198.51.100.7") for _ in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    # Another client behind the same proxy is not blocked by that one.
    assert _login(anon, "198.51.100.8") == 401
    assert _login(anon, "198.51.100.8", ADMIN_PASSWORD) == 200
    # IPv6 clients count by /64: a new address in the same /64 is the same bucket.
    for i in range(10):
        assert _login(anon, f"2001:db8:1:2::{i + 1:x}") == 401
    assert _login(anon, "2001:db8:1:2:ffff::1") == 429
    assert _login(anon, "2001:db8:1:3::1") == 401
    # Guesses sent at once from one client are counted before they are checked: ten get checked, no more.
    statuses = asyncio.run(_concurrent_logins(server, "203.0.113.99", 30))
    assert sorted(statuses) == [401] * 10 + [429] * 20
    # The access log names the client, not the proxy.
    wait_for(lambda: "198.51.100.8" in server.log_text(), 10)


async def _concurrent_logins(server: ServerProc, client: str, count: int) -> list[int]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=count)) as http:

        async def one() -> int:
            async with http.post(
                server.url + LOGIN,
                json={"username": "admin", "password": "guess"},
                headers={"X-Forwarded-For": client},
            ) as resp:
                return resp.status

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_forwarded_for_is_ignored_without_trusted_proxies(server: ServerProc) -> None:
    anon = Api(server.url)
    statuses = [_login(anon, f"198.51.100.{i}") for i in range(11)]
    # Every attempt counts against the real peer (127.0.0.1), whatever the header claims.
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def _metrics(server: ServerProc) -> dict[str, float]:
    status, raw = server.api.call("GET", "/metrics", raw=True)
    assert status == 200
    values = {}
    for line in raw.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def _flood(server: ServerProc, count: int, concurrency: int) -> list[int]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:

        async def one(i: int) -> int:
            # Distinct clients: IPv4 and IPv6 /64s, as a trusted proxy reports them.
            client = f"198.18.{i // 256}.{i % 256}" if i % 2 else f"2001:db8:{i:x}::1"
            async with http.post(
                server.url + LOGIN,
                json={"username": f"user{i % 7}", "password": "guess"},
                headers={"X-Forwarded-For": client},
            ) as resp:
                await resp.read()
                return resp.status

        return await asyncio.gather(*(one(i) for i in range(count)))


@pytest.mark.docker
def test_login_flood_keeps_heartbeats_flowing(
    server_factory: Callable[..., ServerProc], agent_factory: Any
) -> None:
    server = server_factory(env={"DOCKMESH_TRUSTED_PROXIES": "127.0.0.1"})
    agent = agent_factory(server, "busy")
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    api = server.api  # logged in before the flood
    started = time.monotonic()
    statuses = asyncio.run(_flood(server, count=400, concurrency=100))
    elapsed = time.monotonic() - started
    # Wrong passwords are 401; past the hashing queue the server says 503 at once instead of queueing.
    assert set(statuses) <= {401, 503}, sorted(set(statuses))
    assert statuses.count(401) >= 30
    lag = _metrics(server)
    p99 = lag['dockmesh_event_loop_lag_seconds{quantile="0.99"}']
    print(
        f"flood: {len(statuses)} logins in {elapsed:.1f}s, {statuses.count(401)} checked, "
        f"{statuses.count(503)} refused busy; loop lag p99 {p99 * 1000:.1f} ms"
    )
    assert p99 < 0.25, lag
    # The agent was never dropped for silence: still online, one session, no reconnects.
    assert api.host(agent.agent_id)["status"] == "online"  # type: ignore[index]
    assert "silent for" not in server.log_text()
    assert "reconnecting" not in agent.log_text()
