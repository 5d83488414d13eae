"""Version counters for cross-replica cache checks; the pre-Alembic schema_version table goes."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    versions = op.create_table(
        "versions",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(versions, [{"name": "agents", "value": 0}])
    if "schema_version" in sa.inspect(op.get_bind()).get_table_names():
        op.drop_table("schema_version")  # superseded by alembic_version (adopted in store/migrate.py)


def downgrade() -> None:
    op.drop_table("versions")
