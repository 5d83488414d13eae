"""Every store test runs on both engines: a fresh SQLite file, and a fresh database on the test cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockmesh.store import Database
from dockmesh.store.agents import AgentStore
from dockmesh.store.users import UserStore


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dockmesh.db'}"
        return
    postgres = request.getfixturevalue("postgres")
    url = postgres.create_database()
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def agents(db: Database) -> AgentStore:
    return AgentStore(db)


@pytest.fixture
def users(db: Database) -> UserStore:
    return UserStore(db)
