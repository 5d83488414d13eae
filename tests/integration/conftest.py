"""Integration tests use the fixtures of tests/conftest.py (engines, servers, agents)."""
