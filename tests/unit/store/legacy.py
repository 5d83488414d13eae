"""A data dir's database as the pre-Alembic store left it (hand-written migration 1), with rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The DDL of the hand-written store.migrations.MIGRATIONS[0] as released (frozen copy: that module is gone).
LEGACY_DDL = (
    """CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE api_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    """CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        token_hash TEXT UNIQUE,
        token_expires_at REAL,
        cert_fingerprint TEXT UNIQUE,
        cert_serial TEXT,
        cert_not_before REAL,
        cert_not_after REAL,
        prev_cert_fingerprint TEXT,
        prev_cert_until REAL,
        facts TEXT NOT NULL DEFAULT '{}',
        tags TEXT NOT NULL DEFAULT '[]',
        cordoned INTEGER NOT NULL DEFAULT 0,
        last_seen REAL,
        last_error TEXT,
        created_at REAL NOT NULL,
        enrolled_at REAL
    )""",
    "CREATE INDEX agents_prev_fp ON agents(prev_cert_fingerprint)",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
)


def legacy_database(path: Path, version: int = 1) -> None:
    """A dockmesh.db as the pre-Alembic code left it, with a row in every table."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    for statement in LEGACY_DDL:
        conn.execute(statement)
    conn.execute("INSERT INTO users VALUES (1, 'admin', 'argon-hash', 1, 1700000000.25)")
    conn.execute("INSERT INTO api_tokens VALUES ('tok-hash', 1, 1700000001.0, 1700043201.0)")
    conn.execute(
        "INSERT INTO agents VALUES ('a-1', 'web-1', 'enrolled', NULL, NULL, 'fp1', '1a', 1700000000.0,"
        ' 1702592000.0, \'fp0\', 1700000300.0, \'{"os": "linux"}\', \'["prod", "eu"]\', 1, 1700000500.5,'
        " 'link closed with 4409', 1699990000.0, 1699999999.0)"
    )
    conn.execute(
        "INSERT INTO agents (id, name, state, token_hash, token_expires_at, created_at)"
        " VALUES ('a-2', 'db-1', 'pending', 'pending-hash', 1700003600.0, 1700000000.0)"
    )
    conn.execute(
        "INSERT INTO audit VALUES (7, 1700000002.0, 'admin', 'agent.create', 'a-2', '{\"name\": \"db-1\"}')"
    )
    conn.execute("COMMIT")
    conn.close()
