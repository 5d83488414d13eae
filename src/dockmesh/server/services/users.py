"""Users, roles and script tokens: validation, the store, the audit row; every function needs `users.manage`.

The API routes (`server/api/users.py`) and the pages/CLI of the RBAC UI call these, so the checks are here.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockmesh.server.accounts import Accounts
from dockmesh.server.directory import HostDirectory
from dockmesh.server.selector import SelectorError, parse
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import Conflict, Invalid, NotFound
from dockmesh.server.tokens import token_hash
from dockmesh.store.audit import AuditStore
from dockmesh.store.db import StoreError
from dockmesh.store.users import LastAdmin, RoleRecord, ScriptToken, UserRecord, UserStore

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_ROLES = 50
MAX_TOKEN_TTL = 366 * 86400
DEFAULT_TOKEN_TTL = 30 * 86400


def role_view(role: RoleRecord) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "permissions": sorted(access.permissions_of(role)),
        "scope": role.scope,
        "builtin": role.builtin,
    }


def user_view(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "roles": [r.name for r in user.roles],
        "admin": access.is_admin(user),
        "created_at": user.created_at,
    }


def token_view(token: ScriptToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "roles": list(token.roles),
        "created_at": token.created_at,
        "expires_at": token.expires_at,
    }


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once; only its hash is stored
    record: ScriptToken


def check_permissions(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise Invalid("invalid_field", "'permissions' must be a list of strings")
    unknown = [p for p in value if p not in access.PERMISSIONS]
    if unknown:
        raise Invalid(
            "unknown_permission",
            f"unknown permission {unknown[0][:64]!r}; known: {', '.join(access.PERMISSIONS)}",
        )
    return sorted(set(value))


def check_scope(value: Any) -> str:
    """The canonical spelling of a scope selector; "" (or absent, or `all`) = every host."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid("invalid_field", "'scope' must be a host selector string")
    try:
        selector = parse(value)
    except SelectorError as exc:
        message = f"scope: {exc.message} (at {exc.position})"
        raise Invalid("invalid_scope", message, position=exc.position) from None
    return "" if selector.op == "all" else selector.text


