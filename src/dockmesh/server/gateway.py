"""Live agent links: identity from the peer certificate, hello, heartbeats, renewal, revocation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from dockmesh import __version__
from dockmesh.link import AiohttpSocket, Link, RemoteError
from dockmesh.link.stream import Stream
from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_info, cert_to_pem, common_name, fingerprint
from dockmesh.pki.tls import peer_certificate
from dockmesh.proto import PROTOCOL_VERSION, CloseCode, Limits, Role
from dockmesh.proto.inventory import Names
from dockmesh.proto.methods import Upgrade
from dockmesh.server.agentdata import FACT_KEYS, BadMetrics, clean_facts, clean_metrics, escaped
from dockmesh.server.bucket import TokenBucket
from dockmesh.server.errors import ApiError
from dockmesh.server.inventory import Inventory
from dockmesh.store.agents import AgentState, AgentStore, CertRecord

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 15.0
# Per agent (across its reconnects): hello writes the agent row, renew signs a certificate (~1 ms of
# CPU and a write). A healthy agent sends one hello per connection and one renew per 20 days; these
# leave room for flapping networks and for the agent's retry after a failed renewal (about a
# second), and cap a looping or hostile agent at a few calls per second. (burst, seconds per call)
HELLO_RATE = (10, 6.0)
RENEW_RATE = (3, 5.0)

__all__ = ["FACT_KEYS", "Conn", "Gateway", "cert_record", "negotiate", "upgrade_report"]

OUTCOMES = ("trial", "committed", "rolled_back", "refused")
ARTIFACT_CHUNK = 256 * 1024


def negotiate(protocol: object) -> str | None:
    """None when we speak the agent's protocol (ours or the one before it), else the refusal's reason."""
    if protocol in (PROTOCOL_VERSION, PROTOCOL_VERSION - 1) and not isinstance(protocol, bool):
        return None
    if isinstance(protocol, int) and not isinstance(protocol, bool) and protocol > PROTOCOL_VERSION:
        ours = PROTOCOL_VERSION
        return f"agent speaks protocol {protocol}, newer than this server's {ours}: upgrade the server"
    shown = escaped(str(protocol))[:20]
    return f"agent protocol {shown} is too old for this server's {PROTOCOL_VERSION}: reinstall the agent"


def upgrade_report(value: object) -> dict[str, str] | None:
    """The hello's `upgrade` field, bounded; None when absent or malformed (no junk from a peer is stored)."""
    if not isinstance(value, dict) or value.get("outcome") not in OUTCOMES:
        return None
    # Control characters would garble the UI and the CLI table: kept out, like the facts' (agentdata.py).
    return {
        k: "".join(ch for ch in str(value.get(k) or "") if ch.isprintable())[:300]
        for k in ("to", "outcome", "error")
    }


@dataclass(eq=False)
class Conn:
    """One agent's live session."""

    agent_id: str
    link: Link
    connected_at: float
    fingerprint: str
    ready: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    metrics_at: float | None = None
    bad_metrics_logged: bool = False


def cert_record(cert: Any) -> CertRecord:
    info = cert_info(cert)
    return CertRecord(info.fingerprint, info.serial, info.not_before.timestamp(), info.not_after.timestamp())


