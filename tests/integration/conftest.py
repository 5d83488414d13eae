"""Integration tests use the fixtures of tests/conftest.py (engines, servers, agents)."""

from tests.integration.upgrade_artifacts import builds

__all__ = ["builds"]
