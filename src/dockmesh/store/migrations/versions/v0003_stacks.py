"""Stacks (issue 10): records, their revisions with diffs, deployments and where each stack is deployed.

Frozen here (not imported from schema.py): a revision must keep creating what it created when released.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "stacks",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("allow_privileged", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_table(
        "stack_revisions",
        sa.Column("stack", sa.Text, sa.ForeignKey("stacks.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("compose", sa.Text, nullable=False),
        sa.Column("env", sa.Text, nullable=False, server_default=""),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("diff", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("stack", sa.Text, sa.ForeignKey("stacks.name", ondelete="CASCADE"), nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("services", sa.Text, nullable=False, server_default="[]"),
        sa.Column("error", sa.Text),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME),
    )
    op.create_index("deployments_stack", "deployments", ["stack", "started_at"])
    op.create_index("deployments_state", "deployments", ["state"])
    op.create_table(
        "stack_hosts",
        sa.Column("stack", sa.Text, sa.ForeignKey("stacks.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("deploy_id", sa.Text, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stack_hosts")
    op.drop_index("deployments_state", "deployments")
    op.drop_index("deployments_stack", "deployments")
    op.drop_table("deployments")
    op.drop_table("stack_revisions")
    op.drop_table("stacks")
