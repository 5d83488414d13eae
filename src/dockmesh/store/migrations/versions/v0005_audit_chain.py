"""Audit (issue 11): host and outcome columns, the hash chain over every row, and the trigger that extends it.

The existing rows are chained in id order. From here on the database links each new row under the lock of
the one `audit_head` row (PostgreSQL: a row lock held to commit; SQLite: one writer at a time anyway), so
concurrent writers cannot fork the chain. Frozen here, formula included: a revision must keep creating
what it created when released (the live formula is store/chain.py, and the two must agree).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_GENESIS = "0" * 64

_PG_FUNCTION = """
CREATE FUNCTION audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    IF NEW.digest IS NULL THEN
        RAISE EXCEPTION 'audit rows are written with a digest (dockmesh.store.audit.AuditEvent)';
    END IF;
    -- The row lock serialises writers to commit: the next one reads this head, not the one we read.
    SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = 1 FOR UPDATE;
    NEW.seq := head_seq + 1;
    NEW.prev_hash := head_hash;
    NEW.hash := encode(sha256(convert_to(head_hash || NEW.digest, 'UTF8')), 'hex');
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
    RETURN NEW;
END
$$
"""
_PG_TRIGGER = "CREATE TRIGGER audit_chain BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_chain()"

# SQLite cannot assign NEW in a BEFORE trigger: the row is linked right after its insert, in the same
# statement. dockmesh_sha256 is registered on each connection by dockmesh.store.db.
_SQLITE_GUARD = """
CREATE TRIGGER audit_digest BEFORE INSERT ON audit WHEN NEW.digest IS NULL
BEGIN SELECT RAISE(ABORT, 'audit rows are written with a digest (dockmesh.store.audit.AuditEvent)'); END
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER audit_chain AFTER INSERT ON audit
BEGIN
    UPDATE audit SET
        seq = (SELECT seq + 1 FROM audit_head WHERE id = 1),
        prev_hash = (SELECT hash FROM audit_head WHERE id = 1),
        hash = dockmesh_sha256((SELECT hash FROM audit_head WHERE id = 1) || NEW.digest)
    WHERE id = NEW.id;
    UPDATE audit_head SET seq = seq + 1, hash = (SELECT hash FROM audit WHERE id = NEW.id) WHERE id = 1;
END
"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(row: Any) -> str:
    canonical = [repr(float(row.at)), row.actor, row.action, row.target, row.detail, None, "ok"]
    return _sha(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")))


def upgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("host", sa.Text))
        batch.add_column(sa.Column("outcome", sa.Text, nullable=False, server_default="ok"))
        batch.add_column(sa.Column("digest", sa.Text))
        batch.add_column(sa.Column("seq", sa.BigInteger))
        batch.add_column(sa.Column("prev_hash", sa.Text))
        batch.add_column(sa.Column("hash", sa.Text))
        batch.create_unique_constraint("audit_seq", ["seq"])
        batch.create_index("audit_at", ["at"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
    )
    bind = op.get_bind()
    audit = sa.table(
        "audit",
        *(sa.column(name) for name in ("id", "at", "actor", "action", "target", "detail")),
        *(sa.column(name) for name in ("digest", "seq", "prev_hash", "hash")),
    )
    prev, seq = _GENESIS, 0
    rows = bind.execute(sa.select(audit.c.id, audit.c.at, audit.c.actor, audit.c.action, audit.c.target,
                                  audit.c.detail).order_by(audit.c.id)).all()  # fmt: skip
    for row in rows:
        seq += 1
        digest = _digest(row)
        hashed = _sha(prev + digest)
        bind.execute(
            audit.update()
            .where(audit.c.id == row.id)
            .values(digest=digest, seq=seq, prev_hash=prev, hash=hashed)
        )
        prev = hashed
    op.bulk_insert(head, [{"id": 1, "seq": seq, "hash": prev}])
    if bind.dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_GUARD)
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_chain ON audit")
        op.execute("DROP FUNCTION audit_chain()")
    else:
        op.execute("DROP TRIGGER audit_chain")
        op.execute("DROP TRIGGER audit_digest")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit") as batch:
        batch.drop_index("audit_at")
        batch.drop_constraint("audit_seq", type_="unique")
        for name in ("hash", "prev_hash", "seq", "digest", "outcome", "host"):
            batch.drop_column(name)
