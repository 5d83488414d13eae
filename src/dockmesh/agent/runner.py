"""The agent process: enrol if needed, then hold one link, reconnecting with backoff until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from dockmesh.agent.backoff import Backoff
from dockmesh.agent.config import AgentConfig
from dockmesh.agent.enrol import EnrolError, enrol
from dockmesh.agent.host import DockerHost, HostPort
from dockmesh.agent.inventory import Publisher
from dockmesh.agent.lifecycle import Lifecycle, Phase
from dockmesh.agent.state import Identity, StateDir, token_sha256
from dockmesh.agent.supervisor import RESTART
from dockmesh.agent.trial import TrialFiles, TrialState
from dockmesh.agent.upgrade import Upgrader
from dockmesh.link import AiohttpSocket, Link, LinkError, RemoteError, Stream
from dockmesh.pki.tls import client_context
from dockmesh.proto import FATAL_CODES, PROTOCOL_VERSION, CloseCode, Limits, Role
from dockmesh.proto.inventory import Names
from dockmesh.proto.methods import Upgrade

log = logging.getLogger("dockmesh.agent")

HEALTHY_AFTER = 10.0  # a session up this long resets the backoff: the server is not flapping
RENEW_AT = 2 / 3


def refused(exc: BaseException) -> bool:
    """Whether a failed connect met a closed port (the server's kernel answered, its process is down)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    return isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED


class Fatal(Exception):
    """Stop for good: retrying cannot help (revoked, expired, bad token, bad config)."""


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        host: Callable[[], HostPort] | None = None,
    ) -> None:
        self.config = config
        self._host_factory = host or (
            lambda: DockerHost(config.docker_host, config.state_dir / "deploys.json")
        )
        self.state = StateDir(config.state_dir)
        self._clock = clock
        self._backoff = backoff or Backoff(base=1.0, cap=30.0)
        self.lifecycle = Lifecycle(self._on_phase)
        self.heartbeat_interval = config.heartbeat_interval
        self._last_error: str | None = None
        self._server_version: str | None = None
        self._refused = False  # the last connect found nothing listening (see Backoff)
        self.trials = TrialFiles(config.state_dir, clock)
        self.upgrader = Upgrader(self.state, self.trials, clock=clock)
        # This process's build (relative to the state dir; "" = the installed one): the supervisor sets it.
        self.build = os.environ.get("DOCKMESH_BUILD", "")
        self._leaving: asyncio.Future[None] | None = None

    # --- status file (read by `dockmesh-agent status` and the installer) ---------------------
    def _on_phase(self, previous: Phase, phase: Phase) -> None:
        self._write_status()

    def _write_status(self) -> None:
        with contextlib.suppress(OSError):
            self.state.write_status(
                {
                    "phase": self.lifecycle.phase.value,
                    "online": self.lifecycle.phase is Phase.ONLINE,
                    "pid": os.getpid(),
                    "at": self._clock(),
                    "error": self._last_error,
                    "server_version": self._server_version,
                }
            )

    def _fail(self, message: str) -> None:
        self._last_error = message
        log.warning("%s", message)

    # --- main loop ---------------------------------------------------------------------------
    async def run(self) -> int:
        """Exit code: 0 after a fatal-but-clean stop (revoked), 2 for configuration errors."""
        self.state.ensure()
        host = self._host_factory()
        try:
            identity = await self._ensure_enrolled(host)
            while True:
                self._check_expiry()
                self.lifecycle.to(Phase.CONNECTING)
                started = self._clock()
                code = await self._session(identity, host)
                if self.upgrader.staged is not None:
                    log.info("restarting into %s", self.upgrader.staged)
                    return RESTART
                if code == CloseCode.UPGRADE_REQUIRED:
                    log.error("dockmesh-agent: %s", self._last_error)
                if code in FATAL_CODES:
                    self._check_expiry()  # an expired certificate is the likelier reason: say that one
                    raise Fatal(
                        "the server refused this agent (revoked or unknown); rotate its enrolment "
                        "token on the server and run dockmesh-agent with the new token to re-enrol"
                    )
                if self._clock() - started >= HEALTHY_AFTER:
                    self._backoff.reset()
                self.lifecycle.to(Phase.BACKOFF)
                delay = self._backoff.next(refused=self._refused)
                log.info("reconnecting in %.1fs", delay)
                await asyncio.sleep(delay)
        except Fatal as exc:
            self._last_error = str(exc)
            self.lifecycle.to(Phase.FATAL)
            log.error("dockmesh-agent: %s", exc)
            return 0
        finally:
            await host.close()

    async def enroll_only(self) -> int:
        """Enrol with the configured token and stop (no link)."""
        self.state.ensure()
        host = self._host_factory()
        try:
            token = self._token()
            if token is None:
                log.error("dockmesh-agent: no token: set DOCKMESH_TOKEN or pass --token")
                return 2
            await self._enrol(token, host)
            return 0
        except Fatal as exc:
            log.error("dockmesh-agent: %s", exc)
            return 1
        finally:
            await host.close()

    def _token(self) -> str | None:
        return self.config.token or self.state.stored_token()

    async def _ensure_enrolled(self, host: HostPort) -> Identity:
        identity = self.state.identity()
        token = self._token()
        if token is not None and (identity is None or identity.token_sha256 != token_sha256(token)):
            return await self._enrol(token, host)
        if identity is None:
            raise Fatal(
                "not enrolled: set DOCKMESH_ENROLL_URL and DOCKMESH_TOKEN (from the server's Agents page)"
            )
        self.state.drop_token()
        return identity

    async def _enrol(self, token: str, host: HostPort) -> Identity:
        self.lifecycle.to(Phase.ENROLLING)
        facts = await self._facts(host)
        while True:
            try:
                identity = await enrol(self.config, self.state, token, facts)
            except EnrolError as exc:
                if exc.fatal:
                    raise Fatal(str(exc)) from None
                self._fail(str(exc))
                self.lifecycle.to(Phase.BACKOFF)
                await asyncio.sleep(self._backoff.next())
                self.lifecycle.to(Phase.ENROLLING)
                continue
            self.state.drop_token()
            self._backoff.reset()
            log.info("enrolled as agent %s", identity.agent_id)
            return identity

    def _check_expiry(self) -> None:
        _, not_after = self.state.cert_window()
        if not_after <= self._clock():
            raise Fatal(
                f"this agent's certificate expired at {time.ctime(not_after)}; rotate its enrolment token "
                "on the server and run dockmesh-agent with the new token"
            )

    async def _facts(self, host: HostPort) -> dict[str, Any]:
        facts = await host.facts()
        error = getattr(host, "engine_error", None)
        if error:
            self._fail(error)
        return facts

    # --- one session -------------------------------------------------------------------------
    async def _session(self, identity: Identity, host: HostPort) -> int | None:
        """Connect, hello, heartbeat and renew until the link closes; returns the close code."""
        self._refused = False
        ctx = client_context(self.state.ca.read_bytes(), self.state.cert, self.state.key)
        limits = Limits()
        timeout = aiohttp.ClientWSTimeout(ws_close=5.0)
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(
                    identity.connect_url,
                    ssl=ctx,
                    max_msg_size=limits.max_frame,
                    timeout=timeout,
                    autoping=True,
                    compress=0,
                ) as ws,
            ):
                link = Link(
                    AiohttpSocket(ws),
                    Role.DIALER,
                    limits=limits,
                    on_request=lambda method, params: self._serve(link, host, feed, method, params),
                    on_stream=lambda stream: self._stream(host, feed, stream),
                    on_event=lambda name, body: feed.on_event(name, body) if feed is not None else None,
                    idle_timeout=self.heartbeat_interval * 2.5,
                )
                make_feed = getattr(host, "publisher", None)
                feed: Publisher | None = make_feed(link.send_event) if make_feed is not None else None
                runner = asyncio.create_task(link.run())
                workers: list[asyncio.Task[None]] = []
                try:
                    await self._hello(link, host)
                    workers = [
                        asyncio.create_task(self._heartbeats(link, host)),
                        asyncio.create_task(self._renewals(link)),
                    ]
                    if feed is not None:
                        workers.append(asyncio.create_task(feed.run()))
                    await runner
                except LinkError as exc:
                    self._fail(f"link failed before it was ready: {exc}")
                finally:
                    for task in workers:
                        task.cancel()
                    await link.close()
                    runner.cancel()
                    await asyncio.gather(runner, *workers, return_exceptions=True)
                code = link.close_code
                if code not in (None, CloseCode.NORMAL):
                    self._fail(f"link closed by server: {code} {link.close_reason}".strip())
                return code
        except aiohttp.WSServerHandshakeError as exc:
            self._fail(f"server refused the WebSocket upgrade: HTTP {exc.status} {exc.message}")
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            self._refused = refused(exc)
            self._fail(f"cannot connect to {identity.connect_url}: {exc or type(exc).__name__}")
        return None

    async def _serve(
        self, link: Link, host: HostPort, feed: Publisher | None, method: str, params: dict[str, Any]
    ) -> Any:
        result = await self._on_request(link, host, method, params)
        if feed is not None:
            await feed.after(method)  # the inventory carries the change before the answer goes out
        return result

    async def _stream(self, host: HostPort, feed: Publisher | None, stream: Stream) -> None:
        try:
            await host.stream(stream)
        finally:
            if feed is not None:
                await feed.after(stream.kind)

    async def _on_request(self, link: Link, host: HostPort, method: str, params: dict[str, Any]) -> Any:
        if method != Upgrade.OFFER:
            return await host.handle(method, params)
        if self.upgrader.staged is not None:
            raise RemoteError("upgrade_refused", f"already restarting into {self.upgrader.staged}")
        result = await self.upgrader.apply(link, params)
        # Answer first, then leave: the server records the restart before the link goes.
        asyncio.get_running_loop().call_later(0.2, self._leave, link)
        return result

    def _leave(self, link: Link) -> None:
        # Kept referenced until done: an unreferenced task may be collected before the close is sent.
        self._leaving = asyncio.ensure_future(link.close(CloseCode.GOING_AWAY, "restarting into a new build"))

    def _upgrade_report(self) -> dict[str, Any] | None:
        """What the hello says about the last upgrade attempt (docs/upgrades.md)."""
        trial = self.trials.trial()
        if (
            trial is not None
            and trial.state is TrialState.TRYING
            and self.build
            and trial.to_build == self.build
        ):
            return {"to": trial.version, "outcome": "trial", "error": ""}
        outcome = self.trials.outcome()
        if outcome is None:
            return None
        return {k: str(outcome.get(k) or "")[:500] for k in ("to", "outcome", "error")}

    async def _hello(self, link: Link, host: HostPort) -> None:
        facts = await self._facts(host)
        params: dict[str, Any] = {
            **facts,
            "protocol": PROTOCOL_VERSION,
            "capabilities": ["heartbeat", "renew"]
            + ([Names.CAPABILITY] if getattr(host, "publisher", None) is not None else []),
        }
        report = self._upgrade_report()
        if report is not None:
            params["upgrade"] = report
        result = await link.request("hello", params, timeout=15.0)
        self._server_version = result.get("server_version")
        if self.state.learn_upgrade_key(result.get("upgrade_public_key")):
            log.info("learnt the server's upgrade key from its hello")
        # On trial, the health check is this hello answered with Docker reachable; the supervisor commits.
        healthy = not getattr(host, "engine_error", None)
        if report and report["outcome"] == "trial" and healthy and self.trials.pass_(self.build):
            log.info("trial of %s passed", report["to"])
        interval = result.get("heartbeat_interval_s")
        if isinstance(interval, (int, float)) and interval > 0:
            self.heartbeat_interval = float(interval)
            link.idle_timeout = self.heartbeat_interval * 2.5
        self._last_error = None
        self.lifecycle.to(Phase.ONLINE)
        log.info("online (server %s)", self._server_version)

    async def _heartbeats(self, link: Link, host: HostPort) -> None:
        # The beat goes out on time even when the host is slow to report: silence costs the link.
        while not link.closed:
            body: dict[str, Any] = {}
            with contextlib.suppress(asyncio.TimeoutError):
                body["metrics"] = await asyncio.wait_for(host.metrics(), self.heartbeat_interval / 2)
            link.send_event("heartbeat", body)
            await asyncio.sleep(self.heartbeat_interval)

    async def _renewals(self, link: Link) -> None:
        """At 2/3 of the certificate's life, get a new one over the live link and swap it in."""
        while not link.closed:
            not_before, not_after = self.state.cert_window()
            due = not_before + (not_after - not_before) * RENEW_AT
            await asyncio.sleep(max(0.0, due - self._clock()))
            try:
                await self._renew(link)
            except (LinkError, ValueError) as exc:
                self._fail(f"certificate renewal failed, keeping the current certificate: {exc}")
                await asyncio.sleep(min(60.0, max(1.0, (not_after - self._clock()) / 10)))

    async def _renew(self, link: Link) -> None:
        # cryptography loads for renewal only (every 20 days), not in an idle agent: see StateDir.cert_window.
        from dockmesh.pki.identity import cert_info, cert_to_pem, load_cert
        from dockmesh.pki.issued import check_issued, utcnow
        from dockmesh.pki.keys import generate_key, key_to_pem, make_csr

        key = generate_key()
        csr = make_csr(key, "dockmesh-agent")
        result = await link.request("renew", {"csr": csr.decode()}, timeout=30.0)
        cert = load_cert(str(result.get("cert") if isinstance(result, dict) else None).encode())
        # Check before swapping: a certificate for another key or from another CA would lock us out.
        check_issued(cert, key, load_cert(self.state.ca.read_bytes()), utcnow(self._clock()))
        self.state.swap_in(key_to_pem(key), cert_to_pem(cert))
        log.info("certificate renewed; valid until %s", cert_info(cert).not_after.isoformat())
