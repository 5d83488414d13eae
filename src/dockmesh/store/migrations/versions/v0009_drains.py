"""Drains (issue 13): a drain and its per-stack rows, so a restart resumes where it stopped.

Frozen here (not imported from schema.py). Touches only its own tables; follows 0008 (migrations)
here; the lead relinks the chain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "drains",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("selector", sa.Text, nullable=False),
        sa.Column("ordering", sa.Text, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("drains_status", "drains", ["status"])
    op.create_table(
        "drain_stacks",
        sa.Column("drain_id", sa.Text, sa.ForeignKey("drains.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stack", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("grp", sa.Integer, nullable=False),
        sa.Column("destination", sa.Text, nullable=True),
        sa.Column("destination_name", sa.Text, nullable=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("migration_id", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("volume_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("drain_stacks")
    op.drop_index("drains_status", "drains")
    op.drop_table("drains")
