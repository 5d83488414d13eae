"""Stacks: records, revisions (each with its diff against the previous one), deployments, placements."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dockmesh.store.db import Database, StoreError
from dockmesh.store.schema import deployments, stack_hosts, stack_revisions, stacks

UNSETTLED = ("pending", "running")
FINAL = ("done", "failed", "cancelled")


class StackConflict(StoreError):
    """The change lost a race with another writer, or the stack is still deployed somewhere."""


@dataclass(frozen=True)
class StackRecord:
    name: str
    allow_privileged: bool
    revision: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Revision:
    stack: str
    number: int
    compose: str
    env: str
    author: str
    at: float
    diff: str


@dataclass(frozen=True)
class Deployment:
    id: str
    stack: str
    host: str
    revision: int
    state: str
    actor: str
    started_at: float
    services: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    finished_at: float | None = None

    @property
    def settled(self) -> bool:
        return self.state in FINAL


@dataclass(frozen=True)
class Placement:
    """Where a stack is deployed now: its latest deploy on that host."""

    stack: str
    host: str
    deploy_id: str
    revision: int
    state: str


def unified_diff(old_compose: str, new_compose: str, old_env: str, new_env: str) -> str:
    """The change a save makes, as one unified diff of compose.yaml then .env (empty when unchanged)."""
    parts: list[str] = []
    for name, old, new in (("compose.yaml", old_compose, new_compose), (".env", old_env, new_env)):
        if old != new:
            parts.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{name}", f"b/{name}"
                )
            )
    return "".join(line if line.endswith("\n") else line + "\n" for line in parts)


def _record(row: Any) -> StackRecord:
    return StackRecord(row.name, bool(row.allow_privileged), row.revision, row.created_at, row.updated_at)


def _revision(row: Any) -> Revision:
    return Revision(row.stack, row.number, row.compose, row.env, row.author, row.at, row.diff)


def _deployment(row: Any) -> Deployment:
    return Deployment(
        row.id,
        row.stack,
        row.host,
        row.revision,
        row.state,
        row.actor,
        row.started_at,
        json.loads(row.services),
        row.error,
        row.finished_at,
    )


class StackStore:
    """Every SQL statement about stacks."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- records and revisions ----------------------------------------------------------------
    async def save(
        self,
        name: str,
        compose: str,
        env: str,
        author: str,
        now: float,
        allow_privileged: bool | None = None,
    ) -> tuple[StackRecord, bool]:
        """Create the stack or add a revision; `(record, changed)`. Same text again adds no revision.

        `allow_privileged` None keeps the stack's flag (False for a new stack). One transaction: the
        record, the revision and its diff are all written or none is. The current row is locked (FOR
        UPDATE on PostgreSQL; SQLite has one writer) so two saves cannot both take the next number.
        """
        try:
            async with self._db.write() as conn:
                row = (
                    await conn.execute(sa.select(stacks).where(stacks.c.name == name).with_for_update())
                ).first()
                if row is None:
                    flag = bool(allow_privileged)
                    await conn.execute(
                        stacks.insert().values(
                            name=name, allow_privileged=flag, revision=1, created_at=now, updated_at=now
                        )
                    )
                    await conn.execute(
                        stack_revisions.insert().values(
                            stack=name,
                            number=1,
                            compose=compose,
                            env=env,
                            author=author,
                            at=now,
                            diff=unified_diff("", compose, "", env),
                        )
                    )
                    return StackRecord(name, flag, 1, now, now), True
                record = _record(row)
                current = (
                    await conn.execute(
                        sa.select(stack_revisions.c.compose, stack_revisions.c.env).where(
                            stack_revisions.c.stack == name, stack_revisions.c.number == record.revision
                        )
                    )
                ).one()
                flag = record.allow_privileged if allow_privileged is None else allow_privileged
                changed = (current.compose, current.env) != (compose, env)
                if not changed and flag == record.allow_privileged:
                    return record, False
                number = record.revision + 1 if changed else record.revision
                if changed:
                    await conn.execute(
                        stack_revisions.insert().values(
                            stack=name,
                            number=number,
                            compose=compose,
                            env=env,
                            author=author,
                            at=now,
                            diff=unified_diff(current.compose, compose, current.env, env),
                        )
                    )
                await conn.execute(
                    stacks.update()
                    .where(stacks.c.name == name)
                    .values(revision=number, allow_privileged=flag, updated_at=now)
                )
                return StackRecord(name, flag, number, record.created_at, now), changed
        except sa.exc.IntegrityError:
            raise StackConflict(f"stack {name!r} was saved by someone else at the same time; retry") from None

    async def get(self, name: str) -> StackRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(stacks).where(stacks.c.name == name))).first()
        return _record(row) if row is not None else None

    async def all(self) -> list[StackRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(stacks).order_by(stacks.c.name))
            return [_record(r) for r in rows]

    async def revision(self, name: str, number: int | None = None) -> Revision | None:
        """One revision (the current one when `number` is None)."""
        query = sa.select(stack_revisions).where(stack_revisions.c.stack == name)
        if number is None:
            query = query.join(stacks, stacks.c.name == stack_revisions.c.stack).where(
                stack_revisions.c.number == stacks.c.revision
            )
        else:
            query = query.where(stack_revisions.c.number == number)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return _revision(row) if row is not None else None

    async def revisions(self, name: str, limit: int = 100) -> list[Revision]:
        """The newest first, without their texts (compose and env are empty here; ask `revision`)."""
        query = (
            sa.select(
                stack_revisions.c.stack,
                stack_revisions.c.number,
                sa.literal("").label("compose"),
                sa.literal("").label("env"),
                stack_revisions.c.author,
                stack_revisions.c.at,
                stack_revisions.c.diff,
            )
            .where(stack_revisions.c.stack == name)
            .order_by(stack_revisions.c.number.desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_revision(r) for r in await conn.execute(query)]

    async def delete(self, name: str) -> bool:
        """Remove the record with its revisions and history; refused while it is deployed on any host."""
        async with self._db.write() as conn:
            hosts = (
                (await conn.execute(sa.select(stack_hosts.c.host).where(stack_hosts.c.stack == name)))
                .scalars()
                .all()
            )
            if hosts:
                raise StackConflict(
                    f"stack {name!r} is deployed on {', '.join(sorted(hosts))}: remove it there first"
                )
            # Children first: SQLite enforces ON DELETE CASCADE, but not every PostgreSQL dump keeps it.
            for table in (deployments, stack_revisions):
                await conn.execute(table.delete().where(table.c.stack == name))
            result = await conn.execute(stacks.delete().where(stacks.c.name == name))
            return bool(result.rowcount)

    # --- deployments --------------------------------------------------------------------------
    async def start_deployment(self, deployment: Deployment) -> None:
        """Record a new deploy and make it the stack's placement on that host, in one transaction.

        StackConflict (its message names the deploy) while another deploy of the stack is unsettled on that
        host: the stack's row is locked first (FOR UPDATE on PostgreSQL; SQLite has one writer), so two
        requests at once cannot both pass the check.
        """
        async with self._db.write() as conn:
            await conn.execute(
                sa.select(stacks.c.name).where(stacks.c.name == deployment.stack).with_for_update()
            )
            busy = (
                await conn.execute(
                    sa.select(deployments.c.id).where(
                        deployments.c.stack == deployment.stack,
                        deployments.c.host == deployment.host,
                        deployments.c.state.in_(UNSETTLED),
                    )
                )
            ).scalar()
            if busy is not None:
                raise StackConflict(busy)
            await conn.execute(
                deployments.insert().values(
                    id=deployment.id,
                    stack=deployment.stack,
                    host=deployment.host,
                    revision=deployment.revision,
                    state=deployment.state,
                    services=json.dumps(deployment.services),
                    error=deployment.error,
                    actor=deployment.actor,
                    started_at=deployment.started_at,
                    finished_at=deployment.finished_at,
                )
            )
            where = (stack_hosts.c.stack == deployment.stack) & (stack_hosts.c.host == deployment.host)
            await conn.execute(stack_hosts.delete().where(where))
            await conn.execute(
                stack_hosts.insert().values(
                    stack=deployment.stack,
                    host=deployment.host,
                    deploy_id=deployment.id,
                    updated_at=deployment.started_at,
                )
            )

    async def set_running(self, deploy_id: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                deployments.update()
                .where(deployments.c.id == deploy_id, deployments.c.state == "pending")
                .values(state="running")
            )
            return bool(result.rowcount)

    async def settle(
        self,
        deploy_id: str,
        state: str,
        *,
        services: list[dict[str, Any]] | None,
        error: str | None,
        now: float,
    ) -> bool:
        """Write the one final state; False if the deploy was settled already (the first answer stays)."""
        if state not in FINAL:
            raise ValueError(f"not a final state: {state!r}")
        values: dict[str, Any] = {"state": state, "error": error, "finished_at": now}
        if services is not None:
            values["services"] = json.dumps(services)
        async with self._db.write() as conn:
            result = await conn.execute(
                deployments.update()
                .where(deployments.c.id == deploy_id, deployments.c.state.in_(UNSETTLED))
                .values(**values)
            )
            return bool(result.rowcount)

    async def deployment(self, deploy_id: str) -> Deployment | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(deployments).where(deployments.c.id == deploy_id))).first()
        return _deployment(row) if row is not None else None

    async def deployments(self, name: str, limit: int = 50) -> list[Deployment]:
        """The stack's deploy history, newest first."""
        query = (
            sa.select(deployments)
            .where(deployments.c.stack == name)
            .order_by(deployments.c.started_at.desc(), deployments.c.id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_deployment(r) for r in await conn.execute(query)]

    async def unsettled(self, host: str | None = None) -> list[Deployment]:
        """Deploys still pending or running (after a restart or a link drop: to reconcile)."""
        query = sa.select(deployments).where(deployments.c.state.in_(UNSETTLED))
        if host is not None:
            query = query.where(deployments.c.host == host)
        async with self._db.read() as conn:
            return [_deployment(r) for r in await conn.execute(query.order_by(deployments.c.started_at))]

    # --- placements ---------------------------------------------------------------------------
    async def placements(self, name: str | None = None) -> list[Placement]:
        query = sa.select(
            stack_hosts.c.stack,
            stack_hosts.c.host,
            stack_hosts.c.deploy_id,
            deployments.c.revision,
            deployments.c.state,
        ).join(deployments, deployments.c.id == stack_hosts.c.deploy_id)
        if name is not None:
            query = query.where(stack_hosts.c.stack == name)
        async with self._db.read() as conn:
            rows = await conn.execute(query.order_by(stack_hosts.c.stack, stack_hosts.c.host))
            return [Placement(r.stack, r.host, r.deploy_id, r.revision, r.state) for r in rows]

    async def remove_placement(self, name: str, host: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                stack_hosts.delete().where(stack_hosts.c.stack == name, stack_hosts.c.host == host)
            )
            return bool(result.rowcount)
