"""Alembic's entry point: always handed a live connection by dockmesh.store.migrate (online mode only)."""

from __future__ import annotations

from alembic import context

from dockmesh.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `dockmesh db upgrade`, which supplies the connection")
# Batch mode: SQLite cannot ALTER most things in place, Alembic copies the table for it.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
