"""Upgrade rollouts (issue 12): a rollout and its planned hosts, so a restart resumes the same plan.

Frozen here (not imported from schema.py). Touches only its own tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("hosts", sa.Text, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("max_failure_rate", sa.Double(), nullable=False),
        sa.Column("wave_timeout", _TIME, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("wave_started_at", _TIME, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("rollouts_status", "rollouts", ["status"])
    op.create_table(
        "rollout_hosts",
        sa.Column("rollout_id", sa.Text, sa.ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("host_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("offered_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("rollout_hosts")
    op.drop_index("rollouts_status", "rollouts")
    op.drop_table("rollouts")
