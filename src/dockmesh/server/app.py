"""The server process: builds the context, the HTTP app and the agent listener, and runs both."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.tls import server_context
from dockmesh.server import listen, openapi
from dockmesh.server.accesslog import RedactingAccessLogger
from dockmesh.server.accounts import Accounts
from dockmesh.server.admission import Admission
from dockmesh.server.api import (
    agents,
    auth,
    containers,
    dashboard,
    drains,
    fleet,
    hosts,
    install,
    meta,
    metrics,
    migrations,
    objects,
    registries,
    stacks,
    upgrades,
)
from dockmesh.server.api import audit as audit_api
from dockmesh.server.api import users as users_api
from dockmesh.server.artifact import Artifacts
from dockmesh.server.config import ServerConfig
from dockmesh.server.context import CONTEXT, ServerContext
from dockmesh.server.directory import HostDirectory
from dockmesh.server.errors import error_middleware
from dockmesh.server.gateway import Gateway
from dockmesh.server.https import web_tls
from dockmesh.server.listener import routes as listener_routes
from dockmesh.server.localhost import LOCAL_ID, LocalHost
from dockmesh.server.looplag import LoopLag
from dockmesh.server.manifests import Manifests
from dockmesh.server.routes import RouteSpec, RouteTable
from dockmesh.server.services.deploys import Deployer
from dockmesh.server.services.drains import DrainService
from dockmesh.server.services.migrations import MigrationService
from dockmesh.server.services.registries import RegistryService
from dockmesh.server.services.rollouts import RolloutService
from dockmesh.server.services.stacks import StackService
from dockmesh.server.services.upgrades import UpgradeService
from dockmesh.server.services.users import UserService
from dockmesh.server.sessions import WEB_SECRET, load_or_create_secret
from dockmesh.server.tokens import FailureLimiter
from dockmesh.server.tuning import share_tls_read_buffer, tune_gc
from dockmesh.server.vault import Vault
from dockmesh.server.web import pages
from dockmesh.server.web.render import page_errors
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditStore
from dockmesh.store.db import Database
from dockmesh.store.drains import DrainStore
from dockmesh.store.registries import CredentialStore
from dockmesh.store.rollouts import RolloutStore
from dockmesh.store.stack_migrations import MigrationStore
from dockmesh.store.stacks import StackStore
from dockmesh.store.upgrades import UpgradeStore
from dockmesh.store.users import UserStore

log = logging.getLogger(__name__)

HTTP_TABLES: tuple[RouteTable, ...] = (
    meta.routes,
    auth.routes,
    agents.routes,
    hosts.routes,
    fleet.routes,
    containers.routes,
    stacks.routes,
    migrations.routes,
    drains.routes,
    objects.routes,
    registries.routes,
    upgrades.routes,
    audit_api.routes,
    dashboard.routes,
    install.routes,
    users_api.routes,
    metrics.routes,
    pages.auth.routes,
    pages.dashboard.routes,
    pages.agents.routes,
    pages.hosts.routes,
    pages.drains.routes,
    pages.fleet.routes,
    pages.stacks.routes,
    pages.migrations.routes,
    pages.roles.routes,
    pages.users.routes,
    pages.registries.routes,
    pages.audit.routes,
    pages.upgrades.routes,
    pages.static.routes,
)


def all_specs(tables: Iterable[RouteTable] = HTTP_TABLES) -> list[RouteSpec]:
    return [spec for table in tables for spec in table.specs]


async def build_context(config: ServerConfig, clock: Callable[[], float] = time.time) -> ServerContext:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.data_dir.chmod(0o700)
    db = await Database.open(config.database_url)
    agent_host = urlsplit(config.agent_url).hostname
    sans = (*config.agent_sans, *([agent_host] if agent_host else []))
    ca = CertificateAuthority.load_or_create(config.pki_dir, sans=sans)
    agent_store = AgentStore(db)
    users = UserStore(db)
    gateway = Gateway(
        agent_store,
        ca,
        clock=clock,
        heartbeat_interval=config.heartbeat_interval,
        cert_lifetime=config.cert_lifetime,
        renew_grace=config.renew_grace,
    )
    local = LocalHost(
        config.docker_host,
        config.heartbeat_interval,
        clock,
        config.data_dir,
        config.data_dir / "deploys.json",
        inventory=gateway.inventory,
    )
    directory = HostDirectory(agent_store, gateway, local)
    audit = AuditStore(db)
    stack_store = StackStore(db)
    deployer = Deployer(stack_store, directory, clock, sweep_interval=config.heartbeat_interval * 2)
    # A host that says hello may have finished deploys while it was away: settle them now.
    gateway.on_online.append(deployer.host_online)
    accounts = Accounts(users, clock)
    registries = RegistryService(CredentialStore(db), Vault.load_or_create(config.data_dir), clock)
    stacks = StackService(
        stack_store, agent_store, directory, deployer, audit, clock, credentials=registries.for_images
    )

    def facts(host_id: str) -> dict[str, Any]:
        if host_id == LOCAL_ID:
            return dict(local.facts)
        conn = gateway.conn(host_id)
        return dict(conn.facts) if conn is not None else {}

    migrations = MigrationService(
        MigrationStore(db),
        stacks,
        stack_store,
        agent_store,
        directory,
        audit,
        clock,
        facts,
        registries.for_images,
        keep_seconds=config.migration_keep_seconds,
        sweep_interval=config.heartbeat_interval * 2,
    )
    gateway.on_online.append(migrations.host_online)
    artifacts = Artifacts(config.artifact_dir or config.data_dir / "artifacts")
    manifests = Manifests.open(config.data_dir, artifacts, clock)
    drain_service = DrainService(
        DrainStore(db), stack_store, directory, agent_store, users, audit, migrations, clock, facts
    )
    upgrade_service = UpgradeService(UpgradeStore(db), manifests, gateway, directory, clock)
    return ServerContext(
        config=config,
        clock=clock,
        db=db,
        agents=agent_store,
        users=users,
        audit=audit,
        accounts=accounts,
        ca=ca,
        gateway=gateway,
        artifacts=artifacts,
        limiter=FailureLimiter(clock),
        local=local,
        directory=directory,
        loop_lag=LoopLag(),
        stacks=stacks,
        users_service=UserService(users, accounts, audit, directory, clock),
        registries=registries,
        migrations=migrations,
        upgrades=upgrade_service,
        drains=drain_service,
        rollouts=RolloutService(RolloutStore(db), upgrade_service, directory, gateway, clock),
        web_tls=web_tls(config, ca),
    )


def http_app(context: ServerContext) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth.auth_middleware, page_errors], client_max_size=4 << 20
    )
    app[CONTEXT] = context
    app[WEB_SECRET] = load_or_create_secret(context.config.data_dir)
    app[meta.OPENAPI] = openapi.document(all_specs())
    for table in HTTP_TABLES:
        table.install(app)
    return app


def agent_app(context: ServerContext) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024)
    app[CONTEXT] = context
    listener_routes.install(app)
    return app


class Server:
    """Both listeners of one dockmesh server; `start` returns once they accept connections."""

    def __init__(
        self,
        config: ServerConfig,
        clock: Callable[[], float] = time.time,
        agent_socket: socket.socket | None = None,
    ) -> None:
        self.config = config
        # Bound by `dockmesh serve` before the imports (see listen.py); bound in `start` otherwise.
        self._agent_socket = agent_socket
        self._admission: Admission | None = None
        self._clock = clock
        self.context: ServerContext | None = None
        self._runners: list[web.AppRunner] = []
        self.http_port = config.http_port
        self.agent_port = config.agent_port
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        share_tls_read_buffer()
        context = await build_context(self.config, self._clock)
        self.context = context
        await context.accounts.bootstrap_admin(self.config.admin_password)
        # Handler cancellation: a viewer that leaves a followed log must stop the read on the host.
        http_runner = web.AppRunner(
            http_app(context), access_log_class=RedactingAccessLogger, handler_cancellation=True
        )
        agent_runner = web.AppRunner(
            agent_app(context), access_log_class=RedactingAccessLogger, shutdown_timeout=2.0
        )
        for runner in (http_runner, agent_runner):
            await runner.setup()
            self._runners.append(runner)
        tls = context.web_tls
        http_site = web.TCPSite(
            http_runner,
            self.config.http_host,
            self.config.http_port,
            ssl_context=tls.context if tls else None,
            backlog=listen.BACKLOG,
        )
        agent_socket = self._agent_socket or listen.bind(self.config.agent_host, self.config.agent_port)
        self._agent_socket = None  # admission owns it now and closes it at stop
        assert agent_runner.server is not None  # set by setup()
        # Not a SockSite: aiohttp would accept every queued agent at once and start all their handshakes
        # together; admission runs a bounded number at a time (server/admission.py).
        self._admission = Admission(agent_socket, agent_runner.server, server_context(context.ca))
        # Said before the first byte is served, not after the rest of start-up.
        if self.config.plain_http_exposed:
            log.warning(
                "the UI/API serves PLAIN HTTP on %s (--insecure-http): passwords, session cookies and "
                "install scripts cross the network unprotected; drop --insecure-http to serve HTTPS",
                self.config.http_host,
            )
        await http_site.start()
        self._admission.start()
        self.http_port = _bound_port(http_site)
        self.agent_port = self._admission.port
        context.gateway.start()
        context.local.start()
        context.stacks.deployer.start()
        context.migrations.start_background()
        await context.drains.resume()  # drains a stopped server left running carry on
        await context.rollouts.resume()  # and rollouts
        context.loop_lag.start()
        tune_gc()
        if self.config.artifact_dir is None:
            # An explicit DOCKMESH_ARTIFACT_DIR means the operator ships the builds.
            context.artifacts.start_build_if_missing()
        log.info(
            "dockmesh serving %s on %s:%s, agents on %s:%s (CA sha256 %s)",
            "https" if tls else "http",
            self.config.http_host,
            self.http_port,
            self.config.agent_host,
            self.agent_port,
            context.ca.ca_sha256,
        )
        if tls:
            log.info("UI certificate %s, key pin %s", tls.cert_path, tls.served.pin)
            if not tls.operator:
                self._refresher = asyncio.create_task(tls.keep_fresh())

    async def stop(self) -> None:
        if self._agent_socket is not None:  # start failed before admission took it
            self._agent_socket.close()
            self._agent_socket = None
        if self._admission is not None:  # no new agent connections from here on
            await self._admission.close()
            self._admission = None
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self.context:
            await self.context.drains.stop()
            await self.context.rollouts.stop()
            await self.context.migrations.stop()
            await self.context.stacks.deployer.stop()
            await self.context.gateway.stop()
            await self.context.local.stop()
            await self.context.loop_lag.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.context:
            self.context.accounts.close()
            # Heartbeat times not yet written, and those of the links the cleanup above just ended.
            await self.context.agents.flush_seen()
            await self.context.db.close()

    async def run_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tls = self.context.web_tls if self.context else None
        if tls is not None:
            # The operator renews the certificate files, then sends SIGHUP: new handshakes use the new pair.
            loop.add_signal_handler(signal.SIGHUP, tls.reload)
        try:
            await stop.wait()
        finally:
            await self.stop()


def _bound_port(site: web.BaseSite) -> int:
    server: Any = site._server
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else 0


def default_data_dir() -> Path:
    return Path("./data").resolve()
