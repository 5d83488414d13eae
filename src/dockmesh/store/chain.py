"""The audit hash chain: each row's canonical content, its digest, and the link to the row before it.

A row's `hash` is sha256(prev_hash + digest), where digest = sha256(canonical content). The writer computes
the digest (Python knows the content); the database's trigger computes the link under the chain-head lock,
so that concurrent writers, even inside other stores' transactions, cannot fork the chain. Both engines run
the same formula: PostgreSQL with its built-in sha256(), SQLite with `SQL_FUNCTION` registered on every
connection (store/db.py). Tamper-evident, not tamper-proof: whoever can write the database can recompute
every hash after the one they edit, head included; verification catches edits by anyone who cannot.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64  # the prev_hash of the first row
SQL_FUNCTION = "dockmesh_sha256"  # SQLite's name for sha256(text) -> hex, used by the chain trigger


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def detail_text(detail: dict[str, Any]) -> str:
    """The detail column: sorted keys, so the stored text is the canonical form."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(
    at: float, actor: str, action: str, target: str, detail: str, host: str | None, outcome: str
) -> str:
    """sha256 of the row's content as stored (`detail` is the column's text, not re-serialised)."""
    canonical = json.dumps(
        [repr(float(at)), actor, action, target, detail, host, outcome],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return sha256_hex(canonical)


def link(prev_hash: str, row_digest: str) -> str:
    return sha256_hex(prev_hash + row_digest)
