"""Users, passwords (argon2) and API bearer tokens."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dockmesh.server.tokens import token_hash
from dockmesh.store.users import UserRecord, UserStore

API_TOKEN_TTL = 12 * 3600


class Accounts:
    def __init__(self, users: UserStore, clock: Callable[[], float]) -> None:
        self._users = users
        self._clock = clock
        self._hasher = PasswordHasher()
        # Verifying against a dummy hash for unknown users keeps login time independent of whether they exist.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def bootstrap_admin(self, password: str | None) -> None:
        """Create `admin` on first start; a generated password is printed once, never logged."""
        if self._users.count():
            return
        generated = password is None
        secret = password or secrets.token_urlsafe(15)
        self._users.create("admin", self._hasher.hash(secret), True, self._clock())
        if generated:
            print(
                f"dockmesh: created user 'admin' with password: {secret}\n"
                "dockmesh: this is shown once; set DOCKMESH_ADMIN_PASSWORD to choose it yourself.",
                file=sys.stderr,
                flush=True,
            )

    def login(self, username: str, password: str) -> str | None:
        user = self._users.by_username(username)
        try:
            self._hasher.verify(user.password_hash if user else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        token = secrets.token_urlsafe(32)
        now = self._clock()
        self._users.add_token(token_hash(token), user.id, now, now + API_TOKEN_TTL)
        return token

    def user_for_token(self, token: str) -> UserRecord | None:
        return self._users.user_for_token(token_hash(token), self._clock())

    def logout(self, token: str) -> None:
        self._users.drop_token(token_hash(token))
