"""Users and their API tokens (stored only as hashes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockmesh.store.db import Database
from dockmesh.store.schema import api_tokens, users


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    is_admin: bool


def _user(row: sa.Row[Any] | None) -> UserRecord | None:
    if row is None:
        return None
    m = row._mapping
    return UserRecord(m["id"], m["username"], m["password_hash"], bool(m["is_admin"]))


class UserStore:
    """Every SQL statement about users and API tokens."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def count(self) -> int:
        async with self._db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one())

    async def create(self, username: str, password_hash: str, is_admin: bool, now: float) -> UserRecord:
        async with self._db.write() as conn:
            await conn.execute(
                users.insert().values(
                    username=username, password_hash=password_hash, is_admin=is_admin, created_at=now
                )
            )
        user = await self.by_username(username)
        assert user is not None
        return user

    async def _one(self, where: sa.ColumnElement[bool]) -> UserRecord | None:
        async with self._db.read() as conn:
            return _user((await conn.execute(sa.select(users).where(where))).first())

    async def by_username(self, username: str) -> UserRecord | None:
        return await self._one(users.c.username == username)

    async def by_id(self, user_id: int) -> UserRecord | None:
        return await self._one(users.c.id == user_id)

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                users.update().where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def add_token(self, token_hash: str, user_id: int, now: float, expires_at: float) -> None:
        async with self._db.write() as conn:
            await conn.execute(api_tokens.delete().where(api_tokens.c.expires_at <= now))
            await conn.execute(
                api_tokens.insert().values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

    async def user_for_token(self, token_hash: str, now: float) -> UserRecord | None:
        """One joined SELECT: the bearer check runs on every API request."""
        query = (
            sa.select(users)
            .join(api_tokens, api_tokens.c.user_id == users.c.id)
            .where(api_tokens.c.token_hash == token_hash, api_tokens.c.expires_at > now)
        )
        async with self._db.read() as conn:
            return _user((await conn.execute(query)).first())

    async def drop_token(self, token_hash: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(api_tokens.delete().where(api_tokens.c.token_hash == token_hash))
