"""Schema migrations, applied in order; never edit a released entry, append a new one."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    (
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
    ),
]
