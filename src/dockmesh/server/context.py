"""Everything a request handler may reach, built once per server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.server.accounts import Accounts
from dockmesh.server.artifact import Artifacts
from dockmesh.server.config import ServerConfig
from dockmesh.server.directory import HostDirectory
from dockmesh.server.gateway import Gateway
from dockmesh.server.https import WebTls
from dockmesh.server.localhost import LocalHost
from dockmesh.server.looplag import LoopLag
from dockmesh.server.services.drains import DrainService
from dockmesh.server.services.migrations import MigrationService
from dockmesh.server.services.registries import RegistryService
from dockmesh.server.services.rollouts import RolloutService
from dockmesh.server.services.stacks import StackService
from dockmesh.server.services.upgrades import UpgradeService
from dockmesh.server.services.users import UserService
from dockmesh.server.tokens import FailureLimiter
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditStore
from dockmesh.store.db import Database
from dockmesh.store.users import UserStore


@dataclass
class ServerContext:
    config: ServerConfig
    clock: Callable[[], float]
    db: Database
    agents: AgentStore
    users: UserStore
    audit: AuditStore
    accounts: Accounts
    ca: CertificateAuthority
    gateway: Gateway
    artifacts: Artifacts
    limiter: FailureLimiter
    local: LocalHost
    directory: HostDirectory
    loop_lag: LoopLag
    stacks: StackService
    users_service: UserService
    registries: RegistryService
    migrations: MigrationService
    upgrades: UpgradeService
    drains: DrainService
    rollouts: RolloutService
    web_tls: WebTls | None = None  # None: the UI listener serves plain HTTP


CONTEXT = web.AppKey("dockmesh_context", ServerContext)


def ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]
