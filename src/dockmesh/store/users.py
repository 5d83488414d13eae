"""Users and their API tokens (stored only as hashes)."""

from __future__ import annotations

from dataclasses import dataclass

from dockmesh.store.db import Database


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    is_admin: bool


class UserStore:
    """Every SQL statement about users and API tokens."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def count(self) -> int:
        row = self._db.query_one("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    def create(self, username: str, password_hash: str, is_admin: bool, now: float) -> UserRecord:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)",
                (username, password_hash, int(is_admin), now),
            )
        user = self.by_username(username)
        assert user is not None
        return user

    def by_username(self, username: str) -> UserRecord | None:
        row = self._db.query_one("SELECT * FROM users WHERE username = ?", (username,))
        if row is None:
            return None
        return UserRecord(row["id"], row["username"], row["password_hash"], bool(row["is_admin"]))

    def by_id(self, user_id: int) -> UserRecord | None:
        row = self._db.query_one("SELECT * FROM users WHERE id = ?", (user_id,))
        if row is None:
            return None
        return UserRecord(row["id"], row["username"], row["password_hash"], bool(row["is_admin"]))

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

    def add_token(self, token_hash: str, user_id: int, now: float, expires_at: float) -> None:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM api_tokens WHERE expires_at <= ?", (now,))
            cur.execute(
                "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (token_hash, user_id, now, expires_at),
            )

    def user_for_token(self, token_hash: str, now: float) -> UserRecord | None:
        row = self._db.query_one(
            "SELECT user_id FROM api_tokens WHERE token_hash = ? AND expires_at > ?", (token_hash, now)
        )
        return self.by_id(row["user_id"]) if row else None

    def drop_token(self, token_hash: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM api_tokens WHERE token_hash = ?", (token_hash,))
