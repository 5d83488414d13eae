"""Reading the audit log and verifying its chain: administrators only, for the API, the pages and the CLI.

The filters arrive as query strings (API and page alike) and are parsed here once, bounded: a filter value is
at most `MAX_FILTER` characters, a page at most `MAX_PAGE` rows, times are epoch seconds or ISO 8601.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dockmesh.server.clients import client_address
from dockmesh.server.context import ServerContext
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import Forbidden, Invalid
from dockmesh.store.audit import MAX_PAGE, AuditEntry, AuditFilter, AuditStore, Verdict

DEFAULT_PAGE = 100
UNKNOWN_USER = "(unknown user)"
MAX_FILTER = 256
FILTERS = ("actor", "action", "host", "outcome", "since", "until", "cursor", "limit")
_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
_CURSOR = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class AuditQuery:
    where: AuditFilter
    cursor: int | None
    limit: int


def _time(raw: str, name: str) -> float:
    if _EPOCH.fullmatch(raw):
        return float(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"invalid_{name}", f"'{name}' must be epoch seconds or an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def parse_query(query: Mapping[str, str]) -> AuditQuery:
    values: dict[str, str | None] = {}
    for name in FILTERS:
        raw = query.get(name, "").strip()
        if len(raw) > MAX_FILTER:
            raise Invalid(f"invalid_{name}", f"'{name}' is at most {MAX_FILTER} characters")
        values[name] = raw or None
    cursor = values["cursor"]
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise Invalid("invalid_cursor", "'cursor' must be the value a previous page returned as 'next'")
    limit = values["limit"]
    if limit is not None and not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_PAGE):
        raise Invalid("invalid_limit", f"'limit' must be a whole number from 1 to {MAX_PAGE}")
    since, until = values["since"], values["until"]
    where = AuditFilter(
        actor=values["actor"],
        action=values["action"],
        host=values["host"],
        outcome=values["outcome"],
        since=_time(since, "since") if since else None,
        until=_time(until, "until") if until else None,
    )
    return AuditQuery(where, int(cursor) if cursor else None, int(limit) if limit else DEFAULT_PAGE)


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    view = asdict(entry)
    view["time"] = datetime.fromtimestamp(entry.at, UTC).isoformat().replace("+00:00", "Z")
    return view


def verdict_view(verdict: Verdict) -> dict[str, Any]:
    broken = asdict(verdict.broken) if verdict.broken else None
    return {"ok": verdict.ok, "count": verdict.count, "broken": broken, "head": verdict.head}


def _require_admin(caller: Caller) -> None:
    if not access.is_admin(caller):
        raise Forbidden("forbidden", "the audit log is for administrators")


class AuditService:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def page(self, caller: Caller, query: AuditQuery) -> tuple[list[AuditEntry], int | None]:
        _require_admin(caller)
        return await self._store.page(query.where, query.cursor, query.limit)

    async def verify(self, caller: Caller) -> Verdict:
        _require_admin(caller)
        return await self._store.verify()


async def record_login(c: ServerContext, request: web.Request, username: str, *, ok: bool) -> None:
    """A login attempt, right or wrong (the limiter bounds how many wrong ones a client can add).

    A wrong one names the user only if that user exists: an unknown "username" is often a password typed
    into the wrong field, and must not land in the log.
    """
    if not ok and await c.users.by_username(username) is None:
        username = UNKNOWN_USER
    address = client_address(request, c.config.trusted_proxies)
    detail = {
        "from": str(address) if address is not None else None,
        "via": "api" if request.path.startswith("/api/") else "form",
    }
    outcome = "ok" if ok else "denied"
    await c.audit.add(c.clock(), username, "auth.login", username, detail, outcome=outcome)
