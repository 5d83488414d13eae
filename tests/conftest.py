"""Fixtures shared by the integration and browser tests: real dockerd engines (tests/fleet.py), real
server and agent processes (tests/integration/spine.py), a real PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Fleet, short_tmpdir
from tests.integration import builds
from tests.pg import Postgres

_FLEET: Fleet | None = None


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """Session-wide fleet: ``fleet.engine(i)`` lazily starts engine ``i`` (busybox imported),
    ``fleet.registry()`` lazily starts the auth registry.  Everything stops at session end."""
    global _FLEET
    f = Fleet()
    _FLEET = f
    try:
        yield f
    finally:
        _FLEET = None
        f.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL 15 cluster for the session, started on first use; `create_database` per test."""
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


@pytest.fixture(autouse=True)
def clean_engines(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that uses the fleet (directly or through another fixture): thaw frozen engines,
    restart stopped ones, and remove all containers, non-default networks and volumes from every started
    engine. Unit tests skip the reset: it costs ~0.7 s per test, ten minutes over the unit suite."""
    yield
    if _FLEET is not None and "fleet" in request.fixturenames:
        _FLEET.reset()


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    """A short temp dir under /tmp/dmf (unix socket paths must stay < ~100 bytes)."""
    path = short_tmpdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent when it is not installed
def pytest_configure_node(node: Any) -> None:
    """xdist controller: the workers share one build of each agent artifact (tests/integration/builds.py)."""
    builds.configure_node(node.config, node.workerinput)


def pytest_unconfigure(config: pytest.Config) -> None:
    builds.unconfigure(config)


# Fixtures that build an agent pex (minutes): tests/integration/spine.py, test_upgrades.py.
_BUILD_FIXTURES = frozenset({"agent_artifacts", "aarch64_artifact", "builds"})


def _builds(item: pytest.Item) -> bool:
    return not _BUILD_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that wait for an agent build run first (the order is otherwise kept): on two xdist workers the
    builds then overlap the rest of the suite instead of holding one worker at the end while the other
    runs out of tests. Any of them may wait out a build (another worker's, under its lock) in its setup,
    so their default timeout is the one the upgrade tests already had."""
    items.sort(key=lambda item: not _builds(item))
    for item in items:
        if _builds(item) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(1800))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests in modules marked `both_engines` that start servers run once on SQLite, once on PostgreSQL."""
    if metafunc.definition.get_closest_marker("both_engines") and "server_factory" in metafunc.fixturenames:
        metafunc.parametrize("database_engine", ENGINES, indirect=True)


from tests.integration.spine import (  # noqa: E402
    ENGINES,
    aarch64_artifact,
    agent_artifacts,
    agent_factory,
    database_engine,
    server,
    server_factory,
)

__all__ = [
    "aarch64_artifact",
    "agent_artifacts",
    "agent_factory",
    "database_engine",
    "server",
    "server_factory",
]
