"""Stack migrations (issue 13): one row per move of a stack with its volumes.

Frozen here (not imported from schema.py). Touches only its own table; the lead relinks down_revision
when merging beside 0007 (issue 12) and 0009 (drains).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "stack_migrations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("stack", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("drain_id", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("bytes_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("volumes", sa.Text, nullable=False, server_default="[]"),
        sa.Column("reason", sa.Text),
        sa.Column("deploy_id", sa.Text),
        sa.Column("keep_until", _TIME),
        sa.Column("source_volumes", sa.Text, nullable=False, server_default="absent"),
        sa.Column("cleanup", sa.Text, nullable=False, server_default="none"),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_index("stack_migrations_stack", "stack_migrations", ["stack"])
    op.create_index("stack_migrations_state", "stack_migrations", ["state"])


def downgrade() -> None:
    op.drop_index("stack_migrations_state", "stack_migrations")
    op.drop_index("stack_migrations_stack", "stack_migrations")
    op.drop_table("stack_migrations")
