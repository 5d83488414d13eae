"""Roles, the roles users hold, script tokens with their own roles, on both engines; migration 0004."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dockmesh.server.tokens import token_hash
from dockmesh.store import Database, migrate
from dockmesh.store.db import StoreError
from dockmesh.store.schema import users as users_table
from dockmesh.store.users import LastAdmin, UserStore

NOW = 1_700_000_000.0


async def test_builtin_roles_are_seeded_and_custom_ones_follow(users: UserStore) -> None:
    names = {r.name: r for r in await users.roles()}
    assert {"admin", "operator", "viewer"} <= set(names)
    assert all(names[n].builtin for n in ("admin", "operator", "viewer"))
    role = await users.create_role("prod-operator", ["containers.view", "hosts.view"], "prod", NOW)
    assert (role.name, role.permissions, role.scope, role.builtin) == (
        "prod-operator",
        ("containers.view", "hosts.view"),
        "prod",
        False,
    )
    assert role.id > 3  # past the seeded ids on PostgreSQL too
    with pytest.raises(StoreError, match="exists"):
        await users.create_role("prod-operator", [], "", NOW)
    changed = await users.update_role("prod-operator", ["hosts.view"], "prod and eu")
    assert changed is not None
    assert (changed.permissions, changed.scope) == (("hosts.view",), "prod and eu")
    assert not await users.delete_role("admin")  # built-in: refused
    assert await users.role("admin") is not None


async def test_users_hold_roles_and_the_last_admin_stays(users: UserStore) -> None:
    admin = await users.create("admin", "h", True, NOW)
    assert admin.is_admin
    assert [r.name for r in admin.roles] == ["admin"]
    viewer = await users.role("viewer")
    custom = await users.create_role("prod-ops", ["containers.manage"], "prod", NOW)
    assert viewer is not None
    bob = await users.create("bob", "h", False, NOW, [viewer.id, custom.id])
    assert [r.name for r in bob.roles] == ["prod-ops", "viewer"]
    assert not bob.is_admin
    assert [u.username for u in await users.all()] == ["admin", "bob"]
    with pytest.raises(LastAdmin):
        await users.set_roles(admin.id, [viewer.id])
    with pytest.raises(LastAdmin):
        await users.delete(admin.id)
    again = await users.by_id(admin.id)
    assert again is not None
    assert again.is_admin
    await users.set_roles(bob.id, [viewer.id])
    bob2 = await users.by_id(bob.id)
    assert bob2 is not None
    assert [r.name for r in bob2.roles] == ["viewer"]
    assert await users.delete_role("prod-ops")
    assert await users.delete(bob.id)
    assert await users.by_id(bob.id) is None


async def test_script_tokens_carry_their_own_roles_within_the_owners(users: UserStore) -> None:
    viewer, operator = await users.role("viewer"), await users.role("operator")
    assert viewer is not None
    assert operator is not None
    bob = await users.create("bob", "h", False, NOW, [viewer.id, operator.id])
    await users.add_script_token("t1", token_hash("secret"), bob.id, "ci", [viewer.id], NOW, NOW + 60)
    seen = await users.user_for_token(token_hash("secret"), NOW)
    assert seen is not None
    assert [r.name for r in seen.roles] == ["viewer"]
    assert await users.user_for_token(token_hash("secret"), NOW + 60) is None  # expired
    listed = await users.script_tokens(bob.id)
    assert [(t.id, t.name, t.roles) for t in listed] == [("t1", "ci", ("viewer",))]
    async with users._db.read() as conn:  # only the hash is stored
        stored = (await conn.execute(sa.text("SELECT token_hash FROM script_tokens"))).scalar_one()
    assert stored == token_hash("secret")
    assert "secret" not in stored
    # The owner loses the role: the token loses it on the next request.
    await users.set_roles(bob.id, [operator.id])
    seen = await users.user_for_token(token_hash("secret"), NOW)
    assert seen is not None
    assert seen.roles == ()
    assert not await users.drop_script_token(bob.id + 1, "t1")  # someone else's
    assert await users.drop_script_token(bob.id, "t1")
    assert await users.user_for_token(token_hash("secret"), NOW) is None


async def test_migration_0004_makes_existing_admins_hold_admin(database_url: str) -> None:
    old = Database(database_url)
    try:
        await migrate.upgrade(old, "0003")
        async with old.write() as conn:
            await conn.execute(
                users_table.insert().values(
                    username="admin", password_hash="h", is_admin=True, created_at=1.0
                )
            )
            await conn.execute(
                users_table.insert().values(username="eve", password_hash="h", is_admin=False, created_at=1.0)
            )
    finally:
        await old.close()
    db = await Database.open(database_url)
    try:
        store = UserStore(db)
        admin, eve = await store.by_username("admin"), await store.by_username("eve")
        assert admin is not None
        assert [r.name for r in admin.roles] == ["admin"]
        assert eve is not None
        assert eve.roles == ()
    finally:
        await db.close()
