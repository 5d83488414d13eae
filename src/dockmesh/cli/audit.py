"""`dockmesh audit verify` (reads the database itself, so it works with the server stopped) and `audit ls`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockmesh.cli.client import api
from dockmesh.cli.table import table
from dockmesh.server.config import ConfigError, ServerConfig


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if at else "?"


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when every row verifies, 1 at the first break (named: id, time, position, how), 2 on bad use."""
    try:
        import sqlalchemy as sa

        from dockmesh.store import Database, StoreError
        from dockmesh.store.audit import AuditStore, Verdict
    except ModuleNotFoundError as exc:
        from dockmesh.cli.main import server_extra_missing

        return server_extra_missing(exc)
    try:
        config = ServerConfig.from_env(data_dir=args.data_dir, database_url=args.database_url)
    except ConfigError as exc:
        print(f"dockmesh: {exc}", file=sys.stderr)
        return 2

    url = config.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        print(f"dockmesh: no database at {url}: pass --data-dir or --database-url", file=sys.stderr)
        return 2

    async def run() -> Verdict | None:
        # Not migrated here: verifying must not change the database it inspects.
        db = await Database.open(url, migrate=False)
        try:
            async with db.read() as conn:
                tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            if "audit_head" not in tables:
                return None
            return await AuditStore(db).verify()
        finally:
            await db.close()

    try:
        verdict = asyncio.run(run())
    except StoreError as exc:
        print(f"dockmesh: {exc}", file=sys.stderr)
        return 1
    if verdict is None:
        print(
            "dockmesh: this database has no audit chain yet: run `dockmesh db upgrade` first", file=sys.stderr
        )
        return 1
    broken = verdict.broken
    if broken is None:
        rows = "row" if verdict.count == 1 else "rows"
        print(f"OK: {verdict.count} audit {rows}, the chain is intact; head {verdict.head}")
        return 0
    where = f"row {broken.id} ({_when(broken.at)}, position {broken.seq})" if broken.id else "the chain head"
    print(f"BROKEN at {where}: {broken.kind}: {broken.message} ({verdict.count} rows verified before it)")
    return 1


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    detail = entry.get("detail") or {}
    return {
        **entry,
        "time": _when(entry.get("at")),
        "host": entry.get("host") or "",
        "detail": ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))[:80],
    }


def cmd_ls(args: argparse.Namespace) -> int:
    params = {
        name: getattr(args, name)
        for name in ("actor", "action", "host", "outcome", "since", "until", "cursor", "limit")
        if getattr(args, name) is not None
    }
    page = api("GET", "/api/v1/audit?" + urllib.parse.urlencode(params))
    columns = [("time", "TIME"), ("actor", "ACTOR"), ("action", "ACTION"), ("host", "HOST"),
               ("target", "TARGET"), ("outcome", "OUTCOME"), ("detail", "DETAIL")]  # fmt: skip
    print(table([_row(e) for e in page["entries"]], columns))
    if page.get("next"):
        print(f"more: dockmesh audit ls --cursor {page['next']} (same filters)", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("audit", help="the audit log: verify its hash chain, list entries")
    actions = p.add_subparsers(dest="action", required=True)
    v = actions.add_parser(
        "verify", help="check the hash chain in the database (works with the server stopped)"
    )
    v.add_argument("--data-dir")
    v.add_argument("--database-url", help="as for serve (env DOCKMESH_DATABASE_URL)")
    v.set_defaults(func=cmd_verify)
    ls = actions.add_parser("ls", help="list entries, newest first")
    ls.add_argument("--actor", help="exactly this user")
    ls.add_argument("--action", help="actions starting with this (e.g. container.)")
    ls.add_argument("--host", help="a host id")
    ls.add_argument("--outcome", help="ok, denied, failed")
    ls.add_argument("--since", help="epoch seconds or ISO 8601")
    ls.add_argument("--until", help="epoch seconds or ISO 8601")
    ls.add_argument("--cursor", help="the value a previous page printed")
    ls.add_argument("--limit", type=int, help="rows per page (at most 500)")
    ls.set_defaults(func=cmd_ls)
