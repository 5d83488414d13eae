"""A hostile agent (a raw client with a real enrolled certificate over real mTLS) hurts only itself.

The client speaks WebSocket by hand so that it can do what no aiohttp client does: stop reading
from the socket altogether while it keeps sending.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from dockmesh.link.driver import SEND_TIMEOUT
from dockmesh.pki.tls import client_context
from dockmesh.proto import PROTOCOL_VERSION, FrameType
from dockmesh.proto import frames as wire
from dockmesh.server.sessions import SESSION_COOKIE
from tests.fleet import wait_for
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online

AgentFactory = Callable[..., AgentProc]


def _ws_frame(payload: bytes) -> bytes:
    """A client's binary WebSocket frame (masked, with a zero key: the payload stays as is)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x82, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x82, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
    return header + b"\0\0\0\0" + payload


class RawAgent:
    """An enrolled agent's certificate driven by hand, on its own event loop in a thread."""

    def __init__(self, agent: AgentProc, server: ServerProc) -> None:
        self.ctx = client_context(
            (agent.state_dir / "ca.crt").read_bytes(),
            agent.state_dir / "agent.crt",
            agent.state_dir / "agent.key",
        )
        self.url = urlsplit(server.agent_url)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.written = 0
        self.flooder: asyncio.Future[None] | None = None

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def shut() -> None:
            if self.flooder is not None:
                self.flooder.cancel()
            if self.writer is not None:
                self.writer.transport.abort()

        self.call(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def connect(self) -> None:
        host, port = self.url.hostname, self.url.port
        self.reader, self.writer = await asyncio.open_connection(host, port, ssl=self.ctx)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET /connect HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    async def send(self, frame: bytes) -> None:
        assert self.writer is not None
        self.writer.write(_ws_frame(frame))
        await self.writer.drain()

    async def frame(self) -> wire.Frame:
        """The next link frame from the server (WebSocket control frames skipped)."""
        assert self.reader is not None
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size)
            if first & 0x0F == 0x2:
                return wire.decode(payload, 1 << 20)

    async def closed_with(self) -> int:
        """The close code of the server's WebSocket close frame (link frames before it skipped)."""
        assert self.reader is not None
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size)
            if first & 0x0F == 0x8:
                code: int = struct.unpack("!H", payload[:2])[0]
                return code

    async def hello(self, facts: dict[str, Any]) -> wire.Frame:
        params = {"protocol": PROTOCOL_VERSION, **facts}
        await self.send(wire.request_frame(1, "hello", params, 15_000))
        return await self.frame()

    async def heartbeat(self, metrics: Any) -> None:
        """Send one heartbeat and wait for the server's answer, so it has been processed."""
        await self.send(wire.event_frame("heartbeat", {"metrics": metrics}))
        while True:
            frame = await self.frame()
            if frame.type is FrameType.EVENT:
                return

    def flood(self, limit: int = 256 << 20) -> None:
        """Send OPEN frames as fast as the server takes them; never read another byte.

        Each batch also calls a method with a 64 KiB name: a server that echoes it in its error
        makes big replies, so the peer's TCP window fills even sooner.
        """

        async def go() -> None:
            assert self.writer is not None
            channel = 3
            while self.written < limit and not self.writer.transport.is_closing():
                batch = [_ws_frame(wire.request_frame(channel, "m" * 65536, {}, 60_000))]
                channel += 2
                for _ in range(500):
                    batch.append(_ws_frame(wire.open_frame(channel, "logs", {"id": "x"}, None)))
                    channel += 2
                data = b"".join(batch)
                self.writer.write(data)
                self.written += len(data)
                await self.writer.drain()

        self.flooder = asyncio.run_coroutine_threadsafe(go(), self.loop)  # type: ignore[assignment]

    def stalled(self, polls: int) -> Callable[[], bool]:
        """A wait_for predicate: true once the server has taken none of our bytes for `polls` polls.

        Several polls, so that a busy server (a garbage collection, a shared CPU) is not mistaken
        for one that stopped reading.
        """
        last, still = [-1], [0]

        def check() -> bool:
            assert self.writer is not None
            accepted = self.written - self.writer.transport.get_write_buffer_size()
            still[0] = still[0] + 1 if accepted == last[0] else 0
            last[0] = accepted
            return still[0] >= polls

        return check


