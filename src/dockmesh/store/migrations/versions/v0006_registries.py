"""Registry credentials (issue 11): sealed passwords, each with a host-selector scope.

Frozen here (not imported from schema.py). Independent of 0004/0005: it touches only its own table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "registry_credentials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("registry", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False, server_default=""),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False, server_default="all"),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_index("registry_credentials_registry", "registry_credentials", ["registry"])


def downgrade() -> None:
    op.drop_index("registry_credentials_registry", "registry_credentials")
    op.drop_table("registry_credentials")
