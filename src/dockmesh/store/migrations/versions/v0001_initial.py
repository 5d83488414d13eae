"""The schema of the hand-written migration 1: users, API tokens, agents, audit.

Frozen here (not imported from schema.py): a revision must keep creating what it created when released.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, unique=True),
        sa.Column("token_expires_at", _TIME),
        sa.Column("cert_fingerprint", sa.Text, unique=True),
        sa.Column("cert_serial", sa.Text),
        sa.Column("cert_not_before", _TIME),
        sa.Column("cert_not_after", _TIME),
        sa.Column("prev_cert_fingerprint", sa.Text),
        sa.Column("prev_cert_until", _TIME),
        sa.Column("facts", sa.Text, nullable=False, server_default="{}"),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("cordoned", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("last_seen", _TIME),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("enrolled_at", _TIME),
    )
    op.create_index("agents_prev_fp", "agents", ["prev_cert_fingerprint"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )


def downgrade() -> None:
    for table in ("audit", "agents", "api_tokens", "users"):
        op.drop_table(table)