def _page(server: ServerProc, path: str) -> tuple[int, bytes]:
    token = server.api.token
    req = urllib.request.Request(server.url + path, headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _tile(server: ServerProc, host_id: str) -> dict[str, Any]:
    tiles = server.api.get("/api/v1/dashboard")["hosts"]
    return dict(next(t for t in tiles if t["id"] == host_id))


BAD_METRICS: list[Any] = [
    {},
    {"cpu_percent": "lots", "mem_used": "x", "mem_total": None, "disk_used": [], "disk_total": {}},
    {"cpu_percent": 1e308, "mem_used": -5, "mem_total": 10, "disk_used": 1, "disk_total": 2},
    "not an object",
    {f"k{i}": i for i in range(5000)},
]


def good_and_raw(server: ServerProc, agent_factory: AgentFactory) -> tuple[AgentProc, AgentProc]:
    """Two enrolled agents, both online: a good one, and one whose identity a raw client will take over."""
    good = agent_factory(server, "good", engine=0)
    bad = agent_factory(server, "bad", engine=1)
    assert good.agent_id
    assert bad.agent_id
    wait_online(server, good.agent_id)
    wait_online(server, bad.agent_id)
    return good, bad


def test_garbage_from_one_agent_breaks_only_its_own_tile(
    server: ServerProc, agent_factory: AgentFactory
) -> None:
    good, bad = good_and_raw(server, agent_factory)
    assert good.agent_id
    assert bad.agent_id
    wait_for(lambda: "cpu_cores" in _tile(server, good.agent_id), 10, message="good host has no metrics")
    bad.stop()
    raw = RawAgent(bad, server)
    try:
        raw.call(raw.connect())
        answer = raw.call(raw.hello({"hostname": "evil\nINFO forged\x1b[31m" + "h" * 10_000, "os": {"x": 1}}))
        assert answer.type is FrameType.RESPONSE
        assert "result" in json.loads(answer.payload)
        wait_online(server, bad.agent_id)
        for metrics in BAD_METRICS:
            raw.call(raw.heartbeat(metrics))
            for path in ("/", "/hosts", f"/hosts/{bad.agent_id}", f"/hosts/{good.agent_id}"):
                status, body = _page(server, path)
                assert status == 200, (path, metrics if len(str(metrics)) < 200 else "big", body[-500:])
            dashboard = server.api.get("/api/v1/dashboard")
            assert dashboard["totals"]["hosts_online"] == 2
            tile = _tile(server, good.agent_id)
            assert tile["status"] == "online"
            assert tile["mem_total"] > 0
            assert 0 <= tile["cpu_percent"] <= 100
            assert "cpu_cores" not in _tile(server, bad.agent_id)  # never sent a good sample
            hosts = {h["id"]: h for h in server.api.get("/api/v1/hosts")["items"]}
            assert hosts[good.agent_id]["metrics"]["disk_total"] > 0
            assert hosts[bad.agent_id]["metrics"] is None
        # The hostile strings were cut and stripped of control characters, in the API and the log.
        hostname = hosts[bad.agent_id]["hostname"]
        assert hostname.startswith("evilINFO forged[31mhhh")
        assert len(hostname) <= 200
        assert hosts[bad.agent_id]["os"] is None
        assert "\nINFO forged" not in server.log_text()
    finally:
        raw.close()


def test_revoking_a_flooding_peer_that_never_reads_returns_within_two_seconds(
    server: ServerProc, agent_factory: AgentFactory
) -> None:
    good, bad = good_and_raw(server, agent_factory)
    assert good.agent_id
    assert bad.agent_id
    bad.stop()
    raw = RawAgent(bad, server)
    try:
        raw.call(raw.connect())
        raw.call(raw.hello({"hostname": "flood"}))
        wait_online(server, bad.agent_id)
        raw.flood()
        # The server stops reading once its replies back up: our bytes stop being taken.
        wait_for(raw.stalled(4), 60, interval=0.5, message=lambda: f"server kept reading ({raw.written} B)")
        started = time.monotonic()
        status, _ = server.api.call("GET", "/api/v1/health")
        assert status == 200
        assert time.monotonic() - started < 5.0  # responsive while the peer floods (slack for CI)
        started = time.monotonic()
        revoked = server.api.post(f"/api/v1/agents/{bad.agent_id}/revoke")
        # Product bound: revoke returns within 2 s; the slack covers this client's own round trip on CI.
        assert time.monotonic() - started <= 3.0
        assert revoked["status"] == "revoked"
        assert server.api.host(good.agent_id)["status"] == "online"  # type: ignore[index]
        assert server.proc is not None
        assert server.proc.alive
    finally:
        raw.close()


def test_a_peer_that_floods_and_never_reads_is_dropped_and_marked_offline(
    server_factory: Callable[..., ServerProc], agent_factory: AgentFactory
) -> None:
    # Heartbeats far apart, so the send timeout drops the peer, not the silence watchdog (which
    # also would: a server that stopped reading hears nothing from the peer).
    server = server_factory(env={"DOCKMESH_HEARTBEAT_INTERVAL": "30s"})
    good, bad = good_and_raw(server, agent_factory)
    assert good.agent_id
    assert bad.agent_id
    bad.stop()
    raw = RawAgent(bad, server)
    try:
        raw.call(raw.connect())
        raw.call(raw.hello({"hostname": "flood"}))
        wait_online(server, bad.agent_id)
        raw.flood()
        wait_for(raw.stalled(4), 60, interval=0.5, message=lambda: f"server kept reading ({raw.written} B)")
        # Nobody revokes it: the send timeout (15 s without progress) drops the link.
        detail = wait_for(
            lambda: (a := server.api.agent(bad.agent_id))["status"] == "offline" and a,  # type: ignore[arg-type]
            2 * SEND_TIMEOUT + 10,  # no progress for the timeout, noticed within twice that
            interval=0.5,
            message="the non-reading peer was never dropped",
        )
        assert "1008" in detail["last_error"]
        assert server.api.host(good.agent_id)["status"] == "online"  # type: ignore[index]
    finally:
        raw.close()


def test_an_agent_newer_than_the_server_is_refused_with_4426_saying_so(
    server: ServerProc, agent_factory: AgentFactory
) -> None:
    agent = agent_factory(server, "newer")
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    agent.stop()
    raw = RawAgent(agent, server)
    try:
        raw.call(raw.connect())
        answer = raw.call(raw.hello({"protocol": PROTOCOL_VERSION + 1, "hostname": "newer"}))
        assert answer.type is FrameType.RESPONSE
        error = json.loads(answer.payload)["error"]
        assert error["code"] == "upgrade_required"
        assert f"newer than this server's {PROTOCOL_VERSION}: upgrade the server" in error["message"]
        assert raw.call(raw.closed_with()) == 4426
        assert server.api.host(agent.agent_id)["status"] == "offline"  # type: ignore[index]
    finally:
        raw.close()
