"""Fixtures for tests of the server, enrolment and the agent link (loaded from conftest)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Fleet, short_tmpdir, wait_for
from tests.integration.builds import shared
from tests.integration.harness import AgentProc, ServerProc
from tests.pg import Postgres

ENGINES = ("sqlite", "postgresql")


@pytest.fixture
def database_engine(request: pytest.FixtureRequest) -> str:
    """The servers' database: SQLite unless a test (or module) marked `both_engines` runs on each."""
    engine: str = getattr(request, "param", "sqlite")
    return engine


@pytest.fixture
def server_factory(
    request: pytest.FixtureRequest, database_engine: str
) -> Iterator[Callable[..., ServerProc]]:
    made: list[tuple[ServerProc, Path]] = []
    postgres: Postgres | None = (
        request.getfixturevalue("postgres") if database_engine == "postgresql" else None
    )
    databases: list[str] = []

    def make(
        env: dict[str, str] | None = None, docker_host: str | None = None, start: bool = True, **tls: Any
    ) -> ServerProc:
        base = short_tmpdir("s")
        env = dict(env or {})
        if postgres is not None and "DOCKMESH_DATABASE_URL" not in env:
            # A database per server: tests (and two servers in one test) never see each other's rows.
            databases.append(postgres.create_database("srv"))
            env["DOCKMESH_DATABASE_URL"] = databases[-1]
        srv = ServerProc(base, env=env, docker_host=docker_host, **tls)
        made.append((srv, base))
        return srv.start() if start else srv

    yield make
    for srv, base in made:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    for url in databases:
        assert postgres is not None
        postgres.drop_database(url)


@pytest.fixture
def server(server_factory: Callable[..., ServerProc]) -> ServerProc:
    return server_factory()


@pytest.fixture
def agent_factory(fleet: Fleet) -> Iterator[Callable[..., AgentProc]]:
    made: list[tuple[AgentProc, Path]] = []

    def make(
        server: ServerProc, name: str = "h", engine: int = 0, start: bool = True, token: str | None = None
    ) -> AgentProc:
        agent_id = None
        if token is None:
            created = server.create_agent(name)
            token, agent_id = created["token"], created["id"]
        base = short_tmpdir("a")
        agent = AgentProc(base, server, fleet.engine(engine).docker_host, token, agent_id)
        made.append((agent, base))
        return agent.start() if start else agent

    yield make
    for agent, base in made:
        agent.stop()
        shutil.rmtree(base, ignore_errors=True)


def wait_online(server: ServerProc, agent_id: str, timeout: float = 20) -> dict[str, object]:
    def online() -> dict[str, object] | None:
        host = server.api.host(agent_id)
        return host if host and host["status"] == "online" else None

    result: dict[str, object] = wait_for(
        online, timeout, interval=0.1, message=lambda: f"agent {agent_id} never came online"
    )
    return result


def _build(config: pytest.Config, arch: str) -> Iterator[Path]:
    from dockmesh.server.artifact import build

    # BuildError names the log, which is in the build's dir.
    with shared(config, arch, lambda out: build(out, arch)) as out:
        yield out


@pytest.fixture(scope="session")
def agent_artifacts(pytestconfig: pytest.Config) -> Iterator[Path]:
    """The real agent artifact (pex) for this machine, built once per test run from this checkout.

    Read-only: the xdist workers share it (tests/integration/builds.py)."""
    import platform

    from dockmesh.host.facts import normalize_arch

    yield from _build(pytestconfig, normalize_arch(platform.machine()))


@pytest.fixture(scope="session")
def aarch64_artifact(pytestconfig: pytest.Config) -> Iterator[Path]:
    """The aarch64 artifact (inspected here, not run), built once per test run."""
    yield from _build(pytestconfig, "aarch64")
