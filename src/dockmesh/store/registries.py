"""Registry credentials: every SQL statement about them. The password column holds ciphertext only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockmesh.store.audit import AuditEvent
from dockmesh.store.db import Database
from dockmesh.store.schema import registry_credentials as creds

MAX_CREDENTIALS = 1000  # a bound on what one selection reads per pull or deploy


@dataclass(frozen=True)
class CredentialRecord:
    id: int
    registry: str
    path: str
    username: str
    secret: str  # sealed (server/vault.py); never rendered
    scope: str
    created_by: str
    created_at: float
    updated_at: float


def _record(row: sa.Row[Any]) -> CredentialRecord:
    m = row._mapping
    return CredentialRecord(
        m["id"],
        m["registry"],
        m["path"],
        m["username"],
        m["secret"],
        m["scope"],
        m["created_by"],
        m["created_at"],
        m["updated_at"],
    )


class CredentialStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self, registry: str | None = None) -> list[CredentialRecord]:
        query = sa.select(creds).order_by(creds.c.id).limit(MAX_CREDENTIALS)
        if registry is not None:
            query = query.where(creds.c.registry == registry)
        async with self._db.read() as conn:
            return [_record(r) for r in await conn.execute(query)]

    async def get(self, credential_id: int) -> CredentialRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(creds).where(creds.c.id == credential_id))).first()
        return _record(row) if row is not None else None

    async def count(self) -> int:
        async with self._db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(creds))).scalar_one())

    async def add(
        self,
        registry: str,
        path: str,
        username: str,
        secret: str,
        scope: str,
        actor: str,
        now: float,
        event: AuditEvent,
    ) -> CredentialRecord:
        """Insert the credential and its audit row in one transaction."""
        async with self._db.write() as conn:
            result = await conn.execute(
                creds.insert()
                .values(
                    registry=registry,
                    path=path,
                    username=username,
                    secret=secret,
                    scope=scope,
                    created_by=actor,
                    created_at=now,
                    updated_at=now,
                )
                .returning(creds.c.id)
            )
            new_id = int(result.scalar_one())
            detail = {**event.detail, "id": new_id}
            await conn.execute(AuditEvent(event.at, event.actor, event.action, str(new_id), detail).insert())
        record = await self.get(new_id)
        assert record is not None
        return record

    async def update(
        self, credential_id: int, values: dict[str, Any], now: float, event: AuditEvent
    ) -> CredentialRecord | None:
        """Change the given columns (registry, path, username, secret, scope); None if it is gone."""
        async with self._db.write() as conn:
            result = await conn.execute(
                creds.update().where(creds.c.id == credential_id).values(**values, updated_at=now)
            )
            if result.rowcount == 0:
                return None
            await conn.execute(event.insert())
        return await self.get(credential_id)

    async def delete(self, credential_id: int, event: AuditEvent) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(creds.delete().where(creds.c.id == credential_id))
            if result.rowcount == 0:
                return False
            await conn.execute(event.insert())
        return True
