"""RBAC (issue 11): roles (permissions + host scope), the roles each user holds, script tokens with roles.

The built-in roles are seeded here and every existing administrator gets `admin`. Frozen here (not imported
from schema.py): a revision must keep creating what it created when released.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()

_BUILTIN = (
    (1, "admin", '["*"]'),
    (
        2,
        "operator",
        '["containers.exec", "containers.manage", "containers.view", "hosts.view", "stacks.deploy",'
        ' "stacks.view"]',
    ),
    (3, "viewer", '["containers.view", "hosts.view", "stacks.view"]'),
)


def upgrade() -> None:
    roles = op.create_table(
        "roles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("permissions", sa.Text, nullable=False, server_default="[]"),
        sa.Column("scope", sa.Text, nullable=False, server_default=""),
        sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "script_tokens",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
    )
    op.create_table(
        "token_roles",
        sa.Column(
            "token_id", sa.Text, sa.ForeignKey("script_tokens.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    )
    now = time.time()
    assert roles is not None
    op.bulk_insert(
        roles,
        [
            {"id": i, "name": n, "permissions": p, "scope": "", "builtin": True, "created_at": now}
            for i, n, p in _BUILTIN
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # Explicit ids do not advance the serial; custom roles must not collide with the seeded ones.
        op.execute("SELECT setval(pg_get_serial_sequence('roles', 'id'), 3)")
    op.execute("INSERT INTO user_roles (user_id, role_id) SELECT id, 1 FROM users WHERE is_admin")


def downgrade() -> None:
    op.drop_table("token_roles")
    op.drop_table("script_tokens")
    op.drop_table("user_roles")
    op.drop_table("roles")
