"""Users, their roles and API tokens (login tokens and script tokens, stored only as hashes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dockmesh.store.db import Database, StoreError
from dockmesh.store.schema import api_tokens, roles, script_tokens, token_roles, user_roles, users

ADMIN_ROLE = "admin"


class LastAdmin(StoreError):
    """The change would leave no user holding the admin role."""


@dataclass(frozen=True)
class RoleRecord:
    id: int
    name: str
    permissions: tuple[str, ...]
    scope: str  # canonical selector text; "" = every host
    builtin: bool


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    is_admin: bool  # holds the built-in admin role (among `roles` when they are loaded)
    roles: tuple[RoleRecord, ...] = ()
    created_at: float = 0.0


@dataclass(frozen=True)
class ScriptToken:
    id: str
    user_id: int
    name: str
    created_at: float
    expires_at: float
    roles: tuple[str, ...]


def _user(row: sa.Row[Any] | None) -> UserRecord | None:
    if row is None:
        return None
    m = row._mapping
    return UserRecord(
        m["id"], m["username"], m["password_hash"], bool(m["is_admin"]), created_at=float(m["created_at"])
    )


def _role(m: Any) -> RoleRecord:
    perms = json.loads(m["permissions"] or "[]")
    return RoleRecord(m["id"], m["name"], tuple(str(p) for p in perms), m["scope"] or "", bool(m["builtin"]))


async def _roles_of(conn: AsyncConnection, user_ids: Sequence[int]) -> dict[int, list[RoleRecord]]:
    query = (
        sa.select(user_roles.c.user_id, roles)
        .join(roles, roles.c.id == user_roles.c.role_id)
        .where(user_roles.c.user_id.in_(list(user_ids)))
        .order_by(roles.c.name)
    )
    out: dict[int, list[RoleRecord]] = {}
    for row in await conn.execute(query):
        out.setdefault(row._mapping["user_id"], []).append(_role(row._mapping))
    return out


def _with_roles(user: UserRecord, held: Sequence[RoleRecord]) -> UserRecord:
    admin = any(r.builtin and r.name == ADMIN_ROLE for r in held)
    return replace(user, roles=tuple(held), is_admin=admin)


class UserStore:
    """Every SQL statement about users, roles and API tokens."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def count(self) -> int:
        async with self._db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one())

    # --- roles -------------------------------------------------------------------------------------

    async def roles(self) -> list[RoleRecord]:
        async with self._db.read() as conn:
            return [_role(r._mapping) for r in await conn.execute(sa.select(roles).order_by(roles.c.name))]

    async def role(self, name: str) -> RoleRecord | None:
        row = await self._db.first(sa.select(roles).where(roles.c.name == name))
        return _role(row._mapping) if row is not None else None

    async def create_role(self, name: str, permissions: Sequence[str], scope: str, now: float) -> RoleRecord:
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    roles.insert().values(
                        name=name, permissions=json.dumps(sorted(permissions)), scope=scope, created_at=now
                    )
                )
        except sa.exc.IntegrityError:
            raise StoreError(f"a role named {name!r} exists") from None
        role = await self.role(name)
        assert role is not None
        return role

    async def update_role(self, name: str, permissions: Sequence[str], scope: str) -> RoleRecord | None:
        async with self._db.write() as conn:
            await conn.execute(
                roles.update()
                .where(roles.c.name == name, sa.not_(roles.c.builtin))
                .values(permissions=json.dumps(sorted(permissions)), scope=scope)
            )
        return await self.role(name)

    async def delete_role(self, name: str) -> bool:
        async with self._db.write() as conn:
            custom = sa.select(roles.c.id).where(roles.c.name == name, sa.not_(roles.c.builtin))
            await conn.execute(user_roles.delete().where(user_roles.c.role_id.in_(custom)))
            await conn.execute(token_roles.delete().where(token_roles.c.role_id.in_(custom)))
            result = await conn.execute(roles.delete().where(roles.c.name == name, sa.not_(roles.c.builtin)))
            return bool(result.rowcount)

    # --- users -------------------------------------------------------------------------------------

    async def create(
        self, username: str, password_hash: str, is_admin: bool, now: float, role_ids: Sequence[int] = ()
    ) -> UserRecord:
        """A new user holding `role_ids` (and `admin` when `is_admin`); StoreError if the name is taken."""
        try:
            async with self._db.write() as conn:
                ids = set(role_ids)
                if is_admin:
                    ids.add(await self._admin_id(conn))
                admin = await self._admin_id(conn) in ids
                result = await conn.execute(
                    users.insert().values(
                        username=username, password_hash=password_hash, is_admin=admin, created_at=now
                    )
                )
                user_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
                if user_id is None:  # pragma: no cover - both engines return the key
                    user_id = (
                        await conn.execute(sa.select(users.c.id).where(users.c.username == username))
                    ).scalar_one()
                for rid in sorted(ids):
                    await conn.execute(user_roles.insert().values(user_id=user_id, role_id=rid))
        except sa.exc.IntegrityError:
            raise StoreError(f"a user named {username!r} exists") from None
        user = await self.by_username(username)
        assert user is not None
        return user

    async def _admin_id(self, conn: AsyncConnection) -> int:
        query = sa.select(roles.c.id).where(roles.c.name == ADMIN_ROLE, roles.c.builtin)
        return int((await conn.execute(query)).scalar_one())

    async def _one(self, where: sa.ColumnElement[bool]) -> UserRecord | None:
        async with self._db.read() as conn:
            user = _user((await conn.execute(sa.select(users).where(where))).first())
            if user is None:
                return None
            return _with_roles(user, (await _roles_of(conn, [user.id])).get(user.id, []))

    async def by_username(self, username: str) -> UserRecord | None:
        return await self._one(users.c.username == username)

    async def by_id(self, user_id: int) -> UserRecord | None:
        return await self._one(users.c.id == user_id)

    async def all(self) -> list[UserRecord]:
        async with self._db.read() as conn:
            found = [_user(r) for r in await conn.execute(sa.select(users).order_by(users.c.username))]
            listed = [u for u in found if u is not None]
            held = await _roles_of(conn, [u.id for u in listed])
        return [_with_roles(u, held.get(u.id, [])) for u in listed]

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                users.update().where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def _admins_left(self, conn: AsyncConnection, admin_id: int) -> int:
        query = sa.select(sa.func.count()).select_from(user_roles).where(user_roles.c.role_id == admin_id)
        return int((await conn.execute(query)).scalar_one())

    async def set_roles(self, user_id: int, role_ids: Sequence[int]) -> None:
        """Replace the user's roles in one transaction; LastAdmin if no administrator would remain."""
        async with self._db.write() as conn:
            admin_id = await self._admin_id(conn)
            before = await self._admins_left(conn, admin_id)
            await conn.execute(user_roles.delete().where(user_roles.c.user_id == user_id))
            for rid in sorted(set(role_ids)):
                await conn.execute(user_roles.insert().values(user_id=user_id, role_id=rid))
            if before and not await self._admins_left(conn, admin_id):
                raise LastAdmin("at least one user must keep the admin role")
            await conn.execute(
                users.update().where(users.c.id == user_id).values(is_admin=admin_id in set(role_ids))
            )
            # Script tokens keep only roles their owner still holds (they are also intersected on use).
            owned = sa.select(script_tokens.c.id).where(script_tokens.c.user_id == user_id)
            kept = list(set(role_ids)) or [-1]
            await conn.execute(
                token_roles.delete().where(
                    token_roles.c.token_id.in_(owned), token_roles.c.role_id.not_in(kept)
                )
            )

    async def delete(self, user_id: int) -> bool:
        async with self._db.write() as conn:
            admin_id = await self._admin_id(conn)
            before = await self._admins_left(conn, admin_id)
            # Children first: SQLite enforces ON DELETE CASCADE only with foreign keys on.
            tokens = sa.select(script_tokens.c.id).where(script_tokens.c.user_id == user_id)
            await conn.execute(token_roles.delete().where(token_roles.c.token_id.in_(tokens)))
            await conn.execute(script_tokens.delete().where(script_tokens.c.user_id == user_id))
            await conn.execute(api_tokens.delete().where(api_tokens.c.user_id == user_id))
            await conn.execute(user_roles.delete().where(user_roles.c.user_id == user_id))
            result = await conn.execute(users.delete().where(users.c.id == user_id))
            if before and not await self._admins_left(conn, admin_id):
                raise LastAdmin("at least one user must keep the admin role")
            return bool(result.rowcount)

    # --- login tokens ------------------------------------------------------------------------------

    async def add_token(self, token_hash: str, user_id: int, now: float, expires_at: float) -> None:
        async with self._db.write() as conn:
            await conn.execute(api_tokens.delete().where(api_tokens.c.expires_at <= now))
            await conn.execute(
                api_tokens.insert().values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

    async def user_for_token(self, token_hash: str, now: float) -> UserRecord | None:
        """The user with the roles in force for this token: all of theirs for a login token; for a script
        token its own roles that the user still holds. Read on every API request (no cache: a role change
        applies to the next request)."""
        login = (
            sa.select(users)
            .join(api_tokens, api_tokens.c.user_id == users.c.id)
            .where(api_tokens.c.token_hash == token_hash, api_tokens.c.expires_at > now)
        )
        script = (
            sa.select(users, script_tokens.c.id.label("token_id"))
            .join(script_tokens, script_tokens.c.user_id == users.c.id)
            .where(script_tokens.c.token_hash == token_hash, script_tokens.c.expires_at > now)
        )
        async with self._db.read() as conn:
            user = _user((await conn.execute(login)).first())
            if user is not None:
                return _with_roles(user, (await _roles_of(conn, [user.id])).get(user.id, []))
            row = (await conn.execute(script)).first()
            user = _user(row)
            if row is None or user is None:
                return None
            held = (await _roles_of(conn, [user.id])).get(user.id, [])
            query = sa.select(token_roles.c.role_id).where(token_roles.c.token_id == row._mapping["token_id"])
            granted = {r[0] for r in await conn.execute(query)}
        return _with_roles(user, [r for r in held if r.id in granted])

    async def drop_token(self, token_hash: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(api_tokens.delete().where(api_tokens.c.token_hash == token_hash))

    # --- script tokens -----------------------------------------------------------------------------

    async def add_script_token(
        self,
        token_id: str,
        token_hash: str,
        user_id: int,
        name: str,
        role_ids: Sequence[int],
        now: float,
        expires_at: float,
    ) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                script_tokens.insert().values(
                    id=token_id,
                    token_hash=token_hash,
                    user_id=user_id,
                    name=name,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            for rid in sorted(set(role_ids)):
                await conn.execute(token_roles.insert().values(token_id=token_id, role_id=rid))

    async def script_tokens(self, user_id: int) -> list[ScriptToken]:
        query = (
            sa.select(script_tokens, roles.c.name.label("role"))
            .outerjoin(token_roles, token_roles.c.token_id == script_tokens.c.id)
            .outerjoin(roles, roles.c.id == token_roles.c.role_id)
            .where(script_tokens.c.user_id == user_id)
            .order_by(script_tokens.c.created_at, script_tokens.c.id, roles.c.name)
        )
        found: dict[str, ScriptToken] = {}
        async with self._db.read() as conn:
            for row in await conn.execute(query):
                m = row._mapping
                prev = found.get(m["id"])
                held = (prev.roles if prev else ()) + ((m["role"],) if m["role"] else ())
                found[m["id"]] = ScriptToken(
                    m["id"], m["user_id"], m["name"], m["created_at"], m["expires_at"], held
                )
        return list(found.values())

    async def drop_script_token(self, user_id: int, token_id: str) -> bool:
        async with self._db.write() as conn:
            mine = sa.select(script_tokens.c.id).where(
                script_tokens.c.id == token_id, script_tokens.c.user_id == user_id
            )
            await conn.execute(token_roles.delete().where(token_roles.c.token_id.in_(mine)))
            result = await conn.execute(
                script_tokens.delete().where(
                    script_tokens.c.id == token_id, script_tokens.c.user_id == user_id
                )
            )
            return bool(result.rowcount)