def _check_password(value: Any) -> str:
    if not isinstance(value, str) or not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise Invalid("invalid_password", f"'password' must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return value


class UserService:
    def __init__(
        self,
        users: UserStore,
        accounts: Accounts,
        audit: AuditStore,
        directory: HostDirectory,
        clock: Callable[[], float],
    ) -> None:
        self._users = users
        self._accounts = accounts
        self._audit = audit
        self._directory = directory
        self._clock = clock

    # --- roles -------------------------------------------------------------------------------------

    async def roles(self, caller: Caller) -> list[RoleRecord]:
        access.require_global(caller, access.USERS_MANAGE)
        return await self._users.roles()

    async def role(self, caller: Caller, name: str) -> RoleRecord:
        access.require_global(caller, access.USERS_MANAGE)
        role = await self._users.role(name)
        if role is None:
            raise NotFound("role_not_found", f"no role named {name[:64]!r}")
        return role

    async def create_role(self, caller: Caller, name: Any, permissions: Any, scope: Any) -> RoleRecord:
        access.require_global(caller, access.USERS_MANAGE)
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise Invalid("invalid_name", "'name' must match [a-z0-9][a-z0-9_.-]{0,63}")
        perms, text = check_permissions(permissions), check_scope(scope)
        try:
            role = await self._users.create_role(name, perms, text, self._clock())
        except StoreError as exc:
            raise Conflict("role_exists", str(exc)) from None
        await self._audit.add(
            self._clock(), caller.username, "role.create", name, {"permissions": perms, "scope": text}
        )
        return role

    async def update_role(self, caller: Caller, name: str, permissions: Any, scope: Any) -> RoleRecord:
        current = await self.role(caller, name)
        if current.builtin:
            raise Conflict("builtin_role", f"the built-in role {name!r} cannot be changed")
        perms = check_permissions(permissions) if permissions is not None else list(current.permissions)
        text = check_scope(scope) if scope is not None else current.scope
        role = await self._users.update_role(name, perms, text)
        if role is None:
            raise NotFound("role_not_found", f"no role named {name[:64]!r}")
        await self._audit.add(
            self._clock(), caller.username, "role.update", name, {"permissions": perms, "scope": text}
        )
        return role

    async def delete_role(self, caller: Caller, name: str) -> None:
        current = await self.role(caller, name)
        if current.builtin:
            raise Conflict("builtin_role", f"the built-in role {name!r} cannot be deleted")
        await self._users.delete_role(name)
        await self._audit.add(self._clock(), caller.username, "role.delete", name)

    async def _role_ids(self, names: Any) -> list[int]:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise Invalid("invalid_field", "'roles' must be a list of role names")
        if len(names) > MAX_ROLES:
            raise Invalid("invalid_field", f"at most {MAX_ROLES} roles")
        known = {r.name: r.id for r in await self._users.roles()}
        missing = [n for n in names if n not in known]
        if missing:
            raise Invalid("unknown_role", f"no role named {missing[0][:64]!r}")
        return sorted({known[n] for n in names})

    # --- users -------------------------------------------------------------------------------------

    async def users(self, caller: Caller) -> list[UserRecord]:
        access.require_global(caller, access.USERS_MANAGE)
        return await self._users.all()

    async def user(self, caller: Caller, user_id: int) -> UserRecord:
        access.require_global(caller, access.USERS_MANAGE)
        user = await self._users.by_id(user_id)
        if user is None:
            raise NotFound("user_not_found", f"no user with id {user_id}")
        return user

    async def create_user(self, caller: Caller, username: Any, password: Any, roles: Any) -> UserRecord:
        access.require_global(caller, access.USERS_MANAGE)
        if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
            raise Invalid("invalid_username", "'username' must match [A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
        secret = _check_password(password)
        role_ids = await self._role_ids(roles if roles is not None else [])
        hashed = await self._accounts.passwords.hash(secret)
        try:
            user = await self._users.create(username, hashed, False, self._clock(), role_ids)
        except StoreError as exc:
            raise Conflict("user_exists", str(exc)) from None
        await self._audit.add(
            self._clock(), caller.username, "user.create", username, {"roles": [r.name for r in user.roles]}
        )
        return user

    async def update_user(
        self, caller: Caller, user_id: int, password: Any = None, roles: Any = None
    ) -> UserRecord:
        user = await self.user(caller, user_id)
        changed: dict[str, Any] = {}
        if password is not None:
            hashed = await self._accounts.passwords.hash(_check_password(password))
            await self._users.set_password_hash(user.id, hashed)
            changed["password"] = True  # that it changed, never the value
        if roles is not None:
            try:
                await self._users.set_roles(user.id, await self._role_ids(roles))
            except LastAdmin as exc:
                raise Conflict("last_admin", str(exc)) from None
            changed["roles"] = sorted(roles)
        await self._audit.add(self._clock(), caller.username, "user.update", user.username, changed)
        return await self.user(caller, user_id)

    async def delete_user(self, caller: Caller, user_id: int) -> None:
        user = await self.user(caller, user_id)
        try:
            await self._users.delete(user.id)
        except LastAdmin as exc:
            raise Conflict("last_admin", str(exc)) from None
        await self._audit.add(self._clock(), caller.username, "user.delete", user.username)

    async def access(self, caller: Caller, user_id: int) -> dict[str, Any]:
        """Effective access: the hosts the user reaches now, the permissions on each, and the global ones."""
        user = await self.user(caller, user_id)
        hosts = access.effective(user, await self._directory.all())
        return {
            "user": user_view(user),
            "global": access.global_permissions(user),
            "hosts": [
                {"id": h.id, "name": h.name, "tags": list(h.tags), "permissions": list(h.permissions)}
                for h in hosts
            ],
        }

    # --- script tokens -----------------------------------------------------------------------------

    async def tokens(self, caller: Caller, user_id: int) -> list[ScriptToken]:
        user = await self.user(caller, user_id)
        return await self._users.script_tokens(user.id)

    async def create_token(self, caller: Caller, user_id: int, name: Any, roles: Any, ttl: Any) -> NewToken:
        """A script token for `user_id`; its roles must be among the user's (absent: all of them)."""
        user = await self.user(caller, user_id)
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise Invalid("invalid_name", "'name' must match [a-z0-9][a-z0-9_.-]{0,63}")
        held = {r.name: r.id for r in user.roles}
        wanted = list(held) if roles is None else roles
        role_ids = await self._role_ids(wanted)
        beyond = [n for n in wanted if n not in held]
        if beyond:
            raise Invalid("role_not_held", f"user {user.username!r} does not hold role {beyond[0][:64]!r}")
        if ttl is None:
            ttl = DEFAULT_TOKEN_TTL
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= MAX_TOKEN_TTL:
            raise Invalid("invalid_field", f"'ttl_s' must be whole seconds from 60 to {MAX_TOKEN_TTL}")
        token = "dmt_" + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(8)
        now = self._clock()
        await self._users.add_script_token(
            token_id, token_hash(token), user.id, name, role_ids, now, now + ttl
        )
        await self._audit.add(
            now, caller.username, "token.create", user.username, {"id": token_id, "name": name}
        )
        found = [t for t in await self._users.script_tokens(user.id) if t.id == token_id]
        return NewToken(token, found[0])

    async def delete_token(self, caller: Caller, user_id: int, token_id: str) -> None:
        user = await self.user(caller, user_id)
        if not await self._users.drop_script_token(user.id, token_id):
            raise NotFound("token_not_found", f"no token {token_id[:64]!r} for user {user.username!r}")
        await self._audit.add(self._clock(), caller.username, "token.delete", user.username, {"id": token_id})