class Gateway:
    def __init__(
        self,
        agents: AgentStore,
        ca: CertificateAuthority,
        *,
        clock: Callable[[], float],
        heartbeat_interval: float,
        cert_lifetime: float,
        renew_grace: float,
        limits: Limits | None = None,
    ) -> None:
        self._agents = agents
        self._ca = ca
        self._clock = clock
        self.heartbeat_interval = heartbeat_interval
        self._cert_lifetime = cert_lifetime
        self._renew_grace = renew_grace
        self.limits = limits or Limits()
        self._conns: dict[str, Conn] = {}
        self._unready: set[Conn] = set()
        self._background: set[asyncio.Future[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._rates: dict[tuple[str, str], TokenBucket] = {}
        # Called with the agent id once its hello is done (the deployer settles that host's deploys).
        self.on_online: list[Callable[[str], None]] = []
        # Upgrades (docs/upgrades.md): the key agents learn at hello, the hook that sees each hello's
        # version and upgrade report, and where an `agent.artifact` stream finds its file.
        self.upgrade_public_key: str | None = None
        self.on_hello: list[Callable[[str, dict[str, Any], dict[str, str] | None], None]] = []
        self.artifact_path: Callable[[str, str], Path | None] = lambda _arch, _version: None
        self.on_download: list[Callable[[str], None]] = []
        # The hosts' pushed containers, images, volumes and networks (docs/inventory.md).
        self.inventory = Inventory(clock)

    # --- queries ------------------------------------------------------------------------------
    def conn(self, agent_id: str) -> Conn | None:
        """The agent's session once its hello is done (what 'online' means)."""
        conn = self._conns.get(agent_id)
        return conn if conn is not None and conn.ready else None

    def online_ids(self) -> list[str]:
        return [c.agent_id for c in self._conns.values() if c.ready]

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        self.inventory.close()  # open list pages' event streams end now, not at the HTTP shutdown timeout
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await asyncio.gather(
            *(c.link.close(CloseCode.GOING_AWAY, "server shutting down") for c in list(self._conns.values())),
            return_exceptions=True,
        )
        await self._agents.flush_seen()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a close in the background, keeping a reference so it is not garbage-collected midway."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _expect_hello(self, conn: Conn) -> None:
        if not conn.ready:
            self._spawn(conn.link.close(CloseCode.PROTOCOL_ERROR, "no hello in time"))

    async def disconnect(self, agent_id: str, code: int, reason: str) -> None:
        """Close every connection of this agent, its session and any not yet past hello."""
        conns = [c for c in (self._conns.get(agent_id), *self._unready) if c and c.agent_id == agent_id]
        await asyncio.gather(*(c.link.close(code, reason) for c in conns), return_exceptions=True)

    async def _sweep(self) -> None:
        """One timer for all links: drop peers silent past 2 intervals and a half, write last_seen.

        It sends nothing: our heartbeat answers each of the agent's (see _on_event), so the writes
        are spread over the interval as the agents' own timers are, instead of 10,000 in one burst.
        """
        loop = asyncio.get_running_loop()
        limit = self.heartbeat_interval * 2.5
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            now = loop.time()
            for conn in list(self._conns.values()):
                if now - conn.link.last_received > limit:
                    log.info("agent %s silent for %.0fs, closing its link", conn.agent_id, limit)
                    self._spawn(conn.link.close(CloseCode.HEARTBEAT_TIMEOUT, "no heartbeat from agent"))
            try:
                await self._agents.flush_seen()
            except Exception:
                # The database may be briefly away (a PostgreSQL failover): the links carry on, and the
                # times dropped here are only as stale as the next heartbeat makes up for.
                log.exception("could not write the agents' last_seen times")

    # --- the /connect handler -----------------------------------------------------------------
    async def serve(self, request: web.Request) -> web.StreamResponse:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        cert = peer_certificate(ssl_object)
        if cert is None:
            raise ApiError(401, "client_certificate_required", "connect needs the agent's client certificate")
        fp = fingerprint(cert)
        ws = web.WebSocketResponse(
            max_msg_size=self.limits.max_frame, timeout=5.0, autoping=True, compress=False
        )
        await ws.prepare(request)
        record = await self._agents.by_fingerprint(fp, self._clock())
        if record is None or common_name(cert) != record.id:
            # Identity comes only from the certificate: unknown, revoked or rotated all look the same.
            log.info("refused agent link: certificate %s… is unknown or revoked", fp[:16])
            await ws.close(code=CloseCode.UNAUTHORIZED, message=b"agent certificate unknown or revoked")
            return ws
        conn = Conn(record.id, None, self._clock(), fp)  # type: ignore[arg-type]
        conn.link = Link(
            AiohttpSocket(ws, request.transport),
            Role.ACCEPTOR,
            limits=self.limits,
            on_request=partial(self._on_request, conn),
            on_event=partial(self._on_event, conn),
            on_stream=partial(self._on_stream, conn),
        )
        # A connection becomes the agent's session only at hello, so a probe (`doctor`) cannot evict it.
        self._unready.add(conn)
        hello_deadline = asyncio.get_running_loop().call_later(HELLO_TIMEOUT, self._expect_hello, conn)
        stop_expiry = self._watch_expiry(conn, cert.not_valid_after_utc.timestamp())
        try:
            await conn.link.run()
        finally:
            hello_deadline.cancel()
            stop_expiry()
            self._unready.discard(conn)
            if self._conns.get(record.id) is conn:
                del self._conns[record.id]
                self.inventory.offline(record.id)
                await self._agents.touch(record.id, self._clock())
            code = conn.link.close_code
            if conn.ready and code not in (None, CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.REPLACED):
                await self._agents.set_error(record.id, f"link closed with {code}: {conn.link.close_reason}")
        return ws

    # --- certificate expiry on a live link ----------------------------------------------------
    def _watch_expiry(self, conn: Conn, not_after: float) -> Callable[[], None]:
        """Close the link with 4401 when its certificate expires, unless the agent renewed meanwhile.

        The TLS handshake checks expiry only once; without this a link outlives its certificate forever.
        Returns the function that cancels the watch.
        """
        loop = asyncio.get_running_loop()
        timer: list[asyncio.TimerHandle] = []

        def due() -> None:
            # A timer callback cannot await: the store lookup runs as a task the gateway keeps.
            self._spawn(check())

        async def check() -> None:
            if conn.link.closed:
                return
            record = await self._agents.get(conn.agent_id)
            current = record.cert if record is not None and record.state is AgentState.ENROLLED else None
            now = self._clock()
            if current is not None and current.not_after > now:
                # Renewed in-band (the link keeps its handshake certificate): live until the new one ends.
                timer[0] = loop.call_later(current.not_after - now, due)
                return
            log.info("agent %s: certificate expired, closing its link", conn.agent_id)
            await conn.link.close(CloseCode.UNAUTHORIZED, "agent certificate expired; re-enrol")

        timer.append(loop.call_later(max(0.0, not_after - self._clock()), due))
        return lambda: timer[0].cancel()

    # --- agent → server requests and events --------------------------------------------------
    async def _on_request(self, conn: Conn, method: str, params: dict[str, Any]) -> Any:
        if method == "hello":
            self._check_rate(conn, method, HELLO_RATE)
            return await self._hello(conn, params)
        if not conn.ready:
            raise RemoteError("hello_required", "send hello first")
        if method == "renew":
            self._check_rate(conn, method, RENEW_RATE)
            return await self._renew(conn, params)
        raise RemoteError("unknown_method", f"the server has no method {escaped(method)}")

    def _check_rate(self, conn: Conn, method: str, rate: tuple[int, float]) -> None:
        """Refuse the call (the link stays up) past its per-agent rate; log once per run of refusals."""
        now = self._clock()
        bucket = self._rates.get((conn.agent_id, method))
        if bucket is None:
            bucket = self._rates[(conn.agent_id, method)] = TokenBucket(*rate, now)
        if bucket.take(now):
            return
        if not bucket.warned:
            bucket.warned = True
            log.warning("agent %s: too many %s requests; refusing them for now", conn.agent_id, method)
        raise RemoteError("rate_limited", f"too many {method} requests; retry in {bucket.wait():.0f}s")

    async def _hello(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        refusal = negotiate(params.get("protocol"))
        if refusal is not None:
            asyncio.get_running_loop().call_later(
                0.1, lambda: self._spawn(conn.link.close(CloseCode.UPGRADE_REQUIRED, refusal))
            )
            raise RemoteError("upgrade_required", refusal)
        facts = clean_facts(params)
        # Checked again (the handshake's lookup may predate a revocation whose disconnect missed this
        # connection), from the agent-list cache: one shared version read, not a query per agent.
        record = await self._agents.current(conn.agent_id)
        if record is None or record.state is not AgentState.ENROLLED:
            raise RemoteError("revoked", "this agent is no longer enrolled")
        conn.facts = facts
        self._agents.note_facts(conn.agent_id, facts, self._clock())  # written in the next batch
        conn.ready = True
        self._unready.discard(conn)
        previous = self._conns.get(conn.agent_id)
        self._conns[conn.agent_id] = conn
        if previous is not None and previous is not conn:
            self._spawn(previous.link.close(CloseCode.REPLACED, "replaced by a newer session of this agent"))
        if Names.CAPABILITY in (facts.get("capabilities") or ()):
            self.inventory.online(conn.agent_id, conn.link.send_event)
        else:
            self.inventory.offline(conn.agent_id)  # an older build: its lists are asked live
        log.info("agent %s online (%s)", conn.agent_id, escaped(facts.get("hostname", "?")))
        for callback in self.on_online:
            callback(conn.agent_id)
        report = upgrade_report(params.get("upgrade"))
        for hook in self.on_hello:
            hook(conn.agent_id, facts, report)
        return {
            "server_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "upgrade_public_key": self.upgrade_public_key,
            "heartbeat_interval_s": self.heartbeat_interval,
            "cert_not_after": record.cert.not_after if record and record.cert else None,
        }

    async def _renew(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        from dockmesh.pki.csr import CsrError

        csr = params.get("csr")
        if not isinstance(csr, str):
            raise RemoteError("bad_csr", "renew needs a PEM CSR in 'csr'")
        try:
            cert = self._ca.issue_agent_cert(
                csr.encode(), conn.agent_id, timedelta(seconds=self._cert_lifetime)
            )
        except CsrError as exc:
            raise RemoteError("bad_csr", str(exc)) from None
        record = cert_record(cert)
        if not await self._agents.renew(conn.agent_id, record, self._clock() + self._renew_grace):
            raise RemoteError("revoked", "this agent is no longer enrolled")
        log.info("agent %s renewed its certificate (serial %s)", conn.agent_id, record.serial)
        return {"cert": cert_to_pem(cert).decode(), "not_after": record.not_after}

    async def _on_stream(self, conn: Conn, stream: Stream) -> None:
        """`agent.artifact`: send this server's artifact under the channel's credit (never buffered whole)."""
        if not conn.ready:
            raise RemoteError("hello_required", "send hello first")
        if stream.kind != Upgrade.ARTIFACT:
            raise RemoteError("unknown_method", f"the server has no stream {escaped(stream.kind)}")
        arch, version = stream.params.get("arch"), stream.params.get("version")
        path = self.artifact_path(str(arch), str(version)) if isinstance(arch, str) else None
        if path is None:
            raise RemoteError(
                "no_artifact",
                f"this server serves no artifact {escaped(str(version))} for {escaped(str(arch))}",
            )
        for hook in self.on_download:
            hook(conn.agent_id)
        loop = asyncio.get_running_loop()
        with path.open("rb") as fh:
            while chunk := await loop.run_in_executor(None, fh.read, ARTIFACT_CHUNK):
                await stream.write(chunk)
        stream.eof()

    def _on_event(self, conn: Conn, name: str, body: dict[str, Any]) -> None:
        if name.startswith("inventory.") and conn.ready and self._conns.get(conn.agent_id) is conn:
            self.inventory.receive(conn.agent_id, name, body)
            return
        if name == "heartbeat" and conn.ready:
            self._agents.note_seen(conn.agent_id, self._clock())
            conn.link.send_event("heartbeat", {})
            if "metrics" not in body:
                return
            try:
                conn.metrics = clean_metrics(body["metrics"])
            except BadMetrics as exc:
                # Keep the last good sample (its age shows it is stale); one bad agent, one tile.
                if not conn.bad_metrics_logged:
                    conn.bad_metrics_logged = True
                    log.warning("agent %s sent bad metrics (kept its last good ones): %s", conn.agent_id, exc)
                return
            conn.metrics_at = self._clock()
            conn.bad_metrics_logged = False
