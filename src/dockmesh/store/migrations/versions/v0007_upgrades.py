"""Agent self-upgrade (issue 12): per-host upgrade state and the fleet's policy.

Frozen here (not imported from schema.py). It touches only its own tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "upgrades",
        sa.Column("host_id", sa.Text, primary_key=True),
        sa.Column("current", sa.Text, nullable=True),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempt_at", _TIME, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_table(
        "upgrade_settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("policy", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upgrade_settings")
    op.drop_table("upgrades")
