"""Database migrations, transactions and the agent, user and audit stores on a temp SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockmesh.server.tokens import token_hash
from dockmesh.store import Database
from dockmesh.store.agents import AgentState, AgentStore, CertRecord
from dockmesh.store.audit import AuditStore
from dockmesh.store.migrations import MIGRATIONS
from dockmesh.store.users import UserStore

NOW = 1_700_000_000.0
TTL = 3600.0
CERT_A = CertRecord("a" * 64, "1a", NOW, NOW + 30 * 86400)
CERT_B = CertRecord("b" * 64, "1b", NOW + 100, NOW + 100 + 30 * 86400)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "dockmesh.db")
    yield database
    database.close()


@pytest.fixture
def agents(db: Database) -> AgentStore:
    return AgentStore(db)


@pytest.fixture
def users(db: Database) -> UserStore:
    return UserStore(db)


# --- the database ------------------------------------------------------------------------------


def test_fresh_database_is_fully_migrated(db: Database) -> None:
    assert db.schema_version == len(MIGRATIONS)
    tables = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "api_tokens", "agents", "audit", "schema_version"} <= tables


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "dockmesh.db"
    first = Database(path)
    AgentStore(first).create("web-1", token_hash("t"), NOW + TTL, NOW)
    first.close()
    second = Database(path)
    try:
        assert second.schema_version == len(MIGRATIONS)
        assert len(second.query("SELECT version FROM schema_version")) == 1
        assert [a.name for a in AgentStore(second).all()] == ["web-1"]
    finally:
        second.close()
    third = Database(path)
    try:
        assert third.schema_version == len(MIGRATIONS)
    finally:
        third.close()


def test_wal_and_foreign_keys(db: Database) -> None:
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
    assert db.query_one("PRAGMA foreign_keys")[0] == 1  # type: ignore[index]


def _insert_then_fail(db: Database) -> None:
    with db.transaction() as cur:
        cur.execute("INSERT INTO audit (at, actor, action, target) VALUES (1, 'a', 'b', 'c')")
        raise RuntimeError("boom")


def test_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        _insert_then_fail(db)
    assert db.query("SELECT * FROM audit") == []
    with db.transaction() as cur:
        cur.execute("INSERT INTO audit (at, actor, action, target) VALUES (1, 'a', 'b', 'c')")
    assert len(db.query("SELECT * FROM audit")) == 1


# --- agents ------------------------------------------------------------------------------------


def test_create_is_pending_for_its_token(agents: AgentStore) -> None:
    record = agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert record.state is AgentState.PENDING
    assert record.name == "web-1"
    assert record.created_at == NOW
    assert record.token_expires_at == NOW + TTL
    assert record.cert is None
    assert record.tags == ()
    assert record.facts == {}
    assert agents.pending_for_token(token_hash("tok"), NOW) == record
    assert agents.pending_for_token(token_hash("other"), NOW) is None
    assert agents.get(record.id) == record


def test_expired_token_is_not_found(agents: AgentStore) -> None:
    agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert agents.pending_for_token(token_hash("tok"), NOW + TTL - 1) is not None
    assert agents.pending_for_token(token_hash("tok"), NOW + TTL) is None
    assert agents.pending_for_token(token_hash("tok"), NOW + TTL + 1) is None


def test_redeem_succeeds_once(agents: AgentStore) -> None:
    record = agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    facts = {"hostname": "web-1", "arch": "x86_64"}
    assert agents.redeem(record.id, token_hash("tok"), CERT_A, facts, NOW + 1)
    assert not agents.redeem(record.id, token_hash("tok"), CERT_B, {}, NOW + 2)
    enrolled = agents.get(record.id)
    assert enrolled is not None
    assert enrolled.state is AgentState.ENROLLED
    assert enrolled.cert == CERT_A
    assert enrolled.facts == facts
    assert enrolled.enrolled_at == NOW + 1
    assert enrolled.token_expires_at is None
    assert agents.pending_for_token(token_hash("tok"), NOW + 1) is None


def test_redeem_refuses_wrong_or_expired_token(agents: AgentStore) -> None:
    record = agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert not agents.redeem(record.id, token_hash("wrong"), CERT_A, {}, NOW)
    assert not agents.redeem("no-such-id", token_hash("tok"), CERT_A, {}, NOW)
    assert not agents.redeem(record.id, token_hash("tok"), CERT_A, {}, NOW + TTL)
    still = agents.get(record.id)
    assert still is not None
    assert still.state is AgentState.PENDING
    assert still.cert is None


def enrolled_agent(agents: AgentStore, name: str = "web-1", cert: CertRecord = CERT_A) -> str:
    record = agents.create(name, token_hash(name), NOW + TTL, NOW)
    assert agents.redeem(record.id, token_hash(name), cert, {}, NOW)
    return record.id


def test_by_fingerprint_matches_the_current_cert(agents: AgentStore) -> None:
    agent_id = enrolled_agent(agents)
    found = agents.by_fingerprint(CERT_A.fingerprint, NOW)
    assert found is not None
    assert found.id == agent_id
    assert agents.by_fingerprint(CERT_B.fingerprint, NOW) is None


def test_previous_cert_only_within_grace(agents: AgentStore) -> None:
    agent_id = enrolled_agent(agents)
    grace_until = NOW + 300
    assert agents.renew(agent_id, CERT_B, grace_until)
    current = agents.by_fingerprint(CERT_B.fingerprint, NOW + 10_000)
    assert current is not None
    assert current.id == agent_id
    assert current.cert == CERT_B
    previous = agents.by_fingerprint(CERT_A.fingerprint, grace_until - 1)
    assert previous is not None
    assert previous.id == agent_id
    assert agents.by_fingerprint(CERT_A.fingerprint, grace_until) is None
    assert agents.by_fingerprint(CERT_A.fingerprint, grace_until + 1) is None


def test_renew_needs_an_enrolled_agent(agents: AgentStore) -> None:
    record = agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert not agents.renew(record.id, CERT_B, NOW + 300)
    assert agents.by_fingerprint(CERT_B.fingerprint, NOW) is None


def test_revoke_makes_certs_unknown(agents: AgentStore) -> None:
    agent_id = enrolled_agent(agents)
    agents.renew(agent_id, CERT_B, NOW + 300)
    assert agents.revoke(agent_id)
    assert agents.by_fingerprint(CERT_B.fingerprint, NOW) is None
    assert agents.by_fingerprint(CERT_A.fingerprint, NOW) is None
    record = agents.get(agent_id)
    assert record is not None
    assert record.state is AgentState.REVOKED
    assert not agents.revoke("no-such-id")


def test_revoke_invalidates_a_pending_token(agents: AgentStore) -> None:
    record = agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert agents.revoke(record.id)
    assert agents.pending_for_token(token_hash("tok"), NOW) is None
    assert not agents.redeem(record.id, token_hash("tok"), CERT_A, {}, NOW)


def test_rotate_token_returns_to_pending_and_clears_the_cert(agents: AgentStore) -> None:
    agent_id = enrolled_agent(agents)
    agents.renew(agent_id, CERT_B, NOW + 300)
    assert agents.rotate_token(agent_id, token_hash("fresh"), NOW + 2 * TTL)
    record = agents.get(agent_id)
    assert record is not None
    assert record.state is AgentState.PENDING
    assert record.cert is None
    assert record.token_expires_at == NOW + 2 * TTL
    assert agents.by_fingerprint(CERT_A.fingerprint, NOW) is None
    assert agents.by_fingerprint(CERT_B.fingerprint, NOW) is None
    pending = agents.pending_for_token(token_hash("fresh"), NOW)
    assert pending is not None
    assert pending.id == agent_id
    # ... and the agent can enrol again with the new token, even reusing the certificate slot.
    assert agents.redeem(agent_id, token_hash("fresh"), CERT_A, {}, NOW + 5)
    assert agents.by_fingerprint(CERT_A.fingerprint, NOW + 5) is not None


def test_rotate_token_replaces_the_old_token(agents: AgentStore) -> None:
    record = agents.create("web-1", token_hash("old"), NOW + TTL, NOW)
    assert agents.rotate_token(record.id, token_hash("new"), NOW + TTL)
    assert agents.pending_for_token(token_hash("old"), NOW) is None
    assert not agents.rotate_token("no-such-id", token_hash("x"), NOW + TTL)


def test_set_tags_round_trip(agents: AgentStore) -> None:
    agent_id = enrolled_agent(agents)
    assert agents.set_tags(agent_id, ["prod", "eu-west", "ü"])
    record = agents.get(agent_id)
    assert record is not None
    assert record.tags == ("prod", "eu-west", "ü")
    assert agents.set_tags(agent_id, [])
    record = agents.get(agent_id)
    assert record is not None
    assert record.tags == ()
    assert not agents.set_tags("no-such-id", ["x"])


def test_facts_touch_error_and_cordon(agents: AgentStore) -> None:
    agent_id = enrolled_agent(agents)
    agents.set_error(agent_id, "x" * 1000)
    record = agents.get(agent_id)
    assert record is not None
    assert record.last_error == "x" * 500
    agents.update_facts(agent_id, {"os": "linux"}, NOW + 7)
    agents.touch(agent_id, NOW + 9)
    assert agents.set_cordoned(agent_id, True)
    record = agents.get(agent_id)
    assert record is not None
    assert record.facts == {"os": "linux"}
    assert record.last_error == "x" * 500  # kept across reconnects: it is the *last* error
    assert record.last_seen == NOW + 9
    assert record.cordoned


def test_all_is_sorted_by_name(agents: AgentStore) -> None:
    for name in ("zeta", "alpha", "mid"):
        agents.create(name, token_hash(name), NOW + TTL, NOW)
    assert [a.name for a in agents.all()] == ["alpha", "mid", "zeta"]


def test_token_hashes_are_unique(agents: AgentStore) -> None:
    agents.create("a", token_hash("same"), NOW + TTL, NOW)
    with pytest.raises(sqlite3.IntegrityError):
        agents.create("b", token_hash("same"), NOW + TTL, NOW)


# --- users -------------------------------------------------------------------------------------


def test_users(users: UserStore) -> None:
    assert users.count() == 0
    admin = users.create("admin", "hash-1", True, NOW)
    assert admin.is_admin
    assert users.count() == 1
    assert users.by_username("admin") == admin
    assert users.by_id(admin.id) == admin
    assert users.by_username("nobody") is None
    users.set_password_hash(admin.id, "hash-2")
    again = users.by_username("admin")
    assert again is not None
    assert again.password_hash == "hash-2"
    with pytest.raises(sqlite3.IntegrityError):
        users.create("admin", "x", False, NOW)


def test_api_tokens_expire(users: UserStore) -> None:
    user = users.create("alice", "h", False, NOW)
    users.add_token(token_hash("t1"), user.id, NOW, NOW + 60)
    assert users.user_for_token(token_hash("t1"), NOW) == user
    assert users.user_for_token(token_hash("t1"), NOW + 59) == user
    assert users.user_for_token(token_hash("t1"), NOW + 60) is None
    assert users.user_for_token(token_hash("other"), NOW) is None


def test_drop_token(users: UserStore) -> None:
    user = users.create("alice", "h", False, NOW)
    users.add_token(token_hash("t1"), user.id, NOW, NOW + 60)
    users.drop_token(token_hash("t1"))
    assert users.user_for_token(token_hash("t1"), NOW) is None


def test_adding_a_token_purges_expired_ones(users: UserStore, db: Database) -> None:
    user = users.create("alice", "h", False, NOW)
    users.add_token(token_hash("old"), user.id, NOW, NOW + 10)
    users.add_token(token_hash("new"), user.id, NOW + 20, NOW + 100)
    hashes = {r["token_hash"] for r in db.query("SELECT token_hash FROM api_tokens")}
    assert hashes == {token_hash("new")}


# --- audit -------------------------------------------------------------------------------------


def test_audit_newest_first(db: Database) -> None:
    audit = AuditStore(db)
    audit.add(NOW, "admin", "agent.create", "a1", {"name": "web-1"})
    audit.add(NOW + 1, "admin", "agent.revoke", "a1")
    entries = audit.recent()
    assert [e.action for e in entries] == ["agent.revoke", "agent.create"]
    assert entries[1].detail == {"name": "web-1"}
    assert entries[0].detail == {}
    assert len(audit.recent(limit=1)) == 1
