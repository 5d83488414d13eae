"""Users, API tokens and the audit log on both engines."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dockmesh.server.tokens import token_hash
from dockmesh.store import Database
from dockmesh.store.audit import AuditStore
from dockmesh.store.db import StoreError
from dockmesh.store.schema import api_tokens
from dockmesh.store.users import UserStore

NOW = 1_700_000_000.0


async def test_users(users: UserStore) -> None:
    assert await users.count() == 0
    admin = await users.create("admin", "hash-1", True, NOW)
    assert admin.is_admin
    assert await users.count() == 1
    assert await users.by_username("admin") == admin
    assert await users.by_id(admin.id) == admin
    assert await users.by_username("nobody") is None
    await users.set_password_hash(admin.id, "hash-2")
    again = await users.by_username("admin")
    assert again is not None
    assert again.password_hash == "hash-2"
    with pytest.raises(StoreError, match="exists"):
        await users.create("admin", "x", False, NOW)
    assert not (await users.create("bob", "h", False, NOW)).is_admin


async def test_api_tokens_expire(users: UserStore) -> None:
    user = await users.create("alice", "h", False, NOW)
    await users.add_token(token_hash("t1"), user.id, NOW, NOW + 60)
    assert await users.user_for_token(token_hash("t1"), NOW) == user
    assert await users.user_for_token(token_hash("t1"), NOW + 59) == user
    assert await users.user_for_token(token_hash("t1"), NOW + 60) is None
    assert await users.user_for_token(token_hash("other"), NOW) is None


async def test_drop_token(users: UserStore) -> None:
    user = await users.create("alice", "h", False, NOW)
    await users.add_token(token_hash("t1"), user.id, NOW, NOW + 60)
    await users.drop_token(token_hash("t1"))
    assert await users.user_for_token(token_hash("t1"), NOW) is None


async def test_adding_a_token_purges_expired_ones(users: UserStore, db: Database) -> None:
    user = await users.create("alice", "h", False, NOW)
    await users.add_token(token_hash("old"), user.id, NOW, NOW + 10)
    await users.add_token(token_hash("new"), user.id, NOW + 20, NOW + 100)
    async with db.read() as conn:
        hashes = set((await conn.execute(sa.select(api_tokens.c.token_hash))).scalars())
    assert hashes == {token_hash("new")}


async def test_audit_newest_first(db: Database) -> None:
    audit = AuditStore(db)
    await audit.add(NOW, "admin", "agent.create", "a1", {"name": "web-1"})
    await audit.add(NOW + 1, "admin", "agent.revoke", "a1")
    entries = await audit.recent()
    assert [e.action for e in entries] == ["agent.revoke", "agent.create"]
    assert entries[1].detail == {"name": "web-1"}
    assert entries[0].detail == {}
    assert len(await audit.recent(limit=1)) == 1
