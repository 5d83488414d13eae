"""Server unit tests that touch the store run on both engines, with the store tests' fixtures."""

from tests.unit.store.conftest import database_url, db

__all__ = ["database_url", "db"]
