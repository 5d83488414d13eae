"""Persistence: the schema (SQLAlchemy Core), Alembic migrations and every SQL statement."""

from dockmesh.store.db import Database, StoreError

__all__ = ["Database", "StoreError"]
