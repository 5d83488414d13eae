"""Registry credentials: add, list (never the secret), update, remove; and the one credential per registry
a pull or a deploy on a host is sent (the rule is in `dockmesh.server.registries`).

Managing them needs `registries.manage`. Selection needs no permission of its own: it runs inside a pull or
a deploy the caller was already allowed, and its result goes only to that host, with that one request.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from dockmesh.server import registries as rules
from dockmesh.server.directory import HostRef
from dockmesh.server.selector import SelectorError, parse
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import Conflict, Invalid, NotFound, Unavailable
from dockmesh.server.vault import Vault, VaultError
from dockmesh.store.audit import AuditEvent
from dockmesh.store.registries import MAX_CREDENTIALS, CredentialRecord, CredentialStore

PERMISSION = "registries.manage"
MAX_USERNAME = 255
# Tokens (GitHub, GitLab, cloud registries) run to a few hundred bytes; the agent takes up to 8 KiB.
MAX_PASSWORD = 4096


def view(record: CredentialRecord) -> dict[str, Any]:
    """A credential as the API and the pages show it: everything but the secret."""
    address = rules.Address(record.registry, record.path)
    return {
        "id": record.id,
        "url": address.text,
        "registry": record.registry,
        "path": record.path,
        "username": record.username,
        "scope": record.scope,
        "created_by": record.created_by,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def check_url(value: Any) -> rules.Address:
    try:
        return rules.parse_address(value)
    except rules.AddressError as exc:
        raise Invalid("invalid_url", str(exc)) from None


def check_username(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_USERNAME:
        raise Invalid("invalid_username", f"the username must be 1 to {MAX_USERNAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise Invalid("invalid_username", "the username must not hold control characters")
    return value


def check_password(value: Any) -> str:
    # The messages never quote the value: it is a secret, and error texts reach logs and screens.
    if not isinstance(value, str) or not 0 < len(value) <= MAX_PASSWORD:
        raise Invalid("invalid_password", f"the password must be a string of 1 to {MAX_PASSWORD} characters")
    if any(ch in "\x00\r\n" for ch in value):
        raise Invalid("invalid_password", "the password must not hold NUL or line breaks")
    return value


def check_scope(value: Any) -> str:
    """A scope's canonical text; empty or absent = every host ("all")."""
    if value is None:
        return "all"
    if not isinstance(value, str):
        raise Invalid("invalid_scope", "the scope must be a host selector string, e.g. 'prod and not eu'")
    try:
        return parse(value).text
    except SelectorError as exc:
        raise Invalid(
            "invalid_scope", f"scope: {exc.message} (at position {exc.position})", position=exc.position
        ) from None


def candidate(record: CredentialRecord) -> rules.Candidate:
    return rules.Candidate(record.id, rules.Address(record.registry, record.path), parse(record.scope))


class RegistryService:
    def __init__(self, store: CredentialStore, vault: Vault, clock: Callable[[], float]) -> None:
        self._store = store
        self._vault = vault
        self._clock = clock

    # --- management ---------------------------------------------------------------------------
    async def list(self, caller: Caller) -> list[CredentialRecord]:
        access.check_permission(caller, PERMISSION)
        return await self._store.all()

    async def get(self, caller: Caller, credential_id: int) -> CredentialRecord:
        access.check_permission(caller, PERMISSION)
        record = await self._store.get(credential_id)
        if record is None:
            raise NotFound("credential_not_found", f"no registry credential {credential_id}")
        return record

    async def add(
        self, caller: Caller, url: Any, username: Any, password: Any, scope: Any = None
    ) -> CredentialRecord:
        access.check_permission(caller, PERMISSION)
        address, user, secret, scope_text = (
            check_url(url),
            check_username(username),
            check_password(password),
            check_scope(scope),
        )
        if await self._store.count() >= MAX_CREDENTIALS:
            raise Conflict("too_many_credentials", f"at most {MAX_CREDENTIALS} registry credentials")
        now = self._clock()
        detail = {"url": address.text, "username": user, "scope": scope_text}
        event = AuditEvent(now, caller.username, "registry.add", "", detail)
        sealed = self._vault.seal(secret)
        return await self._store.add(
            address.registry, address.path, user, sealed, scope_text, caller.username, now, event
        )

    async def update(self, caller: Caller, credential_id: int, changes: dict[str, Any]) -> CredentialRecord:
        """Change any of url, username, password, scope; the fields left out stay."""
        access.check_permission(caller, PERMISSION)
        values: dict[str, Any] = {}
        detail: dict[str, Any] = {}
        if "url" in changes:
            address = check_url(changes["url"])
            values.update(registry=address.registry, path=address.path)
            detail["url"] = address.text
        if "username" in changes:
            values["username"] = detail["username"] = check_username(changes["username"])
        if "password" in changes:
            values["secret"] = self._vault.seal(check_password(changes["password"]))
            detail["password_changed"] = True  # that it changed, never what to
        if "scope" in changes:
            values["scope"] = detail["scope"] = check_scope(changes["scope"])
        if not values:
            raise Invalid("invalid_body", "nothing to change: give url, username, password or scope")
        now = self._clock()
        event = AuditEvent(now, caller.username, "registry.update", str(credential_id), detail)
        record = await self._store.update(credential_id, values, now, event)
        if record is None:
            raise NotFound("credential_not_found", f"no registry credential {credential_id}")
        return record

    async def delete(self, caller: Caller, credential_id: int) -> None:
        access.check_permission(caller, PERMISSION)
        event = AuditEvent(self._clock(), caller.username, "registry.remove", str(credential_id))
        if not await self._store.delete(credential_id, event):
            raise NotFound("credential_not_found", f"no registry credential {credential_id}")

    # --- selection ----------------------------------------------------------------------------
    def _auth(self, record: CredentialRecord) -> dict[str, str]:
        try:
            password = self._vault.open(record.secret)
        except VaultError:
            raise Unavailable(
                "credential_unreadable",
                f"registry credential {record.id} ({rules.Address(record.registry, record.path).text}) "
                "cannot be decrypted with this server's key file: set its password again",
            ) from None
        server = rules.Address(record.registry, record.path).server
        return {"username": record.username, "password": password, "serveraddress": server}

    async def chooser(self, images: Iterable[str]) -> Callable[[HostRef], dict[str, dict[str, str]]]:
        """Read the credentials these images' registries have once; the result picks for one host
        (a selection of many hosts costs one query, not one per host)."""
        refs = list(images)
        wanted = {rules.parse_image(ref).registry for ref in refs}
        records = {r.id: r for r in await self._store.all() if r.registry in wanted}
        candidates = [candidate(r) for r in records.values()]

        def for_host(host: HostRef) -> dict[str, dict[str, str]]:
            chosen = rules.pick_for_images(candidates, refs, host.id, host.name, host.tags)
            return {registry: self._auth(records[c.id]) for registry, c in chosen.items()}

        return for_host

    async def for_images(self, host: HostRef, images: Iterable[str]) -> dict[str, dict[str, str]]:
        """Registry (as the images write it) → credential, for the registries these images need on
        `host`; registries without a matching credential are left out (pulled anonymously)."""
        return (await self.chooser(images))(host)

    async def for_image(self, host: HostRef, image: str) -> dict[str, str] | None:
        """The credential to pull one image on `host`, or None."""
        found = await self.for_images(host, [image])
        return next(iter(found.values()), None)
