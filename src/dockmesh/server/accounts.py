"""Users, passwords (argon2, off the event loop) and API bearer tokens."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable

from dockmesh.server.passwords import Busy, Passwords
from dockmesh.server.tokens import token_hash
from dockmesh.store.users import UserRecord, UserStore

__all__ = ["API_TOKEN_TTL", "Accounts", "Busy"]

API_TOKEN_TTL = 12 * 3600


class Accounts:
    def __init__(
        self, users: UserStore, clock: Callable[[], float], passwords: Passwords | None = None
    ) -> None:
        self._users = users
        self._clock = clock
        self.passwords = passwords or Passwords()
        # Verifying against a dummy hash for unknown users keeps login time independent of whether they exist.
        self._dummy = self.passwords.hash_now(secrets.token_hex(16))

    async def bootstrap_admin(self, password: str | None) -> None:
        """Create `admin` on first start; a generated password is printed once, never logged."""
        if await self._users.count():
            return
        generated = password is None
        secret = password or secrets.token_urlsafe(15)
        await self._users.create("admin", self.passwords.hash_now(secret), True, self._clock())
        if generated:
            print(
                f"dockmesh: created user 'admin' with password: {secret}\n"
                "dockmesh: this is shown once; set DOCKMESH_ADMIN_PASSWORD to choose it yourself.",
                file=sys.stderr,
                flush=True,
            )

    async def login(self, username: str, password: str) -> str | None:
        """A new bearer token, or None for wrong credentials; raises Busy when checks are queued up."""
        user = await self._users.by_username(username)
        if not await self.passwords.verify(user.password_hash if user else self._dummy, password):
            return None
        if user is None:
            return None
        token = secrets.token_urlsafe(32)
        now = self._clock()
        await self._users.add_token(token_hash(token), user.id, now, now + API_TOKEN_TTL)
        return token

    async def user_for_token(self, token: str) -> UserRecord | None:
        return await self._users.user_for_token(token_hash(token), self._clock())

    async def logout(self, token: str) -> None:
        await self._users.drop_token(token_hash(token))

    def close(self) -> None:
        self.passwords.close()
