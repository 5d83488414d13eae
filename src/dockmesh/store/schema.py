"""Every table, defined once (SQLAlchemy Core); the migrations and the queries both use these."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Timestamps are seconds since the epoch as doubles: PostgreSQL's REAL (float4) would round them to minutes.
_TIME: sa.Double[float] = sa.Double()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("created_at", _TIME, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_hash", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("expires_at", _TIME, nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
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
    sa.Index("agents_prev_fp", "prev_cert_fingerprint"),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", _TIME, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    # Issue 11: the host the action addressed, its outcome, and the hash chain (store/chain.py). `seq`,
    # `prev_hash` and `hash` are set by the database's trigger under the chain-head lock, not by the writer.
    sa.Column("host", sa.Text),
    sa.Column("outcome", sa.Text, nullable=False, server_default="ok"),
    sa.Column("digest", sa.Text),
    sa.Column("seq", sa.BigInteger, unique=True),
    sa.Column("prev_hash", sa.Text),
    sa.Column("hash", sa.Text),
    sa.Index("audit_at", "at"),
)

# The one row naming the newest link of the audit chain: its lock serialises audit writers on PostgreSQL,
# and it is what shows that rows were cut off the end.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
)

# Counters other replicas read to know whether their caches are stale (see AgentStore.all).
versions = sa.Table(
    "versions",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# Stacks (issue 10). The compose text lives here, in its revision row, not in the data dir: replicas on one
# PostgreSQL see the same stacks, a save is one transaction (record + revision + diff, or nothing), and a
# backup of the database is a backup of the stacks. A revision is at most 1 MiB (the API's body limit).
stacks = sa.Table(
    "stacks",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("allow_privileged", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("revision", sa.Integer, nullable=False),  # the current one; revisions are numbered from 1
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)

stack_revisions = sa.Table(
    "stack_revisions",
    metadata,
    sa.Column("stack", sa.Text, sa.ForeignKey("stacks.name", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("compose", sa.Text, nullable=False),
    sa.Column("env", sa.Text, nullable=False, server_default=""),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("at", _TIME, nullable=False),
    sa.Column("diff", sa.Text, nullable=False, server_default=""),  # unified diff against number - 1
)

# One row per deploy: the history. `state` is pending · running · done · failed · cancelled.
deployments = sa.Table(
    "deployments",
    metadata,
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
    sa.Index("deployments_stack", "stack", "started_at"),
    sa.Index("deployments_state", "state"),
)

# Where a stack is deployed now: one row per (stack, host), pointing at the latest deploy there. A deploy
# adds it, `down` on that host removes it; the record cannot be deleted while any row remains.
stack_hosts = sa.Table(
    "stack_hosts",
    metadata,
    sa.Column("stack", sa.Text, sa.ForeignKey("stacks.name", ondelete="CASCADE"), primary_key=True),
    sa.Column("host", sa.Text, primary_key=True),
    sa.Column("deploy_id", sa.Text, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)

# RBAC (issue 11). A role is a set of permissions (JSON list) and a host scope: a selector in its canonical
# spelling, "" = every host. The built-in roles (admin, operator, viewer) are rows too, so users hold them the
# same way; their permissions come from the code (services/access.py), not from this row.
roles = sa.Table(
    "roles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("permissions", sa.Text, nullable=False, server_default="[]"),
    sa.Column("scope", sa.Text, nullable=False, server_default=""),
    sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("created_at", _TIME, nullable=False),
)

user_roles = sa.Table(
    "user_roles",
    metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)

# A script token: a row of its own (a login's bearer tokens stay in api_tokens), with a public id to list
# and revoke it by, and its own roles; it reaches only where those roles and its owner's current ones agree.
script_tokens = sa.Table(
    "script_tokens",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("expires_at", _TIME, nullable=False),
)

token_roles = sa.Table(
    "token_roles",
    metadata,
    sa.Column("token_id", sa.Text, sa.ForeignKey("script_tokens.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)

# Registry credentials (issue 11). `secret` is the password sealed with the key in the data dir
# (server/vault.py); the key itself is never in the database. `registry`/`path` are the normalised address
# (server/registries.py), `scope` a host selector's canonical text ("all" when unscoped).
registry_credentials = sa.Table(
    "registry_credentials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("registry", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False, server_default=""),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False, server_default="all"),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Index("registry_credentials_registry", "registry"),
)

# One stack moved from one host to another with its volumes (issue 13, docs/migration.md). `volumes` is
# JSON: [{name, bytes, sha256, done}]. At most one row per stack is not final (`state = 'running'`).
stack_migrations = sa.Table(
    "stack_migrations",
    metadata,
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
    sa.Index("stack_migrations_stack", "stack"),
    sa.Index("stack_migrations_state", "state"),
)

# Agent self-upgrade (issue 12): one row per host with its last attempt, and the fleet's policy (one row).
upgrades = sa.Table(
    "upgrades",
    metadata,
    sa.Column("host_id", sa.Text, primary_key=True),
    sa.Column("current", sa.Text, nullable=True),
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempt_at", _TIME, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", _TIME, nullable=False),
)

upgrade_settings = sa.Table(
    "upgrade_settings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("policy", sa.Text, nullable=False),
)

# Drains (issue 13): one row per drain and one per stack it plans. The rows are the drain's memory: a
# server restart resumes from them, and a stack whose row is `done` is never moved again.
drains = sa.Table(
    "drains",
    metadata,
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
    sa.Index("drains_status", "status"),
)

drain_stacks = sa.Table(
    "drain_stacks",
    metadata,
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

# Upgrade rollouts (issue 12): one row per rollout and one per host it planned (with its wave). The plan is
# stored, not recomputed: a restarted server resumes the same waves whatever the fleet looks like now.
rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("hosts", sa.Text, nullable=False),
    sa.Column("steps", sa.Text, nullable=False),  # JSON list of the wave steps as given
    sa.Column("max_failure_rate", sa.Double(), nullable=False),
    sa.Column("wave_timeout", _TIME, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("wave", sa.Integer, nullable=False),
    sa.Column("wave_started_at", _TIME, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("finished_at", _TIME, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Index("rollouts_status", "status"),
)

rollout_hosts = sa.Table(
    "rollout_hosts",
    metadata,
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
