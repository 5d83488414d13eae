"""Persistence: the schema (SQLAlchemy Core), Alembic migrations and every SQL statement."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockmesh.store.db import Database, StoreError

__all__ = ["Database", "StoreError"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the client commands read the server's configuration (`store.url`), and
    # neither they nor an install without the `server` extra should load SQLAlchemy for it.
    if name in __all__:
        from dockmesh.store import db

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
